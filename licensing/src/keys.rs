//! Vendor issuer keys: Ed25519 key pairs, their ids, their armored files, and the trust root: the
//! public keys built into this ferry, the only ones a site accepts licenses from. Keys rotate by
//! id: a license names the key that signed it, and a build may carry several vendor keys.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::armor;
use crate::error::{LicenseError, Result};

/// An issuer key id: 16 hex digits derived from the public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub String);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The vendor's private signing key. Its `Debug` never shows the key, and the key bytes are
/// wiped when it is dropped (ed25519-dalek's `SigningKey` zeroizes itself); it cannot be cloned.
pub struct IssuerKey {
    key: SigningKey,
}

// `SigningKey` (ed25519-dalek with its `zeroize` feature) wipes itself on drop, and it is the
// only field: the marker lets callers and tests require wiping by type.
impl zeroize::ZeroizeOnDrop for IssuerKey {}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey")
            .field("id", &self.public().id())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl IssuerKey {
    /// Makes a new random key.
    pub fn generate() -> Result<Self> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        crate::random(seed.as_mut())?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The matching public key.
    pub fn public(&self) -> IssuerPublicKey {
        IssuerPublicKey {
            key: self.key.verifying_key(),
        }
    }

    /// The armored private key file (write it with mode 0600).
    pub fn to_armored(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(armor::encode(armor::SIGNING_KEY, self.key.as_bytes()))
    }

    /// Reads an armored private key file.
    pub fn from_armored(input: &[u8]) -> Result<Self> {
        let body = zeroize::Zeroizing::new(armor::decode(armor::SIGNING_KEY, input)?);
        let seed: [u8; 32] = body.as_slice().try_into().map_err(|_| {
            LicenseError::Key("license signing key file is damaged: the key is not 32 bytes".into())
        })?;
        let seed = zeroize::Zeroizing::new(seed);
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> Signature {
        self.key.sign(msg)
    }
}

/// A vendor public key, pinned on sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerPublicKey {
    key: VerifyingKey,
}

impl IssuerPublicKey {
    /// The key id: first 8 bytes of SHA-256("ferry-license-key v1\0" || key), in hex.
    pub fn id(&self) -> KeyId {
        let mut h = Sha256::new();
        h.update(b"ferry-license-key v1\0");
        h.update(self.key.as_bytes());
        KeyId(hex::encode(&h.finalize()[..8]))
    }

    /// The armored public key file.
    pub fn to_armored(&self) -> String {
        armor::encode(armor::PUBLIC_KEY, self.key.as_bytes())
    }

    /// Reads an armored public key file.
    pub fn from_armored(input: &[u8]) -> Result<Self> {
        Self::from_bytes(&armor::decode(armor::PUBLIC_KEY, input)?)
    }

    fn from_bytes(body: &[u8]) -> Result<Self> {
        let bytes: [u8; 32] = body.try_into().map_err(|_| {
            LicenseError::Key("license public key file is damaged: the key is not 32 bytes".into())
        })?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
            LicenseError::Key(
                "license public key file is damaged: not a valid Ed25519 public key".into(),
            )
        })?;
        Ok(Self { key })
    }

    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(sig) else {
            return false;
        };
        self.key.verify_strict(msg, &sig).is_ok()
    }
}

/// The vendor public keys built into this ferry: the file named by `FERRY_LICENSE_VENDOR_KEYS`
/// when ferry was built (see build.rs), empty when none was named.
const VENDOR_KEYS: &str = include_str!(concat!(env!("OUT_DIR"), "/vendor-keys.pub"));

/// The test issuer keys (testdata/), trusted only by builds with the `testing` feature: their
/// private halves are in the repository so that tests can issue licenses.
#[cfg(any(test, feature = "testing"))]
const TEST_KEYS: &str = concat!(
    include_str!("../testdata/test-issuer-a.key.pub"),
    include_str!("../testdata/test-issuer-b.key.pub")
);
#[cfg(not(any(test, feature = "testing")))]
const TEST_KEYS: &str = "";

/// Whether this is a test build of ferry-license (the `testing` feature): it trusts the test
/// issuer keys, and callers may offer a chosen time and machine root to the checks. A release
/// build is never one.
pub const TEST_BUILD: bool = cfg!(feature = "testing");

/// The issuer keys a site accepts licenses from. It can only be made from the keys built into
/// ferry ([`TrustRoot::built_in`]), narrowed with [`TrustRoot::select`]: no file on a site and no
/// command-line option can add a key.
#[derive(Debug, Clone)]
pub struct TrustRoot {
    keys: Vec<(IssuerPublicKey, &'static str)>,
}

impl TrustRoot {
    /// Every vendor key built into this ferry (plus the test keys in a test build).
    pub fn built_in() -> Result<Self> {
        let mut keys = Vec::new();
        for (text, origin) in [(VENDOR_KEYS, "vendor key"), (TEST_KEYS, "test key")] {
            for body in armor::decode_all(armor::PUBLIC_KEY, text).map_err(|e| {
                LicenseError::Key(format!(
                    "the license keys built into this ferry are damaged ({e}); use a ferry release from the vendor"
                ))
            })? {
                keys.push((IssuerPublicKey::from_bytes(&body)?, origin));
            }
        }
        Ok(Self { keys })
    }

    /// A trust root of exactly `keys`, for tests of the licensing rules with keys made on the fly.
    #[cfg(any(test, feature = "testing"))]
    pub fn of(keys: Vec<IssuerPublicKey>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k, "test key")).collect(),
        }
    }

    /// Only the given keys, each of which must be one of this root's (`--pubkey` chooses among
    /// the built-in keys; it cannot add one).
    pub fn select(&self, chosen: &[IssuerPublicKey]) -> Result<Self> {
        let mut keys = Vec::new();
        for c in chosen {
            let Some(k) = self.keys.iter().find(|(k, _)| k == c) else {
                return Err(LicenseError::NotBuiltIn {
                    kid: c.id().0,
                    built_in: self.ids(),
                });
            };
            keys.push(k.clone());
        }
        Ok(Self { keys })
    }

    /// The keys, each with where it comes from (`vendor key` or `test key`).
    pub fn keys(&self) -> impl Iterator<Item = (&IssuerPublicKey, &'static str)> {
        self.keys.iter().map(|(k, origin)| (k, *origin))
    }

    /// The key with id `kid`, if this root holds it.
    pub(crate) fn find(&self, kid: &KeyId) -> Option<&IssuerPublicKey> {
        self.keys.iter().map(|(k, _)| k).find(|k| k.id() == *kid)
    }

    /// The key ids, comma separated (`none` when empty), for messages.
    pub fn ids(&self) -> String {
        if self.keys.is_empty() {
            return "none".into();
        }
        self.keys
            .iter()
            .map(|(k, _)| k.id().0)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
