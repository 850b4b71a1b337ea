//! The cluster's certificates and tokens in k3s's layout: `server/tls/server-ca.*` signs serving
//! certificates, `server/tls/client-ca.*` signs client certificates (admin, kubelets); join tokens
//! are `K10<sha256 of server-ca.crt>::<user>:<password>`; node passwords are kept as k3s's scrypt
//! hashes (`$1:<salt hex>:15:8:1:<base64 key>`).

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

/// A certificate authority read from (or written to) `<dir>/<name>.crt` and `.key`.
pub struct Ca {
    /// The certificate as written on disk (PEM); its bytes are what the token's hash covers.
    pub cert_pem: String,
    /// The private key (PEM).
    pub key_pem: String,
    issuer: rcgen::Certificate,
    key: KeyPair,
}

/// Why certificates could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused.
    #[error("making a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Ca {
    /// Loads the CA `<dir>/<name>.crt|.key`, making it first when it does not exist.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Ca, PkiError> {
        let crt = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        if crt.exists() && key.exists() {
            let cert_pem = std::fs::read_to_string(&crt).map_err(io(&crt))?;
            let key_pem = std::fs::read_to_string(&key).map_err(io(&key))?;
            return Ca::from_pem(cert_pem, key_pem);
        }
        let now = chrono::Utc::now().timestamp();
        let key_pair = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("k3s-{name}@{now}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        params.not_before = time_now() - std::time::Duration::from_secs(3600);
        params.not_after = time_now() + std::time::Duration::from_secs(10 * 365 * 86400);
        let cert = params.self_signed(&key_pair)?;
        let cert_pem = cert.pem();
        let key_pem = key_pair.serialize_pem();
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        write_private(&key, key_pem.as_bytes())?;
        std::fs::write(&crt, &cert_pem).map_err(io(&crt))?;
        Ca::from_pem(cert_pem, key_pem)
    }

    /// A CA from its PEM texts (as a joining server receives them).
    pub fn from_pem(cert_pem: String, key_pem: String) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(&key_pem)?;
        // rcgen signs with an issuer object: the CA's own parameters re-signed by its key carry
        // the same subject and key identifier as the certificate on disk.
        let issuer = CertificateParams::from_ca_cert_pem(&cert_pem)?.self_signed(&key)?;
        Ok(Ca {
            cert_pem,
            key_pem,
            issuer,
            key,
        })
    }

    /// Writes this CA to `<dir>/<name>.crt|.key` (a joining server keeps the cluster's CA).
    pub fn write(&self, dir: &Path, name: &str) -> Result<(), PkiError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        write_private(&dir.join(format!("{name}.key")), self.key_pem.as_bytes())?;
        let crt = dir.join(format!("{name}.crt"));
        std::fs::write(&crt, &self.cert_pem).map_err(io(&crt))
    }

    /// A serving certificate for `sans` (IP addresses and DNS names). Returns (cert, key) PEM.
    pub fn issue_serving(&self, cn: &str, sans: &[String]) -> Result<(String, String), PkiError> {
        let mut params = leaf(cn, None);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        for san in sans {
            params
                .subject_alt_names
                .push(match san.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(san.clone().try_into()?),
                });
        }
        self.sign(params)
    }

    /// A client certificate for `cn` in group `org` (Kubernetes reads CN as the user, O as the
    /// group). Returns (cert, key) PEM.
    pub fn issue_client(&self, cn: &str, org: Option<&str>) -> Result<(String, String), PkiError> {
        let mut params = leaf(cn, org);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer, &self.key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn leaf(cn: &str, org: Option<&str>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_before = time_now() - std::time::Duration::from_secs(3600);
    params.not_after = time_now() + std::time::Duration::from_secs(365 * 86400);
    params.use_authority_key_identifier_extension = true;
    params
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension("tmp-standin");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The hash a `K10` token carries: sha256 of the CA bundle's bytes (one certificate, as k3s's
/// legacy hash of `server-ca.crt`).
pub fn ca_hash(ca_pem: &[u8]) -> String {
    hex::encode(Sha256::digest(ca_pem))
}

/// A join token, parsed as k3s parses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The CA hash (`K10<hash>::`), if given.
    pub ca_hash: Option<String>,
    /// `server` or `node` (or the user named in a full token).
    pub username: String,
    /// The shared secret.
    pub password: String,
}

/// Parses a token: a bare password, `user:password`, or `K10<hash>::user:password`.
/// Returns k3s's message when it is malformed.
pub fn parse_token(token: &str) -> Result<Token, String> {
    if token.is_empty() {
        return Err("token must not be empty".into());
    }
    let full = if token.starts_with("K10") {
        token.to_string()
    } else {
        format!("K10:::{token}")
    };
    let rest = &full[3..];
    let (hash, creds) = match rest.split_once("::") {
        Some((h, c)) => (h, c),
        None => ("", rest),
    };
    if !hash.is_empty() && hash.len() != 64 {
        return Err("invalid token CA hash length".into());
    }
    let (username, password) = match creds.split_once(':') {
        Some((u, p)) if !p.is_empty() => (u.to_string(), p.to_string()),
        _ => return Err("invalid token format".into()),
    };
    Ok(Token {
        ca_hash: (!hash.is_empty()).then(|| hash.to_string()),
        username,
        password,
    })
}

/// The full token text k3s writes to `server/token`: `K10<hash>::server:<password>`.
pub fn format_token(ca_pem: &[u8], username: &str, password: &str) -> String {
    format!("K10{}::{username}:{password}", ca_hash(ca_pem))
}

/// 16 random bytes as 32 hex characters (k3s's generated passwords have this form).
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // getrandom fails only when the kernel has no entropy source at all.
    getrandom::getrandom(&mut b).unwrap_or_else(|e| panic!("no randomness from the kernel: {e}"));
    hex::encode(b)
}

