//! `ferry validate`, `ferry plan`, `ferry apply` and `ferry rollback`: load the answer file,
//! reach the hosts, run the engine and show what it reports (lines or JSON).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use ferry_bootos::SshHost;
use ferry_inventory::facts::FerryMarker;
use ferry_inventory::ssh::{KeyNotice, KnownHosts};
use ferry_inventory::{SecretSource, Target};

use super::progress::Printer;
use super::reach::{reach_with, EnvOrTty, Reach};
use crate::cmdline::host::{ApplyArgs, PlanArgs, ResetArgs, RollbackArgs, ValidateArgs};
use crate::cmdline::ReachArgs;
use crate::config::InstallConfig;
use crate::engine::apply::{HostSummary, RunJournal};
use crate::engine::events::Sink;
use crate::engine::journal::{self, Journal};
use crate::engine::plan::table;
use crate::engine::{self, Hosts};
use crate::engine::{guard, lock};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

/// `~/.ferry`.
fn ferry_home() -> anyhow::Result<PathBuf> {
    let kh = KnownHosts::default_path()?;
    Ok(kh.parent().map(PathBuf::from).unwrap_or_default())
}

/// Where runs are kept: `--run-dir` or `~/.ferry/runs`. Each run gets a directory of its own
/// inside (made 0700 by ferry); the folder given is never changed, whatever its mode (a
/// shared `/tmp` stays as it is).
fn runs_root(args: &ReachArgs) -> anyhow::Result<PathBuf> {
    match &args.run_dir {
        Some(d) => Ok(d.clone()),
        None => Ok(ferry_home()?.join("runs")),
    }
}

/// The file in a run's directory naming the cluster it was for.
const RUN_CLUSTER_FILE: &str = "cluster.json";

/// Settles the cluster id of this run (see `guard::resolve_cluster_id`) from the hosts'
/// markers and this jump host's newest record of a cluster of this name.
fn resolve_cluster(
    cfg: &mut InstallConfig,
    markers: &BTreeMap<String, FerryMarker>,
    root: &Path,
) -> anyhow::Result<guard::IdFrom> {
    if cfg.cluster.id_given {
        return Ok(guard::IdFrom::Answers);
    }
    let recorded = recorded_cluster_id(root, &cfg.cluster.name);
    let (id, from) = guard::resolve_cluster_id(
        &cfg.cluster.name,
        markers,
        recorded.as_deref(),
        &cfg.cluster.id,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.cluster.id = id;
    Ok(from)
}

/// The id this jump host recorded for cluster `name` at its newest run, if any.
fn recorded_cluster_id(root: &Path, name: &str) -> Option<String> {
    runs_in(root).iter().rev().find_map(|run| {
        let text = std::fs::read_to_string(root.join(run).join(RUN_CLUSTER_FILE)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        (v["name"] == name).then(|| v["id"].as_str().map(str::to_string))?
    })
}

/// Records the run's cluster in its directory.
fn record_cluster(run_dir: &Path, cfg: &InstallConfig) -> anyhow::Result<()> {
    let doc = serde_json::json!({"name": cfg.cluster.name, "id": cfg.cluster.id});
    let path = run_dir.join(RUN_CLUSTER_FILE);
    std::fs::write(&path, format!("{doc}\n")).with_context(|| format!("writing {}", path.display()))
}

/// How a front end takes part in a run: where the engine's events go, where secrets come
/// from, who is told of newly trusted host keys. The CLI prints them; the wizard draws them.
pub(crate) struct Front {
    /// The engine's events.
    pub sink: Sink,
    /// Passwords and passphrases the inventory names.
    pub secrets: Arc<dyn SecretSource + Send + Sync>,
    /// Host keys recorded on first contact.
    pub notice: KeyNotice,
}

impl Front {
    /// The command line's: events printed, secrets from the environment or the terminal.
    fn cli(printer: &Printer) -> Front {
        Front {
            sink: printer.sink(),
            secrets: Arc::new(EnvOrTty),
            notice: printer.key_notice(),
        }
    }
}

async fn connect(cfg: &InstallConfig, args: &ReachArgs, run_dir: PathBuf) -> anyhow::Result<Hosts> {
    let printer = Printer::new(cfg.members.len(), true);
    connect_with(cfg, args, run_dir, &Front::cli(&printer)).await
}

async fn connect_with(
    cfg: &InstallConfig,
    args: &ReachArgs,
    run_dir: PathBuf,
    front: &Front,
) -> anyhow::Result<Hosts> {
    let mut args = args.clone();
    args.strict_host_keys |= cfg.ssh.strict_host_keys;
    let args = &args;
    let Reach {
        pool,
        mut targets,
        agent,
        ..
    } = reach_with(
        args,
        &cfg.inventory,
        &cfg.inventory_path,
        run_dir,
        front.secrets.as_ref(),
        front.notice.clone(),
    )
    .await?;
    // Jump hosts only tunnelled through are reached as bastions, never planned or applied.
    targets.retain(|t| cfg.members.iter().any(|m| m.name == t.name));
    Ok(Hosts {
        pool,
        targets,
        agent,
        home: ferry_home()?,
        relay_min_saved: args.relay_min_mib.saturating_mul(1 << 20),
    })
}

/// `ferry validate`: the answer file as ferry understands it, as JSON.
pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let cfg = InstallConfig::load(&args.answers)?;
    check_offline(&cfg, &args.answers)?;
    println!("{}", serde_json::to_string_pretty(&cfg)?);
    Ok(ExitCode::SUCCESS)
}

/// The jump host's cache of bundle items: only apply extracts into it, plan writes nothing
/// there.
fn cache(extract: bool) -> anyhow::Result<engine::artifacts::Cache> {
    Ok(engine::artifacts::Cache {
        dir: ferry_home()?.join("cache"),
        fill: extract,
    })
}

/// `ferry plan`
pub fn plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let cfg = InstallConfig::load(&args.answers)?;
    runtime()?.block_on(async {
        let printer = Printer::new(cfg.members.len(), true);
        let plan = plan_with(cfg, &args, &Front::cli(&printer)).await;
        printer.finish();
        let plan = plan?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{}", plan.render());
        }
        Ok(exit(plan.all_clear()))
    })
}

