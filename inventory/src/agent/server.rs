//! The agent's side: reads requests from a line reader, answers on a writer, works on files
//! under a root (`/` on a real host). Synchronous: one request at a time. Files are written at
//! a temporary name in the target's directory, fsynced, checked, then renamed, so a reader never
//! sees a partial file and an interrupted put leaves nothing behind.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::protocol::{
    hex, GetChunk, Hello, HelloLine, Op, PutDone, PutStarted, RelayFetched, RelayServing,
    RemoteError, Request, Response, StatResult, CHUNK_SIZE, MAX_LINE, PROTOCOL_VERSION,
};
use super::AgentError;

struct OpenPut {
    temp: PathBuf,
    target: PathBuf,
    file: File,
    hasher: Sha256,
    size: u64,
    mode: u32,
}

struct Server {
    root: PathBuf,
    /// The relay's listener, while one runs.
    listener: Option<crate::relay::peer::Listener>,
    puts: HashMap<u64, OpenPut>,
    next_handle: u64,
}

type OpResult = Result<serde_json::Value, RemoteError>;

fn remote(kind: &str, message: String) -> RemoteError {
    RemoteError {
        kind: kind.to_string(),
        message,
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> RemoteError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => "not_found",
        std::io::ErrorKind::PermissionDenied => "permission_denied",
        std::io::ErrorKind::StorageFull => "no_space",
        _ if e.raw_os_error() == Some(28) => "no_space",
        _ => "io",
    };
    remote(kind, format!("{what} {}: {e}", path.display()))
}

fn json<T: serde::Serialize>(v: T) -> OpResult {
    serde_json::to_value(v).map_err(|e| remote("io", format!("encoding the result: {e}")))
}

/// Serves the agent protocol until `exit` or end of input. Returns an error only when the
/// channel itself fails or sends something that is not a request.
pub fn serve<R: BufRead, W: Write>(
    reader: R,
    mut writer: W,
    root: &Path,
) -> Result<(), AgentError> {
    let mut server = Server {
        root: root.to_path_buf(),
        puts: HashMap::new(),
        next_handle: 1,
        listener: None,
    };
    let hello = HelloLine {
        hello: Hello {
            protocol: PROTOCOL_VERSION,
            agent: env!("CARGO_PKG_VERSION").to_string(),
        },
    };
    write_line(&mut writer, &hello)?;
    let mut reader = reader;
    let result = loop {
        let Some(line) = read_line(&mut reader)? else {
            break Ok(());
        };
        let request: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => break Err(AgentError::Protocol(format!("bad request line: {e}"))),
        };
        let exit = request.op == Op::Exit;
        let outcome = server.handle(request.op);
        let response = match outcome {
            Ok(ok) => Response {
                id: request.id,
                ok: Some(ok),
                error: None,
            },
            Err(error) => Response {
                id: request.id,
                ok: None,
                error: Some(error),
            },
        };
        write_line(&mut writer, &response)?;
        if exit {
            break Ok(());
        }
    };
    server.abort_all();
    result
}

/// One line, bounded by [`MAX_LINE`]; `None` at end of input.
fn read_line<R: BufRead>(reader: &mut R) -> Result<Option<Vec<u8>>, AgentError> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Err(AgentError::Protocol(format!(
            "a line is longer than {MAX_LINE} bytes"
        )));
    }
    Ok(Some(line))
}

