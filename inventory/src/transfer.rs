//! Uploads over an SSH exec channel (not SFTP: a login shell that prints a banner breaks SFTP,
//! while an exec channel only carries the bytes we send). The file streams into
//! `DEST.ferry-partial`; the host checks its sha256 and renames it into place atomically. A
//! destination with the same digest is skipped; a partial file whose prefix hash matches is
//! resumed from its size; a full disk removes the partial file and says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::ssh::{shell_quote, Pool, Session, SshError};
use crate::target::Target;

/// Upload errors. Each says what happened to the remote file.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The local file could not be read.
    #[error("reading {path}: {cause}")]
    Local {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, not a `source()`: chains print each cause once).
        cause: std::io::Error,
    },
    /// The SSH session failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The remote disk filled up.
    #[error(
        "{host}: no space left on the device holding {dest} ({size} bytes needed); \
         the partial file was removed, free some space and retry"
    )]
    DiskFull {
        /// Host name.
        host: String,
        /// Remote destination.
        dest: String,
        /// File size.
        size: u64,
    },
    /// The uploaded bytes do not hash to the local digest.
    #[error(
        "{host}: {dest} arrived with sha256 {got}, expected {want}; the partial file was \
         removed, retry the upload"
    )]
    DigestMismatch {
        /// Host name.
        host: String,
        /// Remote destination.
        dest: String,
        /// Remote digest.
        got: String,
        /// Local digest.
        want: String,
    },
    /// The connection dropped in the middle; the partial file stays for the next attempt.
    #[error(
        "{host}: connection lost after sending {sent} of {size} bytes of {dest}; the next \
         attempt resumes from the partial file"
    )]
    Interrupted {
        /// Host name.
        host: String,
        /// Remote destination.
        dest: String,
        /// Bytes of the file on the host when it dropped (at least).
        sent: u64,
        /// File size.
        size: u64,
    },
    /// A remote step failed.
    #[error("{host}: uploading {dest}: {reason}")]
    Remote {
        /// Host name.
        host: String,
        /// Remote destination.
        dest: String,
        /// What failed.
        reason: String,
    },
}

/// A local file to upload, with its size and sha256 computed once for any number of hosts.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its sha256, lowercase hex.
    pub sha256: String,
}

impl LocalFile {
    /// Reads the file once to hash it (streaming, constant memory).
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, TransferError> {
        let path = path.into();
        let p = path.clone();
        let res = tokio::task::spawn_blocking(move || hash_prefix(&p, None)).await;
        let (size, sha256) = match res {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
        .map_err(|cause| TransferError::Local {
            path: path.clone(),
            cause,
        })?;
        Ok(Self { path, size, sha256 })
    }
}

/// Where an upload's bytes come from: a local file, or a stream out of a bundle (a blob read
/// and verified on the way), so nothing needs a temporary copy on the jump host. Its size and
/// sha256 are known before the first byte is sent (the destination is skipped when it already
/// has them); reading is blocking and runs on a blocking thread.
pub trait UploadSource: Send + Sync {
    /// What it is, for messages (a path, `bundle item k3s: k3s/k3s`).
    fn describe(&self) -> PathBuf;
    /// Bytes in all.
    fn size(&self) -> u64;
    /// Its sha256, lowercase hex.
    fn sha256(&self) -> &str;
    /// A reader of its bytes from `offset` on.
    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn std::io::Read + Send>>;
}

impl UploadSource for LocalFile {
    fn describe(&self) -> PathBuf {
        self.path.clone()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn sha256(&self) -> &str {
        &self.sha256
    }

    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        use std::io::Seek;
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(std::io::SeekFrom::Start(offset))?;
        Ok(Box::new(f))
    }
}

/// Hashes the first `limit` bytes (all when `None`); returns (bytes hashed, hex digest).
fn hash_prefix(path: &Path, limit: Option<u64>) -> std::io::Result<(u64, String)> {
    let f = std::fs::File::open(path)?;
    hash_reader(Box::new(f), limit)
}

/// Hashes the first `limit` bytes of `r` (all when `None`).
fn hash_reader(
    r: Box<dyn std::io::Read + Send>,
    limit: Option<u64>,
) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut r: Box<dyn Read + Send> = match limit {
        Some(n) => Box::new(r.take(n)),
        None => r,
    };
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&h.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How to place the file.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Write as root (through the target's sudo).
    pub as_root: bool,
    /// File mode, octal (e.g. 0o644).
    pub mode: u32,
    /// A directory on the host where the relay may have left a copy named by its sha256
    /// ([`crate::relay::HOST_STORE`]): when there, it is copied on the host instead of sent
    /// (and checked like sent bytes).
    pub staged: Option<String>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            as_root: false,
            mode: 0o644,
            staged: None,
        }
    }
}

