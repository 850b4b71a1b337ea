//! Reaching an inventory's hosts: SSH options, the session pool, the agent binary and where
//! per-host logs go. Shared by `ferry inventory` and the host commands (plan, apply, rollback).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ferry_inventory::remote::AgentBinary;
use ferry_inventory::ssh::{HostKeyPolicy, KeyNotice, KnownHosts, Pool, SessionOptions};
use ferry_inventory::{Inventory, InventoryError, PromptRequest, Secret, SecretSource, Target};

use super::progress::Printer;
use crate::cmdline::ReachArgs;

/// Secrets from the environment, else asked on the terminal (never echoed).
pub struct EnvOrTty;

impl SecretSource for EnvOrTty {
    fn env(&self, var: &str) -> Option<Secret> {
        std::env::var(var).ok().map(Secret::new)
    }

    fn prompt(&self, request: &PromptRequest) -> Result<Secret, String> {
        let tty = || -> std::io::Result<String> {
            let mut out = std::fs::OpenOptions::new().write(true).open("/dev/tty")?;
            let input = std::fs::File::open("/dev/tty")?;
            let stty = |arg: &str| {
                std::process::Command::new("stty")
                    .arg(arg)
                    .stdin(std::fs::File::open("/dev/tty")?)
                    .status()
            };
            write!(out, "{}: ", request.text())?;
            out.flush()?;
            stty("-echo")?;
            let mut line = String::new();
            let read = std::io::BufReader::new(input).read_line(&mut line);
            let _ = stty("echo");
            writeln!(out)?;
            read?;
            Ok(line.trim_end_matches(['\r', '\n']).to_string())
        };
        tty().map(Secret::new).map_err(|e| {
            format!(
                "cannot ask for the {} on a terminal ({e}); set it in the environment variable the \
                 inventory names",
                request.kind.describe()
            )
        })
    }
}

/// The hosts of an inventory, ready to be reached.
pub struct Reach {
    /// Sessions, bounded by `--parallel`.
    pub pool: Arc<Pool>,
    /// Every host, in inventory order.
    pub targets: Vec<Target>,
    /// The agent binary, when `--agent` was given.
    pub agent: Option<Arc<AgentBinary>>,
    /// Where per-host logs go.
    pub run_dir: PathBuf,
    /// Prints host keys trusted on first contact (summarized for many hosts), when [`reach`]
    /// made the notice; [`Reach::finish`] shows the last count.
    keys: Option<Printer>,
}

impl Reach {
    /// Shows what is left to show of the host keys trusted on first contact (for many hosts,
    /// their count); call once the command's sessions are done.
    pub fn finish(&self) {
        if let Some(p) = &self.keys {
            p.finish();
        }
    }
}

/// ferry's known_hosts: `--known-hosts` or `~/.ferry/known_hosts`.
pub fn known_hosts(args: &ReachArgs) -> anyhow::Result<PathBuf> {
    Ok(match &args.known_hosts {
        Some(p) => p.clone(),
        None => KnownHosts::default_path()?,
    })
}

/// `~/.ferry`, or the directory holding `--known-hosts` when one is given.
pub fn ferry_home(args: &ReachArgs) -> anyhow::Result<PathBuf> {
    Ok(known_hosts(args)?
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default())
}

/// `<command>-<seconds>` inside `--run-dir` or `~/.ferry/runs`, for one-off commands: a
/// directory of ferry's own (made 0700), never the folder given, whose mode ferry must not
/// change (`--run-dir /tmp`).
pub fn one_off_run_dir(args: &ReachArgs, command: &str) -> anyhow::Result<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let root = match &args.run_dir {
        Some(d) => d.clone(),
        None => ferry_home(args)?.join("runs"),
    };
    Ok(root.join(format!("{command}-{secs}")))
}

/// The SSH options `args` ask for; per-host logs go to `run_dir` when given. New host keys are
/// announced on stderr (or refused, with `--strict-host-keys`).
pub fn session_options(
    args: &ReachArgs,
    run_dir: Option<PathBuf>,
) -> anyhow::Result<SessionOptions> {
    let mut opts = SessionOptions::new(known_hosts(args)?);
    opts.connect_timeout = Duration::from_secs(args.timeout.max(1));
    opts.command_timeout = Duration::from_secs(args.command_timeout.max(1));
    opts.attempts = args.attempts.max(1);
    opts.run_dir = run_dir;
    opts.host_keys = if args.strict_host_keys {
        HostKeyPolicy::Strict
    } else {
        HostKeyPolicy::AcceptNew
    };
    Ok(opts)
}

/// Loads an inventory, naming the file in the error.
pub fn load_inventory(path: &Path) -> anyhow::Result<Inventory> {
    Inventory::load(path).map_err(|e| match e {
        // Already "reading inventory PATH: cause".
        InventoryError::Read { .. } => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(format!("reading inventory {}", path.display())),
    })
}

/// Resolves every host of `inv` (read from `origin`) and sets up the session pool; per-host
/// logs go to `run_dir`.
pub async fn reach(
    args: &ReachArgs,
    inv: &Inventory,
    origin: &Path,
    run_dir: PathBuf,
) -> anyhow::Result<Reach> {
    // For a few hosts a line per new host key; for many, the first and then their count, as
    // in `ferry apply`.
    let printer = Printer::new(inv.hosts().len(), true);
    let mut reach = reach_with(args, inv, origin, run_dir, &EnvOrTty, printer.key_notice()).await?;
    reach.keys = Some(printer);
    Ok(reach)
}

/// [`reach`] for a front end that asks for secrets its own way and shows newly trusted host
/// keys itself (the wizard: nothing may write on its terminal).
pub async fn reach_with(
    args: &ReachArgs,
    inv: &Inventory,
    origin: &Path,
    run_dir: PathBuf,
    secrets: &(dyn SecretSource + Sync),
    notice: KeyNotice,
) -> anyhow::Result<Reach> {
    let targets = inv
        .targets(secrets)
        .with_context(|| format!("resolving the hosts of {}", origin.display()))?;
    let mut opts = session_options(args, Some(run_dir.clone()))?;
    opts.on_new_host_key = notice;
    let agent = match &args.agent {
        None => None,
        Some(p) if p.as_os_str() == "self" => Some(Arc::new(
            AgentBinary::current()
                .await
                .context("reading ferry's own binary")?,
        )),
        Some(p) => {
            Some(Arc::new(AgentBinary::at(p.clone()).await.with_context(
                || format!("reading agent binary {}", p.display()),
            )?))
        }
    };
    Ok(Reach {
        pool: Arc::new(Pool::with_limit(opts, args.parallel.max(1))),
        targets,
        agent,
        run_dir,
        keys: None,
    })
}

/// Whether `id -u` printed uid 0. A login shell may print a banner first, so the answer is the
/// last non-empty line, and it must be exactly `0` (uid 10, 100 or 1000 also end in a zero).
pub fn is_root_uid(id_u_output: &str) -> bool {
    id_u_output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        == Some("0")
}

#[cfg(test)]
mod tests {
    use super::is_root_uid;

    #[test]
    fn only_uid_zero_counts_as_root() {
        assert!(is_root_uid("0\n"));
        assert!(is_root_uid("Welcome to site A\n0\n\n"));
        for not_root in ["10", "100", "1000\n", "", "0\n1000", "Welcome 0\n1000"] {
            assert!(!is_root_uid(not_root), "{not_root:?} taken for root");
        }
    }
}
