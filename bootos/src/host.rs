//! How a resource reaches its host: run a shell script as root, read and write whole files
//! atomically, send a local file or directory. Resources only see this trait, never SSH, so
//! the same resource code runs over ferry's sessions and, later, over a relay or the appliance.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_inventory::ssh::{shell_quote, Session, SshError};
use ferry_inventory::transfer::{
    read_ahead, upload, LocalFile, TransferError, TransferEvent, UploadOptions, UploadSource,
    HASH_FN,
};
use tokio::io::AsyncWriteExt;

/// A host step that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The SSH connection or channel failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// Sending a file failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// A command ran and failed.
    #[error("{host}: `{command}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        /// Host name.
        host: String,
        /// The command (its first line).
        command: String,
        /// `exit 3`, `signal KILL`, ...
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// Local I/O on the jump host failed.
    #[error("{what}: {source}")]
    Local {
        /// What ferry was doing.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn unsupported(host: &str, what: &str) -> HostError {
    HostError::Local {
        what: format!("{host}: {what}"),
        source: std::io::Error::other("this kind of host cannot stream data"),
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        // The last lines say what went wrong; keep the error one readable line.
        let tail: Vec<&str> = s.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(": {}", tail.join(" / "))
    }
}

/// A finished command.
#[derive(Debug, Clone, Default)]
pub struct CmdOutput {
    /// Exit status (None when killed or the connection dropped).
    pub status: Option<u32>,
    /// `exit 3`, `signal KILL`, ...
    pub described: String,
    /// Its standard output.
    pub stdout: String,
    /// The end of its standard error.
    pub stderr: String,
}

impl CmdOutput {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// What a script given data on stdin printed: its stdout as bytes (file contents are not
/// always text), with how it ended.
#[derive(Debug, Clone, Default)]
pub struct DataOutput {
    /// Exit status (None when killed or the connection dropped).
    pub status: Option<u32>,
    /// `exit 3`, `signal KILL`, ...
    pub described: String,
    /// Its standard output, byte for byte.
    pub stdout: Vec<u8>,
    /// The end of its standard error.
    pub stderr: String,
}

impl DataOutput {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// The most a [`Host::run_data`] script may print: file snapshots are configuration files,
/// and a journal keeps them whole.
pub const DATA_OUTPUT_LIMIT: usize = 16 << 20;

/// A file's bytes, as a journal keeps them: text as a JSON string (readable in the journal),
/// anything that is not UTF-8 as `{"base64": "..."}`, so a snapshot restores byte for byte.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct FileBytes(pub Vec<u8>);

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(t) => write!(f, "{t:?}"),
            Err(_) => write!(f, "<{} bytes, not UTF-8>", self.0.len()),
        }
    }
}

