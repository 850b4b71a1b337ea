//! The host's side of the relay, run inside `ferry agent`: a small HTTP/1.1 listener serving
//! the blobs of this run from the host's store to its peers, and the fetch of one blob from a
//! peer into the store. Blocking std I/O on threads of their own: the agent answers one
//! request at a time, while the listener keeps serving beside it.
//!
//! A blob still arriving is served as it grows (the partial file is followed until it is
//! renamed whole), so a tree of hosts streams one blob at once instead of level by level. Every
//! receiver checks the sha256 of the whole blob before renaming it into place: a peer that
//! serves wrong bytes is caught there, whatever it sent.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{BlobSpec, PARTIAL_SUFFIX};

/// Connections served at once; more are told to come back (503), so a host cannot be made to
/// start unbounded threads.
const MAX_CONNECTIONS: usize = 64;

/// The longest request head a peer may send.
const MAX_HEAD: usize = 8 * 1024;

/// How often a reader of a growing file looks again.
const POLL: Duration = Duration::from_millis(20);

/// Bytes read or written at a time.
const BUF: usize = 1 << 20;

/// A running listener; it stops accepting when dropped (connections in flight end by
/// themselves: the agent exits soon after).
#[derive(Debug)]
pub struct Listener {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl Listener {
    /// The address peers connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// What a listener serves: the store and the blobs of this run, and the run's token.
#[derive(Debug)]
struct Served {
    store: PathBuf,
    token: String,
    blobs: HashMap<String, u64>,
    /// The sha256 of this agent's own binary, when it is served too.
    agent: Option<String>,
    stall: Duration,
    active: AtomicUsize,
}

/// Starts serving `blobs` from `store` on `listen` (an address of this host; port 0 picks
/// one), and this agent's own binary when `agent` is its sha256. Only those digests are
/// served, only to requests carrying `token`.
pub fn serve(
    listen: &str,
    token: &str,
    store: &Path,
    blobs: &[BlobSpec],
    agent: Option<&str>,
    stall: Duration,
) -> std::io::Result<Listener> {
    let listener = match listen.parse::<std::net::IpAddr>() {
        Ok(ip) => TcpListener::bind(SocketAddr::new(ip, 0))?,
        Err(_) => TcpListener::bind(format!("{listen}:0"))?,
    };
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(Served {
        store: store.to_path_buf(),
        token: token.to_string(),
        blobs: blobs.iter().map(|b| (b.sha256.clone(), b.size)).collect(),
        agent: agent.map(str::to_string),
        stall,
        active: AtomicUsize::new(0),
    });
    let flag = stop.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if flag.load(Ordering::SeqCst) {
                return;
            }
            let Ok(conn) = conn else { continue };
            let served = served.clone();
            if served.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                served.active.fetch_sub(1, Ordering::SeqCst);
                let _ = respond(&conn, 503, "busy", 0);
                continue;
            }
            std::thread::spawn(move || {
                let _ = answer(conn, &served);
                served.active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(Listener { stop, addr })
}

/// Writes a status line and headers (and nothing of a body).
fn respond(mut conn: &TcpStream, status: u16, reason: &str, length: u64) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

/// Compares without stopping at the first difference (the token is a secret).
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// One request: `GET /blobs/<sha256>` with `Authorization: Bearer <token>` and an optional
/// `Range: bytes=N-`.
fn answer(conn: TcpStream, served: &Served) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(served.stall.max(Duration::from_secs(10))))?;
    let mut reader = BufReader::new(conn.try_clone()?).take(MAX_HEAD as u64);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return respond(&conn, 400, "incomplete request", 0);
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let Some((method, path)) = lines.first().and_then(|l| {
        let mut w = l.split_whitespace();
        Some((w.next()?.to_string(), w.next()?.to_string()))
    }) else {
        return respond(&conn, 400, "bad request line", 0);
    };
    let header = |name: &str| {
        lines[1..].iter().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let authorized = header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
        .is_some_and(|t| same_secret(&t, &served.token));
    if !authorized {
        return respond(&conn, 401, "unauthorized", 0);
    }
    if method != "GET" {
        return respond(&conn, 405, "method not allowed", 0);
    }
    // `/agent/<sha256>`: this agent's own binary, bare bytes without a response head, for a
    // peer whose agent is not running yet (a shell reads it; the digest is checked there).
    if let Some(d) = path.strip_prefix("/agent/") {
        let exe = std::env::current_exe()
            .ok()
            .filter(|_| served.agent.as_deref() == Some(d));
        let Some(exe) = exe else {
            return respond(&conn, 404, "not served here", 0);
        };
        let mut f = File::open(exe)?;
        let mut out = &conn;
        std::io::copy(&mut f, &mut out)?;
        let _ = conn.shutdown(Shutdown::Both);
        return Ok(());
    }
    let Some((sha, &size)) = path
        .strip_prefix("/blobs/")
        .and_then(|d| served.blobs.get_key_value(d))
    else {
        return respond(&conn, 404, "not served here", 0);
    };
    let offset = match header("range") {
        None => 0,
        Some(r) => match r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) if n <= size => n,
            _ => return respond(&conn, 416, "range not satisfiable", 0),
        },
    };
    let final_path = served.store.join(sha);
    let partial = served.store.join(format!("{sha}{PARTIAL_SUFFIX}"));
    // The blob whole, or the partial file it is arriving in (waited for, up to the stall time).
    let start = Instant::now();
    let (file, growing) = loop {
        if let Ok(f) = File::open(&final_path) {
            break (f, false);
        }
        if let Ok(f) = File::open(&partial) {
            break (f, true);
        }
        if start.elapsed() > served.stall {
            return respond(&conn, 503, "blob not here yet", 0);
        }
        std::thread::sleep(POLL * 5);
    };
    let (status, reason) = if offset > 0 {
        (206, "Partial Content")
    } else {
        (200, "OK")
    };
    respond(&conn, status, reason, size - offset)?;
    let mut out = &conn;
    let mut buf = vec![0u8; BUF];
    let mut pos = offset;
    let mut last_growth = Instant::now();
    while pos < size {
        let want = ((size - pos) as usize).min(BUF);
        let n = file.read_at(&mut buf[..want], pos)?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            pos += n as u64;
            last_growth = Instant::now();
            continue;
        }
        // At the end of what is there: a whole file that is short will not grow, a partial
        // file that was removed (its check failed) will not either, and one that stopped
        // growing for the stall time has lost its own source.
        let removed = file.metadata().map(|m| m.nlink() == 0).unwrap_or(true);
        if !growing || removed || last_growth.elapsed() > served.stall {
            break;
        }
        std::thread::sleep(POLL);
    }
    // Cut short: the receiver sees fewer bytes than announced and looks elsewhere.
    let _ = conn.shutdown(Shutdown::Both);
    Ok(())
}

