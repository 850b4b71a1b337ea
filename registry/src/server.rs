//! The HTTP side: the pull half of the OCI Distribution API over hyper, one task per
//! connection, blobs read on blocking threads out of the bundle.
//!
//! **How a blob is verified while it streams.** The bundle reader checks a blob's digest when
//! it reaches the blob's end, so the server reads ahead by one chunk (256 KiB) and sends a
//! chunk only once the next one has been read: the last chunk leaves only after the digest has
//! checked out. A blob of up to one chunk is therefore read and verified whole before the
//! response starts, and a corrupt one is answered with a 500 and an OCI error naming the blob.
//! A bigger blob's response has started (status and length sent) when its end is reached; on a
//! mismatch the connection is cut before the last chunk, so the client never receives the full
//! length it was promised and fails the download, and no client ever holds every byte of a
//! blob that does not match its digest. Memory per download is a few chunks whatever the
//! blob's size, and at most [`STREAMS`] blobs are read at once; a client that takes no chunk
//! for [`STALL`] loses its download, so stalled clients cannot hold every turn.
//!
//! A range is served from the same verified stream: the bytes before it are read and hashed
//! but not sent, and the rest after it likewise before its last chunk goes out. That costs a
//! read of the whole blob per range request, which is what resuming a download needs anyway
//! (containerd asks for `bytes=N-`, to the end).

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_bundle::{Bundle, Digest};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

use crate::catalog::{self, Catalog, Image, Lookup};
use crate::error::RegistryError;

/// Bytes read and sent at a time; also the size up to which a blob is verified whole before
/// its response starts.
pub const CHUNK: usize = 256 << 10;
/// Blobs read at once; more downloads wait for a turn (bounds memory and threads).
pub const STREAMS: usize = 64;
/// Chunks queued between a blob's reader and its connection.
const QUEUE: usize = 2;
/// A client that takes no chunk for this long loses its download (and its turn), so stalled
/// clients cannot hold every turn.
pub const STALL: Duration = Duration::from_secs(120);
/// Time a client has to complete the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(30);

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

/// What the server reports while it runs (the front end shows it).
#[derive(Debug, Clone)]
pub enum Event {
    /// A blob failed its digest check (or could not be read) and was refused to a client.
    Refused {
        /// The client.
        peer: SocketAddr,
        /// The blob.
        digest: Digest,
        /// Why, naming the blob and its item.
        reason: String,
        /// Whether the response had started (the connection was cut) or not (a 500 was sent).
        cut: bool,
    },
    /// A manifest was served (GET, not HEAD): one line per image a client pulls, which is how
    /// an operator (and a test) sees which node took what from the registry.
    Served {
        /// The client.
        peer: SocketAddr,
        /// The full name of the image (`docker.io/demo/app:1`).
        image: String,
        /// The reference asked for: a tag or a digest.
        reference: String,
    },
}

/// A bundle ready to be served.
pub struct Registry {
    bundle: Arc<Bundle>,
    catalog: Catalog,
    streams: Arc<Semaphore>,
    on_event: Arc<dyn Fn(Event) + Send + Sync>,
}

impl Registry {
    /// Reads the bundle's images (each manifest is read and verified once). The bundle should
    /// have been opened with its signer's key: the registry serves what the manifest lists.
    pub fn new(bundle: Bundle) -> Result<Registry, RegistryError> {
        let catalog = Catalog::of(&bundle);
        if catalog.images().is_empty() {
            let why = match catalog.skipped.first() {
                Some(s) => format!(" (left out: {s})"),
                None => String::new(),
            };
            return Err(RegistryError::NoImages {
                bundle: bundle.path().to_path_buf(),
                why,
            });
        }
        Ok(Registry {
            bundle: Arc::new(bundle),
            catalog,
            streams: Arc::new(Semaphore::new(STREAMS)),
            on_event: Arc::new(|_| {}),
        })
    }

    /// Calls `f` for every [`Event`].
    pub fn with_events(mut self, f: impl Fn(Event) + Send + Sync + 'static) -> Registry {
        self.on_event = Arc::new(f);
        self
    }