impl serde::Serialize for FileBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        use serde::ser::SerializeMap as _;
        match std::str::from_utf8(&self.0) {
            Ok(t) => s.serialize_str(t),
            Err(_) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(
                    "base64",
                    &base64::engine::general_purpose::STANDARD.encode(&self.0),
                )?;
                m.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for FileBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Binary { base64: String },
        }
        match Form::deserialize(d)? {
            Form::Text(t) => Ok(FileBytes(t.into_bytes())),
            Form::Binary { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map(FileBytes)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A file as found on a host: its content and mode, or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FileState {
    /// The content, byte for byte, when the file exists.
    pub content: Option<FileBytes>,
    /// Permission bits, when the file exists.
    pub mode: Option<u32>,
    /// When the file is absent: its parent directories that were absent too, innermost first.
    /// Writing the file creates them; restoring "absent" removes them again when they are
    /// empty, so a rollback leaves no empty directory behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_dirs: Vec<String>,
}

impl FileState {
    /// The file is absent.
    pub fn absent() -> Self {
        Self::default()
    }

    /// The file exists with `content` and `mode`.
    pub fn present(content: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self {
            content: Some(FileBytes(content.into())),
            mode: Some(mode),
            missing_dirs: Vec::new(),
        }
    }

    /// Whether it exists.
    pub fn exists(&self) -> bool {
        self.content.is_some()
    }

    /// Its content, when it exists.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.content.as_ref().map(|c| c.0.as_slice())
    }

    /// Its content as text, when it exists and is UTF-8.
    pub fn text(&self) -> Option<&str> {
        self.bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The text a resource edits: empty when absent; refused when the file is not UTF-8 text
    /// (ferry edits configuration files line by line and will not guess at other bytes).
    pub fn editable_text(&self, path: &str) -> Result<&str, crate::resource::ResourceError> {
        match self.bytes() {
            None => Ok(""),
            Some(b) => std::str::from_utf8(b).map_err(|_| {
                crate::resource::ResourceError::Refused(format!(
                    "{path} is not UTF-8 text, so ferry will not edit it; fix or remove the \
                     file by hand, then run again"
                ))
            }),
        }
    }
}

/// What a change leaves on a host, recorded in the run's journal before the change is made,
/// so that undoing it later can tell the run's own work from what was changed since.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "effect", rename_all = "kebab-case")]
pub enum Effect {
    /// `path` is about to hold content with this sha256.
    Wrote {
        /// The file.
        path: String,
        /// The hex sha256 of what is written.
        sha256: String,
    },
    /// Packages that were not installed are about to be installed, at these versions.
    Installed {
        /// Name and version of each.
        packages: Vec<InstalledPackage>,
    },
}

impl Effect {
    /// `path` about to hold `content`.
    pub fn wrote(path: &str, content: &[u8]) -> Effect {
        Effect::Wrote {
            path: path.to_string(),
            sha256: sha256_hex(content),
        }
    }
}

/// A package a run installed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstalledPackage {
    /// Its name.
    pub name: String,
    /// The version installed.
    pub version: String,
}

/// Something a revert left as it found it, because it changed after the run made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// What (`/etc/fstab`, `package jq`).
    pub what: String,
    /// Why it was left, and where the state before the run is, if kept somewhere.
    pub why: String,
}

/// The hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Shell that prints the directory `dir` (a shell word) and its parents while they do not
/// exist, one per line, innermost first.
fn list_missing_dirs(dir: &str) -> String {
    format!("d={dir}; while [ ! -d \"$d\" ]; do echo \"$d\"; d=$(dirname \"$d\"); done")
}

/// A marker no banner is likely to print, new for every read: a login shell that prints
/// text around a command's output (a `.bashrc` banner) cannot shift what is read.
fn frame_marker() -> String {
    use std::hash::BuildHasher as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let h = std::collections::hash_map::RandomState::new().hash_one((n, nanos));
    format!("FERRY-{h:016x}")
}

/// The shell for [`Host::read_file`]: a header line `\nMARKER file MODE SIZE`, then exactly
/// SIZE bytes of content, then `\nMARKER end`; or `\nMARKER absent`, the absent parent
/// directories one a line, and `MARKER end`.
fn read_file_script(path: &str, marker: &str) -> String {
    let p = shell_quote(path);
    format!(
        "m={marker}; if [ -f {p} ]; then set -- $(stat -L -c '%a %s' -- {p}) && \
         printf '\\n%s file %s %s\\n' \"$m\" \"$1\" \"$2\" && cat -- {p} && \
         printf '\\n%s end\\n' \"$m\"; else printf '\\n%s absent\\n' \"$m\"; {}; \
         printf '%s end\\n' \"$m\"; fi",
        list_missing_dirs(&format!("$(dirname {p})"))
    )
}

/// Why framed output could not be read.
#[derive(Debug, PartialEq, Eq)]
enum Unframed {
    /// The file changed size between `stat` and `cat`: read again.
    Changed,
    /// No frame in the output at all.
    Missing,
}

