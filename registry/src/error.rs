//! The one error type of this crate. Every message names the cause and what to do.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The bundle could not be opened or its signature did not check out.
    #[error(transparent)]
    Bundle(#[from] ferry_bundle::BundleError),
    /// The bundle holds no image that has a name.
    #[error("{bundle} holds no named images{why}: there is nothing to serve as a registry (add [[images]] to bundle.toml)")]
    NoImages {
        /// The bundle.
        bundle: PathBuf,
        /// Images left out and why, when there were some.
        why: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}{hint}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The TLS directory, a certificate or a key is unusable.
    #[error("{path}: {msg}")]
    Tls {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong and what to do.
        msg: String,
    },
}

impl RegistryError {
    pub(crate) fn listen(addr: SocketAddr, source: io::Error) -> Self {
        let hint = match source.kind() {
            io::ErrorKind::AddrInUse => {
                ": another program serves that port; stop it or pick another port with --listen"
            }
            io::ErrorKind::AddrNotAvailable => {
                ": no interface of this machine has that address; pick one it has (ip -br addr) or 0.0.0.0"
            }
            io::ErrorKind::PermissionDenied => {
                ": ports below 1024 need root; pick a port above 1024 (5000) or run as root"
            }
            _ => "",
        };
        RegistryError::Listen { addr, source, hint }
    }

    pub(crate) fn tls(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        RegistryError::Tls {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