/// k3s's scrypt hash of a node password.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 8];
    getrandom::getrandom(&mut salt)
        .unwrap_or_else(|e| panic!("no randomness from the kernel: {e}"));
    let key = scrypt_key(password, &salt, 15, 8, 1, 64);
    use base64::Engine;
    format!(
        "$1:{}:15:8:1:{}",
        hex::encode(salt),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(key)
    )
}

/// Whether `password` matches a hash made by [`hash_password`] (or by k3s).
pub fn verify_password(hash: &str, password: &str) -> bool {
    let parts: Vec<&str> = hash.trim_start_matches('$').split(':').collect();
    let [version, salt, n, r, p, enc] = parts.as_slice() else {
        return false;
    };
    use base64::Engine;
    let (Ok(salt), Ok(n), Ok(r), Ok(p), Ok(want)) = (
        hex::decode(salt),
        n.parse::<u8>(),
        r.parse::<u32>(),
        p.parse::<u32>(),
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(enc),
    ) else {
        return false;
    };
    if *version != "1" || want.is_empty() {
        return false;
    }
    let got = scrypt_key(password, &salt, n, r, p, want.len());
    // Constant time is not needed against a local test, but costs nothing.
    got.len() == want.len() && got.iter().zip(&want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

fn scrypt_key(password: &str, salt: &[u8], log_n: u8, r: u32, p: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    match scrypt::Params::new(log_n, r, p, len) {
        Ok(params) => {
            if scrypt::scrypt(password.as_bytes(), salt, &params, &mut out).is_err() {
                out.clear();
            }
        }
        Err(_) => out.clear(),
    }
    out
}

/// The subject common name of a DER certificate (the Kubernetes user of a client certificate).
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok().map(str::to_string));
    cn
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_as_k3s_parses_them() {
        let hash = "a".repeat(64);
        assert_eq!(
            parse_token(&format!("K10{hash}::server:secret")).unwrap(),
            Token {
                ca_hash: Some(hash.clone()),
                username: "server".into(),
                password: "secret".into()
            }
        );
        assert_eq!(parse_token("secret").unwrap().password, "secret");
        assert_eq!(parse_token("secret").unwrap().ca_hash, None);
        assert_eq!(
            parse_token("K10abc::server:x").unwrap_err(),
            "invalid token CA hash length"
        );
    }

    #[test]
    fn node_password_hashes_verify_only_their_password() {
        let h = hash_password("pw-one");
        assert!(h.starts_with("$1:") && h.contains(":15:8:1:"), "{h}");
        assert!(verify_password(&h, "pw-one"));
        assert!(!verify_password(&h, "pw-two"));
    }

    #[test]
    fn issued_certificates_name_their_user() {
        let dir = std::env::temp_dir().join(format!("k3s-standin-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = Ca::load_or_create(&dir, "client-ca").unwrap();
        let again = Ca::load_or_create(&dir, "client-ca").unwrap();
        assert_eq!(ca.cert_pem, again.cert_pem, "a second start keeps the CA");
        let (cert, _key) = ca
            .issue_client("system:node:n1", Some("system:nodes"))
            .unwrap();
        let der = rustls_pemfile::certs(&mut cert.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(common_name(&der).as_deref(), Some("system:node:n1"));
    }
}
