//! The controller's side: an async client over any byte stream pair (an SSH channel's
//! stdout/stdin, a child process's pipes). Requests go one at a time; file data streams in
//! [`CHUNK_SIZE`] pieces, so memory does not grow with file size.

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::protocol::{
    hex, GetChunk, Hello, HelloLine, Op, PutDone, PutStarted, RelayFetched, RelayServing, Request,
    Response, StatResult, CHUNK_SIZE, MAX_LINE, PROTOCOL_VERSION,
};
use super::AgentError;
use crate::facts::Facts;

/// Chunk requests a put may have in flight before it waits for an answer.
const PUT_WINDOW: usize = 16;

/// How much output before the hello is skipped (a login banner) before giving up.
const MAX_PREAMBLE: usize = 64 * 1024;

/// A session with one agent.
pub struct Client<R, W> {
    reader: BufReader<R>,
    writer: W,
    next_id: u64,
    hello: Hello,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Client<R, W> {
    /// Waits for the agent's hello and checks its protocol version. Lines before the hello (a
    /// shell banner) are skipped; if the agent never says hello, the error carries what it
    /// printed instead.
    pub async fn connect(reader: R, writer: W) -> Result<Self, AgentError> {
        let mut reader = BufReader::new(reader);
        let mut seen = String::new();
        let hello = loop {
            let line = read_line(&mut reader).await?;
            let Some(line) = line else {
                return Err(AgentError::NoHello { output: seen });
            };
            if let Ok(h) = serde_json::from_slice::<HelloLine>(&line) {
                break h.hello;
            }
            seen.push_str(&String::from_utf8_lossy(&line));
            if seen.len() > MAX_PREAMBLE {
                seen.truncate(512);
                return Err(AgentError::NoHello { output: seen });
            }
        };
        if hello.protocol != PROTOCOL_VERSION {
            return Err(AgentError::Version {
                agent: hello.protocol,
                ours: PROTOCOL_VERSION,
            });
        }
        Ok(Self {
            reader,
            writer,
            next_id: 1,
            hello,
        })
    }

    /// What the agent said when it started.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &mut self,
        op: Op,
        what: &'static str,
    ) -> Result<T, AgentError> {
        let id = self.send(op).await?;
        self.recv(id, what).await
    }

