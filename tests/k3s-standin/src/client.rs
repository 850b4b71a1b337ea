//! An HTTPS client for the stand-in's own API (agents registering, `k3s kubectl`, a joined
//! server forwarding): rustls with the cluster CA (or, to fetch `/cacerts` the way k3s does
//! before it can check the token's hash, no verification), an optional client certificate,
//! an optional basic-auth token. One connection per request, HTTP/1.1.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Why a request failed before an HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `https://host[:port]`.
    #[error("only https:// URLs are supported, invalid scheme: {0}")]
    Url(String),
    /// TCP connect refused.
    #[error("dial tcp {0}: connect: connection refused")]
    Refused(String),
    /// Anything else on the way (timeouts, TLS).
    #[error("{0}")]
    Transport(String),
}

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    basic: Option<String>,
    timeout: Duration,
}

/// The TLS crypto provider everything here uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// PEM certificates.
pub fn certs_of(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// A PEM private key.
pub fn key_of(pem: &str) -> Option<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .ok()
        .flatten()
}

/// `host`, `port` of an `https://host[:port][/path]` URL.
pub fn host_port(url: &str) -> Result<(String, u16), ClientError> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| ClientError::Url(url.to_string()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').unwrap_or((v6, ""));
        let port = p
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(443);
        return Ok((h.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.to_string(),
            p.parse().map_err(|_| ClientError::Url(url.to_string()))?,
        )),
        None => Ok((authority.to_string(), 443)),
    }
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Client {
    /// A client of `url`. `ca_pem` `None` means "do not verify the server" (only for fetching
    /// `/cacerts`, whose hash is then checked against the token).
    pub fn new(
        url: &str,
        ca_pem: Option<&str>,
        client_cert: Option<(&str, &str)>,
        basic: Option<(&str, &str)>,
    ) -> Result<Client, ClientError> {
        let (host, port) = host_port(url)?;
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let builder = match ca_pem {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs_of(pem) {
                    roots
                        .add(c)
                        .map_err(|e| ClientError::Transport(format!("CA certificate: {e}")))?;
                }
                builder.with_root_certificates(roots)
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider))),
        };
        let mut tls = match client_cert {
            Some((cert, key)) => {
                let key = key_of(key)
                    .ok_or_else(|| ClientError::Transport("no private key in client key".into()))?;
                builder
                    .with_client_auth_cert(certs_of(cert), key)
                    .map_err(|e| ClientError::Transport(format!("client certificate: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        use base64::Engine;
        Ok(Client {
            host,
            port,
            tls: Arc::new(tls),
            basic: basic
                .map(|(u, p)| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))),
            timeout: Duration::from_secs(10),
        })
    }

    /// `host:port` of the server.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Sends one request; returns the status code and body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Vec<u8>), ClientError> {
        tokio::time::timeout(
            self.timeout,
            self.request_inner(method, path, content_type, body, headers),
        )
        .await
        .map_err(|_| {
            ClientError::Transport(format!(
                "Get \"https://{}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                self.authority()
            ))
        })?
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let addr = self.authority();
        let tcp = tokio::net::TcpStream::connect(&addr).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                ClientError::Refused(addr.clone())
            } else {
                ClientError::Transport(format!("dial tcp {addr}: {e}"))
            }
        })?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| ClientError::Transport(format!("server name {}: {e}", self.host)))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::Transport(format!("tls: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &addr)
            .header("user-agent", "k3s-STAND-IN");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = &self.basic {
            req = req.header("authorization", format!("Basic {b}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .to_bytes()
            .to_vec();
        Ok((status, body))
    }
}