/// What `ferry plan` computes, for any front end: reads the hosts, changes nothing.
pub(crate) async fn plan_with(
    mut cfg: InstallConfig,
    args: &PlanArgs,
    front: &Front,
) -> anyhow::Result<engine::plan::Plan> {
    let site = site_apps(&cfg, &args.answers)?;
    let root = runs_root(&args.reach)?;
    let run_dir = root.join(format!("plan-{}", journal::new_run_id()));
    let hosts = connect_with(&cfg, &args.reach, run_dir, front).await?;
    // A new id (no host marked yet) is shown in the plan; apply makes its own.
    let plan = async {
        let surveys = engine::survey_all(&cfg, &hosts, &args.force, &front.sink).await?;
        resolve_cluster(&mut cfg, &surveys.markers(), &root)?;
        engine::plan(&cfg, &hosts, surveys, &args.force, cache(false)?).await
    }
    .await;
    hosts.pool.close_all().await;
    plan.map(|mut p| {
        p.site = site_plan(&site);
        p
    })
}

/// The site's apps and license, checked before any host is reached: a package or license
/// that cannot go is refused here, before anything changes.
/// What `ferry validate` checks beyond loading the answer file, without reaching a host (the
/// wizard checks every draft with it too): the distribution's version and files, from the
/// bundle's signed manifest (loading the answer file checked that the bundle is there and
/// signed by bundle-pubkey); the packages apply deploys, their values and the license they
/// need.
pub(crate) fn check_offline(cfg: &InstallConfig, answers: &Path) -> anyhow::Result<()> {
    if cfg.cluster.installs() {
        crate::cluster::bundle::ClusterBundle::open(cfg)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", answers.display()))?;
    }
    site_apps(cfg, answers)?;
    Ok(())
}

fn site_apps(cfg: &InstallConfig, answers: &Path) -> anyhow::Result<crate::apps::site::SiteApps> {
    crate::apps::site::prepare(cfg).map_err(|e| anyhow::anyhow!("{}: {e:#}", answers.display()))
}