/// Progress of uploads, for the front end to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEvent {
    /// The host already has the file.
    Skipped {
        /// Host name.
        host: String,
    },
    /// Bytes start flowing (`offset` > 0 when resuming).
    Started {
        /// Host name.
        host: String,
        /// Where the upload starts.
        offset: u64,
        /// File size.
        size: u64,
    },
    /// Bytes on the way so far to one host.
    Progress {
        /// Host name.
        host: String,
        /// Bytes of the file written so far (including a resumed prefix).
        done: u64,
        /// File size.
        size: u64,
    },
    /// The file is in place on one host.
    Done {
        /// Host name.
        host: String,
    },
    /// All hosts of an [`upload_many`] together.
    Overall {
        /// Bytes done over all hosts.
        done: u64,
        /// Bytes over all hosts.
        total: u64,
        /// Hosts finished (done, skipped or failed).
        hosts_finished: usize,
        /// Hosts in the run.
        hosts: usize,
    },
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    /// The destination already had this content.
    AlreadyPresent,
    /// A copy the relay left on the host was placed; nothing was sent.
    Staged,
    /// Bytes were sent, starting at `resumed_from`.
    Uploaded {
        /// Where the upload started (0 unless resumed).
        resumed_from: u64,
    },
}

/// A callback receiving progress events.
pub type Progress<'a> = &'a (dyn Fn(TransferEvent) + Send + Sync);

const CHUNK: usize = 256 * 1024;

/// A shell function `h` printing the sha256 of stdin: OpenSSL when the host has it (it uses the
/// CPU's SHA instructions: about 6x faster than coreutils' sha256sum here), sha256sum otherwise.
pub const HASH_FN: &str = "h() { if command -v openssl >/dev/null 2>&1; \
     then openssl dgst -sha256 -r | cut -d' ' -f1; else sha256sum | cut -d' ' -f1; fi; }; ";

