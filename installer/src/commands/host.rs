//! `ferry validate`, `ferry plan`, `ferry apply` and `ferry rollback`: load the answer file,
//! reach the hosts, run the engine and show what it reports (lines or JSON).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use ferry_inventory::ssh::KnownHosts;

use super::reach::{reach, Reach};
use crate::cmdline::host::{ApplyArgs, PlanArgs, RollbackArgs, ValidateArgs};
use crate::cmdline::ReachArgs;
use crate::config::InstallConfig;
use crate::engine::apply::{HostSummary, RunJournal};
use crate::engine::events::{Event, Sink};
use crate::engine::journal::{self, Journal};
use crate::engine::plan::{table, Plan};
use crate::engine::{self, Hosts};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

/// `~/.ferry`.
fn ferry_home() -> anyhow::Result<PathBuf> {
    let kh = KnownHosts::default_path()?;
    Ok(kh.parent().map(PathBuf::from).unwrap_or_default())
}

/// Where runs are kept: `--run-dir` or `~/.ferry/runs`.
fn runs_root(args: &ReachArgs) -> anyhow::Result<PathBuf> {
    match &args.run_dir {
        Some(d) => Ok(d.clone()),
        None => Ok(ferry_home()?.join("runs")),
    }
}

async fn connect(cfg: &InstallConfig, args: &ReachArgs, run_dir: PathBuf) -> anyhow::Result<Hosts> {
    let mut args = args.clone();
    args.strict_host_keys |= cfg.ssh.strict_host_keys;
    let args = &args;
    let Reach {
        pool,
        mut targets,
        agent,
        ..
    } = reach(args, &cfg.inventory, &cfg.inventory_path, run_dir).await?;
    // Jump hosts only tunnelled through are reached as bastions, never planned or applied.
    targets.retain(|t| cfg.members.iter().any(|m| m.name == t.name));
    Ok(Hosts {
        pool,
        targets,
        agent,
    })
}

/// Prints events as lines on stdout (or stderr, when stdout carries JSON).
fn printer(to_stderr: bool) -> Sink {
    Arc::new(move |e: Event| {
        let line = match e {
            Event::Applied {
                host,
                resource,
                seconds,
            } => format!("{host} {resource} applied ({seconds:.1}s)"),
            Event::ApplyFailed {
                host,
                resource,
                error,
            } => format!("{host} {resource} FAILED: {error}"),
            Event::Reverted {
                host,
                resource,
                seconds,
            } => format!("{host} {resource} reverted ({seconds:.1}s)"),
            Event::RevertFailed {
                host,
                resource,
                error,
            } => format!("{host} {resource} revert FAILED: {error}"),
            Event::Warning { host, message } => format!("{host}: warning: {message}"),
            Event::Waiting { host, resource, on } => format!("{host} {resource} waits for {on}"),
            // Progress only: the plan itself says what was found.
            Event::HostSurveyed { host, seconds } => {
                eprintln!("{host} surveyed ({seconds:.1}s)");
                return;
            }
            Event::HostUnreachable { host, reason } => {
                eprintln!("{host} unreachable: {reason}");
                return;
            }
        };
        if to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
    })
}

/// `ferry validate`: the answer file as ferry understands it, as JSON.
pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let cfg = InstallConfig::load(&args.answers)?;
    println!("{}", serde_json::to_string_pretty(&cfg)?);
    Ok(ExitCode::SUCCESS)
}

async fn make_plan(
    cfg: &InstallConfig,
    args: &ReachArgs,
    force: &[String],
    run_dir: PathBuf,
    extract: bool,
    sink: &Sink,
) -> anyhow::Result<(Plan, Hosts)> {
    let hosts = connect(cfg, args, run_dir).await?;
    // Only apply extracts bundle items into the jump host's cache: plan writes nothing there.
    let cache = engine::artifacts::Cache {
        dir: ferry_home()?.join("cache"),
        fill: extract,
    };
    let plan = engine::plan(cfg, &hosts, force, cache, sink).await?;
    Ok((plan, hosts))
}

