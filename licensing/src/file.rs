//! The license file: an armored JSON envelope holding the encrypted payload and the vendor's
//! Ed25519 signature (layout, key derivation and signed bytes in docs/license-format.md).

use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::armor;
use crate::error::{LicenseError, Result};
use crate::keys::{IssuerKey, KeyId, TrustRoot};
use crate::model::{IssueSpec, License};
use crate::request::{redact_serde, ActivationRequest};

/// The pinned algorithm suites. Anything else is refused by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// Ed25519 signature, XChaCha20-Poly1305 payload (24-byte nonce). The default.
    XChaCha20Poly1305,
    /// Ed25519 signature, AES-256-GCM payload (12-byte nonce).
    Aes256Gcm,
}

impl Alg {
    /// The name written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Alg::XChaCha20Poly1305 => "ed25519+xchacha20poly1305",
            Alg::Aes256Gcm => "ed25519+aes-256-gcm",
        }
    }

    /// Reads a name; unknown names are an error.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "ed25519+xchacha20poly1305" => Ok(Alg::XChaCha20Poly1305),
            "ed25519+aes-256-gcm" => Ok(Alg::Aes256Gcm),
            other => Err(LicenseError::UnknownAlg(other.chars().take(64).collect())),
        }
    }

    fn nonce_len(self) -> usize {
        match self {
            Alg::XChaCha20Poly1305 => 24,
            Alg::Aes256Gcm => 12,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    v: u32,
    alg: String,
    kid: String,
    request: String,
    nonce: String,
    ct: String,
    sig: String,
}

/// A parsed (not yet verified) license file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseFile {
    alg: Alg,
    kid: KeyId,
    request: String,
    nonce: Vec<u8>,
    ct: Vec<u8>,
    sig: Vec<u8>,
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    // Fields are short strings and one ciphertext well under 4 GiB.
    out.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(field);
}

fn header(alg: Alg, kid: &str, request: &str) -> Vec<u8> {
    let mut h = b"ferry-license v1\0".to_vec();
    put(&mut h, alg.name().as_bytes());
    put(&mut h, kid.as_bytes());
    put(&mut h, request.as_bytes());
    h
}

fn signed_bytes(header: &[u8], nonce: &[u8], ct: &[u8]) -> Vec<u8> {
    let mut m = b"ferry-license-file v1\0".to_vec();
    m.extend_from_slice(header);
    put(&mut m, nonce);
    put(&mut m, ct);
    m
}

/// HKDF-SHA-256(ikm = secret || fingerprint digest, info = "ferry-license v1\0" || alg).
fn payload_key(activation: &ActivationRequest, alg: Alg) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(activation.secret.bytes());
    ikm[32..].copy_from_slice(&activation.fingerprint.digest());
    let hk = Hkdf::<Sha256>::new(None, ikm.as_ref());
    let mut info = b"ferry-license v1\0".to_vec();
    info.extend_from_slice(alg.name().as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA-256's output limit.
    hk.expand(&info, key.as_mut())
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
    key
}

fn seal(alg: Alg, key: &[u8; 32], nonce: &[u8], aad: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    let payload = Payload { msg, aad };
    match alg {
        Alg::XChaCha20Poly1305 => XChaCha20Poly1305::new(key.into())
            .encrypt(nonce.into(), payload)
            .ok(),
        Alg::Aes256Gcm => Aes256Gcm::new(key.into())
            .encrypt(nonce.into(), payload)
            .ok(),
    }
}

fn open(alg: Alg, key: &[u8; 32], nonce: &[u8], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    if nonce.len() != alg.nonce_len() {
        return None;
    }
    let payload = Payload { msg: ct, aad };
    match alg {
        Alg::XChaCha20Poly1305 => XChaCha20Poly1305::new(key.into())
            .decrypt(nonce.into(), payload)
            .ok(),
        Alg::Aes256Gcm => Aes256Gcm::new(key.into())
            .decrypt(nonce.into(), payload)
            .ok(),
    }
}

/// Issues a license for `request` as `spec` says, signed by `key`, at time `now`.
pub fn issue(
    spec: &IssueSpec,
    request: &ActivationRequest,
    key: &IssuerKey,
    now: i64,
) -> Result<(License, LicenseFile)> {
    let kid = key.public().id();
    let license = spec.license_for(&request.id, &request.fingerprint, &kid.0, now)?;
    let file = LicenseFile::seal(spec.alg, &license, request, key)?;
    Ok((license, file))
}

impl LicenseFile {
    /// Encrypts and signs `license` for `activation`.
    pub fn seal(
        alg: Alg,
        license: &License,
        activation: &ActivationRequest,
        key: &IssuerKey,
    ) -> Result<Self> {
        let kid = key.public().id();
        let mut nonce = vec![0u8; alg.nonce_len()];
        crate::random(&mut nonce)?;
        let h = header(alg, &kid.0, &activation.id);
        let plain = Zeroizing::new(
            serde_json::to_vec(license).map_err(|e| LicenseError::Spec(e.to_string()))?,
        );
        let ct = seal(alg, &payload_key(activation, alg), &nonce, &h, &plain)
            .ok_or_else(|| LicenseError::Spec("the payload could not be encrypted".into()))?;
        let sig = key.sign(&signed_bytes(&h, &nonce, &ct)).to_bytes().to_vec();
        Ok(Self {
            alg,
            kid,
            request: activation.id.clone(),
            nonce,
            ct,
            sig,
        })
    }