    /// What is served.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The bundle served.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Serves connections from `listener` (over TLS when `tls` is given) until `shutdown`
    /// completes. Connection errors end that connection only.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: impl Future<Output = ()>,
    ) {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    // Out of file descriptors, say: wait for connections to end.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let me = self.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let me = me.clone();
                    async move { Ok::<_, Infallible>(me.handle(peer, req).await) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(60));
                match acceptor {
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp));
                        if let Ok(Ok(stream)) = handshake.await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    }

    async fn handle(&self, peer: SocketAddr, req: Request<Incoming>) -> Response<RegistryBody> {
        let head = req.method() == Method::HEAD;
        if req.method() != Method::GET && !head {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this registry is read-only: it serves a signed ferry bundle as it is",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let path = percent_decode(req.uri().path());
        let query = Query::parse(req.uri().query().unwrap_or_default());
        let range = req.headers().get(header::RANGE).cloned();
        let mut response = self.route(peer, &path, &query, range.as_ref(), head).await;
        if head {
            // The headers of the GET, without its body.
            *response.body_mut() = RegistryBody::empty();
        }
        response
    }

    async fn route(
        &self,
        peer: SocketAddr,
        path: &str,
        query: &Query,
        range: Option<&HeaderValue>,
        head: bool,
    ) -> Response<RegistryBody> {
        if path == "/v2" || path == "/v2/" {
            return json(StatusCode::OK, b"{}".to_vec());
        }
        if path == "/v2/_catalog" {
            let (names, more) =
                catalog::page(self.catalog.repositories(), query.n, query.last.as_deref());
            let body = serde_json::json!({ "repositories": names });
            return paged(body, more, "/v2/_catalog", query.n, &names);
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return not_found();
        };
        if let Some(name) = rest.strip_suffix("/tags/list") {
            let Lookup::Found(images) = self.catalog.lookup(name, query.ns.as_deref()) else {
                return name_unknown(name);
            };
            let (tags, more) =
                catalog::page(catalog::tags(&images), query.n, query.last.as_deref());
            let body = serde_json::json!({ "name": name, "tags": tags });
            return paged(body, more, &format!("/v2/{name}/tags/list"), query.n, &tags);
        }
        if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
            let Lookup::Found(images) = self.catalog.lookup(name, query.ns.as_deref()) else {
                return name_unknown(name);
            };
            let image = match self.manifest_of(name, reference, &images) {
                Ok(i) => i,
                Err(r) => return r,
            };
            let media_type = image.media_type.clone();
            if !head {
                (self.on_event)(Event::Served {
                    peer,
                    image: image.reference.clone(),
                    reference: reference.to_string(),
                });
            }
            return self
                .blob(
                    peer,
                    image.manifest,
                    image.manifest_size,
                    &media_type,
                    None,
                    head,
                )
                .await;
        }
        if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
            let Lookup::Found(images) = self.catalog.lookup(name, query.ns.as_deref()) else {
                return name_unknown(name);
            };
            let Ok(digest) = digest.parse::<Digest>() else {
                return digest_invalid(digest);
            };
            if !images.iter().any(|i| i.blobs.contains(&digest)) {
                return error(
                    StatusCode::NOT_FOUND,
                    "BLOB_UNKNOWN",
                    &format!("repository {name} has no blob {digest}"),
                );
            }
            let Some(entry) = self.bundle.blob(&digest) else {
                return error(
                    StatusCode::NOT_FOUND,
                    "BLOB_UNKNOWN",
                    &format!("the bundle has no blob {digest}"),
                );
            };
            let size = entry.size;
            return self
                .blob(peer, digest, size, "application/octet-stream", range, head)
                .await;
        }
        not_found()
    }

    /// The image a manifest reference (a tag or a digest) names among `images`.
    #[allow(clippy::result_large_err)]
    fn manifest_of<'a>(
        &self,
        name: &str,
        reference: &str,
        images: &[&'a Image],
    ) -> Result<&'a Image, Response<RegistryBody>> {
        let unknown = || {
            error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                &format!("repository {name} has no manifest {reference}"),
            )
        };
        if reference.contains(':') {
            let Ok(digest) = reference.parse::<Digest>() else {
                return Err(digest_invalid(reference));
            };
            return images
                .iter()
                .find(|i| i.manifest == digest)
                .copied()
                .ok_or_else(unknown);
        }
        let tagged: Vec<&Image> = images
            .iter()
            .filter(|i| i.tag.as_deref() == Some(reference))
            .copied()
            .collect();
        match tagged.as_slice() {
            [] => Err(unknown()),
            [one, rest @ ..] if rest.iter().all(|i| i.manifest == one.manifest) => Ok(one),
            many => Err(error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                &format!(
                    "{name}:{reference} names different images from several registries ({}): ask for the full name",
                    many.iter().map(|i| i.reference.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    /// Serves one blob (or a range of it), verified as it is read.
    async fn blob(
        &self,
        peer: SocketAddr,
        digest: Digest,
        size: u64,
        content_type: &str,
        range: Option<&HeaderValue>,
        head: bool,
    ) -> Response<RegistryBody> {
        let (status, start, end) = match parse_range(range, size) {
            Range::Whole => (StatusCode::OK, 0, size),
            Range::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
            Range::Unsatisfiable => {
                let mut r = error(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "BLOB_UNKNOWN",
                    &format!("blob {digest} has {size} bytes: the range asked for is outside it"),
                );
                set(&mut r, header::CONTENT_RANGE, &format!("bytes */{size}"));
                return r;
            }
        };
        let headers = |r: &mut Response<RegistryBody>| {
            *r.status_mut() = status;
            set(r, header::CONTENT_TYPE, content_type);
            set(r, CONTENT_DIGEST, &digest.to_string());
            set(r, header::CONTENT_LENGTH, &(end - start).to_string());
            set(r, header::ACCEPT_RANGES, "bytes");
            set(r, header::ETAG, &format!("\"{digest}\""));
            if status == StatusCode::PARTIAL_CONTENT {
                let last = end - 1;
                set(
                    r,
                    header::CONTENT_RANGE,
                    &format!("bytes {start}-{last}/{size}"),
                );
            }
        };
        if head {
            let mut r = api_response(RegistryBody::empty());
            headers(&mut r);
            return r;
        }
        // Waiting for a turn here, not on a blocking thread.
        let Ok(permit) = self.streams.clone().acquire_owned().await else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "UNKNOWN", "shutting down");
        };
        let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(QUEUE);
        let bundle = self.bundle.clone();
        let on_event = self.on_event.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut sent = false;
            // A chunk the client takes in time: false when it has gone or stalled.
            let send = |chunk: Bytes| runtime.block_on(tx.send_timeout(Ok(chunk), STALL)).is_ok();
            if let Err(reason) = pump(&bundle, &digest, start, end, send, &mut sent) {
                on_event(Event::Refused {
                    peer,
                    digest,
                    reason: reason.clone(),
                    cut: sent,
                });
                let _ = tx.blocking_send(Err(io::Error::other(reason)));
            }
        });
        let first = match rx.recv().await {
            Some(Ok(first)) => Some(first),
            Some(Err(e)) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    &format!("refused: {e}"),
                )
            }
            // Nothing to send: an empty blob, checked.
            None if end == start => None,
            None => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    &format!("blob {digest} could not be read"),
                )
            }
        };
        let mut r = api_response(RegistryBody {
            first,
            rx: Some(rx),
            left: end - start,
        });
        headers(&mut r);
        r
    }
}

