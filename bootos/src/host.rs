//! How a resource reaches its host: run a shell script as root, read and write whole files
//! atomically, send a local file or directory. Resources only see this trait, never SSH, so
//! the same resource code runs over ferry's sessions and, later, over a relay or the appliance.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_inventory::ssh::{shell_quote, Session, SshError};
use ferry_inventory::transfer::{upload, LocalFile, TransferError, TransferEvent, UploadOptions};
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

/// A file as found on a host: its content and mode, or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FileState {
    /// The content, when the file exists (text: resources only manage configuration files).
    pub content: Option<String>,
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
    pub fn present(content: impl Into<String>, mode: u32) -> Self {
        Self {
            content: Some(content.into()),
            mode: Some(mode),
            missing_dirs: Vec::new(),
        }
    }

    /// Whether it exists.
    pub fn exists(&self) -> bool {
        self.content.is_some()
    }
}

/// Shell that prints the directory `dir` (a shell word) and its parents while they do not
/// exist, one per line, innermost first.
fn list_missing_dirs(dir: &str) -> String {
    format!("d={dir}; while [ ! -d \"$d\" ]; do echo \"$d\"; d=$(dirname \"$d\"); done")
}

/// A host that resources act on. Every command runs as root.
#[async_trait]
pub trait Host: Send + Sync {
    /// The inventory name (for messages).
    fn name(&self) -> &str;

    /// Runs `script` with `sh -c` as root and returns how it ended; a non-zero exit is not an
    /// error here.
    async fn run(&self, script: &str) -> Result<CmdOutput, HostError>;

    /// Writes `content` to `path` atomically (temporary file beside it, then rename), with
    /// `mode`, creating missing parent directories (mode 0755). Content never reaches a log.
    async fn write_file(&self, path: &str, content: &[u8], mode: u32) -> Result<(), HostError>;

    /// Sends a local file to `remote` (resumable, skipped when the same content is there).
    async fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<(), HostError>;

    /// Sends a local directory tree into `remote_dir` (created; existing files overwritten).
    async fn send_tree(&self, local_dir: &Path, remote_dir: &str) -> Result<(), HostError>;

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

    /// Reads a text file: its content and mode, or [`FileState::absent`].
    async fn read_file(&self, path: &str) -> Result<FileState, HostError> {
        let p = shell_quote(path);
        // The mode comes first on its own line, then the content verbatim. An absent file is
        // followed by its absent parent directories, one per line, innermost first.
        let out = self
            .run_ok(&format!(
                "if [ -f {p} ]; then stat -c %a {p} && cat {p}; else echo absent; {}; fi",
                list_missing_dirs(&format!("$(dirname {p})"))
            ))
            .await?;
        let (first, rest) = out.split_once('\n').unwrap_or((out.as_str(), ""));
        if first == "absent" {
            return Ok(FileState {
                missing_dirs: rest.lines().map(str::to_string).collect(),
                ..FileState::absent()
            });
        }
        Ok(FileState {
            content: Some(rest.to_string()),
            mode: u32::from_str_radix(first.trim(), 8).ok(),
            missing_dirs: Vec::new(),
        })
    }

    /// Puts a file back the way [`Host::read_file`] found it (removed when it was absent).
    async fn restore_file(&self, path: &str, state: &FileState) -> Result<(), HostError> {
        match &state.content {
            Some(c) => {
                self.write_file(path, c.as_bytes(), state.mode.unwrap_or(0o644))
                    .await
            }
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
}

impl SshHost {
    /// Wraps a session.
    pub fn new(session: Arc<Session>) -> Self {
        let name = session.host().to_string();
        Self { session, name }
    }

    /// The session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    async fn run_with_stdin(&self, script: &str, stdin: &[u8]) -> Result<CmdOutput, HostError> {
        let mut child = self
            .session
            .spawn(&format!("sh -c {}", shell_quote(script)), true)
            .await?;
        let write = child.write_stdin(stdin).await;
        child.close_stdin().await;
        let mut stdout = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(child.stdout(), &mut stdout).await;
        let exit = child.wait().await?;
        if let Err(e) = write {
            return Err(HostError::Failed {
                host: self.name.clone(),
                command: script.lines().next().unwrap_or_default().to_string(),
                status: exit.describe(),
                stderr: format!("{} (writing its input: {e})", exit.stderr_tail),
            });
        }
        Ok(CmdOutput {
            status: exit.status,
            described: exit.describe(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: exit.stderr_tail,
        })
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

    async fn write_file(&self, path: &str, content: &[u8], mode: u32) -> Result<(), HostError> {
        let p = shell_quote(path);
        let tmp = shell_quote(&format!("{path}.ferry-tmp"));
        let script = format!(
            "(umask 022 && mkdir -p \"$(dirname {p})\") && umask 077 && cat > {tmp} \
             && chmod {mode:o} {tmp} && mv -f {tmp} {p}"
        );
        let out = self.run_with_stdin(&script, content).await?;
        if out.success() {
            return Ok(());
        }
        let _ = self.run(&format!("rm -f {tmp}")).await;
        Err(HostError::Failed {
            host: self.name.clone(),
            command: format!("writing {path}"),
            status: out.described,
            stderr: out.stderr,
        })
    }

    async fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<(), HostError> {
        let file = LocalFile::open(local).await?;
        let opts = UploadOptions {
            as_root: true,
            mode,
        };
        let quiet = |_: TransferEvent| {};
        upload(&self.session, &file, remote, &opts, &quiet).await?;
        Ok(())
    }

    async fn send_tree(&self, local_dir: &Path, remote_dir: &str) -> Result<(), HostError> {
        // `tar` on the jump host streams the tree into `tar -x` on the host: one channel, no
        // temporary archive on either side.
        let local = |e: std::io::Error| HostError::Local {
            what: format!("packing {}", local_dir.display()),
            source: e,
        };
        let mut tar = tokio::process::Command::new("tar")
            .arg("-C")
            .arg(local_dir)
            .args(["-cf", "-", "."])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(local)?;
        let d = shell_quote(remote_dir);
        let script = format!("mkdir -p {d} && tar -x --no-same-owner -C {d} -f -");
        let mut child = self
            .session
            .spawn(&format!("sh -c {}", shell_quote(&script)), true)
            .await?;
        let mut out = tar
            .stdout
            .take()
            .ok_or_else(|| local(std::io::Error::other("tar gave no output stream")))?;
        let copied = match child.stdin() {
            Some(stdin) => tokio::io::copy(&mut out, stdin).await.map(|_| ()),
            None => Err(std::io::Error::other("the remote tar has no input stream")),
        };
        if let Some(stdin) = child.stdin() {
            let _ = stdin.flush().await;
        }
        child.close_stdin().await;
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(child.stdout(), &mut sink).await;
        let exit = child.wait().await?;
        let status = tar.wait().await.map_err(local)?;
        if !status.success() {
            return Err(local(std::io::Error::other(format!(
                "tar exited with {status}"
            ))));
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
        Ok(())
    }
}