    /// Sends a request without waiting for its answer; returns its id.
    async fn send(&mut self, op: Op) -> Result<u64, AgentError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Request { id, op })
            .map_err(|e| AgentError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        self.writer.flush().await?;
        Ok(id)
    }

    /// Reads the answer to request `id` (answers come in request order).
    async fn recv<T: serde::de::DeserializeOwned>(
        &mut self,
        id: u64,
        what: &'static str,
    ) -> Result<T, AgentError> {
        let line = read_line(&mut self.reader)
            .await?
            .ok_or(AgentError::Closed)?;
        let response: Response = serde_json::from_slice(&line)
            .map_err(|e| AgentError::Protocol(format!("bad response line: {e}")))?;
        if response.id != id {
            return Err(AgentError::Protocol(format!(
                "response to request {} while waiting for {id}",
                response.id
            )));
        }
        if let Some(error) = response.error {
            return Err(AgentError::Remote { what, error });
        }
        let ok = response.ok.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(ok).map_err(|e| AgentError::Protocol(format!("{what}: {e}")))
    }

    /// The host's facts.
    pub async fn facts(&mut self) -> Result<Facts, AgentError> {
        self.call(Op::Facts, "facts").await
    }

    /// Describes a path; `sha256` also hashes a regular file.
    pub async fn stat(&mut self, path: &str, sha256: bool) -> Result<StatResult, AgentError> {
        let op = Op::Stat {
            path: path.to_string(),
            sha256,
        };
        self.call(op, "stat").await
    }

    /// Writes `source` to `path` with `mode`, atomically: the file appears whole, with the
    /// sha256 both sides computed, or not at all.
    pub async fn put<S: AsyncRead + Unpin>(
        &mut self,
        path: &str,
        mode: u32,
        mut source: S,
    ) -> Result<PutDone, AgentError> {
        let op = Op::PutStart {
            path: path.to_string(),
            mode,
        };
        let PutStarted { handle } = self.call(op, "put").await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; CHUNK_SIZE];
        // Chunks are pipelined: up to PUT_WINDOW answers may be pending, so a slow link is not
        // idle between chunks. The answers are tiny, so the agent never blocks writing them.
        let mut pending = std::collections::VecDeque::new();
        let mut failed: Option<AgentError> = None;
        loop {
            let n = match read_full(&mut source, &mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    failed = Some(e.into());
                    break;
                }
            };
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            let data = base64::engine::general_purpose::STANDARD.encode(&buf[..n]);
            pending.push_back(self.send(Op::PutChunk { handle, data }).await?);
            if pending.len() >= PUT_WINDOW {
                if let Some(id) = pending.pop_front() {
                    if let Err(e) = self.recv::<serde_json::Value>(id, "put").await {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        // Drain every pending answer; the first error is the one to report.
        while let Some(id) = pending.pop_front() {
            let answer = self.recv::<serde_json::Value>(id, "put").await;
            if let (Err(e), None) = (answer, &failed) {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            let _: Result<serde_json::Value, _> = self.call(Op::PutAbort { handle }, "put").await;
            return Err(e);
        }
        let sha256 = hex(&hasher.finalize());
        let op = Op::PutFinish {
            handle,
            size,
            sha256: sha256.clone(),
        };
        let done: PutDone = self.call(op, "put").await?;
        if done.sha256 != sha256 || done.size != size {
            return Err(AgentError::Protocol(format!(
                "{path}: agent wrote {} bytes with sha256 {}, sent {size} with {sha256}",
                done.size, done.sha256
            )));
        }
        Ok(done)
    }

    /// Writes a small in-memory file.
    pub async fn put_bytes(
        &mut self,
        path: &str,
        mode: u32,
        data: &[u8],
    ) -> Result<PutDone, AgentError> {
        self.put(path, mode, data).await
    }

    /// Copies a remote file into `dest`; returns its size and sha256.
    pub async fn get<D: AsyncWrite + Unpin>(
        &mut self,
        path: &str,
        mut dest: D,
    ) -> Result<(u64, String), AgentError> {
        let mut offset = 0u64;
        let mut hasher = Sha256::new();
        loop {
            let op = Op::Get {
                path: path.to_string(),
                offset,
                length: CHUNK_SIZE as u64,
            };
            let chunk: GetChunk = self.call(op, "get").await?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(&chunk.data)
                .map_err(|e| AgentError::Protocol(format!("get {path}: {e}")))?;
            hasher.update(&data);
            dest.write_all(&data).await?;
            offset += data.len() as u64;
            if chunk.eof || data.is_empty() {
                break;
            }
        }
        dest.flush().await?;
        Ok((offset, hex(&hasher.finalize())))
    }

    /// Reads a small remote file into memory.
    pub async fn get_bytes(&mut self, path: &str) -> Result<Vec<u8>, AgentError> {
        let mut out = Vec::new();
        self.get(path, &mut out).await?;
        Ok(out)
    }

    /// Starts the relay's listener on the host (see [`Op::RelayServe`]).
    pub async fn relay_serve(&mut self, op: Op) -> Result<RelayServing, AgentError> {
        self.call(op, "relay serve").await
    }

    /// Fetches a blob from a peer (see [`Op::RelayFetch`]).
    pub async fn relay_fetch(&mut self, op: Op) -> Result<RelayFetched, AgentError> {
        self.call(op, "relay fetch").await
    }

    /// Ends the session; the agent exits after answering.
    pub async fn exit(mut self) -> Result<(), AgentError> {
        let _: serde_json::Value = self.call(Op::Exit, "exit").await?;
        self.writer.shutdown().await?;
        Ok(())
    }
}

/// Fills `buf` as far as the source allows; 0 only at end of input.
async fn read_full<S: AsyncRead + Unpin>(src: &mut S, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = src.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> Result<Option<Vec<u8>>, AgentError> {
    let mut line = Vec::new();
    let n = reader
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Err(AgentError::Protocol(format!(
            "the agent sent a line longer than {MAX_LINE} bytes"
        )));
    }
    Ok(Some(line))
}
