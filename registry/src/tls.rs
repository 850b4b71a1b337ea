//! The site CA and the registry's serving certificate, kept in one directory:
//! `ca.pem` (what the nodes' containerd trusts), `ca.key`, `server.pem`, `server.key`. Each is
//! made when missing; the serving certificate is issued again from the same CA when it does not
//! cover the names asked for or is near its end, so nodes that trust `ca.pem` keep working.
//! Private keys are written with mode 0600, every file atomically.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::error::RegistryError;

/// The CA certificate the nodes trust.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key (mode 0600).
pub const CA_KEY: &str = "ca.key";
/// The registry's serving certificate.
pub const SERVER_CERT: &str = "server.pem";
/// Its private key (mode 0600).
pub const SERVER_KEY: &str = "server.key";

const DAY: Duration = Duration::from_secs(86_400);
/// The CA outlives any site's first years; the serving certificate is renewed at start.
const CA_DAYS: u32 = 3650;
const SERVER_DAYS: u32 = 825;
/// A serving certificate with less than this left is issued again.
const RENEW_DAYS: u32 = 30;

/// The registry's TLS, ready to serve.
pub struct SiteTls {
    /// The CA certificate file to give the nodes (`DIR/ca.pem`).
    pub ca_cert: PathBuf,
    /// The names the serving certificate covers.
    pub names: Vec<String>,
    /// Files made by this call (empty when everything was there and fit).
    pub made: Vec<PathBuf>,
    /// The rustls configuration (HTTP/1.1).
    pub config: Arc<rustls::ServerConfig>,
}

/// Loads (or makes) the CA and a serving certificate for `names` (IP addresses and DNS names)
/// in `dir`.
pub fn site_tls(dir: &Path, names: &[String]) -> Result<SiteTls, RegistryError> {
    if names.is_empty() {
        return Err(RegistryError::tls(
            dir,
            "no name for the serving certificate: give one with --tls-name",
        ));
    }
    fs::create_dir_all(dir)
        .map_err(|e| RegistryError::tls(dir, format!("cannot create the TLS directory: {e}")))?;
    let mut made = vec![];
    let (ca_cert_path, ca_key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let (ca_pem, ca_key_pem) = match (ca_cert_path.exists(), ca_key_path.exists()) {
        (true, true) => (read(&ca_cert_path)?, read(&ca_key_path)?),
        (false, false) => {
            let (cert, key) = new_ca()?;
            write_file(&ca_key_path, key.as_bytes(), 0o600)?;
            write_file(&ca_cert_path, cert.as_bytes(), 0o644)?;
            made.extend([ca_cert_path.clone(), ca_key_path.clone()]);
            (cert, key)
        }
        (has_cert, _) => {
            let (there, missing) = if has_cert {
                (CA_CERT, CA_KEY)
            } else {
                (CA_KEY, CA_CERT)
            };
            return Err(RegistryError::tls(
                dir,
                format!(
                    "has {there} but not {missing}: restore {missing}, or remove {there} to make a new site CA (then give the nodes the new {CA_CERT})"
                ),
            ));
        }
    };
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| {
        RegistryError::tls(&ca_key_path, format!("is not a usable private key: {e}"))
    })?;
    // rcgen signs with an issuer object: the CA's own parameters signed again by its key carry
    // the subject and key of the certificate on disk, so what it issues chains to that file.
    let issuer = CertificateParams::from_ca_cert_pem(&ca_pem)
        .and_then(|p| p.self_signed(&ca_key))
        .map_err(|e| {
            RegistryError::tls(
                &ca_cert_path,
                format!("is not a usable CA certificate: {e}"),
            )
        })?;

    let (cert_path, key_path) = (dir.join(SERVER_CERT), dir.join(SERVER_KEY));
    let fits = cert_path.exists()
        && key_path.exists()
        && !made.contains(&ca_cert_path)
        && covers(&read(&cert_path)?, names);
    if !fits {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "ferry bundle registry");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::from_secs(3600);
        params.not_after = now + DAY * SERVER_DAYS;
        for name in names {
            params
                .subject_alt_names
                .push(san(name).map_err(|msg| RegistryError::tls(dir, msg))?);
        }
        let key = KeyPair::generate().map_err(|e| RegistryError::tls(dir, e.to_string()))?;
        let cert = params.signed_by(&key, &issuer, &ca_key).map_err(|e| {
            RegistryError::tls(dir, format!("issuing the serving certificate: {e}"))
        })?;
        write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
        made.extend([cert_path.clone(), key_path.clone()]);
    }
    let config = server_config(&cert_path, &key_path)?;
    Ok(SiteTls {
        ca_cert: ca_cert_path,
        names: names.to_vec(),
        made,
        config,
    })
}

/// What [`site_tls`] would serve with when it has nothing to make: the CA certificate, the
/// serving certificate and its key (PEM), when all four files are in `dir` and the certificate
/// covers `names`. `None` when [`site_tls`] would make the CA or issue a certificate. Reads
/// only: what a plan shows without changing the jump host.
pub fn existing(dir: &Path, names: &[String]) -> Option<(String, String, String)> {
    let ca = read(&dir.join(CA_CERT)).ok()?;
    if !dir.join(CA_KEY).exists() {
        return None;
    }
    let cert = read(&dir.join(SERVER_CERT)).ok()?;
    let key = read(&dir.join(SERVER_KEY)).ok()?;
    covers(&cert, names).then_some((ca, cert, key))
}

