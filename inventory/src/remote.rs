//! ferry's own binary as a short-lived agent on a host: uploaded (content-addressed, skipped
//! when already there) under the login's home, started over an exec channel (through sudo when
//! asked), its stdin/stdout handed to the agent protocol, removed at the end. When it cannot
//! start (a C library too old, a noexec home), the reason is said plainly and facts come from
//! the POSIX shell fallback instead.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::agent::{AgentError, Client};
use crate::facts::{parse_shell_output, shell_script, Facts};
use crate::ssh::{shell_quote, RemoteChild, Session, SshError};
use crate::transfer::{upload, LocalFile, TransferError, TransferEvent, UploadOptions};

/// Agent errors.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// SSH failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// Uploading the binary failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The binary is on the host but cannot run there.
    #[error("{host}: the ferry agent cannot run there: {reason}")]
    AgentUnavailable {
        /// Host name.
        host: String,
        /// Why, in plain words.
        reason: String,
    },
    /// The local binary could not be found.
    #[error("finding ferry's own binary to push as the agent: {0}")]
    NoBinary(std::io::Error),
}

/// The binary pushed as the agent.
#[derive(Debug, Clone)]
pub struct AgentBinary {
    file: LocalFile,
}

impl AgentBinary {
    /// The running executable (`ferry` itself).
    pub async fn current() -> Result<Self, RemoteError> {
        let exe = std::env::current_exe().map_err(RemoteError::NoBinary)?;
        Self::at(exe).await
    }

    /// A given binary (e.g. one built for an older glibc).
    pub async fn at(path: impl Into<PathBuf>) -> Result<Self, RemoteError> {
        Ok(Self {
            file: LocalFile::open(path).await?,
        })
    }

    /// The file and its digest.
    pub fn file(&self) -> &LocalFile {
        &self.file
    }

    /// Where it goes on a host, relative to the login's home: a directory only that user can
    /// write (a shared /tmp would let another local user swap the binary before root runs it),
    /// named by the binary's digest.
    pub fn remote_dir(&self) -> String {
        format!(
            ".ferry/agent/{}",
            &self.file.sha256[..16.min(self.file.sha256.len())]
        )
    }

    /// The binary's path on a host.
    pub fn remote_path(&self) -> String {
        format!("{}/ferry", self.remote_dir())
    }
}

/// Uploads the agent (skipped when present) and checks that it runs there.
pub async fn push_agent(session: &Session, bin: &AgentBinary) -> Result<String, RemoteError> {
    let path = bin.remote_path();
    let opts = UploadOptions {
        as_root: false,
        mode: 0o700,
        staged: None,
    };
    let quiet = |_: TransferEvent| {};
    upload(session, bin.file(), &path, &opts, &quiet).await?;
    let out = session
        .exec(&format!("./{} --version", shell_quote(&path)), false)
        .await?;
    if out.exit.success() {
        return Ok(path);
    }
    Err(RemoteError::AgentUnavailable {
        host: session.host().to_string(),
        reason: explain(out.exit.status, &out.exit.stderr_tail),
    })
}

/// Why a binary did not start, in plain words.
fn explain(status: Option<u32>, stderr: &str) -> String {
    let said = stderr.trim();
    if said.contains("GLIBC_") || said.contains("libc.so") {
        format!(
            "the host's C library is older than this ferry binary needs ({said}); \
             push a ferry built for older glibc (see docs) or use the shell fallback"
        )
    } else if status == Some(126) || said.contains("Permission denied") {
        format!("the home directory does not allow running programs (mounted noexec?): {said}")
    } else if said.contains("Exec format error") || said.contains("cannot execute binary") {
        format!("the binary is for another architecture: {said}")
    } else {
        format!("it exited with status {status:?}: {said}")
    }
}

/// A running agent.
#[derive(Debug)]
pub struct RemoteAgent {
    child: RemoteChild,
    dir: String,
}

impl RemoteAgent {
    /// The agent's process: its stdin/stdout carry the agent protocol.
    pub fn child(&mut self) -> &mut RemoteChild {
        &mut self.child
    }

    /// Ends the agent (closes its stdin; closes the channel if it does not exit within 10 s)
    /// and removes its binary from the host.
    pub async fn finish(self, session: &Session) -> Result<(), RemoteError> {
        let _ = self.child.wait_or_close(Duration::from_secs(10)).await;
        remove_agent_dir(session, &self.dir).await
    }
}