/// A fetch that did not end with the blob in place.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The peer could not be reached, refused, or stopped sending; the partial file stays, and
    /// the next source resumes from it.
    #[error("{0}")]
    Peer(String),
    /// The bytes do not hash to the digest; the partial file was removed.
    #[error("the blob arrived with sha256 {got}; the partial file was removed")]
    Mismatch {
        /// The digest of what arrived.
        got: String,
    },
    /// The host's own disk failed (full, read-only).
    #[error("{0}")]
    Local(String),
}

/// How a fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The store already had the blob, whole and verified.
    AlreadyPresent,
    /// It arrived; `resumed_from` bytes were already in the partial file.
    Arrived {
        /// Bytes kept from an earlier attempt.
        resumed_from: u64,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, streamed.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex(&h.finalize()))
}

/// Fetches `blob` from the peer at `peer` (`ADDR:PORT`) into `store`: appended to the partial
/// file (resuming from what it holds), checked, then renamed to `store/<sha256>`.
pub fn fetch(
    peer: &str,
    token: &str,
    store: &Path,
    blob: &BlobSpec,
    stall: Duration,
) -> Result<Fetched, FetchError> {
    let local = |what: &str, p: &Path, e: std::io::Error| {
        FetchError::Local(format!("{what} {}: {e}", p.display()))
    };
    let dest = store.join(&blob.sha256);
    let partial = store.join(format!("{}{PARTIAL_SUFFIX}", blob.sha256));
    if dest.is_file() {
        if file_sha256(&dest).map_err(|e| local("reading", &dest, e))? == blob.sha256 {
            return Ok(Fetched::AlreadyPresent);
        }
        std::fs::remove_file(&dest).map_err(|e| local("removing", &dest, e))?;
    }
    std::fs::create_dir_all(store).map_err(|e| local("creating", store, e))?;
    let (resumed, got) = attempt(peer, token, &partial, blob, stall)?;
    match finish(&partial, &dest, blob, got) {
        Ok(()) => Ok(Fetched::Arrived {
            resumed_from: resumed,
        }),
        // A kept prefix from an earlier source may be what was wrong: one more try, whole,
        // from the same peer before blaming it.
        Err(FetchError::Mismatch { .. }) if resumed > 0 => {
            let (_, got) = attempt(peer, token, &partial, blob, stall)?;
            finish(&partial, &dest, blob, got).map(|()| Fetched::Arrived { resumed_from: 0 })
        }
        Err(e) => Err(e),
    }
}

