//! Ed25519 signing keys and signatures. Keys live in armored text files (see
//! docs/bundle-format.md); the private seed never appears in Debug output or errors.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};

use crate::error::{BundleError, Result};
use crate::Digest;

const PRIVATE_LABEL: &str = "FERRY ED25519 PRIVATE KEY";
const PUBLIC_LABEL: &str = "FERRY ED25519 PUBLIC KEY";

/// A private signing key.
pub struct SigningKey(ed25519_dalek::SigningKey);

/// A public key that checks signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey(key id {}, secret hidden)",
            self.public().key_id()
        )
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// A detached signature as stored in `manifest.sig` and `NAME.parts.sig`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The signer's key id (16 hex digits).
    pub key_id: String,
    /// Base64 of the 64-byte signature.
    pub signature: String,
}

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| BundleError::Key {
            path: PathBuf::from("(random source)"),
            msg: format!("cannot get random bytes for a new key: {e}"),
        })?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `msg` (deterministic: the same key and message give the same signature).
    pub fn sign(&self, msg: &[u8]) -> SignatureFile {
        let sig = self.0.sign(msg);
        SignatureFile {
            algorithm: "ed25519".into(),
            key_id: self.public().key_id(),
            signature: B64.encode(sig.to_bytes()),
        }
    }

    /// Signs `msg` and returns the signature file's bytes.
    pub fn sign_to_bytes(&self, msg: &[u8]) -> Vec<u8> {
        let mut out = serde_json::to_vec(&self.sign(msg)).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads a private key file.
    pub fn load(path: &Path) -> Result<Self> {
        let seed = read_armored(path, PRIVATE_LABEL)?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Writes `prefix` (private, mode 0600) and `prefix.pub`. Refuses to overwrite either.
    pub fn write_pair(&self, prefix: &Path) -> Result<PathBuf> {
        let public_path = PathBuf::from(format!("{}.pub", prefix.display()));
        for p in [prefix, public_path.as_path()] {
            if p.symlink_metadata().is_ok() {
                return Err(BundleError::Key {
                    path: p.to_path_buf(),
                    msg:
                        "already exists; will not overwrite a key (remove it or choose another -o)"
                            .into(),
                });
            }
        }
        let private = armor(PRIVATE_LABEL, self.0.as_bytes());
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(prefix)
            .map_err(BundleError::io(format!("creating {}", prefix.display())))?;
        f.write_all(private.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(BundleError::io(format!("writing {}", prefix.display())))?;
        let public = armor(PUBLIC_LABEL, self.public().0.as_bytes());
        fs::write(&public_path, public).map_err(BundleError::io(format!(
            "writing {}",
            public_path.display()
        )))?;
        Ok(public_path)
    }
}

impl PublicKey {
    /// Reads a public key file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = read_armored(path, PUBLIC_LABEL)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| BundleError::Key {
                path: path.to_path_buf(),
                msg: "not a valid Ed25519 public key".into(),
            })
    }

    /// First 8 bytes of sha256(public key) in hex: names the key in errors and inspect output.
    pub fn key_id(&self) -> String {
        Digest::of(self.0.as_bytes()).hex()[..16].to_string()
    }

    /// Checks a signature file's bytes over `msg`. `what` names the signed thing in errors.
    pub fn verify(&self, msg: &[u8], sig_bytes: &[u8], file: &Path, what: &str) -> Result<()> {
        self.verify_as(msg, sig_bytes, file, what, "the bundle")
    }

    /// [`PublicKey::verify`] for a file that is not a bundle: `whole` names what was changed
    /// when the signature does not match ("the package").
    pub fn verify_as(
        &self,
        msg: &[u8],
        sig_bytes: &[u8],
        file: &Path,
        what: &str,
        whole: &str,
    ) -> Result<()> {
        let bad = |msg: String| BundleError::Signature {
            bundle: file.to_path_buf(),
            msg,
        };
        let sig: SignatureFile = serde_json::from_slice(sig_bytes)
            .map_err(|e| bad(format!("{what} signature is malformed ({e})")))?;
        if sig.algorithm != "ed25519" {
            return Err(bad(format!(
                "{what} signature uses {:?}, ferry knows only ed25519",
                sig.algorithm
            )));
        }
        if sig.key_id != self.key_id() {
            return Err(bad(format!(
                "{what} is signed by key {}, not by the given public key {}",
                sig.key_id,
                self.key_id()
            )));
        }
        let raw = B64
            .decode(sig.signature.as_bytes())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| bad(format!("{what} signature is not 64 bytes of base64")))?;
        self.0
            .verify(msg, &ed25519_dalek::Signature::from_bytes(&raw))
            .map_err(|_| {
                bad(format!(
                    "{what} signature does not match: {whole} was changed after signing"
                ))
            })
    }
}