/// Pushes and starts `ferry agent` on the host, as root when `as_root`.
pub async fn start_agent(
    session: &Session,
    bin: &AgentBinary,
    as_root: bool,
) -> Result<RemoteAgent, RemoteError> {
    let path = push_agent(session, bin).await?;
    let child = session
        // The protocol carries file contents and facts: the host log gets byte counts only.
        .spawn_unlogged(&format!("exec ./{} agent", shell_quote(&path)), as_root)
        .await?;
    Ok(RemoteAgent {
        child,
        dir: bin.remote_dir(),
    })
}

/// Removes the agent's directory (and `.ferry/agent`, `.ferry` when empty).
pub async fn remove_agent_dir(session: &Session, dir: &str) -> Result<(), RemoteError> {
    session
        .exec_ok(
            &format!(
                "rm -rf {d} && rmdir .ferry/agent .ferry 2>/dev/null; true",
                d = shell_quote(dir)
            ),
            false,
        )
        .await?;
    Ok(())
}

/// Where facts came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactsSource {
    /// The agent gathered them.
    Agent,
    /// The shell fallback did, because the agent could not run (the reason).
    Shell(String),
}

/// Asks a running agent for facts over its stdin/stdout, then tells it to exit.
async fn agent_facts(child: &mut RemoteChild) -> Result<Facts, AgentError> {
    let (writer, reader) = child.take_streams().ok_or(AgentError::Closed)?;
    let mut client = Client::connect(reader, writer).await?;
    let facts = client.facts().await?;
    client.exit().await?;
    Ok(facts)
}

/// Gathers a host's facts with the POSIX shell fallback (one exec, nothing left on the host).
pub async fn shell_facts(session: &Session, as_root: bool) -> Result<Facts, RemoteError> {
    Ok(shell_facts_after(session, as_root, ":").await?.0)
}

/// [`shell_facts`] in the same command as `before`, a POSIX sh script run first with the same
/// rights: one login, sudo and shell on the host instead of two (at 500 hosts, the host's
/// side of every command is what a plan waits on). Returns the facts and what `before`
/// printed, whole lines, none starting with `@@ferry-` (the facts' sections).
pub async fn shell_facts_after(
    session: &Session,
    as_root: bool,
    before: &str,
) -> Result<(Facts, String), RemoteError> {
    let script = format!("{before}\n{}", shell_script());
    let out = session
        // Facts name machine-id, serial numbers and MACs: keep them out of the host log.
        .exec_ok_unlogged(&format!("sh -c {}", shell_quote(&script)), as_root)
        .await?;
    let facts_at = match out.starts_with("@@ferry-") {
        true => 0,
        false => out.find("\n@@ferry-").map_or(out.len(), |i| i + 1),
    };
    let (first, facts) = out.split_at(facts_at);
    Ok((parse_shell_output(facts), first.to_string()))
}

/// Gathers facts: through the agent when a binary is given and it runs there, through the shell
/// fallback otherwise (the reason is returned with the facts).
pub async fn gather_facts(
    session: &Session,
    agent: Option<&AgentBinary>,
    as_root: bool,
) -> Result<(Facts, FactsSource), RemoteError> {
    let reason = match agent {
        None => "no agent binary given".to_string(),
        Some(bin) => match start_agent(session, bin, as_root).await {
            Ok(mut running) => {
                let asked = agent_facts(running.child()).await;
                running.finish(session).await?;
                match asked {
                    Ok(facts) => return Ok((facts, FactsSource::Agent)),
                    Err(e) => format!("the agent started but failed: {e}"),
                }
            }
            Err(RemoteError::AgentUnavailable { reason, .. }) => {
                let _ = remove_agent_dir(session, &bin.remote_dir()).await;
                reason
            }
            Err(e) => return Err(e),
        },
    };
    tracing::warn!(host = %session.host(), "facts through the shell fallback: {reason}");
    Ok((
        shell_facts(session, as_root).await?,
        FactsSource::Shell(reason),
    ))
}

/// The host's clock minus ours, in seconds (positive: the host is ahead), measured against the
/// midpoint of the round trip.
pub async fn clock_skew(session: &Session) -> Result<f64, RemoteError> {
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let before = now();
    let out = session.exec_ok("date -u +ferry-clock:%s.%N", false).await?;
    let after = now();
    let remote = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("ferry-clock:"))
        .and_then(|v| {
            // busybox date has no %N: it prints it literally.
            v.trim_end_matches(".%N").trim().parse::<f64>().ok()
        })
        .ok_or_else(|| SshError::CommandFailed {
            host: session.host().to_string(),
            command: "date".into(),
            status: "exit 0".into(),
            stderr: format!("unexpected output {:?}", out.trim()),
        })?;
    Ok(remote - (before + after) / 2.0)
}
