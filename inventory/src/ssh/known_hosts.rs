//! ferry's own known_hosts (OpenSSH format, `~/.ferry/known_hosts` by default). A host seen for
//! the first time is recorded and its fingerprint announced (trust on first use), or refused
//! under strict checking until `ferry inventory trust` accepts it; a host whose key differs
//! from the recorded one is always refused, with both fingerprints and how to forget the old key.
//!
//! A host reached through a jump host is recorded under a name scoped by that jump host's key,
//! `[ADDR]:PORT@SHA256:<jump host key>`: the same private address behind two jump hosts is two
//! hosts, not one whose key "changed". The name is one token, so OpenSSH's tools still read
//! the file (`ssh-keygen -R '[10.0.0.5]:22@SHA256:…' -f ~/.ferry/known_hosts` removes it).
//!
//! Why not russh's `known_hosts` module (already a dependency): it splits lines on single
//! spaces and fails the whole lookup on the first line it cannot parse, knows no markers
//! (`@revoked`, `@cert-authority`), and treats a key of another algorithm than the recorded one
//! as unknown, so a machine in the middle offering an RSA key for a host pinned with ed25519
//! would be recorded on first use. Here any other key for a recorded name is CHANGED, revoked
//! keys are refused, and hashed names (`|1|salt|hash`, as `ssh-keygen -H` writes) match.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use hmac::{KeyInit, Mac};
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
        /// The known_hosts entry name (`host`, `[host]:port` or a jump-host-scoped name).
        entry: String,
        /// Recorded fingerprint (SHA256:...).
        old: String,
        /// Offered fingerprint (SHA256:...).
        new: String,
        /// The known_hosts file.
        file: PathBuf,
    },
    /// The key offered is marked `@revoked` in the file.
    #[error("host key of {entry} ({key}) is marked @revoked in {file}; refusing to connect")]
    Revoked {
        /// The known_hosts entry name.
        entry: String,
        /// Its fingerprint.
        key: String,
        /// The known_hosts file.
        file: PathBuf,
    },
    /// Nothing is recorded for the host and strict checking refuses unknown keys.
    #[error(
        "host key of {entry} is not known yet (offered {key}) and strict host key checking \
         refuses unknown keys"
    )]
    Unknown {
        /// The known_hosts entry name.
        entry: String,
        /// The offered key's fingerprint.
        key: String,
    },
    /// The file could not be read or written.
    #[error("known_hosts file {path}: {cause}; check its permissions or pass another path")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, not a `source()`: chains print each cause once).
        cause: std::io::Error,
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
    /// The key is marked `@revoked`.
    Revoked,
}

/// What to do with a host whose key is not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// Record it (trust on first use) and announce its fingerprint.
    #[default]
    AcceptNew,
    /// Refuse it; `ferry inventory trust` records it after the operator checked it.
    Strict,
}