/// Reads [`read_file_script`]'s output, ignoring whatever a login shell printed around it.
fn parse_framed(out: &[u8], marker: &str) -> Result<FileState, Unframed> {
    let head = format!("\n{marker} ");
    let at = find(out, head.as_bytes()).ok_or(Unframed::Missing)? + head.len();
    let rest = &out[at..];
    let eol = find(rest, b"\n").ok_or(Unframed::Missing)?;
    let header = std::str::from_utf8(&rest[..eol]).map_err(|_| Unframed::Missing)?;
    let body = &rest[eol + 1..];
    let words: Vec<&str> = header.split(' ').collect();
    match words.as_slice() {
        ["file", mode, size] => {
            let size: usize = size.parse().map_err(|_| Unframed::Missing)?;
            let end = format!("\n{marker} end\n");
            if body.len() < size || !body[size..].starts_with(end.as_bytes()) {
                return Err(Unframed::Changed);
            }
            Ok(FileState {
                content: Some(FileBytes(body[..size].to_vec())),
                mode: u32::from_str_radix(mode, 8).ok(),
                missing_dirs: Vec::new(),
            })
        }
        ["absent"] => {
            let end = format!("{marker} end\n");
            let stop = find(body, end.as_bytes()).ok_or(Unframed::Missing)?;
            let dirs = String::from_utf8_lossy(&body[..stop]);
            Ok(FileState {
                missing_dirs: dirs.lines().map(str::to_string).collect(),
                ..FileState::absent()
            })
        }
        _ => Err(Unframed::Missing),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn first_line(script: &str) -> &str {
    script.lines().next().unwrap_or_default()
}

/// A host that resources act on. Every command runs as root.
#[async_trait]
pub trait Host: Send + Sync {
    /// The inventory name (for messages).
    fn name(&self) -> &str;

    /// Runs `script` with `sh -c` as root and returns how it ended; a non-zero exit is not an
    /// error here.
    async fn run(&self, script: &str) -> Result<CmdOutput, HostError>;

    /// Runs `script` with `sh -c` as root, `input` on its stdin, and returns its stdout byte
    /// for byte. Data (file contents, journal lines) goes this way only: never in a command
    /// line, where `ps` and sudo's log would show it, and never in ferry's host log, which
    /// records only its size.
    async fn run_data(&self, script: &str, input: &[u8]) -> Result<DataOutput, HostError>;

    /// Writes `content` to `path` atomically (temporary file beside it, then rename), with
    /// `mode`, creating missing parent directories (mode 0755). The content goes on stdin.
    async fn write_file(&self, path: &str, content: &[u8], mode: u32) -> Result<(), HostError> {
        let p = shell_quote(path);
        let tmp = shell_quote(&format!("{path}.ferry-tmp"));
        let script = format!(
            "(umask 022 && mkdir -p \"$(dirname {p})\") && umask 077 && cat > {tmp} \
             && chmod {mode:o} {tmp} && mv -f {tmp} {p}"
        );
        let out = self.run_data(&script, content).await?;
        if out.success() {
            return Ok(());
        }
        let _ = self.run(&format!("rm -f {tmp}")).await;
        Err(HostError::Failed {
            host: self.name().to_string(),
            command: format!("writing {path}"),
            status: out.described,
            stderr: out.stderr,
        })
    }

    /// Sends a local file to `remote` (resumable, skipped when the same content is there).
    async fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<(), HostError>;

    /// Sends a local directory tree into `remote_dir` (created; existing files overwritten).
    async fn send_tree(&self, local_dir: &Path, remote_dir: &str) -> Result<(), HostError>;

    /// Unpacks a packed tree ([`crate::tree::PackedTree`]) the relay left in the host's store
    /// under its `sha256` into `remote_dir` (created), once its digest is checked. `Ok(false)`
    /// when there is no such copy, or it fails the check (it is removed then): the caller
    /// sends the tree itself.
    async fn unpack_staged(&self, _sha256: &str, _remote_dir: &str) -> Result<bool, HostError> {
        Ok(false)
    }

    /// Sends what `source` streams (a bundle blob, read and verified on the way) to `remote`,
    /// as [`Host::upload`] does a local file: resumable, skipped when the same content is
    /// there, placed atomically.
    async fn upload_from(
        &self,
        _source: &dyn UploadSource,
        remote: &str,
        _mode: u32,
    ) -> Result<(), HostError> {
        Err(unsupported(self.name(), &format!("streaming {remote}")))
    }

    /// Runs `script` as root with everything `input` yields streamed to its stdin (an image
    /// archive into `ctr images import -`): constant memory, no temporary copy on either side.
    async fn run_piped(
        &self,
        script: &str,
        _input: Box<dyn std::io::Read + Send>,
    ) -> Result<CmdOutput, HostError> {
        Err(unsupported(self.name(), script))
    }

    /// Records, before a change is made, what it will leave on the host (see [`Effect`]).
    /// A host acting for a journaled run writes it to the run's journal; a plain host keeps
    /// nothing. Writes through [`Host::write_file`] are recorded by such a host itself.
    async fn record_effect(&self, _effect: &Effect) -> Result<(), HostError> {
        Ok(())
    }

    /// While a change is undone: the effects its run recorded, or `None` when there is no
    /// record (a plain host): the revert then puts back what was observed, whatever happened
    /// since.
    fn recorded_effects(&self) -> Option<Vec<Effect>> {
        None
    }

    /// While a change is undone: tells the run that `kept` was left as found.
    fn report_kept(&self, _kept: Kept) {}

    /// Runs `script`; fails unless it exits 0. Returns its stdout.
    async fn run_ok(&self, script: &str) -> Result<String, HostError> {
        let out = self.run(script).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(HostError::Failed {
                host: self.name().to_string(),
                command: script.lines().next().unwrap_or_default().to_string(),
                status: out.described,
                stderr: out.stderr,
            })
        }
    }

    /// Reads a file: its bytes and mode, or [`FileState::absent`] with the parent
    /// directories that are absent too. The content is framed by a marker and its length, so
    /// whatever a login shell prints around it is not taken for content; a file that changes
    /// size while read is read again.
    async fn read_file(&self, path: &str) -> Result<FileState, HostError> {
        let mut tries = 0;
        loop {
            let marker = frame_marker();
            let out = self.run_data(&read_file_script(path, &marker), b"").await?;
            let failed = |why: &str| HostError::Failed {
                host: self.name().to_string(),
                command: format!("reading {path}"),
                status: out.described.clone(),
                stderr: format!("{}{why}", out.stderr),
            };
            if !out.success() {
                return Err(failed(""));
            }
            match parse_framed(&out.stdout, &marker) {
                Ok(state) => return Ok(state),
                Err(Unframed::Changed) if tries < 3 => tries += 1,
                Err(Unframed::Changed) => {
                    return Err(failed(" (it kept changing while being read)"))
                }
                Err(Unframed::Missing) => {
                    return Err(failed(" (its output has no frame: is `sh` a POSIX shell?)"))
                }
            }
        }
    }

    /// The sha256 (hex) of a regular file, computed on the host, or `None` when there is no
    /// such file: for files too big to read over the session (binaries, image archives).
    async fn file_sha256(&self, path: &str) -> Result<Option<String>, HostError> {
        let out = self
            .run_ok(&format!(
                "if [ -f {p} ]; then if command -v openssl >/dev/null 2>&1; then openssl dgst \
                 -sha256 -r {p} | cut -d' ' -f1; else sha256sum {p} | cut -d' ' -f1; fi; fi",
                p = shell_quote(path)
            ))
            .await?;
        // The last line that is a digest: a login shell's banner is not one.
        Ok(out
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string))
    }

    /// Puts a file back the way [`Host::read_file`] found it (removed when it was absent).
    async fn restore_file(&self, path: &str, state: &FileState) -> Result<(), HostError> {
        match state.bytes() {
            Some(c) => self.write_file(path, c, state.mode.unwrap_or(0o644)).await,
            None => {
                self.run_ok(&format!("rm -f {}", shell_quote(path))).await?;
                self.remove_empty_dirs(&state.missing_dirs).await
            }
        }
    }

    /// `dir` and those of its parents that do not exist, innermost first: what a later
    /// `mkdir -p` (or a service) would create.
    async fn missing_dirs(&self, dir: &str) -> Result<Vec<String>, HostError> {
        let out = self.run_ok(&list_missing_dirs(&shell_quote(dir))).await?;
        Ok(out.lines().map(str::to_string).collect())
    }

    /// Removes `dirs` in order (innermost first) while they are empty: `rmdir` refuses one that
    /// is not, and whatever else is in it stays, with its parents.
    async fn remove_empty_dirs(&self, dirs: &[String]) -> Result<(), HostError> {
        if dirs.is_empty() {
            return Ok(());
        }
        let script: Vec<String> = dirs
            .iter()
            .map(|d| {
                format!(
                    "{{ [ ! -e {q} ] || rmdir {q} 2>/dev/null || exit 0; }}",
                    q = shell_quote(d)
                )
            })
            .collect();
        self.run_ok(&script.join(" && ")).await.map(|_| ())
    }
}

