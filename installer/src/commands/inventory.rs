//! Runs `ferry inventory` subcommands: `check` and `facts` reach every host of an inventory at
//! once (bounded), each host failing on its own without stopping the others; `trust` records
//! the host keys of hosts not yet known, one host at a time, jump hosts first.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use ferry_inventory::facts::Facts;
use ferry_inventory::remote::{self, AgentBinary, FactsSource};
use ferry_inventory::ssh::{Accepted, HostKeyPolicy, KnownHosts, Pool, Session};
use ferry_inventory::{Sudo, Target};
use serde::Serialize;

use super::reach::{
    is_root_uid, load_inventory, one_off_run_dir, reach, session_options, EnvOrTty, Reach,
};
use crate::cmdline::inventory::{CheckArgs, FactsArgs, InventoryCmd, TrustArgs};

/// Runs one `ferry inventory` subcommand.
pub fn run(cmd: InventoryCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        InventoryCmd::ImportAnsible(args) => super::ansible::import(args),
        InventoryCmd::Check(args) => runtime()?.block_on(check(args)),
        InventoryCmd::Facts(args) => runtime()?.block_on(facts(args)),
        InventoryCmd::Trust(args) => runtime()?.block_on(trust(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

/// One host's check result.
#[derive(Debug, Serialize)]
pub(crate) struct HostReport {
    pub(crate) host: String,
    pub(crate) address: String,
    pub(crate) ok: bool,
    /// Why it failed (one line), when it did.
    pub(crate) reason: Option<String>,
    /// SSH connection and authentication worked.
    pub(crate) reachable: bool,
    /// `true`/`false` when sudo is configured, `null` otherwise.
    pub(crate) sudo: Option<bool>,
    /// Host clock minus ours, in seconds.
    pub(crate) clock_skew_seconds: Option<f64>,
    /// Where the facts came from: `agent` or `shell`.
    pub(crate) facts_source: Option<String>,
    /// Why the agent was not used, if it was asked for and could not run.
    pub(crate) agent_note: Option<String>,
    pub(crate) facts: Option<Facts>,
    pub(crate) seconds: f64,
}

/// Reaches one host: SSH, sudo, clock skew, facts (`ferry inventory check`, the wizard's live
/// check).
pub(crate) async fn check_host(
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
        Err(e) => {
            // One line, and the host named once: the FAILED line puts its name first.
            let line = e.lines().next().unwrap_or_default();
            let line = line.strip_prefix(&format!("{}: ", t.name)).unwrap_or(line);
            r.reason = Some(line.to_string());
        }
    }
    r.seconds = (start.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    r
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory)?;
    let run_dir = one_off_run_dir(&args.reach, "check")?;
    // Created now, so the directory the summary names exists even when no host answered.
    create_run_dir(&run_dir)?;
    let reach: Reach = reach(&args.reach, &inv, &args.inventory, run_dir).await?;
    let started = Instant::now();
    if !args.json {
        eprintln!(
            "checking {} hosts ({} at once)...",
            reach.targets.len(),
            args.reach.parallel.max(1)
        );
    }
    let mut tasks = Vec::new();
    for t in reach.targets.clone() {
        let (pool, agent) = (reach.pool.clone(), reach.agent.clone());
        let max_skew = args.max_skew;
        tasks.push(tokio::spawn(async move {
            check_host(pool, t, agent, max_skew).await
        }));
    }
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.context("a host check crashed")?);
    }
    reach.pool.close_all().await;
    reach.finish();
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

/// Creates a run directory ferry owns (0700) when it does not exist yet; one that exists is
/// left as it is.
fn create_run_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the log directory {}", dir.display()))
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
    let inv = load_inventory(&args.inventory)?;
    let run_dir = one_off_run_dir(&args.reach, "facts")?;
    let reach: Reach = reach(&args.reach, &inv, &args.inventory, run_dir).await?;
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
    reach.finish();
    let all_ok = hosts.iter().all(|h| h.error.is_none());
    let doc = serde_json::json!({ "ok": all_ok, "hosts": hosts });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How many jump hosts stand between us and `t`.
fn hops(t: &Target) -> usize {
    t.bastion.as_deref().map_or(0, |b| 1 + hops(b))
}

/// `ferry inventory trust`: shows each selected host's key and records it when nothing is
/// recorded for the host yet. A changed key is never replaced here (the error says how to
/// forget the old one), and a jump host's key is never recorded on the way: a host behind one
/// needs it trusted first (`--all` does jump hosts first).
async fn trust(args: TrustArgs) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory)?;
    let names: Vec<String> = if args.all {
        inv.hosts().iter().map(|h| h.name.clone()).collect()
    } else {
        args.hosts.clone()
    };
    if let Some(missing) = names.iter().find(|n| inv.host(n).is_none()) {
        let known: Vec<&str> = inv.hosts().iter().map(|h| h.name.as_str()).collect();
        anyhow::bail!(
            "{missing}: no such host in {}; its hosts are: {}",
            args.inventory.display(),
            known.join(", ")
        );
    }
    if args.fingerprint.is_some() && names.len() != 1 {
        anyhow::bail!("--fingerprint checks one host's key: name exactly one HOST");
    }
    let mut targets = Vec::new();
    for n in &names {
        targets.push(
            inv.target(n, &EnvOrTty)
                .with_context(|| format!("resolving host {n} of {}", args.inventory.display()))?,
        );
    }
    targets.sort_by_key(hops);
    let mut opts = session_options(&args.reach, None)?;
    // Jump hosts are logged into, so their keys must be trusted already (or earlier in this
    // run): nothing is recorded implicitly.
    opts.host_keys = HostKeyPolicy::Strict;
    let known = opts.known_hosts.clone();
    let pool = Pool::new(opts.clone());
    let mut failed = 0;
    for t in &targets {
        let outcome: Result<String, String> = async {
            let via = match &t.bastion {
                Some(b) => Some(pool.session(b).await.map_err(|e| e.to_string())?),
                None => None,
            };
            let key = Session::scan_host_key(t, via.as_deref(), &opts)
                .await
                .map_err(|e| e.to_string())?;
            let entry = Session::known_hosts_entry(t, via.as_deref());
            let shown = KnownHosts::describe(&key);
            if let Some(want) = &args.fingerprint {
                if KnownHosts::fingerprint(&key) != want.trim() {
                    return Err(format!(
                        "{}: offers {shown}, not the {} given; nothing recorded",
                        t.name,
                        want.trim()
                    ));
                }
            }
            match known.check_or_record(&entry, &key, HostKeyPolicy::AcceptNew) {
                Ok(Accepted::Known) => {
                    Ok(format!("{}: already trusted: {shown} ({entry})", t.name))
                }
                Ok(Accepted::Recorded) => Ok(format!(
                    "{}: trusted {shown} ({entry}), recorded in {}",
                    t.name,
                    known.path().display()
                )),
                Err(e) => Err(format!("{}: {e}", t.name)),
            }
        }
        .await;
        match outcome {
            Ok(line) => println!("{line}"),
            Err(line) => {
                failed += 1;
                println!("FAILED {line}");
            }
        }
    }
    pool.close_all().await;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