/// What [`KnownHosts::check_or_record`] did with an acceptable key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// The key was recorded already.
    Known,
    /// The key was new and has just been recorded.
    Recorded,
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

    /// The entry name of a host reached directly (`via` is `None`), or through a jump host
    /// whose key has the fingerprint `via`: `[address]:port@SHA256:…`, one token.
    pub fn scoped_entry_name(address: &str, port: u16, via: Option<&str>) -> String {
        match via {
            None => Self::entry_name(address, port),
            Some(jump_key) => format!("[{address}]:{port}@{jump_key}"),
        }
    }

    /// The SHA256 fingerprint as OpenSSH prints it (`SHA256:...`).
    pub fn fingerprint(key: &PublicKey) -> String {
        key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The key's algorithm and fingerprint as an operator compares them:
    /// `ED25519 SHA256:...` (what `ssh-keygen -lf` prints on the host, but for the bit count).
    pub fn describe(key: &PublicKey) -> String {
        let alg = key.algorithm();
        let name = alg.as_str();
        let short = name
            .strip_prefix("ssh-")
            .or_else(|| name.strip_prefix("ecdsa-sha2-"))
            .unwrap_or(name)
            .to_uppercase();
        format!("{short} {}", Self::fingerprint(key))
    }

    /// Looks the key up.
    pub fn check(&self, entry: &str, key: &PublicKey) -> Result<Verdict, KnownHostsError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Verdict::Unknown),
            Err(cause) => {
                return Err(KnownHostsError::Io {
                    path: self.path.clone(),
                    cause,
                })
            }
        };
        let mut known = false;
        let mut recorded = None;
        for line in text.lines() {
            let Some(l) = Line::parse(line) else {
                continue;
            };
            if !l.names_host(entry) {
                continue;
            }
            let same = l.key.key_data() == key.key_data();
            match l.marker {
                Marker::Revoked if same => return Ok(Verdict::Revoked),
                // ferry pins plain keys: CA lines and revocations of other keys say nothing
                // about this one.
                Marker::Revoked | Marker::CertAuthority => {}
                Marker::None if same => known = true,
                Marker::None => {
                    recorded.get_or_insert(Self::fingerprint(&l.key));
                }
            }
        }
        Ok(match (known, recorded) {
            (true, _) => Verdict::Known,
            (false, Some(old)) => Verdict::Changed { old },
            (false, None) => Verdict::Unknown,
        })
    }

    /// Accepts a known key; records an unknown one (refuses it under [`HostKeyPolicy::Strict`]);
    /// refuses a changed or revoked one.
    pub fn check_or_record(
        &self,
        entry: &str,
        key: &PublicKey,
        policy: HostKeyPolicy,
    ) -> Result<Accepted, KnownHostsError> {
        // One writer at a time, and check+append as one step, so two connections to the same new
        // host do not both append.
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match self.check(entry, key)? {
            Verdict::Known => Ok(Accepted::Known),
            Verdict::Changed { old } => Err(KnownHostsError::Changed {
                entry: entry.to_string(),
                old,
                new: Self::fingerprint(key),
                file: self.path.clone(),
            }),
            Verdict::Revoked => Err(KnownHostsError::Revoked {
                entry: entry.to_string(),
                key: Self::fingerprint(key),
                file: self.path.clone(),
            }),
            Verdict::Unknown if policy == HostKeyPolicy::Strict => Err(KnownHostsError::Unknown {
                entry: entry.to_string(),
                key: Self::describe(key),
            }),
            Verdict::Unknown => self.append(entry, key).map(|()| Accepted::Recorded),
        }
    }

    fn append(&self, entry: &str, key: &PublicKey) -> Result<(), KnownHostsError> {
        let io = |cause| KnownHostsError::Io {
            path: self.path.clone(),
            cause,
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
        // A file edited by hand may lack its last newline: never glue our line onto another.
        let needs_newline = fs::read(&self.path)
            .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
            .unwrap_or(false);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        let mut line = String::new();
        if needs_newline {
            line.push('\n');
        }
        line.push_str(&format!("{entry} {}\n", text.trim()));
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        Ok(())
    }
}

/// A line's marker.
#[derive(Debug, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

/// One parsed known_hosts line: `[@marker] names keytype base64 [comment]`.
struct Line<'a> {
    marker: Marker,
    names: &'a str,
    key: PublicKey,
}

impl<'a> Line<'a> {
    /// `None` for comments, blank lines and lines that are not a host key (skipped, as
    /// OpenSSH skips them).
    fn parse(line: &'a str) -> Option<Self> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            m if m.starts_with('@') => return None,
            _ => Marker::None,
        };
        if marker != Marker::None {
            first = fields.next()?;
        }
        let (kind, data) = (fields.next()?, fields.next()?);
        let key = PublicKey::from_openssh(&format!("{kind} {data}")).ok()?;
        Some(Self {
            marker,
            names: first,
            key,
        })
    }

    /// Whether one of the line's names (plain or hashed) is `entry`. A negated name
    /// (`!host`) excludes the host, as in OpenSSH.
    fn names_host(&self, entry: &str) -> bool {
        let mut hit = false;
        for name in self.names.split(',') {
            if let Some(negated) = name.strip_prefix('!') {
                if negated == entry {
                    return false;
                }
            } else if name == entry || hashed_name_is(name, entry) {
                hit = true;
            }
        }
        hit
    }
}