/// A host reached over one of ferry's SSH sessions; root through the target's sudo setting.
#[derive(Clone)]
pub struct SshHost {
    session: Arc<Session>,
    name: String,
    store: String,
}

impl SshHost {
    /// Wraps a session.
    pub fn new(session: Arc<Session>) -> Self {
        let name = session.host().to_string();
        Self {
            session,
            name,
            store: ferry_inventory::relay::HOST_STORE.to_string(),
        }
    }

    /// Looks for relayed copies in `store` rather than [`ferry_inventory::relay::HOST_STORE`]
    /// (a test's hosts, which share one file system).
    pub fn with_store(mut self, store: &str) -> Self {
        self.store = store.to_string();
        self
    }

    /// The session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

#[async_trait]
impl Host for SshHost {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, script: &str) -> Result<CmdOutput, HostError> {
        let out = self
            .session
            .exec(&format!("sh -c {}", shell_quote(script)), true)
            .await?;
        Ok(CmdOutput {
            status: out.exit.status,
            described: out.exit.describe(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: out.exit.stderr_tail,
        })
    }

    async fn run_data(&self, script: &str, input: &[u8]) -> Result<DataOutput, HostError> {
        let mut child = self
            .session
            .spawn_unlogged(&format!("sh -c {}", shell_quote(script)), true)
            .await?;
        let write = child.write_stdin(input).await;
        child.close_stdin().await;
        let mut stdout = Vec::new();
        // One byte past the limit tells "exactly at the limit" from "more".
        let limit = DATA_OUTPUT_LIMIT as u64 + 1;
        let _ = tokio::io::AsyncReadExt::read_to_end(
            &mut tokio::io::AsyncReadExt::take(child.stdout(), limit),
            &mut stdout,
        )
        .await;
        let too_much = stdout.len() > DATA_OUTPUT_LIMIT;
        if too_much {
            child.abort().await;
            return Err(HostError::Failed {
                host: self.name.clone(),
                command: script.lines().next().unwrap_or_default().to_string(),
                status: "stopped".into(),
                stderr: format!("it printed more than {} MiB", DATA_OUTPUT_LIMIT >> 20),
            });
        }
        let exit = child.wait().await?;
        if let Err(e) = write {
            return Err(HostError::Failed {
                host: self.name.clone(),
                command: script.lines().next().unwrap_or_default().to_string(),
                status: exit.describe(),
                stderr: format!("{} (writing its input: {e})", exit.stderr_tail),
            });
        }
        Ok(DataOutput {
            status: exit.status,
            described: exit.describe(),
            stdout,
            stderr: exit.stderr_tail,
        })
    }