/// Reads blob `digest` to its end, sending bytes `start..end` in chunks and holding each chunk
/// back until the next has been read, so the last leaves only once the digest has checked out.
/// Stops early, quietly, when `send` says the client has gone.
fn pump(
    bundle: &Bundle,
    digest: &Digest,
    start: u64,
    end: u64,
    send: impl Fn(Bytes) -> bool,
    sent: &mut bool,
) -> Result<(), String> {
    let mut blob = bundle.open_blob(digest).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    let mut pending: Option<Bytes> = None;
    loop {
        let n = match blob.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        let (a, b) = (pos, pos + n as u64);
        pos = b;
        let (lo, hi) = (start.max(a), end.min(b));
        if lo < hi {
            let chunk = Bytes::copy_from_slice(&buf[(lo - a) as usize..(hi - a) as usize]);
            if let Some(ready) = pending.replace(chunk) {
                if !send(ready) {
                    return Ok(());
                }
                *sent = true;
            }
        }
    }
    if let Some(last) = pending {
        send(last);
    }
    Ok(())
}

/// A response body: nothing, whole bytes, or a blob's chunks as its reader sends them.
pub struct RegistryBody {
    first: Option<Bytes>,
    rx: Option<mpsc::Receiver<io::Result<Bytes>>>,
    left: u64,
}

impl RegistryBody {
    fn empty() -> Self {
        RegistryBody {
            first: None,
            rx: None,
            left: 0,
        }
    }

    fn bytes(b: Vec<u8>) -> Self {
        RegistryBody {
            left: b.len() as u64,
            first: Some(Bytes::from(b)),
            rx: None,
        }
    }
}

impl Body for RegistryBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let me = self.get_mut();
        let next = match me.first.take() {
            Some(b) => Some(Ok(b)),
            None => match me.rx.as_mut() {
                None => None,
                Some(rx) => match rx.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(next) => next,
                },
            },
        };
        match next {
            Some(Ok(b)) => {
                me.left = me.left.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            // The reader failed: hyper cuts the connection short of the promised length.
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None if me.left > 0 => Poll::Ready(Some(Err(io::Error::other(
                "the blob's reader stopped early",
            )))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0 && self.first.is_none() && self.rx.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Binds the listen address, with an error that says what to do.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, RegistryError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| RegistryError::listen(addr, e))
}

// ---- requests ----------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Query {
    ns: Option<String>,
    n: Option<usize>,
    last: Option<String>,
}

