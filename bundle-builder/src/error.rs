//! The one error type of this crate. Every message names the cause and, where it helps, what
//! to do; none ever contains key material.

use std::io;
use std::path::PathBuf;

use crate::Digest;

/// Everything that can go wrong while building, opening, verifying or extracting a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// An I/O error while doing `what`.
    #[error("{what}: {source}")]
    Io {
        /// What was being done ("reading /x", "writing /y").
        what: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// `bundle.toml` is not valid.
    #[error("{path}: {msg}")]
    Spec {
        /// The bundle.toml file.
        path: PathBuf,
        /// What is wrong in it.
        msg: String,
    },
    /// A pinned sha256 does not match the file.
    #[error("{what} {path}: sha256 mismatch: bundle.toml pins {expected}, the file has {actual}")]
    PinnedDigestMismatch {
        /// What the file is ("k3s binary", "gpu driver nvidia").
        what: String,
        /// The file.
        path: PathBuf,
        /// The digest bundle.toml pins.
        expected: Digest,
        /// The digest of the file's bytes.
        actual: Digest,
    },
    /// Not enough free space for the output.
    #[error("not enough free space in {dir}: the bundle needs up to {needed} bytes, {available} are free")]
    NoSpace {
        /// The output directory.
        dir: PathBuf,
        /// Upper bound of the bundle's size.
        needed: u64,
        /// Free bytes for this user.
        available: u64,
    },
    /// The bundle's structure or a byte in it is wrong.
    #[error("{bundle}: {msg}")]
    Damaged {
        /// The bundle (or part) file.
        bundle: PathBuf,
        /// What is wrong, naming the entry, blob, item or part.
        msg: String,
    },
    /// The signature does not check out, is missing, or was made by another key.
    #[error("{bundle}: {msg}")]
    Signature {
        /// The bundle (or parts index) file.
        bundle: PathBuf,
        /// What is wrong with the signature.
        msg: String,
    },
    /// A key file is unreadable or malformed.
    #[error("{path}: {msg}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        msg: String,
    },
    /// A directory tree or extraction target is unsafe or invalid.
    #[error("{msg}")]
    Unsafe {
        /// What is unsafe, naming the entry.
        msg: String,
    },
    /// An item asked for is not in the bundle.
    #[error("no item named {name:?} in the bundle (items: {known})")]
    NoSuchItem {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// An app package's description or files are not valid (the message names file and line).
    #[error("{msg}")]
    AppPackage {
        /// What is wrong and what to do.
        msg: String,
    },
    /// The image module failed.
    #[error("{0}")]
    Image(String),
}

impl BundleError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> BundleError {
        let what = what.into();
        move |source| BundleError::Io { what, source }
    }

    pub(crate) fn damaged(bundle: &std::path::Path, msg: impl Into<String>) -> BundleError {
        BundleError::Damaged {
            bundle: bundle.to_path_buf(),
            msg: msg.into(),
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = BundleError> = std::result::Result<T, E>;