/// Renames the partial file into place when `got` is the blob's digest, removes it otherwise.
fn finish(partial: &Path, dest: &Path, blob: &BlobSpec, got: String) -> Result<(), FetchError> {
    use std::os::unix::fs::PermissionsExt;
    let local = |what: &str, p: &Path, e: std::io::Error| {
        FetchError::Local(format!("{what} {}: {e}", p.display()))
    };
    if got != blob.sha256 {
        let _ = std::fs::remove_file(partial);
        return Err(FetchError::Mismatch { got });
    }
    std::fs::set_permissions(partial, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| local("setting the mode of", partial, e))?;
    std::fs::rename(partial, dest).map_err(|e| local("renaming into", dest, e))
}

/// One request to the peer, appending to the partial file; returns the bytes kept from before
/// and the sha256 of the whole partial file (hashed while it is written: one pass).
fn attempt(
    peer: &str,
    token: &str,
    partial: &Path,
    blob: &BlobSpec,
    stall: Duration,
) -> Result<(u64, String), FetchError> {
    let local = |what: &str, e: std::io::Error| {
        let full = e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28);
        if full {
            // Nothing to resume on a full disk: give the space back.
            let _ = std::fs::remove_file(partial);
        }
        FetchError::Local(format!("{what} {}: {e}", partial.display()))
    };
    let mut file = File::options()
        .create(true)
        .append(true)
        .open(partial)
        .map_err(|e| local("opening", e))?;
    let mut have = file.metadata().map_err(|e| local("reading", e))?.len();
    if have > blob.size {
        file.set_len(0).map_err(|e| local("truncating", e))?;
        have = 0;
    }
    let addr = peer
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| FetchError::Peer(format!("{peer} is not an address")))?;
    let unreachable = |e: std::io::Error| FetchError::Peer(format!("connecting to {peer}: {e}"));
    let mut conn =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(unreachable)?;
    // The peer cuts a stalled stream itself; this is for a peer that vanished without a word.
    conn.set_read_timeout(Some(stall + Duration::from_secs(5)))
        .map_err(unreachable)?;
    write!(
        conn,
        "GET /blobs/{} HTTP/1.1\r\nHost: {peer}\r\nAuthorization: Bearer {token}\r\n\
         Range: bytes={have}-\r\nConnection: close\r\n\r\n",
        blob.sha256
    )
    .map_err(|e| FetchError::Peer(format!("asking {peer}: {e}")))?;
    let mut reader = BufReader::with_capacity(BUF, conn);
    let mut status = String::new();
    let lost = |e: std::io::Error| FetchError::Peer(format!("reading from {peer}: {e}"));
    reader.read_line(&mut status).map_err(lost)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(lost)? == 0 || line.trim().is_empty() {
            break;
        }
    }
    let code = status.split_whitespace().nth(1).unwrap_or("");
    match code {
        "206" => {}
        "200" if have == 0 => {}
        "200" => {
            // The whole blob from the start: drop what we had.
            file.set_len(0).map_err(|e| local("truncating", e))?;
            have = 0;
        }
        _ => {
            return Err(FetchError::Peer(format!(
                "{peer} answered {:?}",
                status.trim()
            )))
        }
    }
    let mut hasher = Sha256::new();
    if have > 0 {
        let mut prefix = File::open(partial)
            .map_err(|e| local("reading", e))?
            .take(have);
        std::io::copy(&mut prefix, &mut hasher).map_err(|e| local("reading", e))?;
    }
    let mut buf = vec![0u8; BUF];
    let mut done = have;
    while done < blob.size {
        let want = ((blob.size - done) as usize).min(BUF);
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(FetchError::Peer(format!(
                    "{peer} stopped after {done} of {} bytes: {e}; the partial file stays",
                    blob.size
                )))
            }
        };
        file.write_all(&buf[..n]).map_err(|e| local("writing", e))?;
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    if done < blob.size {
        return Err(FetchError::Peer(format!(
            "{peer} stopped after {done} of {} bytes; the partial file stays",
            blob.size
        )));
    }
    Ok((have, hex(&hasher.finalize())))
}