    async fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<(), HostError> {
        let file = LocalFile::open(local).await?;
        let opts = UploadOptions {
            as_root: true,
            mode,
            // A blob the relay already brought to this host is copied there, not sent again.
            staged: Some(self.store.clone()),
        };
        let quiet = |_: TransferEvent| {};
        upload(&self.session, &file, remote, &opts, &quiet).await?;
        Ok(())
    }

    async fn upload_from(
        &self,
        source: &dyn UploadSource,
        remote: &str,
        mode: u32,
    ) -> Result<(), HostError> {
        let opts = UploadOptions {
            as_root: true,
            mode,
            // A blob the relay already brought to this host is copied there, not sent again.
            staged: Some(self.store.clone()),
        };
        let quiet = |_: TransferEvent| {};
        upload(&self.session, source, remote, &opts, &quiet).await?;
        Ok(())
    }

    async fn run_piped(
        &self,
        script: &str,
        input: Box<dyn std::io::Read + Send>,
    ) -> Result<CmdOutput, HostError> {
        let local = |e: std::io::Error| HostError::Local {
            what: format!("reading what to send to `{}`", first_line(script)),
            source: e,
        };
        let mut child = self
            .session
            .spawn_unlogged(&format!("sh -c {}", shell_quote(script)), true)
            .await?;
        let mut chunks = read_ahead(input);
        let mut fed = Ok(());
        while let Some(chunk) = chunks.recv().await {
            match chunk {
                Ok(buf) => {
                    if let Err(e) = child.write_stdin(&buf).await {
                        fed = Err(format!("writing its input: {e}"));
                        break;
                    }
                }
                Err(e) => {
                    child.abort().await;
                    return Err(local(e));
                }
            }
        }
        drop(chunks);
        child.close_stdin().await;
        let mut stdout = Vec::new();
        let limit = DATA_OUTPUT_LIMIT as u64;
        let _ = tokio::io::AsyncReadExt::read_to_end(
            &mut tokio::io::AsyncReadExt::take(child.stdout(), limit),
            &mut stdout,
        )
        .await;
        let exit = child.wait().await?;
        let mut stderr = exit.stderr_tail.clone();
        if let Err(e) = fed {
            stderr = format!("{stderr} ({e})");
        }
        Ok(CmdOutput {
            status: exit.status,
            described: exit.describe(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
        })
    }

    async fn unpack_staged(&self, sha256: &str, remote_dir: &str) -> Result<bool, HostError> {
        let st = shell_quote(&format!("{}/{sha256}", self.store.trim_end_matches('/')));
        let d = shell_quote(remote_dir);
        // 3: no copy; 4: a copy with other bytes (removed, so no later step trusts it).
        let script = format!(
            "{HASH_FN}[ -f {st} ] || exit 3; [ \"$(h < {st})\" = {sha} ] || {{ rm -f {st}; exit 4; }}; \
             mkdir -p {d} && tar -x --no-same-owner -C {d} -f {st}",
            sha = shell_quote(sha256)
        );
        let out = self.run(&script).await?;
        match out.status {
            Some(0) => Ok(true),
            Some(3) | Some(4) => Ok(false),
            _ => Err(HostError::Failed {
                host: self.name.clone(),
                command: format!("unpacking the relayed copy into {remote_dir}"),
                status: out.described,
                stderr: out.stderr,
            }),
        }
    }

    async fn send_tree(&self, local_dir: &Path, remote_dir: &str) -> Result<(), HostError> {
        // The tar crate packs the tree here, in a blocking task, and its bytes stream into
        // `tar -x` on the host: one channel, no temporary archive on either side, and nothing
        // asked of the jump host's own tar (a minimal or non-GNU one packed differently, or
        // was missing). At most PACK_CHUNKS chunks are in flight, so memory stays bounded.
        let local = |e: std::io::Error| HostError::Local {
            what: format!("packing {}", local_dir.display()),
            source: e,
        };
        let d = shell_quote(remote_dir);
        let script = format!("mkdir -p {d} && tar -x --no-same-owner -C {d} -f -");
        let mut child = self
            .session
            .spawn(&format!("sh -c {}", shell_quote(&script)), true)
            .await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(PACK_CHUNKS);
        let dir = local_dir.to_path_buf();
        let packer = tokio::task::spawn_blocking(move || {
            let out = std::io::BufWriter::with_capacity(PACK_CHUNK, ChunkWriter(tx));
            crate::tree::pack_tree(&dir, out)
        });
        let copied = match child.stdin() {
            Some(stdin) => {
                async {
                    while let Some(chunk) = rx.recv().await {
                        stdin.write_all(&chunk).await?;
                    }
                    stdin.flush().await
                }
                .await
            }
            None => Err(std::io::Error::other("the remote tar has no input stream")),
        };
        // A packer still sending learns that nobody reads any more, and stops.
        drop(rx);
        child.close_stdin().await;
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(child.stdout(), &mut sink).await;
        let exit = child.wait().await?;
        let packed = packer
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        // A local failure (an unreadable file) comes first: the host's tar then only saw the
        // archive end early.
        if let (Err(e), Ok(())) = (&packed, &copied) {
            return Err(local(std::io::Error::new(e.kind(), e.to_string())));
        }
        if !exit.success() || copied.is_err() {
            return Err(HostError::Failed {
                host: self.name.clone(),
                command: format!("unpacking into {remote_dir}"),
                status: exit.describe(),
                stderr: match copied {
                    Err(e) => format!("{} ({e})", exit.stderr_tail),
                    Ok(()) => exit.stderr_tail,
                },
            });
        }
        packed.map_err(local)
    }
}

/// Chunks of the packed tree in flight to the host at once (each up to [`PACK_CHUNK`] bytes).
const PACK_CHUNKS: usize = 8;
/// Bytes per chunk of the packed tree.
const PACK_CHUNK: usize = 256 * 1024;

/// The packer's end of the stream to the host: each write is one chunk on the channel.
struct ChunkWriter(tokio::sync::mpsc::Sender<Vec<u8>>);

impl std::io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(buf.to_vec()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the host stopped reading the tree",
            )
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What [`observe_at_once`] found: files by path, command outputs by script.
type ReadAhead = (
    std::collections::BTreeMap<String, FileState>,
    std::collections::BTreeMap<String, CmdOutput>,
);

/// The shell for one probe of [`observe_at_once`]: `\nMARKER ran STATUS OUT ERR`, then OUT bytes
/// of stdout and ERR bytes of stderr, then `\nMARKER end`. The script runs as [`Host::run`]
/// runs it (`sh -c`, stdin empty); its output is counted in a private directory of its own
/// (`mktemp -d`, 0700: no name in /tmp another user could place a link at), removed after.
fn probe_script(script: &str, marker: &str) -> String {
    format!(
        "m={marker}; t=$(mktemp -d) && {{ sh -c {q} >\"$t/o\" 2>\"$t/e\" </dev/null; s=$?; \
         printf '\\n%s ran %s %s %s\\n' \"$m\" \"$s\" $(wc -c <\"$t/o\") $(wc -c <\"$t/e\") && \
         cat \"$t/o\" \"$t/e\" && printf '\\n%s end\\n' \"$m\"; rm -rf \"$t\"; }}",
        q = shell_quote(script)
    )
}

/// Reads [`probe_script`]'s output.
fn parse_probe(out: &[u8], marker: &str) -> Option<CmdOutput> {
    let head = format!("\n{marker} ran ");
    let at = find(out, head.as_bytes())? + head.len();
    let rest = &out[at..];
    let eol = find(rest, b"\n")?;
    let words: Vec<usize> = std::str::from_utf8(&rest[..eol])
        .ok()?
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let [status, n_out, n_err] = words[..] else {
        return None;
    };
    let body = &rest[eol + 1..];
    let end = format!("\n{marker} end\n");
    if !body.get(n_out + n_err..)?.starts_with(end.as_bytes()) {
        return None;
    }
    let status = u32::try_from(status).ok()?;
    let stderr = String::from_utf8_lossy(&body[n_out..n_out + n_err]);
    // As a session keeps it: the end of stderr.
    let tail = stderr.len().saturating_sub(4096);
    let tail = (tail..=stderr.len())
        .find(|i| stderr.is_char_boundary(*i))
        .unwrap_or(0);
    Some(CmdOutput {
        status: Some(status),
        described: format!("exit {status}"),
        stdout: String::from_utf8_lossy(&body[..n_out]).into_owned(),
        stderr: stderr[tail..].to_string(),
    })
}

/// Reads `paths` and runs the read-only `probes` in one session command: each file framed as
/// [`Host::read_file`] frames it, each probe's output as [`Host::run`] returns it. These are
/// what resources are about to observe ([`crate::Resource::reads`],
/// [`crate::Resource::probes`]), fetched at once instead of one command (one sudo, one shell)
/// each. A file that changed size while read, or anything whose frame is missing, is left
/// out: [`Prefetched`] asks the host alone then, with the retries and the errors that gives.
pub async fn observe_at_once(
    host: &dyn Host,
    paths: &[String],
    probes: &[String],
) -> Result<ReadAhead, HostError> {
    let files: Vec<(&String, String)> = paths.iter().map(|p| (p, frame_marker())).collect();
    let runs: Vec<(&String, String)> = probes.iter().map(|p| (p, frame_marker())).collect();
    let script: Vec<String> = files
        .iter()
        .map(|(p, m)| read_file_script(p, m))
        .chain(runs.iter().map(|(p, m)| probe_script(p, m)))
        .collect();
    let out = host.run_data(&script.join("\n"), b"").await?;
    if !out.success() {
        return Err(HostError::Failed {
            host: host.name().to_string(),
            command: "reading the files and probes the resources observe".into(),
            status: out.described,
            stderr: out.stderr,
        });
    }
    Ok((
        files
            .into_iter()
            .filter_map(|(p, m)| Some((p.clone(), parse_framed(&out.stdout, &m).ok()?)))
            .collect(),
        runs.into_iter()
            .filter_map(|(p, m)| Some((p.clone(), parse_probe(&out.stdout, &m)?)))
            .collect(),
    ))
}

/// A host whose [`Host::read_file`] and [`Host::run`] answer from files read and probes run
/// beforehand in one command ([`observe_at_once`]); everything else, and any other file or
/// script, goes to the host itself. For observing, which only reads: a change made through
/// it would not update what it answers.
pub struct Prefetched<'a> {
    inner: &'a dyn Host,
    files: std::collections::BTreeMap<String, FileState>,
    probes: std::collections::BTreeMap<String, CmdOutput>,
}

impl<'a> Prefetched<'a> {
    /// Reads `paths` and runs `probes` (duplicates once) on `inner`, in one command when
    /// there are two or more. When that command fails, nothing is kept and everything goes
    /// to the host alone, as without it: a failure is then told by the call that meets it.
    pub async fn new(inner: &'a dyn Host, paths: &[String], probes: &[String]) -> Self {
        let once = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        let (paths, probe_scripts) = (once(paths), once(probes));
        let (files, probes) = if paths.len() + probe_scripts.len() > 1 {
            observe_at_once(inner, &paths, &probe_scripts)
                .await
                .unwrap_or_default()
        } else {
            Default::default()
        };
        Self {
            inner,
            files,
            probes,
        }
    }

