//! A host ready to be reached: the resolved form of an inventory entry, with its secrets
//! loaded. The inventory file produces these; SSH sessions consume them. Secrets never print.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

/// A secret string (password, passphrase). `Debug` and `Display` never show it. Its bytes are
/// held once in memory however often it is cloned (clones share them), and overwritten with
/// zeros when the last clone is dropped.
#[derive(Clone)]
pub struct Secret(Arc<Zeroizing<String>>);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(Arc::new(Zeroizing::new(s.into())))
    }

    /// The secret itself: call only where it is sent to its one consumer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

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

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn clones_of_a_secret_share_one_copy_of_its_bytes() {
        let s = Secret::new("hunter2-but-longer");
        let c = s.clone();
        // One buffer, so one place to wipe: a clone is not a second copy in memory.
        assert_eq!(s.expose().as_ptr(), c.expose().as_ptr());
        assert_eq!(s, c);
        assert_eq!(format!("{c:?}"), "Secret(***)");
    }
}