fn armor(label: &str, bytes: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        B64.encode(bytes)
    )
}

/// What a file that is not a bundle key is, from its first line, when that can be told:
/// the keys people confuse with a bundle key (license keys, SSH keys) and other armoured files.
fn other_kind(first_line: &str) -> Option<String> {
    let known = [
        (
            "-----BEGIN FERRY LICENSE PUBLIC KEY-----",
            "a license public key (from `ferry license keygen`)",
        ),
        (
            "-----BEGIN FERRY LICENSE SIGNING KEY-----",
            "a license signing key (from `ferry license keygen`)",
        ),
        ("-----BEGIN FERRY LICENSE REQUEST-----", "a license request"),
        ("-----BEGIN FERRY LICENSE-----", "a license"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "an SSH private key"),
    ];
    if let Some((_, kind)) = known.iter().find(|(l, _)| *l == first_line) {
        return Some((*kind).to_string());
    }
    if ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|p| first_line.starts_with(p))
    {
        return Some("an SSH public key".into());
    }
    let label = first_line
        .strip_prefix("-----BEGIN ")?
        .strip_suffix("-----")?;
    Some(format!("a {label} file"))
}

fn read_armored(path: &Path, label: &str) -> Result<[u8; 32]> {
    let text = fs::read_to_string(path).map_err(|e| BundleError::Key {
        path: path.to_path_buf(),
        msg: format!("cannot read key file: {e}"),
    })?;
    let bad = |msg: &str| BundleError::Key {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next();
    if first != Some(begin.as_str()) {
        let other = if label == PRIVATE_LABEL {
            PUBLIC_LABEL
        } else {
            PRIVATE_LABEL
        };
        let wanted = label.to_lowercase().replace("ferry ed25519 ", "");
        if text.contains(other) {
            return Err(bad(&format!(
                "is a {}, expected a {wanted}",
                other.to_lowercase().replace("ferry ed25519 ", ""),
            )));
        }
        if let Some(kind) = first.and_then(other_kind) {
            return Err(bad(&format!(
                "is {kind}, not a bundle signing key: give the bundle signer's {wanted} \
                 (from `ferry key generate`)"
            )));
        }
        return Err(bad(&format!("not a ferry key file (expected {begin})")));
    }
    let body = lines.next().unwrap_or_default();
    if lines.next() != Some(end.as_str()) {
        return Err(bad(&format!("malformed key file (expected {end})")));
    }
    let raw = B64
        .decode(body.as_bytes())
        .map_err(|_| bad("malformed key file (body is not base64)"))?;
    <[u8; 32]>::try_from(raw.as_slice())
        .map_err(|_| bad("malformed key file (key is not 32 bytes)"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_private_key_only_its_owner_can_read_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("k");
        let key = SigningKey::generate().unwrap();
        key.write_pair(&prefix).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&prefix).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = SigningKey::load(&prefix).unwrap();
        let public = PublicKey::load(&dir.path().join("k.pub")).unwrap();
        assert_eq!(again.public(), public);
        let sig = again.sign_to_bytes(b"msg");
        public.verify(b"msg", &sig, &prefix, "test").unwrap();
        let err = public.verify(b"msh", &sig, &prefix, "test").unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let err = key.write_pair(&prefix).unwrap_err();
        assert!(err.to_string().contains("will not overwrite"), "{err}");
    }

    #[test]
    fn never_shows_the_secret() {
        let key = SigningKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("secret hidden"));
        assert!(!shown.contains(&B64.encode(key.0.as_bytes())));
    }

    #[test]
    fn refuses_a_public_key_where_a_private_key_belongs() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("k");
        SigningKey::generate().unwrap().write_pair(&prefix).unwrap();
        let err = SigningKey::load(&dir.path().join("k.pub")).unwrap_err();
        assert!(
            err.to_string()
                .contains("is a public key, expected a private key"),
            "{err}"
        );
    }

    #[test]
    fn names_the_kind_of_key_given_instead_of_a_bundle_key() {
        let dir = tempfile::tempdir().unwrap();
        for (text, kind) in [
            (
                "-----BEGIN FERRY LICENSE PUBLIC KEY-----\nAAAA\n-----END FERRY LICENSE PUBLIC KEY-----\n",
                "is a license public key (from `ferry license keygen`), not a bundle signing key",
            ),
            ("ssh-ed25519 AAAAC3Nza me@host\n", "is an SSH public key, not a bundle"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "is a CERTIFICATE file, not a bundle",
            ),
        ] {
            let p = dir.path().join("given.pub");
            std::fs::write(&p, text).unwrap();
            let err = PublicKey::load(&p).unwrap_err().to_string();
            assert!(err.contains(kind), "{err}");
            assert!(err.contains("`ferry key generate`"), "{err}");
        }
    }
}
