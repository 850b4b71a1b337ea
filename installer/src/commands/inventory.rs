//! Runs `ferry inventory` subcommands: `check` and `facts` reach every host of an inventory at
//! once (bounded), each host failing on its own without stopping the others.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ferry_inventory::facts::Facts;
use ferry_inventory::remote::{self, AgentBinary, FactsSource};
use ferry_inventory::ssh::{KnownHosts, Pool, SessionOptions};
use ferry_inventory::{Inventory, PromptRequest, Secret, SecretSource, Sudo, Target};
use serde::Serialize;

use crate::cmdline::inventory::{CheckArgs, FactsArgs, InventoryCmd, ReachArgs};

/// Runs one `ferry inventory` subcommand.
pub fn run(cmd: InventoryCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        InventoryCmd::ImportAnsible(args) => super::ansible::import(args),
        InventoryCmd::Check(args) => runtime()?.block_on(check(args)),
        InventoryCmd::Facts(args) => runtime()?.block_on(facts(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

/// Secrets from the environment, else asked on the terminal (never echoed).
struct EnvOrTty;

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

struct Reach {
    pool: Arc<Pool>,
    targets: Vec<Target>,
    agent: Option<Arc<AgentBinary>>,
    run_dir: PathBuf,
}

async fn reach(args: &ReachArgs, command: &str) -> anyhow::Result<Reach> {
    let inv = Inventory::load(&args.inventory)
        .with_context(|| format!("reading inventory {}", args.inventory.display()))?;
    let targets = inv
        .targets(&EnvOrTty)
        .with_context(|| format!("resolving the hosts of {}", args.inventory.display()))?;
    let known_hosts = match &args.known_hosts {
        Some(p) => p.clone(),
        None => KnownHosts::default_path()?,
    };
    let run_dir = match &args.run_dir {
        Some(d) => d.clone(),
        None => {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            known_hosts
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default()
                .join("runs")
                .join(format!("{command}-{secs}"))
        }
    };
    let mut opts = SessionOptions::new(known_hosts);
    opts.connect_timeout = Duration::from_secs(args.timeout.max(1));
    opts.attempts = args.attempts.max(1);
    opts.run_dir = Some(run_dir.clone());
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
        pool: Arc::new(Pool::with_limit(opts, args.parallel)),
        targets,
        agent,
        run_dir,
    })
}

/// One host's check result.
#[derive(Debug, Serialize)]
struct HostReport {
    host: String,
    address: String,
    ok: bool,
    /// Why it failed (one line), when it did.
    reason: Option<String>,
    /// SSH connection and authentication worked.
    reachable: bool,
    /// `true`/`false` when sudo is configured, `null` otherwise.
    sudo: Option<bool>,
    /// Host clock minus ours, in seconds.
    clock_skew_seconds: Option<f64>,
    /// Where the facts came from: `agent` or `shell`.
    facts_source: Option<String>,
    /// Why the agent was not used, if it was asked for and could not run.
    agent_note: Option<String>,
    facts: Option<Facts>,
    seconds: f64,
}

async fn check_host(
    pool: Arc<Pool>,
    t: Target,
    agent: Option<Arc<AgentBinary>>,
    max_skew: f64,
) -> HostReport {
    let start = Instant::now();
    let _permit = pool.permit().await;
    let mut r = HostReport {
        host: t.name.clone(),
        address: format!("{}:{}", t.address, t.port),
        ok: false,
        reason: None,
        reachable: false,
        sudo: None,
        clock_skew_seconds: None,
        facts_source: None,
        agent_note: None,
        facts: None,
        seconds: 0.0,
    };
    let outcome: Result<(), String> = async {
        let s = pool.session(&t).await.map_err(|e| e.to_string())?;
        r.reachable = true;
        let as_root = !matches!(t.sudo, Sudo::None);
        if as_root {
            let who = s.exec_ok("id -u", true).await;
            r.sudo = Some(matches!(&who, Ok(u) if is_root_uid(u)));
            let who = who.map_err(|e| e.to_string())?;
            if !is_root_uid(&who) {
                return Err(format!(
                    "{}: sudo did not make us root (id -u: {})",
                    t.name,
                    who.trim()
                ));
            }
        }
        let skew = remote::clock_skew(&s).await.map_err(|e| e.to_string())?;
        r.clock_skew_seconds = Some((skew * 1000.0).round() / 1000.0);
        let (facts, source) = remote::gather_facts(&s, agent.as_deref(), as_root)
            .await
            .map_err(|e| e.to_string())?;
        match source {
            FactsSource::Agent => r.facts_source = Some("agent".into()),
            FactsSource::Shell(why) => {
                r.facts_source = Some("shell".into());
                if agent.is_some() {
                    r.agent_note = Some(why);
                }
            }
        }
        r.facts = Some(facts);
        if skew.abs() > max_skew {
            return Err(format!(
                "{}: clock is {:.1}s {} this machine (limit {max_skew}s); fix time sync first",
                t.name,
                skew.abs(),
                if skew > 0.0 { "ahead of" } else { "behind" }
            ));
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => r.ok = true,
        Err(e) => r.reason = Some(e.lines().next().unwrap_or_default().to_string()),
    }
    r.seconds = (start.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    r
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let reach = reach(&args.reach, "check").await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in reach.targets.clone() {
        let (pool, agent) = (reach.pool.clone(), reach.agent.clone());
        let json = args.json;
        let max_skew = args.max_skew;
        tasks.push(tokio::spawn(async move {
            let r = check_host(pool, t, agent, max_skew).await;
            if !json {
                eprintln!(
                    "{:<6} {} ({:.1}s)",
                    if r.ok { "ok" } else { "FAILED" },
                    r.host,
                    r.seconds
                );
            }
            r
        }));
    }
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.context("a host check crashed")?);
    }
    reach.pool.close_all().await;
    let all_ok = reports.iter().all(|r| r.ok);
    if args.json {
        let doc = serde_json::json!({
            "ok": all_ok,
            "seconds": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            "run_dir": reach.run_dir,
            "hosts": reports,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_table(&reports);
        let failed: Vec<_> = reports.iter().filter(|r| !r.ok).collect();
        for r in &failed {
            println!(
                "FAILED {}: {}",
                r.host,
                r.reason.as_deref().unwrap_or("unknown")
            );
        }
        println!(
            "{} of {} hosts passed in {:.1}s; logs in {}",
            reports.len() - failed.len(),
            reports.len(),
            started.elapsed().as_secs_f64(),
            reach.run_dir.display()
        );
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_table(reports: &[HostReport]) {
    let gib = |b: u64| format!("{:.1}G", b as f64 / (1u64 << 30) as f64);
    let rows: Vec<[String; 9]> = reports
        .iter()
        .map(|r| {
            let f = r.facts.as_ref();
            [
                r.host.clone(),
                r.address.clone(),
                if r.reachable { "ok" } else { "FAIL" }.into(),
                match r.sudo {
                    None => "-".into(),
                    Some(true) => "ok".into(),
                    Some(false) => "FAIL".into(),
                },
                r.clock_skew_seconds
                    .map(|s| format!("{s:+.2}s"))
                    .unwrap_or_else(|| "-".into()),
                f.map(|f| {
                    if f.os.pretty_name.is_empty() {
                        format!("{} {}", f.os.id, f.os.version_id)
                    } else {
                        f.os.pretty_name.clone()
                    }
                })
                .unwrap_or_else(|| "-".into()),
                f.map(|f| f.kernel.clone()).unwrap_or_else(|| "-".into()),
                f.map(|f| f.cpu.logical.to_string())
                    .unwrap_or_else(|| "-".into()),
                f.map(|f| gib(f.memory.total_bytes))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = [
        "HOST", "ADDRESS", "SSH", "SUDO", "SKEW", "OS", "KERNEL", "CPUS", "MEMORY",
    ];
    let mut width = header.map(str::len);
    for row in &rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// One host's facts, or why there are none.
#[derive(Debug, Serialize)]
struct HostFacts {
    host: String,
    facts: Option<Facts>,
    source: Option<String>,
    error: Option<String>,
}

async fn facts(args: FactsArgs) -> anyhow::Result<ExitCode> {
    let reach = reach(&args.reach, "facts").await?;
    let mut tasks = Vec::new();
    for t in reach.targets.clone() {
        let (pool, agent) = (reach.pool.clone(), reach.agent.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = pool.permit().await;
            let got = async {
                let s = pool.session(&t).await.map_err(|e| e.to_string())?;
                let as_root = !matches!(t.sudo, Sudo::None);
                remote::gather_facts(&s, agent.as_deref(), as_root)
                    .await
                    .map_err(|e| e.to_string())
            }
            .await;
            match got {
                Ok((facts, source)) => HostFacts {
                    host: t.name.clone(),
                    facts: Some(facts),
                    source: Some(match source {
                        FactsSource::Agent => "agent".into(),
                        FactsSource::Shell(_) => "shell".into(),
                    }),
                    error: None,
                },
                Err(e) => HostFacts {
                    host: t.name.clone(),
                    facts: None,
                    source: None,
                    error: Some(e),
                },
            }
        }));
    }
    let mut hosts = Vec::new();
    for task in tasks {
        hosts.push(task.await.context("a host's facts task crashed")?);
    }
    reach.pool.close_all().await;
    let all_ok = hosts.iter().all(|h| h.error.is_none());
    let doc = serde_json::json!({ "ok": all_ok, "hosts": hosts });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Whether `id -u` printed uid 0. A login shell may print a banner first, so the answer is the
/// last non-empty line, and it must be exactly `0` (uid 10, 100 or 1000 also end in a zero).
fn is_root_uid(id_u_output: &str) -> bool {
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
