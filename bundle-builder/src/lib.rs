//! The ferry bundle: one signed, content-addressed artifact that carries everything a
//! disconnected site needs. This crate owns the format (manifest, blobs, signature, parts),
//! building, verifying and reading blobs as streams. It knows nothing of hosts or clusters.
//!
//! The format is described in `docs/bundle-format.md`. Entry points: [`build()`] writes a
//! bundle from a [`BundleSpec`]; [`Bundle::open`] reads one (checking its structure and
//! signature), then [`Bundle::verify`], [`Bundle::open_blob`] and [`Bundle::extract`].

pub mod app_package;
pub mod apt_repo;
pub mod beneath;
pub mod build;
pub mod digest;
pub mod error;
pub mod image;
pub mod keys;
pub mod manifest;
pub mod parts;
pub mod read;
pub mod source;
pub mod spec;
pub mod tarfmt;
pub mod tree;

pub use app_package::AppPackage;
pub use build::{build, BuildEvent, BuildOptions, BuildSummary, ItemSummary};
pub use digest::Digest;
pub use error::BundleError;
pub use keys::{PublicKey, SigningKey};
pub use manifest::{Item, ItemKind, Manifest};
pub use read::{Bundle, ReadEvent, SignatureState, VerifyReport};
pub use source::BlobSource;
pub use spec::BundleSpec;

/// The time a bundle records as built (every tar mtime and the manifest's `created`):
/// `SOURCE_DATE_EPOCH` from the environment when set, for reproducible builds, else the
/// current time. A value that is not a number of seconds is an error rather than a silently
/// different bundle.
pub fn build_time() -> Result<u64, BundleError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| BundleError::Spec {
            path: "SOURCE_DATE_EPOCH".into(),
            msg: format!("{v:?} is not a number of seconds since 1970"),
        }),
        // A clock before 1970 is no reason to refuse a build: it records 0, as before.
        _ => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)),
    }
}