/// `ferry plan`
pub fn plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let cfg = InstallConfig::load(&args.answers)?;
    let run_dir = runs_root(&args.reach)?.join(format!("plan-{}", journal::new_run_id()));
    runtime()?.block_on(async {
        let sink = printer(true);
        let (plan, hosts) =
            make_plan(&cfg, &args.reach, &args.force, run_dir, false, &sink).await?;
        hosts.pool.close_all().await;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{}", plan.render());
        }
        Ok(exit(plan.all_clear()))
    })
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The summary table after `apply`.
fn render_summary(summaries: &[HostSummary]) -> String {
    let rows: Vec<[String; 5]> = summaries
        .iter()
        .map(|s| {
            [
                s.host.clone(),
                s.outcome.label().to_string(),
                s.changes.to_string(),
                format!("{:.1}", s.seconds),
                s.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["HOST", "OUTCOME", "CHANGES", "SECONDS", "REASON"], &rows)
}

/// `ferry apply`
pub fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let cfg = InstallConfig::load(&args.answers)?;
    let run_id = journal::new_run_id();
    let run_dir = runs_root(&args.reach)?.join(&run_id);
    let local = Arc::new(Journal::open(&run_dir)?);
    runtime()?.block_on(async {
        let started = Instant::now();
        let sink = printer(args.json);
        let (plan, hosts) =
            make_plan(&cfg, &args.reach, &args.force, run_dir.clone(), true, &sink).await?;
        eprintln!("run: {run_id}");
        if !args.json {
            print!("{}", plan.render());
            let _ = std::io::stdout().flush();
        }
        let rj = Arc::new(RunJournal {
            run_id: run_id.clone(),
            local,
        });
        let summaries = engine::apply(&plan, &hosts, rj, args.no_rollback, &sink).await?;
        hosts.pool.close_all().await;
        let ok = summaries.iter().all(|s| s.outcome.success());
        if args.json {
            let doc = serde_json::json!({
                "run_id": run_id,
                "ok": ok,
                "seconds": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
                "plan": plan,
                "hosts": summaries,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            print!("{}", render_summary(&summaries));
            println!(
                "run: {run_id} ({:.1}s; journal and logs in {})",
                started.elapsed().as_secs_f64(),
                run_dir.display()
            );
        }
        Ok(exit(ok))
    })
}

/// The run ids under `root` that have a journal, oldest first.
fn runs_in(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join(journal::JOURNAL_FILE).is_file())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// `ferry rollback`
pub fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let root = runs_root(&args.reach)?;
    let run_dir = root.join(&args.run);
    let path = run_dir.join(journal::JOURNAL_FILE);
    if !journal::is_run_id(&args.run) || !path.is_file() {
        let runs = runs_in(&root);
        anyhow::bail!(
            "no run {} in {}; {}",
            args.run,
            root.display(),
            match runs.last() {
                None => "there are no runs there (give the --run-dir the run used)".to_string(),
                Some(last) => format!(
                    "runs there: {} (newest {last})",
                    runs.iter()
                        .rev()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        );
    }
    let records = journal::read(&path)?;
    let pending = journal::pending_reverts(&records, &args.host);
    if pending.is_empty() {
        println!("nothing to roll back in run {}", args.run);
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = InstallConfig::load(&args.answers)?;
    let local = Arc::new(Journal::open(&run_dir)?);
    runtime()?.block_on(async {
        let hosts = connect(&cfg, &args.reach, run_dir.clone()).await?;
        let rj = Arc::new(RunJournal {
            run_id: args.run.clone(),
            local,
        });
        let sink = printer(false);
        let summaries = engine::rollback(&hosts, pending, rj, &sink).await?;
        hosts.pool.close_all().await;
        let rows: Vec<[String; 5]> = summaries
            .iter()
            .map(|s| {
                [
                    s.host.clone(),
                    s.reverted.to_string(),
                    s.failed.join(", "),
                    format!("{:.1}", s.seconds),
                    s.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["HOST", "REVERTED", "FAILED", "SECONDS", "REASON"], &rows)
        );
        let ok = summaries.iter().all(|s| s.failed.is_empty());
        println!(
            "rollback of run {}: {}",
            args.run,
            if ok {
                "every change reverted".to_string()
            } else {
                "some changes NOT reverted; run it again once the hosts are reachable".to_string()
            }
        );
        Ok(exit(ok))
    })
}