/// Uploads `file` to `dest` on the session's host.
pub async fn upload(
    session: &Session,
    file: &dyn UploadSource,
    dest: &str,
    opts: &UploadOptions,
    progress: Progress<'_>,
) -> Result<UploadOutcome, TransferError> {
    let host = session.host().to_string();
    let partial = format!("{dest}.ferry-partial");
    let (d, p) = (shell_quote(dest), shell_quote(&partial));
    let remote = |reason: String| TransferError::Remote {
        host: host.clone(),
        dest: dest.to_string(),
        reason,
    };

    // 1. What is there already?
    let staged = opts
        .staged
        .as_ref()
        .map(|dir| format!("{}/{}", dir.trim_end_matches('/'), file.sha256()));
    let probe = format!(
        "{HASH_FN}if [ -f {d} ]; then printf 'ferry-dest %s\\n' \"$(h < {d})\"; fi; \
         if [ -f {p} ]; then printf 'ferry-partial %s\\n' \"$(wc -c < {p})\"; fi{s}",
        s = match &staged {
            Some(st) => format!(
                "; if [ -f {q} ]; then printf 'ferry-staged\\n'; fi",
                q = shell_quote(st)
            ),
            None => String::new(),
        }
    );
    let seen = session.exec_ok(&probe, opts.as_root).await?;
    let field = |name: &str| {
        seen.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    if field("ferry-dest ").as_deref() == Some(file.sha256()) {
        progress(TransferEvent::Skipped { host: host.clone() });
        return Ok(UploadOutcome::AlreadyPresent);
    }
    if let Some(st) = staged.filter(|_| seen.lines().any(|l| l.trim() == "ferry-staged")) {
        // The relay brought it: copy it on the host, then check it like sent bytes. A copy
        // that fails its check is removed and the bytes are sent after all.
        let copy = format!(
            "mkdir -p \"$(dirname {p})\" && cp -f {s} {p}",
            s = shell_quote(&st)
        );
        if session.exec_ok(&copy, opts.as_root).await.is_ok() {
            match place(session, file, dest, opts).await {
                Ok(()) => {
                    progress(TransferEvent::Done { host });
                    return Ok(UploadOutcome::Staged);
                }
                Err(TransferError::DigestMismatch { got, .. }) => {
                    tracing::warn!(%host, "the relayed copy {st} has sha256 {got}: sending instead");
                    let _ = session
                        .exec(&format!("rm -f {}", shell_quote(&st)), opts.as_root)
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    // 2. Resume only from a prefix whose hash matches ours.
    let mut offset = 0u64;
    if let Some(n) = field("ferry-partial ").and_then(|v| v.parse::<u64>().ok()) {
        if n > 0 && n <= file.size() {
            let local_err = |cause| TransferError::Local {
                path: file.describe(),
                cause,
            };
            let reader = file.open_at(0).map_err(local_err)?;
            let local = tokio::task::spawn_blocking(move || hash_reader(reader, Some(n)))
                .await
                .map_err(|e| remote(e.to_string()))?
                .map_err(local_err)?;
            let there = session
                .exec_ok(&format!("{HASH_FN}head -c {n} {p} | h"), opts.as_root)
                .await?;
            if field_line(&there).as_deref() == Some(local.1.as_str()) {
                offset = n;
            }
        }
    }
    if offset < file.size() {
        send(session, file, &partial, offset, opts, progress).await?;
    } else {
        progress(TransferEvent::Started {
            host: host.clone(),
            offset,
            size: file.size(),
        });
    }

    place(session, file, dest, opts).await?;
    progress(TransferEvent::Done { host });
    Ok(UploadOutcome::Uploaded {
        resumed_from: offset,
    })
}

/// Checks the digest of `DEST.ferry-partial` on the host, then renames it into place
/// atomically (or removes it).
pub(crate) async fn place(
    session: &Session,
    file: &dyn UploadSource,
    dest: &str,
    opts: &UploadOptions,
) -> Result<(), TransferError> {
    let host = session.host().to_string();
    let partial = format!("{dest}.ferry-partial");
    let (d, p) = (shell_quote(dest), shell_quote(&partial));
    let finish = format!(
        "{HASH_FN}h=$(h < {p}); \
         if [ \"$h\" != {want} ]; then rm -f {p}; printf 'ferry-mismatch %s\\n' \"$h\"; exit 0; fi; \
         chmod {mode:o} {p} && mv -f {p} {d} && printf 'ferry-placed\\n'",
        want = file.sha256(),
        mode = opts.mode,
    );
    let out = session.exec_ok(&finish, opts.as_root).await?;
    if let Some(got) = out.lines().find_map(|l| l.strip_prefix("ferry-mismatch ")) {
        return Err(TransferError::DigestMismatch {
            host,
            dest: dest.to_string(),
            got: got.trim().to_string(),
            want: file.sha256().to_string(),
        });
    }
    if !out.lines().any(|l| l.trim() == "ferry-placed") {
        return Err(TransferError::Remote {
            host,
            dest: dest.to_string(),
            reason: format!("could not rename {partial} into place"),
        });
    }
    Ok(())
}

/// The last non-empty line (skips anything a login shell printed first).
fn field_line(out: &str) -> Option<String> {
    out.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// Streams the source from `offset` into the partial file. The source is read on a blocking
/// thread a few chunks ahead of the channel (constant memory whatever its size).
async fn send(
    session: &Session,
    file: &dyn UploadSource,
    partial: &str,
    offset: u64,
    opts: &UploadOptions,
    progress: Progress<'_>,
) -> Result<(), TransferError> {
    let host = session.host().to_string();
    let dest = partial.trim_end_matches(".ferry-partial").to_string();
    let p = shell_quote(partial);
    let dir = shell_quote(
        Path::new(partial)
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
            .filter(|d| !d.is_empty())
            .as_deref()
            .unwrap_or("."),
    );
    let redirect = if offset > 0 { ">>" } else { ">" };
    let cmd = format!("mkdir -p {dir} && umask 077 && LC_ALL=C cat {redirect} {p}");
    let local_err = |cause| TransferError::Local {
        path: file.describe(),
        cause,
    };
    let mut chunks = read_ahead(file.open_at(offset).map_err(local_err)?);
    let size = file.size();
    progress(TransferEvent::Started {
        host: host.clone(),
        offset,
        size,
    });
    let mut child = session.spawn(&cmd, opts.as_root).await?;
    let mut done = offset;
    let mut write_failed = false;
    let mut last_report = done;
    while let Some(chunk) = chunks.recv().await {
        let buf = chunk.map_err(local_err)?;
        if child.write_stdin(&buf).await.is_err() {
            write_failed = true;
            break;
        }
        done += buf.len() as u64;
        if done - last_report >= 4 * 1024 * 1024 || done == size {
            last_report = done;
            progress(TransferEvent::Progress {
                host: host.clone(),
                done,
                size,
            });
        }
    }
    let exit = child.wait().await;
    match exit {
        Ok(exit) if exit.success() && !write_failed => Ok(()),
        Ok(exit) => {
            let cleanup = |reason| async move {
                // Best effort: a removal that fails leaves a partial file the next attempt
                // verifies before trusting.
                let _ = session.exec(&format!("rm -f {p}"), opts.as_root).await;
                reason
            };
            if exit.stderr_tail.contains("No space left") {
                return Err(cleanup(TransferError::DiskFull { host, dest, size }).await);
            }
            Err(cleanup(TransferError::Remote {
                host,
                dest,
                reason: format!(
                    "writing the partial file failed ({}): {}",
                    exit.describe(),
                    exit.stderr_tail.trim()
                ),
            })
            .await)
        }
        Err(SshError::ConnectionLost { .. }) | Err(SshError::Channel { .. }) => {
            Err(TransferError::Interrupted {
                host,
                dest,
                sent: done,
                size,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads `r` to its end on a blocking thread, `CHUNK` bytes at a time, at most four chunks
/// ahead of the receiver; a read error ends the stream with it. Dropping the receiver stops
/// the thread at its next chunk.
pub fn read_ahead(
    mut r: Box<dyn std::io::Read + Send>,
) -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; CHUNK];
        let n = loop {
            match r.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let msg = match n {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e) => Err(e),
        };
        let stop = msg.is_err();
        if tx.blocking_send(msg).is_err() || stop {
            return;
        }
    });
    rx
}

/// Uploads one file to many hosts at once (bounded by the pool's concurrency limit), reporting
/// per-host and overall progress. Returns each host's result, in the order of `targets`.
pub async fn upload_many(
    pool: Arc<Pool>,
    targets: &[Target],
    file: &LocalFile,
    dest: &str,
    opts: &UploadOptions,
    progress: Arc<dyn Fn(TransferEvent) + Send + Sync>,
) -> Vec<(String, Result<UploadOutcome, TransferError>)> {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let hosts = targets.len();
    let total = file.size * hosts as u64;
    let done_bytes = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(hosts);
    for t in targets {
        let (pool, t, file, dest, opts) = (
            pool.clone(),
            t.clone(),
            file.clone(),
            dest.to_string(),
            opts.clone(),
        );
        let (progress, done_bytes, finished) =
            (progress.clone(), done_bytes.clone(), finished.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = pool.permit().await;
            let last = std::sync::Mutex::new(0u64);
            let overall = |ev: TransferEvent| {
                let now = match &ev {
                    TransferEvent::Started { offset, .. } => Some(*offset),
                    TransferEvent::Progress { done, .. } => Some(*done),
                    TransferEvent::Skipped { .. } => Some(file.size),
                    _ => None,
                };
                progress(ev);
                if let Some(now) = now {
                    let mut l = last.lock().unwrap_or_else(|p| p.into_inner());
                    let delta = now.saturating_sub(*l);
                    *l = now.max(*l);
                    let d = done_bytes.fetch_add(delta, Ordering::Relaxed) + delta;
                    progress(TransferEvent::Overall {
                        done: d,
                        total,
                        hosts_finished: finished.load(Ordering::Relaxed),
                        hosts,
                    });
                }
            };
            let res = match pool.session(&t).await {
                Ok(s) => upload(&s, &file, &dest, &opts, &overall).await,
                Err(e) => Err(e.into()),
            };
            let f = finished.fetch_add(1, Ordering::Relaxed) + 1;
            progress(TransferEvent::Overall {
                done: done_bytes.load(Ordering::Relaxed),
                total,
                hosts_finished: f,
                hosts,
            });
            (t.name.clone(), res)
        }));
    }
    let mut out = Vec::with_capacity(hosts);
    for (task, t) in tasks.into_iter().zip(targets) {
        out.push(task.await.unwrap_or_else(|e| {
            (
                t.name.clone(),
                Err(TransferError::Remote {
                    host: t.name.clone(),
                    dest: dest.to_string(),
                    reason: format!("upload task failed: {e}"),
                }),
            )
        }));
    }
    out
}