    /// Builds a file from raw parts, signing whatever is given (tests use it to forge files).
    #[doc(hidden)]
    pub fn sign_raw(
        alg_name: &str,
        request: &str,
        nonce: &[u8],
        ct: &[u8],
        key: &IssuerKey,
    ) -> String {
        let kid = key.public().id().0;
        let mut h = b"ferry-license v1\0".to_vec();
        put(&mut h, alg_name.as_bytes());
        put(&mut h, kid.as_bytes());
        put(&mut h, request.as_bytes());
        let sig = key.sign(&signed_bytes(&h, nonce, ct)).to_bytes();
        let env = Envelope {
            v: 1,
            alg: alg_name.into(),
            kid,
            request: request.into(),
            nonce: STANDARD.encode(nonce),
            ct: STANDARD.encode(ct),
            sig: STANDARD.encode(sig),
        };
        armor::encode(
            armor::LICENSE,
            &serde_json::to_vec(&env).unwrap_or_default(),
        )
    }

    fn envelope(&self) -> Envelope {
        Envelope {
            v: 1,
            alg: self.alg.name().into(),
            kid: self.kid.0.clone(),
            request: self.request.clone(),
            nonce: STANDARD.encode(&self.nonce),
            ct: STANDARD.encode(&self.ct),
            sig: STANDARD.encode(&self.sig),
        }
    }

    /// The armored file text.
    pub fn to_armored(&self) -> String {
        // Plain strings: serialising cannot fail.
        armor::encode(
            armor::LICENSE,
            &serde_json::to_vec(&self.envelope()).unwrap_or_default(),
        )
    }

    /// Parses an armored license file: armor and checksum, envelope, canonical form, version,
    /// algorithm. Nothing is trusted yet: call [`LicenseFile::verify_signature`] next.
    pub fn parse(input: &[u8]) -> Result<Self> {
        let what = armor::LICENSE.what;
        let malformed = |detail: String| LicenseError::Malformed { what, detail };
        let body = armor::decode(armor::LICENSE, input)?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| malformed(format!("its content is not JSON ({})", redact_serde(&e))))?;
        let version = value.get("v").and_then(serde_json::Value::as_u64);
        match version {
            Some(1) => {}
            Some(v) => {
                return Err(LicenseError::UnsupportedVersion {
                    what,
                    version: u32::try_from(v).unwrap_or(u32::MAX),
                })
            }
            None => return Err(malformed("it has no version field `v`".into())),
        }
        let env: Envelope = serde_json::from_value(value)
            .map_err(|e| malformed(format!("its envelope is not valid ({e})")))?;
        let alg = Alg::parse(&env.alg)?;
        let b64 = |name: &str, v: &str| {
            STANDARD
                .decode(v)
                .map_err(|_| malformed(format!("field `{name}` is not base64")))
        };
        let file = Self {
            alg,
            kid: KeyId(env.kid.clone()),
            request: env.request.clone(),
            nonce: b64("nonce", &env.nonce)?,
            ct: b64("ct", &env.ct)?,
            sig: b64("sig", &env.sig)?,
        };
        // The decoded bytes must be exactly what ferry writes, so nothing unsigned can vary.
        if serde_json::to_vec(&file.envelope()).ok().as_deref() != Some(body.as_slice()) {
            return Err(malformed(
                "it is not in ferry's canonical form (it was edited)".into(),
            ));
        }
        Ok(file)
    }

    /// The algorithm suite.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The issuer key id the file names.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The request this license answers.
    pub fn request_id(&self) -> &str {
        &self.request
    }

    /// Checks the signature with the trusted key named by the file's key id.
    pub fn verify_signature(&self, trusted: &TrustRoot) -> Result<()> {
        let Some(key) = trusted.find(&self.kid) else {
            return Err(LicenseError::UntrustedKey {
                kid: self.kid.0.clone(),
                trusted: trusted.ids(),
            });
        };
        let h = header(self.alg, &self.kid.0, &self.request);
        if key.verify(&signed_bytes(&h, &self.nonce, &self.ct), &self.sig) {
            Ok(())
        } else {
            Err(LicenseError::BadSignature {
                kid: self.kid.0.clone(),
            })
        }
    }

    /// Decrypts the payload with the site's activation record for this file's request.
    /// Call only after [`LicenseFile::verify_signature`].
    pub fn decrypt(&self, activation: &ActivationRequest) -> Result<License> {
        let decrypt_err = || LicenseError::Decrypt {
            request: self.request.clone(),
        };
        if activation.id != self.request {
            return Err(decrypt_err());
        }
        let h = header(self.alg, &self.kid.0, &self.request);
        let plain = Zeroizing::new(
            open(
                self.alg,
                &payload_key(activation, self.alg),
                &self.nonce,
                &h,
                &self.ct,
            )
            .ok_or_else(decrypt_err)?,
        );
        let license: License =
            serde_json::from_slice(&plain).map_err(|e| LicenseError::Malformed {
                what: armor::LICENSE.what,
                detail: format!("its payload is not a valid license ({})", redact_serde(&e)),
            })?;
        if license.request != self.request || license.issuer != self.kid.0 {
            return Err(LicenseError::Malformed {
                what: armor::LICENSE.what,
                detail: "its payload names another request or issuer than its header".into(),
            });
        }
        Ok(license)
    }
}
