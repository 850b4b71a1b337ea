//! Vendor issuer keys: Ed25519 key pairs, their ids, and their armored files.
//! Keys rotate by id: a license names the key that signed it and a site pins a set of public keys.

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

/// The vendor's private signing key. Its `Debug` never shows the key.
pub struct IssuerKey {
    key: SigningKey,
}

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
        let body = armor::decode(armor::PUBLIC_KEY, input)?;
        let bytes: [u8; 32] = body.as_slice().try_into().map_err(|_| {
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
