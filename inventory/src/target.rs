//! A host ready to be reached: the resolved form of an inventory entry, with its secrets
//! loaded. The inventory file produces these; SSH sessions consume them. Secrets never print.

use std::fmt;
use std::path::PathBuf;

/// A secret string (password, passphrase). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself: call only where it is sent to its one consumer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How to authenticate to a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// A private key file, with its passphrase if it has one.
    Key {
        /// The private key file.
        path: PathBuf,
        /// The key's passphrase.
        passphrase: Option<Secret>,
    },
    /// A password (tried as `password`, then as keyboard-interactive).
    Password(Secret),
}

/// How to become root on a host.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Sudo {
    /// The user is root or no privilege is needed.
    #[default]
    None,
    /// `sudo -n` works without a password.
    Passwordless,
    /// `sudo` asks for this password.
    Password(Secret),
}

/// One host, resolved and ready to be reached over SSH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The host's name in the inventory (logs and errors use it).
    pub name: String,
    /// Address or DNS name.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// How to log in.
    pub auth: Auth,
    /// How to become root.
    pub sudo: Sudo,
    /// The jump host to go through, if any.
    pub bastion: Option<Box<Target>>,
}