/// The names a serving certificate for `listen` needs by default: the address itself, or —
/// listening on every address — each address of this machine, its host name and `localhost`.
pub fn default_names(listen: SocketAddr) -> Vec<String> {
    let ip = listen.ip();
    if !ip.is_unspecified() {
        return vec![ip.to_string()];
    }
    let mut names = vec!["localhost".to_string()];
    if let Ok(h) = nix::unistd::gethostname() {
        if let Some(h) = h.to_str().filter(|h| !h.is_empty()) {
            names.push(h.to_string());
        }
    }
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            let ip: Option<IpAddr> = if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            };
            let Some(ip) = ip else { continue };
            // Link-local IPv6 addresses need a scope to be used: no client names them.
            if matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80) {
                continue;
            }
            if ip.is_ipv6() && listen.is_ipv4() {
                continue;
            }
            let s = ip.to_string();
            if !names.contains(&s) {
                names.push(s);
            }
        }
    }
    names
}

fn san(name: &str) -> Result<SanType, String> {
    match name.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => name
            .to_string()
            .try_into()
            .map(SanType::DnsName)
            .map_err(|_| format!("{name:?} is neither an IP address nor a DNS name")),
    }
}

/// Whether the certificate names every one of `names` and has more than [`RENEW_DAYS`] left.
fn covers(cert_pem: &str, names: &[String]) -> bool {
    let Ok(params) = CertificateParams::from_ca_cert_pem(cert_pem) else {
        return false;
    };
    if params.not_after < OffsetDateTime::now_utc() + DAY * RENEW_DAYS {
        return false;
    }
    names.iter().all(|n| {
        let Ok(want) = san(n) else { return false };
        params
            .subject_alt_names
            .iter()
            .any(|have| match (have, &want) {
                (SanType::IpAddress(a), SanType::IpAddress(b)) => a == b,
                (SanType::DnsName(a), SanType::DnsName(b)) => {
                    a.as_str().eq_ignore_ascii_case(b.as_str())
                }
                _ => false,
            })
    })
}

fn new_ca() -> Result<(String, String), RegistryError> {
    let err = |e: rcgen::Error| RegistryError::tls("site CA", format!("making the CA: {e}"));
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let made = OffsetDateTime::now_utc();
    dn.push(
        DnType::CommonName,
        format!("ferry site registry CA {}", made.unix_timestamp()),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = made - Duration::from_secs(3600);
    params.not_after = made + DAY * CA_DAYS;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The rustls configuration serving `cert` (PEM, the serving certificate) with `key`: for a
/// certificate issued elsewhere from the site CA (ferry apply issues it on the jump host, where
/// the CA's key stays, and sends only these two files to the server that runs the registry).
pub fn serving_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, RegistryError> {
    server_config(cert, key)
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, RegistryError> {
    let cert_pem = read(cert)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RegistryError::tls(cert, format!("is not a PEM certificate: {e}")))?;
    let key_pem = read(key)?;
    let private = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .ok()
        .flatten()
        .ok_or_else(|| RegistryError::tls(key, "holds no PEM private key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::tls(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| {
            RegistryError::tls(
                cert,
                format!(
                    "does not fit {}: {e}; remove both to make new ones",
                    key.display()
                ),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<String, RegistryError> {
    fs::read_to_string(path).map_err(|e| RegistryError::tls(path, format!("cannot be read: {e}")))
}

/// Writes `bytes` to `path` through a temporary file renamed into place, with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), RegistryError> {
    let err = |e: std::io::Error| RegistryError::tls(path, format!("cannot be written: {e}"));
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_ca_once_and_a_serving_certificate_again_only_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("tls");
        let first = site_tls(&d, &["127.0.0.1".into()]).unwrap();
        assert_eq!(first.made.len(), 4);
        let mode = fs::metadata(d.join(CA_KEY)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let ca = fs::read(d.join(CA_CERT)).unwrap();

        let again = site_tls(&d, &["127.0.0.1".into()]).unwrap();
        assert!(again.made.is_empty(), "made {:?}", again.made);

        let wider = site_tls(&d, &["127.0.0.1".into(), "registry.site".into()]).unwrap();
        assert_eq!(wider.made, vec![d.join(SERVER_CERT), d.join(SERVER_KEY)]);
        assert_eq!(fs::read(d.join(CA_CERT)).unwrap(), ca, "the CA must stay");
    }

    #[test]
    fn existing_reads_what_site_tls_would_use_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("tls");
        let names = ["127.0.0.1".to_string()];
        assert_eq!(existing(&d, &names), None);
        assert!(!d.exists());
        site_tls(&d, &names).unwrap();
        let (ca, cert, key) = existing(&d, &names).unwrap();
        assert_eq!(ca, read(&d.join(CA_CERT)).unwrap());
        assert_eq!(cert, read(&d.join(SERVER_CERT)).unwrap());
        assert_eq!(key, read(&d.join(SERVER_KEY)).unwrap());
        // A name the certificate lacks: site_tls would issue another, so a plan shows a change.
        assert_eq!(existing(&d, &["10.0.0.9".to_string()]), None);
        assert!(covers(&read(&d.join(SERVER_CERT)).unwrap(), &names));
    }

    #[test]
    fn a_ca_certificate_without_its_key_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        site_tls(dir.path(), &["127.0.0.1".into()]).unwrap();
        fs::remove_file(dir.path().join(CA_KEY)).unwrap();
        let err = site_tls(dir.path(), &["127.0.0.1".into()])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("has ca.pem but not ca.key"), "{err}");
    }
}