fn write_line<W: Write, T: serde::Serialize>(w: &mut W, v: &T) -> Result<(), AgentError> {
    let mut buf = serde_json::to_vec(v).map_err(|e| AgentError::Protocol(e.to_string()))?;
    buf.push(b'\n');
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

impl Server {
    /// A protocol path (absolute, no `..`) under the root.
    fn resolve(&self, path: &str) -> Result<PathBuf, RemoteError> {
        let p = Path::new(path);
        if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(remote(
                "bad_request",
                format!("path `{path}` must be absolute and without `..`"),
            ));
        }
        Ok(self.root.join(p.strip_prefix("/").unwrap_or(p)))
    }

    fn handle(&mut self, op: Op) -> OpResult {
        match op {
            Op::Facts => json(crate::facts::gather(&self.root)),
            Op::Stat { path, sha256 } => self.stat(&path, sha256),
            Op::PutStart { path, mode } => self.put_start(&path, mode),
            Op::PutChunk { handle, data } => self.put_chunk(handle, &data),
            Op::PutFinish {
                handle,
                size,
                sha256,
            } => self.put_finish(handle, size, &sha256),
            Op::PutAbort { handle } => {
                if let Some(p) = self.puts.remove(&handle) {
                    let _ = std::fs::remove_file(&p.temp);
                }
                json(serde_json::json!({}))
            }
            Op::Get {
                path,
                offset,
                length,
            } => self.get(&path, offset, length),
            Op::RelayServe {
                listen,
                token,
                store,
                blobs,
                stall_secs,
                agent_sha256,
            } => self.relay_serve(
                &listen,
                &token,
                &store,
                &blobs,
                agent_sha256.as_deref(),
                stall_secs,
            ),
            Op::RelayFetch {
                peer,
                token,
                store,
                blob,
                stall_secs,
            } => {
                use crate::relay::peer::{fetch, FetchError, Fetched};
                let store = self.resolve(&store)?;
                let stall = std::time::Duration::from_secs(stall_secs.max(1));
                match fetch(&peer, &token, &store, &blob, stall) {
                    Ok(Fetched::AlreadyPresent) => json(RelayFetched {
                        resumed_from: 0,
                        already_present: true,
                    }),
                    Ok(Fetched::Arrived { resumed_from }) => json(RelayFetched {
                        resumed_from,
                        already_present: false,
                    }),
                    Err(e @ FetchError::Peer(_)) => Err(remote("peer_failed", e.to_string())),
                    Err(e @ FetchError::Mismatch { .. }) => {
                        Err(remote("checksum_mismatch", e.to_string()))
                    }
                    Err(FetchError::Local(m)) if m.contains("No space") => {
                        Err(remote("no_space", m))
                    }
                    Err(FetchError::Local(m)) => Err(remote("io", m)),
                }
            }
            Op::Exit => json(serde_json::json!({})),
        }
    }

    /// Starts (or replaces) the relay's listener, and says which blobs are here already.
    fn relay_serve(
        &mut self,
        listen: &str,
        token: &str,
        store: &str,
        blobs: &[crate::relay::BlobSpec],
        agent: Option<&str>,
        stall_secs: u64,
    ) -> OpResult {
        let dir = self.resolve(store)?;
        self.listener = None;
        let stall = std::time::Duration::from_secs(stall_secs.max(1));
        let listener = crate::relay::peer::serve(listen, token, &dir, blobs, agent, stall)
            .map_err(|e| {
                remote(
                    "io",
                    format!(
                        "listening on {listen} for the relay: {e} (is it this host's address?)"
                    ),
                )
            })?;
        let mut have = Vec::new();
        for b in blobs {
            let p = dir.join(&b.sha256);
            if p.is_file() && crate::relay::peer::file_sha256(&p).ok().as_deref() == Some(&b.sha256)
            {
                have.push(b.sha256.clone());
            }
        }
        let port = listener.addr().port();
        self.listener = Some(listener);
        json(RelayServing { port, have })
    }

    fn stat(&self, path: &str, sha256: bool) -> OpResult {
        use std::os::unix::fs::PermissionsExt;
        let full = self.resolve(path)?;
        let meta = match std::fs::metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return json(StatResult {
                    exists: false,
                    size: 0,
                    mode: 0,
                    is_dir: false,
                    sha256: None,
                })
            }
            Err(e) => return Err(io_error("reading", &full, &e)),
        };
        let digest = if sha256 && meta.is_file() {
            let mut f = File::open(&full).map_err(|e| io_error("opening", &full, &e))?;
            let mut h = Sha256::new();
            std::io::copy(&mut f, &mut h).map_err(|e| io_error("reading", &full, &e))?;
            Some(hex(&h.finalize()))
        } else {
            None
        };
        json(StatResult {
            exists: true,
            size: meta.len(),
            mode: meta.permissions().mode() & 0o7777,
            is_dir: meta.is_dir(),
            sha256: digest,
        })
    }

    fn put_start(&mut self, path: &str, mode: u32) -> OpResult {
        let target = self.resolve(path)?;
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(remote("bad_request", format!("`{path}` names no file")));
        };
        std::fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, &e))?;
        let handle = self.next_handle;
        self.next_handle += 1;
        let temp = dir.join(format!(
            ".{}.ferry-{}-{handle}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| io_error("creating", &temp, &e))?;
        self.puts.insert(
            handle,
            OpenPut {
                temp,
                target,
                file,
                hasher: Sha256::new(),
                size: 0,
                mode: mode & 0o7777,
            },
        );
        json(PutStarted { handle })
    }

    fn open_put(&mut self, handle: u64) -> Result<&mut OpenPut, RemoteError> {
        self.puts
            .get_mut(&handle)
            .ok_or_else(|| remote("bad_request", format!("no open put with handle {handle}")))
    }

    fn put_chunk(&mut self, handle: u64, data: &str) -> OpResult {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| remote("bad_request", format!("chunk is not base64: {e}")))?;
        let put = self.open_put(handle)?;
        if let Err(e) = put.file.write_all(&bytes) {
            let err = io_error("writing", &put.target, &e);
            self.abort(handle);
            return Err(err);
        }
        put.hasher.update(&bytes);
        put.size += bytes.len() as u64;
        json(serde_json::json!({}))
    }

    fn put_finish(&mut self, handle: u64, size: u64, sha256: &str) -> OpResult {
        use std::os::unix::fs::PermissionsExt;
        let put = self
            .puts
            .remove(&handle)
            .ok_or_else(|| remote("bad_request", format!("no open put with handle {handle}")))?;
        let digest = hex(&put.hasher.clone().finalize());
        let fail = |err: RemoteError| {
            let _ = std::fs::remove_file(&put.temp);
            Err(err)
        };
        if put.size != size || digest != sha256 {
            return fail(remote(
                "checksum_mismatch",
                format!(
                    "{}: received {} bytes with sha256 {digest}, expected {size} bytes with sha256 {sha256}; nothing written",
                    put.target.display(),
                    put.size
                ),
            ));
        }
        let perms = std::fs::Permissions::from_mode(put.mode);
        if let Err(e) = put.file.set_permissions(perms) {
            return fail(io_error("setting the mode of", &put.target, &e));
        }
        if let Err(e) = put.file.sync_all() {
            return fail(io_error("syncing", &put.target, &e));
        }
        if let Err(e) = std::fs::rename(&put.temp, &put.target) {
            return fail(io_error("renaming into", &put.target, &e));
        }
        // The rename is durable once the directory is synced.
        if let Some(dir) = put.target.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        json(PutDone {
            size,
            sha256: digest,
        })
    }

    fn get(&self, path: &str, offset: u64, length: u64) -> OpResult {
        let full = self.resolve(path)?;
        let mut f = File::open(&full).map_err(|e| io_error("opening", &full, &e))?;
        let total = f
            .metadata()
            .map_err(|e| io_error("reading", &full, &e))?
            .len();
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error("seeking in", &full, &e))?;
        let want = length.min(CHUNK_SIZE as u64) as usize;
        let mut buf = Vec::with_capacity(want);
        f.take(want as u64)
            .read_to_end(&mut buf)
            .map_err(|e| io_error("reading", &full, &e))?;
        let eof = offset + buf.len() as u64 >= total;
        json(GetChunk {
            data: base64::engine::general_purpose::STANDARD.encode(&buf),
            eof,
        })
    }

    fn abort(&mut self, handle: u64) {
        if let Some(p) = self.puts.remove(&handle) {
            let _ = std::fs::remove_file(&p.temp);
        }
    }

    fn abort_all(&mut self) {
        for (_, p) in self.puts.drain() {
            let _ = std::fs::remove_file(&p.temp);
        }
    }
}
