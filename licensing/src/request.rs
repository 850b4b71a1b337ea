//! The activation request: what an air-gapped site sends to the vendor (a random activation
//! secret and the hashed fingerprint), armored with a checksum and short enough for a QR code.
//! The same record, kept on the site, is what later opens the license.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::armor;
use crate::error::{LicenseError, Result};
use crate::fingerprint::{Fingerprint, HostComponents};
use crate::model::Usage;

/// 32 random bytes that only the site (and the vendor, through the request) know. Never shown in
/// `Debug`, logs or errors; wiped on drop; not `Clone`, so no copy is made that could be missed.
#[derive(PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ActivationSecret([u8; 32]);

impl std::fmt::Debug for ActivationSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActivationSecret(<redacted>)")
    }
}

impl ActivationSecret {
    /// Makes a new random secret.
    pub fn generate() -> Result<Self> {
        let mut s = [0u8; 32];
        crate::random(&mut s)?;
        Ok(Self(s))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Serialize for ActivationSecret {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for ActivationSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = zeroize::Zeroizing::new(String::deserialize(d)?);
        let bytes = zeroize::Zeroizing::new(
            STANDARD
                .decode(s.as_bytes())
                .map_err(|_| serde::de::Error::custom("secret is not base64"))?,
        );
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom("secret is not 32 bytes"))?;
        Ok(Self(arr))
    }
}

/// An activation request. Kept on the site inside its activation record (mode 0600). Not `Clone`:
/// it holds the activation secret.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationRequest {
    /// Format version, 1.
    pub v: u32,
    /// Always `ferry-license-request`.
    pub kind: String,
    /// Request id, 16 hex digits (derived from secret and fingerprint).
    pub id: String,
    /// Unix seconds at the site when the request was made.
    pub created: i64,
    /// The activation secret.
    pub secret: ActivationSecret,
    /// The hashed fingerprint of every host.
    pub fingerprint: Fingerprint,
    /// What the site uses now (for the vendor's information).
    pub usage: Usage,
}

const KIND: &str = "ferry-license-request";

fn request_id(secret: &ActivationSecret, fp: &Fingerprint) -> String {
    let mut h = Sha256::new();
    h.update(b"ferry-license-request-id v1\0");
    h.update(secret.bytes());
    h.update(fp.digest());
    hex::encode(&h.finalize()[..8])
}

impl ActivationRequest {
    /// Makes a request for `hosts` with a fresh secret and salt.
    pub fn new(hosts: &[HostComponents], usage: Usage, now: i64) -> Result<Self> {
        let secret = ActivationSecret::generate()?;
        let mut salt = [0u8; 16];
        crate::random(&mut salt)?;
        let fingerprint = Fingerprint::new(&salt, hosts);
        Ok(Self {
            v: 1,
            kind: KIND.into(),
            id: request_id(&secret, &fingerprint),
            created: now,
            secret,
            fingerprint,
            usage,
        })
    }

    /// The compact JSON body (contains the secret: write it only to 0600 files or the request).
    pub fn to_json(&self) -> zeroize::Zeroizing<Vec<u8>> {
        secret_json(self)
    }

    /// The armored request file.
    pub fn to_armored(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(armor::encode(armor::REQUEST, &self.to_json()))
    }

    /// Parses an armored request file: armor, checksum, JSON, version, and the id check that
    /// catches an edited body whose checksum was recomputed.
    pub fn parse(input: &[u8]) -> Result<Self> {
        let body = zeroize::Zeroizing::new(armor::decode(armor::REQUEST, input)?);
        Self::from_json(&body)
    }

    /// Parses the JSON body (an activation record on the site).
    pub fn from_json(body: &[u8]) -> Result<Self> {
        let what = armor::REQUEST.what;
        let req: Self = serde_json::from_slice(body).map_err(|e| LicenseError::Malformed {
            what,
            // serde_json's message names the field, never a secret value.
            detail: format!("its content is not a valid request ({})", redact_serde(&e)),
        })?;
        req.validated()
    }

    /// Checks what serde cannot: version, kind, the id against the secret and fingerprint, and
    /// that some host is named.
    pub(crate) fn validated(self) -> Result<Self> {
        let what = armor::REQUEST.what;
        let req = self;
        if req.v != 1 {
            return Err(LicenseError::UnsupportedVersion {
                what,
                version: req.v,
            });
        }
        if req.kind != KIND {
            return Err(LicenseError::Malformed {
                what,
                detail: format!("its kind is `{}`", req.kind),
            });
        }
        if req.id != request_id(&req.secret, &req.fingerprint) {
            return Err(LicenseError::Malformed {
                what,
                detail: "its id does not match its contents (it was edited by hand)".into(),
            });
        }
        if req.fingerprint.hosts.is_empty() {
            return Err(LicenseError::Malformed {
                what,
                detail: "it names no hosts".into(),
            });
        }
        Ok(req)
    }
}

/// serde_json errors may quote input ("invalid value: string \"...\""); keep only the position.
pub(crate) fn redact_serde(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// Serialises `value`, which holds a secret, into a buffer allocated once at its final size: a
/// growing `Vec` would leave copies of the secret in the memory it gives back.
pub(crate) fn secret_json<T: Serialize>(value: &T) -> zeroize::Zeroizing<Vec<u8>> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Plain data: serialising cannot fail (an empty result would fail to parse, never leak).
    if serde_json::to_writer(&mut count, value).is_err() {
        return zeroize::Zeroizing::new(Vec::new());
    }
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(count.0));
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.clear();
    }
    out
}