impl Query {
    fn parse(q: &str) -> Query {
        let mut out = Query::default();
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "ns" if !v.is_empty() => out.ns = Some(v),
                "n" => out.n = v.parse().ok(),
                "last" if !v.is_empty() => out.last = Some(v),
                _ => {}
            }
        }
        out
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, PartialEq, Eq)]
enum Range {
    Whole,
    /// `start..end`, end exclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110). Several ranges, or a header that does not parse, are
/// ignored and the whole blob is served, as the RFC allows.
fn parse_range(h: Option<&HeaderValue>, size: u64) -> Range {
    let Some(spec) = h
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Range::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return match b.parse::<u64>() {
            Ok(0) => Range::Unsatisfiable,
            Ok(_) if size == 0 => Range::Unsatisfiable,
            Ok(n) => Range::Part(size.saturating_sub(n), size),
            Err(_) => Range::Whole,
        };
    }
    let Ok(start) = a.parse::<u64>() else {
        return Range::Whole;
    };
    let end = if b.is_empty() {
        size
    } else {
        match b.parse::<u64>() {
            Ok(last) if last >= start => last.saturating_add(1).min(size),
            _ => return Range::Whole,
        }
    };
    if start >= size {
        Range::Unsatisfiable
    } else {
        Range::Part(start, end)
    }
}

// ---- responses ---------------------------------------------------------------------------

fn api_response(body: RegistryBody) -> Response<RegistryBody> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    r
}

fn set(r: &mut Response<RegistryBody>, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<RegistryBody> {
    let len = body.len();
    let mut r = api_response(RegistryBody::bytes(body));
    *r.status_mut() = status;
    set(&mut r, header::CONTENT_TYPE, "application/json");
    set(&mut r, header::CONTENT_LENGTH, &len.to_string());
    r
}

/// A list answer, with the `Link` header of the next page when there is one.
fn paged(
    body: serde_json::Value,
    more: bool,
    path: &str,
    n: Option<usize>,
    names: &[String],
) -> Response<RegistryBody> {
    let mut r = json(StatusCode::OK, body.to_string().into_bytes());
    if let (true, Some(n), Some(last)) = (more, n, names.last()) {
        set(
            &mut r,
            header::LINK,
            &format!("<{path}?n={n}&last={last}>; rel=\"next\""),
        );
    }
    r
}

/// An error in the Distribution API's form: `{"errors":[{"code","message","detail"}]}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response<RegistryBody> {
    let body = serde_json::json!({
        "errors": [{ "code": code, "message": message, "detail": {} }]
    });
    json(status, body.to_string().into_bytes())
}

fn name_unknown(name: &str) -> Response<RegistryBody> {
    error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        &format!("the bundle has no repository {name}"),
    )
}

fn digest_invalid(digest: &str) -> Response<RegistryBody> {
    error(
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
        &format!("{digest:?} is not a digest: expected sha256:<64 lowercase hex digits>"),
    )
}

fn not_found() -> Response<RegistryBody> {
    error(
        StatusCode::NOT_FOUND,
        "UNSUPPORTED",
        "no such endpoint: this registry serves the pull side of the OCI Distribution API under /v2/",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> Range {
        parse_range(
            Some(&HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static(""))),
            size,
        )
    }

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        assert_eq!(range("bytes=0-99", 1000), Range::Part(0, 100));
        assert_eq!(range("bytes=900-", 1000), Range::Part(900, 1000));
        assert_eq!(range("bytes=-100", 1000), Range::Part(900, 1000));
        assert_eq!(range("bytes=990-5000", 1000), Range::Part(990, 1000));
        assert_eq!(range("bytes=1000-", 1000), Range::Unsatisfiable);
        assert_eq!(range("bytes=-0", 1000), Range::Unsatisfiable);
        assert_eq!(range("bytes=0-1,5-6", 1000), Range::Whole);
        assert_eq!(range("bytes=9-1", 1000), Range::Whole);
        assert_eq!(range("items=0-1", 1000), Range::Whole);
        assert_eq!(parse_range(None, 1000), Range::Whole);
    }

    #[test]
    fn paths_and_queries_are_percent_decoded() {
        assert_eq!(
            percent_decode("/v2/a/blobs/sha256%3Aab"),
            "/v2/a/blobs/sha256:ab"
        );
        assert_eq!(percent_decode("100%"), "100%");
        let q = Query::parse("ns=docker.io&n=2&last=a%2Fb");
        assert_eq!(
            (q.ns.as_deref(), q.n, q.last.as_deref()),
            (Some("docker.io"), Some(2), Some("a/b"))
        );
    }
}