/// Whether `name` is OpenSSH's hashed form (`|1|base64 salt|base64 HMAC-SHA1(salt, entry)`)
/// of `entry`.
fn hashed_name_is(name: &str, entry: &str) -> bool {
    let Some(rest) = name.strip_prefix("|1|") else {
        return false;
    };
    let Some((salt, hash)) = rest.split_once('|') else {
        return false;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(entry.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvWXQVRH/7+8qgjgyhqwlF/DvVHj5+3ECdqGr4r3mGN";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    #[test]
    fn records_first_use_then_refuses_a_changed_key() {
        let dir = tempfile::tempdir().unwrap();
        let kh = KnownHosts::new(dir.path().join("sub/known_hosts"));
        let (a, b) = (key(A), key(B));
        let entry = KnownHosts::entry_name("10.0.0.1", 2222);
        assert_eq!(entry, "[10.0.0.1]:2222");
        assert_eq!(kh.check(&entry, &a).unwrap(), Verdict::Unknown);
        let first = kh.check_or_record(&entry, &a, HostKeyPolicy::AcceptNew);
        assert_eq!(first.unwrap(), Accepted::Recorded);
        assert_eq!(kh.check(&entry, &a).unwrap(), Verdict::Known);
        let again = kh.check_or_record(&entry, &a, HostKeyPolicy::Strict);
        assert_eq!(again.unwrap(), Accepted::Known);
        let err = kh
            .check_or_record(&entry, &b, HostKeyPolicy::AcceptNew)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&KnownHosts::fingerprint(&a)), "{err}");
        assert!(err.contains(&KnownHosts::fingerprint(&b)), "{err}");
        assert!(err.contains("ssh-keygen -R '[10.0.0.1]:2222'"), "{err}");
        // Another host is not affected.
        kh.check_or_record("10.0.0.2", &b, HostKeyPolicy::AcceptNew)
            .unwrap();
    }

    #[test]
    fn strict_checking_refuses_an_unknown_key_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let kh = KnownHosts::new(dir.path().join("known_hosts"));
        let err = kh
            .check_or_record("10.0.0.1", &key(A), HostKeyPolicy::Strict)
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, KnownHostsError::Unknown { .. }), "{text}");
        assert!(
            text.contains(&format!("ED25519 {}", KnownHosts::fingerprint(&key(A)))),
            "{text}"
        );
        assert!(!kh.path().exists());
    }

    #[test]
    fn the_same_address_behind_two_jump_hosts_is_two_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let kh = KnownHosts::new(dir.path().join("known_hosts"));
        let via1 = KnownHosts::scoped_entry_name("10.0.0.5", 22, Some("SHA256:jumpOne"));
        let via2 = KnownHosts::scoped_entry_name("10.0.0.5", 22, Some("SHA256:jumpTwo"));
        assert_eq!(via1, "[10.0.0.5]:22@SHA256:jumpOne");
        kh.check_or_record(&via1, &key(A), HostKeyPolicy::AcceptNew)
            .unwrap();
        assert_eq!(
            kh.check_or_record(&via2, &key(B), HostKeyPolicy::AcceptNew)
                .unwrap(),
            Accepted::Recorded
        );
        assert_eq!(kh.check(&via1, &key(A)).unwrap(), Verdict::Known);
        assert_eq!(kh.check(&via2, &key(B)).unwrap(), Verdict::Known);
        // The bare address is a third host (reached directly).
        assert_eq!(kh.check("10.0.0.5", &key(A)).unwrap(), Verdict::Unknown);
    }

    #[test]
    fn reads_hashed_names_markers_and_lines_openssh_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let (a, b) = (key(A), key(B));
        // Hashed name of "[10.0.0.9]:2222" with a fixed salt, computed like ssh-keygen -H.
        let salt = [7u8; 20];
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"[10.0.0.9]:2222");
        let b64 = base64::engine::general_purpose::STANDARD;
        let hashed = format!(
            "|1|{}|{}",
            b64.encode(salt),
            b64.encode(mac.finalize().into_bytes())
        );
        let text = format!(
            "# a comment\n\n\
             this line is not a key at all\n\
             {hashed} {A}\n\
             @cert-authority *.example.org {B}\n\
             @revoked 10.0.0.7 {B}\n\
             10.0.0.7,10.0.0.8\t{A} root@host\n\
             @unknown-marker 10.0.0.6 {A}"
        );
        std::fs::write(&path, text).unwrap();
        let kh = KnownHosts::new(&path);
        assert_eq!(kh.check("[10.0.0.9]:2222", &a).unwrap(), Verdict::Known);
        assert!(matches!(
            kh.check("[10.0.0.9]:2222", &b).unwrap(),
            Verdict::Changed { .. }
        ));
        assert_eq!(kh.check("10.0.0.9", &a).unwrap(), Verdict::Unknown);
        assert_eq!(kh.check("10.0.0.8", &a).unwrap(), Verdict::Known);
        assert_eq!(kh.check("10.0.0.7", &b).unwrap(), Verdict::Revoked);
        assert_eq!(kh.check("10.0.0.6", &a).unwrap(), Verdict::Unknown);
        let err = kh
            .check_or_record("10.0.0.7", &b, HostKeyPolicy::AcceptNew)
            .unwrap_err();
        assert!(err.to_string().contains("@revoked"), "{err}");
        // The file lacked its last newline: a recorded key starts a line of its own.
        kh.check_or_record("10.0.0.1", &a, HostKeyPolicy::AcceptNew)
            .unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(after.ends_with(&format!("\n10.0.0.1 {A}\n")), "{after}");
        assert_eq!(kh.check("10.0.0.6", &a).unwrap(), Verdict::Unknown);
    }

    /// Why this module is not russh's `known_hosts` (issue 16 weighed it again): on the same
    /// file, russh takes a pinned host offering a key of another algorithm for a new host,
    /// misses a tab-separated line, and fails every lookup on one bad line; ferry refuses the
    /// first and reads the others. Should russh change, this test says it is time to look again.
    #[test]
    fn russh_known_hosts_would_record_what_ferry_refuses() {
        const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBAoAVqDkNDlDfF5QYn3j31JujWGzztQsSxfAjyo8zbmwGva0p/sLJYIcyDHfcEzABZVSD5CUuhyhRo+/zH7wsJo=";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, format!("10.0.0.7 {A}\n10.0.0.8\t{A}\n")).unwrap();
        let kh = KnownHosts::new(&path);
        let other_algorithm = key(ECDSA);
        // A machine in the middle offers an ECDSA key for a host pinned with ed25519.
        let russh = russh::keys::check_known_hosts_path("10.0.0.7", 22, &other_algorithm, &path);
        assert!(matches!(russh, Ok(false)), "russh now says {russh:?}");
        assert!(matches!(
            kh.check("10.0.0.7", &other_algorithm).unwrap(),
            Verdict::Changed { .. }
        ));
        // A line OpenSSH reads (fields separated by a tab).
        let russh = russh::keys::check_known_hosts_path("10.0.0.8", 22, &key(A), &path);
        assert!(matches!(russh, Ok(false)), "russh now says {russh:?}");
        assert_eq!(kh.check("10.0.0.8", &key(A)).unwrap(), Verdict::Known);
        // One damaged line for the host: russh fails the lookup, ferry reads past it.
        std::fs::write(
            &path,
            format!("10.0.0.7 ssh-ed25519 damaged\n10.0.0.7 {A}\n"),
        )
        .unwrap();
        assert!(russh::keys::check_known_hosts_path("10.0.0.7", 22, &key(A), &path).is_err());
        assert_eq!(kh.check("10.0.0.7", &key(A)).unwrap(), Verdict::Known);
    }

    #[test]
    fn describes_keys_as_an_operator_compares_them() {
        assert_eq!(
            KnownHosts::describe(&key(A)),
            format!("ED25519 {}", KnownHosts::fingerprint(&key(A)))
        );
    }
}
