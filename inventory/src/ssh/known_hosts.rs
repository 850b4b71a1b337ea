//! ferry's own known_hosts (OpenSSH format, `~/.ferry/known_hosts` by default): a host seen for
//! the first time is recorded (trust on first use); a host whose key differs from the recorded
//! one is refused, with both fingerprints and the command that forgets the old key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::{HashAlg, PublicKey};

/// Errors of the known_hosts file.
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    /// The key offered by the host differs from the recorded one.
    #[error(
        "host key of {entry} CHANGED: recorded {old}, offered {new}; refusing to connect. \
         If the host was reinstalled and the change is expected, run: \
         ssh-keygen -R '{entry}' -f {file}"
    )]
    Changed {
        /// The known_hosts entry name (`host` or `[host]:port`).
        entry: String,
        /// Recorded fingerprint (SHA256:...).
        old: String,
        /// Offered fingerprint (SHA256:...).
        new: String,
        /// The known_hosts file.
        file: PathBuf,
    },
    /// The file could not be read or written.
    #[error("known_hosts file {path}: {source}; check its permissions or pass another path")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The home directory is unknown, so the default file cannot be found.
    #[error("cannot find ferry's known_hosts: HOME is not set; pass --known-hosts PATH")]
    NoHome,
    /// A key could not be encoded.
    #[error("encoding the host key of {entry}: {reason}")]
    Encode {
        /// The entry.
        entry: String,
        /// Why.
        reason: String,
    },
}

/// What the file says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is recorded for this host.
    Known,
    /// Nothing is recorded for this host.
    Unknown,
    /// Another key is recorded for this host.
    Changed {
        /// Fingerprint of the recorded key.
        old: String,
    },
}

/// A known_hosts file, safe to share between concurrent connections.
#[derive(Debug)]
pub struct KnownHosts {
    path: PathBuf,
    lock: Mutex<()>,
}

impl KnownHosts {
    /// Uses (and creates when first recording) the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// `~/.ferry/known_hosts`.
    pub fn default_path() -> Result<PathBuf, KnownHostsError> {
        let home = std::env::var_os("HOME").ok_or(KnownHostsError::NoHome)?;
        Ok(Path::new(&home).join(".ferry").join("known_hosts"))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry name OpenSSH uses: `host` on port 22, `[host]:port` otherwise.
    pub fn entry_name(address: &str, port: u16) -> String {
        if port == 22 {
            address.to_string()
        } else {
            format!("[{address}]:{port}")
        }
    }

    /// The SHA256 fingerprint as OpenSSH prints it (`SHA256:...`).
    pub fn fingerprint(key: &PublicKey) -> String {
        key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// Looks the key up.
    pub fn check(&self, entry: &str, key: &PublicKey) -> Result<Verdict, KnownHostsError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Verdict::Unknown),
            Err(source) => {
                return Err(KnownHostsError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut recorded = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.splitn(2, char::is_whitespace);
            let (Some(hosts), Some(keytext)) = (parts.next(), parts.next()) else {
                continue;
            };
            if !hosts.split(',').any(|h| h == entry) {
                continue;
            }
            let Ok(k) = PublicKey::from_openssh(keytext.trim()) else {
                continue;
            };
            if k.key_data() == key.key_data() {
                return Ok(Verdict::Known);
            }
            recorded.get_or_insert(Self::fingerprint(&k));
        }
        Ok(match recorded {
            Some(old) => Verdict::Changed { old },
            None => Verdict::Unknown,
        })
    }

    /// Accepts a known key, records an unknown one, refuses a changed one.
    pub fn check_or_record(&self, entry: &str, key: &PublicKey) -> Result<(), KnownHostsError> {
        // One writer at a time, and check+append as one step, so two connections to the same new
        // host do not both append.
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match self.check(entry, key)? {
            Verdict::Known => Ok(()),
            Verdict::Changed { old } => Err(KnownHostsError::Changed {
                entry: entry.to_string(),
                old,
                new: Self::fingerprint(key),
                file: self.path.clone(),
            }),
            Verdict::Unknown => self.append(entry, key),
        }
    }

    fn append(&self, entry: &str, key: &PublicKey) -> Result<(), KnownHostsError> {
        let io = |source| KnownHostsError::Io {
            path: self.path.clone(),
            source,
        };
        let mut k = key.clone();
        k.set_comment("");
        let text = k.to_openssh().map_err(|e| KnownHostsError::Encode {
            entry: entry.to_string(),
            reason: e.to_string(),
        })?;
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        writeln!(f, "{entry} {}", text.trim()).map_err(io)?;
        f.sync_data().map_err(io)?;
        tracing::info!(entry, fingerprint = %Self::fingerprint(key), "recorded new host key");
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvWXQVRH/7+8qgjgyhqwlF/DvVHj5+3ECdqGr4r3mGN";

    #[test]
    fn records_first_use_then_refuses_a_changed_key() {
        let dir = tempfile::tempdir().unwrap();
        let kh = KnownHosts::new(dir.path().join("sub/known_hosts"));
        let a = PublicKey::from_openssh(A).unwrap();
        let b = PublicKey::from_openssh(B).unwrap();
        let entry = KnownHosts::entry_name("10.0.0.1", 2222);
        assert_eq!(entry, "[10.0.0.1]:2222");
        assert_eq!(kh.check(&entry, &a).unwrap(), Verdict::Unknown);
        kh.check_or_record(&entry, &a).unwrap();
        assert_eq!(kh.check(&entry, &a).unwrap(), Verdict::Known);
        let err = kh.check_or_record(&entry, &b).unwrap_err().to_string();
        assert!(err.contains(&KnownHosts::fingerprint(&a)), "{err}");
        assert!(err.contains(&KnownHosts::fingerprint(&b)), "{err}");
        assert!(err.contains("ssh-keygen -R '[10.0.0.1]:2222'"), "{err}");
        // Another host is not affected.
        kh.check_or_record("10.0.0.2", &b).unwrap();
    }
}