/// What the plan shows of the phases after the hosts.
fn site_plan(site: &crate::apps::site::SiteApps) -> engine::plan::SitePlan {
    engine::plan::SitePlan {
        license: site.license.as_ref().map(|l| {
            let granted = l.entitlements.granted();
            format!(
                "{} for {}, grants {}",
                l.id,
                l.customer,
                if granted.is_empty() {
                    "no module".to_string()
                } else {
                    granted.join(", ")
                }
            )
        }),
        apps: site
            .releases
            .iter()
            .map(|r| engine::plan::PlannedApp {
                app: r.app.clone(),
                version: r.version.clone(),
                license_feature: r.license_feature.clone(),
            })
            .collect(),
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The summary table after `apply`. Summarized (many hosts): only the hosts that did not end
/// as wanted get a row, then one line counts every outcome (`--json` has every host).
fn render_summary(summaries: &[HostSummary], summarized: bool) -> String {
    let rows: Vec<[String; 5]> = summaries
        .iter()
        .filter(|s| !summarized || !s.outcome.success())
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
    if !summarized {
        return table(&["HOST", "OUTCOME", "CHANGES", "SECONDS", "REASON"], &rows);
    }
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&table(
            &["HOST", "OUTCOME", "CHANGES", "SECONDS", "REASON"],
            &rows,
        ));
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for s in summaries {
        match counts.iter_mut().find(|(l, _)| *l == s.outcome.label()) {
            Some((_, n)) => *n += 1,
            None => counts.push((s.outcome.label(), 1)),
        }
    }
    let changes: usize = summaries.iter().map(|s| s.changes).sum();
    let slowest = summaries.iter().map(|s| s.seconds).fold(0.0, f64::max);
    out.push_str(&format!(
        "hosts: {} in all, {}; {changes} changes, slowest host {slowest:.1}s\n",
        summaries.len(),
        counts
            .iter()
            .map(|(l, n)| format!("{n} {l}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out
}

/// Breaks the locks run `run` holds on `names` after the operator confirms: on a terminal, by
/// answering `y`; unattended, naming the run's id with `--break-lock` is the confirmation.
async fn break_locks(hosts: &Hosts, names: &[String], run: &str) -> anyhow::Result<()> {
    let held: Vec<(String, lock::LockHolder)> = lock::holders(hosts, names)
        .await
        .into_iter()
        .filter(|(_, h)| h.run == run)
        .collect();
    if held.is_empty() {
        eprintln!("--break-lock {run}: no host is locked by run {run}");
        return Ok(());
    }
    for (host, h) in &held {
        eprintln!("{host}: locked by {}", h.describe());
    }
    if std::io::stdin().is_terminal() {
        eprint!(
            "Break these locks? Only if run {run} is dead: two runs at once on a host can leave \
             it half changed. [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            anyhow::bail!("--break-lock {run}: not confirmed; nothing changed");
        }
    }
    let names: Vec<String> = held.into_iter().map(|(h, _)| h).collect();
    for host in lock::break_all(hosts, &names, run).await {
        eprintln!("{host}: lock of run {run} broken");
    }
    Ok(())
}

/// `ferry apply`
pub fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let cfg = InstallConfig::load(&args.answers)?;
    runtime()?.block_on(async {
        let printer = Printer::new(cfg.members.len(), args.json);
        let front = Front::cli(&printer);
        let json = args.json;
        let expect = printer.clone();
        let on_plan = move |run_id: &str, _: &Path, plan: &engine::plan::Plan| {
            expect.expect(plan);
            eprintln!("run: {run_id}");
            if !json {
                print!("{}", plan.render());
                let _ = std::io::stdout().flush();
            }
        };
        let run = apply_with(cfg, &args, &front, &on_plan).await;
        printer.finish();
        let run = run?;
        let ApplyRun {
            run_id,
            run_dir,
            plan,
            summaries,
            cluster,
            apps,
            seconds,
        } = run;
        let ok = summaries.iter().all(|s| s.outcome.success())
            && cluster.as_ref().is_none_or(|c| c.ready)
            && apps.as_ref().is_none_or(|a| a.ok());
        if args.json {
            let doc = serde_json::json!({
                "run_id": run_id,
                "ok": ok,
                "seconds": (seconds * 100.0).round() / 100.0,
                "plan": plan,
                "hosts": summaries,
                "cluster": cluster,
                "site": apps,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            print!("{}", render_summary(&summaries, printer.summarized()));
            if let Some(c) = &cluster {
                print!("{}", render_cluster(c));
            }
            if let Some(a) = &apps {
                print!("{}", a.render());
            }
            println!(
                "run: {run_id} ({seconds:.1}s; journal and logs in {})",
                run_dir.display()
            );
        }
        Ok(exit(ok))
    })
}

/// The cluster's nodes after apply, and where the kubeconfig is or why there is none.
pub(crate) fn render_cluster(c: &crate::cluster::ClusterReport) -> String {
    let rows: Vec<[String; 3]> = c
        .nodes
        .iter()
        .map(|n| [n.name.clone(), n.ready.clone(), n.message.clone()])
        .collect();
    let mut out = table(&["NODE", "READY", "MESSAGE"], &rows);
    match &c.kubeconfig {
        Some(k) => out.push_str(&format!(
            "cluster: k3s {}, {} nodes Ready; kubeconfig {} (also linked from the run directory)\n",
            c.version,
            c.nodes.len(),
            k.display()
        )),
        None => out.push_str(&format!(
            "cluster: NOT READY after 300s: {}; fix: look at those nodes' `journalctl -u k3s` \
             / `-u k3s-agent`, then run `ferry apply` again (finished steps are not redone)\n",
            c.nodes
                .iter()
                .filter(|n| n.ready != "True")
                .map(|n| format!("{} ({})", n.name, n.ready))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    out
}

/// What one apply run did.
pub(crate) struct ApplyRun {
    /// Its id.
    pub run_id: String,
    /// Its directory on this jump host (journal, per-host logs).
    pub run_dir: PathBuf,
    /// The plan it applied.
    pub plan: engine::plan::Plan,
    /// Every host's outcome, in inventory order.
    pub summaries: Vec<HostSummary>,
    /// The cluster's nodes and kubeconfig, when every host ended as wanted and the plan has
    /// a cluster.
    pub cluster: Option<crate::cluster::ClusterReport>,
    /// The license and apps phases, when the cluster became Ready and the answer file has a
    /// license or the bundle packages to deploy.
    pub apps: Option<crate::apps::phase::AppsReport>,
    /// Wall time.
    pub seconds: f64,
}

/// What `ferry apply` does, for any front end: locks, plans (`on_plan` is told the run id, its
/// directory and the plan before anything changes), applies, releases the locks.
pub(crate) async fn apply_with(
    mut cfg: InstallConfig,
    args: &ApplyArgs,
    front: &Front,
    on_plan: &(dyn Fn(&str, &Path, &engine::plan::Plan) + Send + Sync),
) -> anyhow::Result<ApplyRun> {
    let site = site_apps(&cfg, &args.answers)?;
    let run_id = journal::new_run_id();
    let root = runs_root(&args.reach)?;
    let run_dir = root.join(&run_id);
    let local = Arc::new(Journal::open(&run_dir)?);
    let started = Instant::now();
    let sink = &front.sink;
    let hosts = connect_with(&cfg, &args.reach, run_dir.clone(), front).await?;
    let names: Vec<String> = hosts.targets.iter().map(|t| t.name.clone()).collect();
    if let Some(run) = &args.break_lock {
        break_locks(&hosts, &names, run).await?;
    }
    // Locked before the plan, so the plan is of hosts no other run is changing.
    let me = lock::LockHolder::this_process(&run_id, "apply");
    let (locked, refused) = lock::acquire_all(&hosts, &names, &me).await;
    let result = async {
        let surveys = engine::survey_all(&cfg, &hosts, &args.force, sink).await?;
        resolve_cluster(&mut cfg, &surveys.markers(), &root)?;
        record_cluster(&run_dir, &cfg)?;
        let mut plan = engine::plan(&cfg, &hosts, surveys, &args.force, cache(true)?).await?;
        plan.site = site_plan(&site);
        lock::hold_unlocked(&mut plan, &locked, &refused);
        on_plan(&run_id, &run_dir, &plan);
        let rj = Arc::new(RunJournal::new(
            run_id.clone(),
            local,
            cfg.cluster.id.clone(),
        ));
        let policy = if args.no_rollback {
            crate::config::RollbackPolicy::Never
        } else {
            cfg.cluster.settings.rollback
        };
        let summaries = engine::apply(&plan, &hosts, rj, policy, sink).await?;
        anyhow::Ok((plan, summaries))
    }
    .await;
    // Every host ended as wanted: wait for the cluster to be Ready, save its kubeconfig.
    let result = match result {
        Ok((plan, summaries)) => {
            let all_ok = summaries.iter().all(|s| s.outcome.success());
            let report = match (&plan.cluster, all_ok) {
                (Some(rt), true) => Some(
                    crate::cluster::finish(
                        rt,
                        &cfg,
                        &ferry_home()?,
                        &run_dir,
                        std::time::Duration::from_secs(300),
                    )
                    .await,
                ),
                _ => None,
            };
            match report.transpose() {
                Ok(r) => {
                    // The license and the apps, once every node is Ready.
                    // (Without a distribution, the license alone, once every host is done.)
                    let ready = r.as_ref().map_or(all_ok, |c| c.ready);
                    let apps = if ready && !plan.site.is_empty() {
                        Some(crate::apps::phase::run(&site, &cfg, &hosts, sink).await)
                    } else {
                        None
                    };
                    Ok((plan, summaries, r, apps))
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    lock::release_all(&hosts, &locked, &me).await;
    hosts.pool.close_all().await;
    let (plan, summaries, cluster, apps) = result?;
    Ok(ApplyRun {
        run_id,
        run_dir,
        plan,
        summaries,
        cluster,
        apps,
        seconds: started.elapsed().as_secs_f64(),
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

/// Every host's own copy of run `run`'s journal (hosts in `only`, or all), for hosts that
/// can be reached and have one; the others are named on stderr.
async fn host_copies(
    hosts: &Hosts,
    run: &str,
    only: &[String],
) -> BTreeMap<String, Vec<journal::Record>> {
    let mut tasks = Vec::new();
    for t in hosts
        .targets
        .iter()
        .filter(|t| only.is_empty() || only.contains(&t.name))
    {
        let (pool, t, run) = (hosts.pool.clone(), t.clone(), run.to_string());
        tasks.push(tokio::spawn(async move {
            let _permit = pool.permit().await;
            let r = match pool.session(&t).await {
                Ok(s) => journal::read_host_copy(&SshHost::new(s), &run)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            (t.name, r)
        }));
    }
    let mut out = BTreeMap::new();
    for task in tasks {
        match task.await {
            Ok((name, Ok(Some(recs)))) => {
                out.insert(name, recs);
            }
            Ok((_, Ok(None))) => {}
            Ok((name, Err(e))) => eprintln!("{name}: its copy of the journal cannot be read: {e}"),
            Err(e) => eprintln!("reading a host's journal crashed: {e}"),
        }
    }
    out
}

/// `ferry rollback`: undoes a run from its journal. The jump host's copy and every host's own
/// copy are merged, so a jump host whose copy was lost or cut short (a new jump host with the
/// same answer file) still undoes every change the hosts recorded.
pub fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let root = runs_root(&args.reach)?;
    if !journal::is_run_id(&args.run) {
        anyhow::bail!(
            "--run {}: not a run id (they look like 20250101-120000-abcd); {}",
            args.run,
            runs_hint(&root)
        );
    }
    let run_dir = root.join(&args.run);
    let path = run_dir.join(journal::JOURNAL_FILE);
    let local_records = if path.is_file() {
        match journal::read(&path) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e:#}; going by the hosts' copies");
                journal::parse_lenient(&String::from_utf8_lossy(
                    &std::fs::read(&path).unwrap_or_default(),
                ))
            }
        }
    } else {
        Vec::new()
    };
    let cfg = InstallConfig::load(&args.answers)?;
    runtime()?.block_on(async {
        let hosts = connect(&cfg, &args.reach, run_dir.clone()).await?;
        let copies = host_copies(&hosts, &args.run, &args.host).await;
        if !path.is_file() && copies.is_empty() {
            hosts.pool.close_all().await;
            anyhow::bail!(
                "no run {} in {} and no host has {}; {}",
                args.run,
                root.display(),
                journal::host_copy(&args.run),
                runs_hint(&root)
            );
        }
        let records = journal::merge(&local_records, &copies);
        let mut pending = journal::pending_reverts(&records, &args.host);
        if pending.is_empty() {
            hosts.pool.close_all().await;
            println!("nothing to roll back in run {}", args.run);
            return Ok(ExitCode::SUCCESS);
        }
        let new_journal = !path.is_file();
        let local = Arc::new(Journal::open(&run_dir)?);
        if new_journal {
            // A new jump host: its journal starts as what the hosts kept.
            for r in &records {
                local.append(r)?;
            }
        }
        let names: Vec<String> = pending.keys().cloned().collect();
        if let Some(run) = &args.break_lock {
            break_locks(&hosts, &names, run).await?;
        }
        let me = lock::LockHolder::this_process(&args.run, "rollback");
        let (locked, refused) = lock::acquire_all(&hosts, &names, &me).await;
        let mut summaries: Vec<engine::RollbackSummary> = Vec::new();
        for (host, why) in &refused {
            if let Some(undos) = pending.remove(host) {
                summaries.push(engine::RollbackSummary {
                    host: host.clone(),
                    reverted: 0,
                    failed: undos.into_iter().map(|u| u.resource_id).collect(),
                    reason: Some(why.clone()),
                    kept: Vec::new(),
                    seconds: 0.0,
                });
            }
        }
        let rj = Arc::new(RunJournal::new(
            args.run.clone(),
            local,
            cfg.cluster.id.clone(),
        ));
        let printer = Printer::new(cfg.members.len(), false);
        let sink = printer.sink();
        let result = engine::rollback(&hosts, pending, rj, &sink).await;
        printer.finish();
        lock::release_all(&hosts, &locked, &me).await;
        hosts.pool.close_all().await;
        summaries.extend(result?);
        summaries.sort_by(|a, b| a.host.cmp(&b.host));
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
        for s in &summaries {
            for k in &s.kept {
                println!("{}: kept: {k}", s.host);
            }
        }
        let ok = summaries.iter().all(|s| s.failed.is_empty());
        let kept: usize = summaries.iter().map(|s| s.kept.len()).sum();
        println!(
            "rollback of run {}: {}{}",
            args.run,
            if ok {
                "every change reverted".to_string()
            } else {
                "some changes NOT reverted; run it again once the hosts are reachable".to_string()
            },
            if kept > 0 {
                format!(
                    "; {kept} left as found because they changed after the run (see `kept:` lines)"
                )
            } else {
                String::new()
            }
        );
        Ok(exit(ok))
    })
}

/// `runs there: A, B (newest B)` or what to do when there are none.
fn runs_hint(root: &Path) -> String {
    let runs = runs_in(root);
    match runs.last() {
        None => format!(
            "there are no runs in {} (give the --run-dir the run used, or check the run id)",
            root.display()
        ),
        Some(last) => format!(
            "runs in {}: {} (newest {last})",
            root.display(),
            runs.iter()
                .rev()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A host to reset: its target, whether it is a server, and its first installs.
type ToReset = (Target, bool, Vec<(String, journal::Undo)>);

/// The steps a reset undoes: the cluster phase's.
const RESET_STEPS: &[&str] = &[
    guard::K3S_AGENT_STEP,
    guard::K3S_SERVER_STEP,
    crate::cluster::images::ID,
    crate::cluster::registry::MIRROR_ID,
    crate::cluster::registry::SERVER_ID,
];

/// For one host, from every journal it keeps: each cluster step of this cluster that was
/// begun and not reverted, with the state before its FIRST run (a later run found k3s there
/// already; undoing the first install is what takes k3s off). Newest step first.
fn first_installs(
    records: &[journal::Record],
    host: &str,
    cluster_id: &str,
) -> Vec<(String, journal::Undo)> {
    let mut runs: Vec<&str> = records
        .iter()
        .filter(|r| {
            RESET_STEPS.contains(&r.resource_id.as_str())
                && matches!(&r.entry, journal::Entry::Begin { cluster, .. } if cluster.as_deref() == Some(cluster_id))
        })
        .map(|r| r.run.as_str())
        .collect();
    runs.sort();
    runs.dedup();
    let mut firsts: BTreeMap<String, (String, journal::Undo)> = BTreeMap::new();
    for run in runs {
        let of_run: Vec<journal::Record> =
            records.iter().filter(|r| r.run == run).cloned().collect();
        let pending = journal::pending_reverts(&of_run, &[host.to_string()]);
        for u in pending.into_values().flatten() {
            if RESET_STEPS.contains(&u.resource_id.as_str()) {
                firsts
                    .entry(u.resource_id.clone())
                    .or_insert((run.to_string(), u));
            }
        }
    }
    // In the reverse of the apply's order: k3s stops before its images go, and those before
    // the mirror settings and the registry.
    let mut out: Vec<(String, journal::Undo)> = firsts.into_values().collect();
    out.sort_by_key(|(_, u)| {
        RESET_STEPS
            .iter()
            .position(|s| *s == u.resource_id)
            .unwrap_or(0)
    });
    out
}

/// `ferry reset`: takes k3s off the hosts it installed it on (agents first, then servers),
/// undoing the cluster steps of their first install: what k3s's killall and uninstall scripts
/// remove, and nothing that was there before ferry.
pub fn reset(args: ResetArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = InstallConfig::load(&args.answers)?;
    for h in &args.host {
        if !cfg.members.iter().any(|m| &m.name == h) {
            anyhow::bail!(
                "--host {h}: no host named {h} in {}",
                cfg.inventory_path.display()
            );
        }
    }
    let run_id = journal::new_run_id();
    let root = runs_root(&args.reach)?;
    let run_dir = root.join(format!("reset-{run_id}"));
    runtime()?.block_on(async {
        let hosts = connect(&cfg, &args.reach, run_dir.clone()).await?;
        let result = async {
            if !cfg.cluster.id_given {
                resolve_cluster(&mut cfg, &guard::read_markers(&hosts).await, &root)?;
            }
            let chosen: Vec<Target> = hosts
                .targets
                .iter()
                .filter(|t| args.host.is_empty() || args.host.contains(&t.name))
                .cloned()
                .collect();
            let mut found: Vec<ToReset> = Vec::new();
            for t in chosen {
                let s = hosts.pool.session(&t).await?;
                let records = journal::read_host_journals(&SshHost::new(s)).await?;
                let undos = first_installs(&records, &t.name, &cfg.cluster.id);
                let server = cfg.members.iter().any(|m| m.name == t.name && m.server);
                found.push((t, server, undos));
            }
            anyhow::Ok(found)
        }
        .await;
        let found = match result {
            Ok(f) => f,
            Err(e) => {
                hosts.pool.close_all().await;
                return Err(e);
            }
        };
        for (t, _, undos) in &found {
            if undos.is_empty() {
                println!(
                    "{}: nothing of cluster {} to reset",
                    t.name, cfg.cluster.name
                );
            } else {
                let steps: Vec<&str> = undos.iter().map(|(_, u)| u.resource_id.as_str()).collect();
                println!(
                    "{}: reset {} (installed by run {})",
                    t.name,
                    steps.join(", "),
                    undos[0].0
                );
            }
        }
        if !args.yes {
            hosts.pool.close_all().await;
            eprintln!("nothing changed: add --yes to reset these hosts");
            return Ok(ExitCode::from(2));
        }
        let names: Vec<String> = found.iter().map(|(t, _, _)| t.name.clone()).collect();
        let me = lock::LockHolder::this_process(&run_id, "reset");
        let (locked, refused) = lock::acquire_all(&hosts, &names, &me).await;
        let printer = Printer::new(cfg.members.len(), false);
        let sink = printer.sink();
        let mut failed = false;
        for (host, why) in &refused {
            eprintln!("{host}: not reset: {why}");
            failed = true;
        }
        // Agents first, then servers (the first server last): nodes leave before the servers.
        let mut waves: Vec<Vec<&ToReset>> = vec![Vec::new(), Vec::new()];
        for f in found.iter().filter(|f| locked.contains(&f.0.name)) {
            waves[usize::from(f.1)].push(f);
        }
        waves[1].reverse();
        for wave in waves {
            for (t, _, undos) in wave {
                if undos.is_empty() {
                    continue;
                }
                let s = hosts.pool.session(t).await?;
                let host = SshHost::new(s);
                for (run, u) in undos {
                    let step = match engine::step_from_journal(u.resource.clone()) {
                        Ok(s) => s,
                        Err(e) => {
                            eprintln!(
                                "{}: {} cannot be read from run {run}'s journal: {e}",
                                t.name, u.resource_id
                            );
                            failed = true;
                            continue;
                        }
                    };
                    let rj = RunJournal::new(
                        run.clone(),
                        Arc::new(Journal::open(&root.join(run))?),
                        cfg.cluster.id.clone(),
                    );
                    let report = crate::engine::apply::revert_all(
                        &host,
                        vec![crate::engine::apply::Revertible {
                            step,
                            before: u.observed.clone(),
                            effects: u.effects.clone(),
                        }],
                        &rj,
                        &sink,
                    )
                    .await;
                    failed |= !report.failed.is_empty();
                }
            }
        }
        printer.finish();
        lock::release_all(&hosts, &locked, &me).await;
        hosts.pool.close_all().await;
        println!(
            "reset of cluster {}: {}",
            cfg.cluster.name,
            if failed {
                "NOT complete; run it again once the hosts are reachable"
            } else {
                "done"
            }
        );
        Ok(exit(!failed))
    })
}