    /// How many files and probes it answers for.
    pub fn len(&self) -> usize {
        self.files.len() + self.probes.len()
    }

    /// Whether it answers for none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Host for Prefetched<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn run(&self, script: &str) -> Result<CmdOutput, HostError> {
        match self.probes.get(script) {
            Some(out) => Ok(out.clone()),
            None => self.inner.run(script).await,
        }
    }
    async fn run_data(&self, script: &str, input: &[u8]) -> Result<DataOutput, HostError> {
        self.inner.run_data(script, input).await
    }
    async fn write_file(&self, path: &str, content: &[u8], mode: u32) -> Result<(), HostError> {
        self.inner.write_file(path, content, mode).await
    }
    async fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<(), HostError> {
        self.inner.upload(local, remote, mode).await
    }
    async fn send_tree(&self, local_dir: &Path, remote_dir: &str) -> Result<(), HostError> {
        self.inner.send_tree(local_dir, remote_dir).await
    }
    async fn unpack_staged(&self, sha256: &str, remote_dir: &str) -> Result<bool, HostError> {
        self.inner.unpack_staged(sha256, remote_dir).await
    }
    async fn upload_from(
        &self,
        source: &dyn UploadSource,
        remote: &str,
        mode: u32,
    ) -> Result<(), HostError> {
        self.inner.upload_from(source, remote, mode).await
    }
    async fn run_piped(
        &self,
        script: &str,
        input: Box<dyn std::io::Read + Send>,
    ) -> Result<CmdOutput, HostError> {
        self.inner.run_piped(script, input).await
    }
    async fn record_effect(&self, effect: &Effect) -> Result<(), HostError> {
        self.inner.record_effect(effect).await
    }
    fn recorded_effects(&self) -> Option<Vec<Effect>> {
        self.inner.recorded_effects()
    }
    fn report_kept(&self, kept: Kept) {
        self.inner.report_kept(kept)
    }
    async fn read_file(&self, path: &str) -> Result<FileState, HostError> {
        match self.files.get(path) {
            Some(state) => Ok(state.clone()),
            None => self.inner.read_file(path).await,
        }
    }
    async fn file_sha256(&self, path: &str) -> Result<Option<String>, HostError> {
        self.inner.file_sha256(path).await
    }
    async fn missing_dirs(&self, dir: &str) -> Result<Vec<String>, HostError> {
        self.inner.missing_dirs(dir).await
    }
}
