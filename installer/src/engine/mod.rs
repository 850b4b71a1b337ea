//! Host initialization: survey every host (facts, measurements), guard and preflight them,
//! plan each one's resources, apply the plan in parallel with a journal, and roll back. The
//! engine reports through [`events`]; it never prints.

pub mod apply;
pub mod artifacts;
pub mod events;
pub mod guard;
pub mod journal;
pub mod lock;
pub mod meter;
pub mod plan;
pub mod preflight;
pub mod relay;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use ferry_bootos::baseline::GpuPolicy;
use ferry_bootos::resources::timesync::{self, TimeRole};
use ferry_bootos::{resources_for, DynResource, HostContext, ResourceSpec, SshHost};
use ferry_inventory::facts::Facts;
use ferry_inventory::remote::{self, AgentBinary};
use ferry_inventory::ssh::Pool;
use ferry_inventory::{Sudo, Target};

use crate::cluster::bundle::ClusterBundle;
use crate::cluster::{ClusterStep, Distribution as _};
use crate::config::{InstallConfig, RollbackPolicy};
use apply::{Gates, HostSummary, Outcome, RunJournal, Step};
use artifacts::ArtifactSet;
use events::{one_line, Event, Sink};
use plan::{HostPlan, HostStatus, Plan, PlannedChange};
use preflight::{Finding, HostInput, Measured};

/// The hosts and how to reach them.
pub struct Hosts {
    /// Sessions, bounded by `--parallel`.
    pub pool: Arc<Pool>,
    /// Every host of the inventory.
    pub targets: Vec<Target>,
    /// The agent binary for facts, if given (also what runs the site registry).
    pub agent: Option<Arc<AgentBinary>>,
    /// ferry's home on the jump host (`~/.ferry`): the site registry's CA is kept under it.
    pub home: std::path::PathBuf,
    /// The least the relay must save the jump host's link, in bytes (`--relay-min-mib`).
    pub relay_min_saved: u64,
}

impl Hosts {
    fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }
}

/// What a survey found on one reachable host.
struct Surveyed {
    facts: Facts,
    measured: Measured,
    /// Every journal line the host keeps, when the guard needs them (see
    /// [`guard::needs_journals`]).
    journals: Vec<journal::Record>,
}

async fn survey(pool: &Pool, t: &Target, agent: Option<&AgentBinary>) -> anyhow::Result<Surveyed> {
    let s = pool.session(t).await?;
    let skew = remote::clock_skew(&s)
        .await
        .context("measuring the clock")?;
    // Measured as root; when sudo fails, measured as the login user so the plan can say
    // "not root" rather than "unreachable". Without an agent, the facts come in the same
    // command (one login, sudo and shell per host, not two).
    let (facts, measured) = match agent {
        None => {
            let (facts, out) =
                match remote::shell_facts_after(&s, true, preflight::MEASURE_SCRIPT).await {
                    Ok(r) => r,
                    Err(_) => remote::shell_facts_after(&s, false, preflight::MEASURE_SCRIPT)
                        .await
                        .context("measuring the host and gathering facts")?,
                };
            (facts, preflight::parse_measured(&out, skew))
        }
        Some(_) => {
            let out = match s.exec_ok(preflight::MEASURE_SCRIPT, true).await {
                Ok(out) => out,
                Err(_) => s
                    .exec_ok(preflight::MEASURE_SCRIPT, false)
                    .await
                    .context("measuring the host")?,
            };
            let measured = preflight::parse_measured(&out, skew);
            let as_root = measured.root && !matches!(t.sudo, Sudo::None);
            let (facts, _) = remote::gather_facts(&s, agent, as_root)
                .await
                .context("gathering facts")?;
            (facts, measured)
        }
    };
    let journals = if guard::needs_journals(&facts) {
        journal::read_host_journals(&SshHost::new(s.clone()))
            .await
            .context("reading the host's ferry journals")?
    } else {
        Vec::new()
    };
    Ok(Surveyed {
        facts,
        measured,
        journals,
    })
}

/// The artifacts the bundle gives for these hosts (none without a bundle).
async fn artifacts_for(
    cfg: &InstallConfig,
    cache: artifacts::Cache,
    facts: &[&Facts],
) -> anyhow::Result<ArtifactSet> {
    let Some(bundle) = cfg.bundle.clone() else {
        return Ok(ArtifactSet::default());
    };
    let distros: Vec<String> = facts
        .iter()
        .map(|f| artifacts::distro_of(f))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let gpu = cfg.baseline.gpu == GpuPolicy::Auto && facts.iter().any(|f| !f.gpus.is_empty());
    tokio::task::spawn_blocking(move || artifacts::prepare(&bundle, &cache, &distros, gpu))
        .await
        .context("the bundle task crashed")?
}

/// Every host of the inventory as its survey found it, in the inventory's order: what
/// [`plan`] plans from.
pub struct Surveys(Vec<(String, Result<Surveyed, String>)>);

impl Surveys {
    /// The ferry markers of the reachable hosts that carry one (what
    /// [`guard::resolve_cluster_id`] settles the run's cluster id from).
    pub fn markers(&self) -> BTreeMap<String, ferry_inventory::facts::FerryMarker> {
        let mut out = BTreeMap::new();
        for (name, r) in &self.0 {
            let Ok(s) = r else { continue };
            if let Some(m) = guard::marker_in(&s.facts) {
                out.insert(name.clone(), m);
            }
        }
        out
    }
}

/// Surveys every host (facts, measurements, the journals the guard needs), reporting each
/// one as it is surveyed. Reads only: nothing on any host changes. `forced` (the hosts the
/// guard will let through) is checked against the inventory first.
pub async fn survey_all(
    cfg: &InstallConfig,
    hosts: &Hosts,
    forced: &[String],
    sink: &Sink,
) -> anyhow::Result<Surveys> {
    for f in forced {
        if hosts.target(f).is_none() {
            anyhow::bail!(
                "--force {f}: no host named {f} in {}",
                cfg.inventory_path.display()
            );
        }
    }
    let mut tasks = Vec::new();
    for t in hosts.targets.clone() {
        let (pool, agent, sink) = (hosts.pool.clone(), hosts.agent.clone(), sink.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = pool.permit().await;
            let start = Instant::now();
            let r = survey(&pool, &t, agent.as_deref()).await;
            match &r {
                Ok(_) => sink(Event::HostSurveyed {
                    host: t.name.clone(),
                    seconds: start.elapsed().as_secs_f64(),
                }),
                Err(e) => sink(Event::HostUnreachable {
                    host: t.name.clone(),
                    reason: one_line(e),
                }),
            }
            (t.name, r.map_err(|e| one_line(&e)))
        }));
    }
    let mut surveyed: Vec<(String, Result<Surveyed, String>)> = Vec::new();
    for task in tasks {
        surveyed.push(task.await.context("a host survey crashed")?);
    }
    Ok(Surveys(surveyed))
}

/// Guards and preflights the surveyed hosts, and plans the resources of those that pass.
/// Reads only: nothing on any host changes. `forced` names hosts the guard lets through;
/// `cache` is where bundle items are extracted (only when `cache.fill`: for apply, not plan).
pub async fn plan(
    cfg: &InstallConfig,
    hosts: &Hosts,
    surveys: Surveys,
    forced: &[String],
    cache: artifacts::Cache,
) -> anyhow::Result<Plan> {
    let surveyed = surveys.0;
    let reachable: Vec<&Facts> = surveyed
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().map(|s| &s.facts))
        .collect();
    // Apply fills the cache and makes the site CA; a plan writes neither.
    let make = cache.fill;
    let arts = artifacts_for(cfg, cache, &reachable).await?;
    let cluster_cfg = cfg.clone();
    let cluster_bundle = tokio::task::spawn_blocking(move || ClusterBundle::open(&cluster_cfg))
        .await
        .context("opening the bundle crashed")??;
    let k3s = match cluster_bundle {
        Some(b) => {
            let registry = crate::cluster::registry::prepare(
                cfg,
                &b,
                &hosts.home,
                hosts.agent.as_deref(),
                make,
            )
            .await?;
            Some(crate::cluster::K3s::new(
                cfg,
                Arc::new(b),
                hosts.pool.clone(),
                &hosts.targets,
                registry,
            )?)
        }
        None => None,
    };

    let inputs: Vec<HostInput<'_>> = surveyed
        .iter()
        .filter_map(|(name, r)| {
            let s = r.as_ref().ok()?;
            let member = cfg.members.iter().find(|m| &m.name == name)?;
            Some(HostInput {
                name,
                facts: &s.facts,
                measured: &s.measured,
                server: member.server,
                ours: guard::is_ours(&s.facts, &cfg.cluster.id),
            })
        })
        .collect();
    let skews: Vec<f64> = inputs.iter().map(|h| h.measured.skew).collect();
    let median = preflight::median(&skews);
    let mut across = preflight::check_across(cfg, &inputs);

    let mut host_tasks = Vec::new();
    for (name, r) in &surveyed {
        let s = match r {
            Err(reason) => {
                host_tasks.push(tokio::spawn(std::future::ready(HostPlan {
                    host: name.clone(),
                    status: HostStatus::Unreachable,
                    reasons: vec![format!(
                        "{reason}; fix: check the address, SSH access and credentials (`ferry inventory check`)"
                    )],
                    warnings: Vec::new(),
                    changes: Vec::new(),
                    resources: Vec::new(),
                    cluster: Vec::new(),
                })));
                continue;
            }
            Ok(s) => s,
        };
        let Some(input) = inputs.iter().find(|h| h.name == name.as_str()) else {
            continue;
        };
        let mut findings: Vec<Finding> = Vec::new();
        findings.extend(guard::check(
            name,
            &s.facts,
            &cfg.cluster.id,
            forced.contains(name),
            &guard::own_installs(&s.journals, &cfg.cluster.id),
        ));
        findings.extend(preflight::check_host(cfg, input, median));
        findings.extend(across.remove(name.as_str()).unwrap_or_default());

        let member = cfg
            .members
            .iter()
            .find(|m| &m.name == name)
            .context("a host of the inventory is not a member")?;
        let host_artifacts = arts.for_host(&s.facts);
        if !cfg.baseline.packages.is_empty() && host_artifacts.os_repo.is_none() {
            let list = cfg.baseline.packages.join(", ");
            findings.push(if arts.bundle {
                Finding::block(
                    format!(
                        "packages {list} need a repository for {} and the bundle has {}",
                        artifacts::distro_of(&s.facts),
                        if arts.distros.is_empty() { "none".to_string() } else { arts.distros.join(", ") }
                    ),
                    "build a bundle with this distribution's os-packages",
                )
            } else {
                Finding::block(
                    format!("packages {list} need a bundle"),
                    "set `bundle` and `bundle-pubkey` in the answer file, or empty baseline.packages",
                )
            });
        }
        let ctx = HostContext {
            member,
            facts: &s.facts,
            members: &cfg.members,
            time_source: cfg.time_source(),
            artifacts: &host_artifacts,
            cluster_id: &cfg.cluster.id,
            cluster_name: &cfg.cluster.name,
        };
        let resources = resources_for(&cfg.baseline, &ctx);
        let cluster_steps: Vec<ClusterStep> = match &k3s {
            Some(k) => {
                for clash in crate::cluster::network_clashes(cfg, &s.facts) {
                    findings.push(Finding::block(
                        clash,
                        "change the answer file's [cluster] networks",
                    ));
                }
                k.steps(member)
            }
            None => Vec::new(),
        };
        for r in &resources {
            if let Err(why) = r.as_dyn().supports(&s.facts) {
                findings.push(Finding::block(
                    why,
                    "use a supported OS, or turn this setting off in [baseline]",
                ));
            }
        }
        let (blocking, warnings): (Vec<Finding>, Vec<Finding>) =
            findings.into_iter().partition(|f| f.blocking);
        let warnings: Vec<String> = warnings.iter().map(Finding::line).collect();
        if !blocking.is_empty() {
            host_tasks.push(tokio::spawn(std::future::ready(HostPlan {
                host: name.clone(),
                status: HostStatus::Blocked,
                reasons: blocking.iter().map(Finding::line).collect(),
                warnings,
                changes: Vec::new(),
                resources: Vec::new(),
                cluster: Vec::new(),
            })));
            continue;
        }
        let Some(t) = hosts.target(name).cloned() else {
            continue;
        };
        let pool = hosts.pool.clone();
        let name = name.clone();
        host_tasks.push(tokio::spawn(async move {
            let _permit = pool.permit().await;
            let all: Vec<&dyn DynResource> = resources
                .iter()
                .map(|r| r.as_dyn())
                .chain(cluster_steps.iter().map(|c| c.as_dyn()))
                .collect();
            let observed = observe_all(&pool, &t, &all).await;
            drop(all);
            match observed {
                Ok(changes) => HostPlan {
                    host: name,
                    status: if changes.is_empty() {
                        HostStatus::NoChanges
                    } else {
                        HostStatus::Ready
                    },
                    reasons: Vec::new(),
                    warnings,
                    changes,
                    resources,
                    cluster: cluster_steps,
                },
                Err(e) => HostPlan {
                    host: name,
                    status: HostStatus::Blocked,
                    reasons: vec![format!(
                        "{}; fix: see the host's log in the run directory",
                        one_line(&e)
                    )],
                    warnings,
                    changes: Vec::new(),
                    resources: Vec::new(),
                    cluster: Vec::new(),
                },
            }
        }));
    }
    let mut out = Vec::new();
    for t in host_tasks {
        out.push(t.await.context("planning a host crashed")?);
    }
    let mut plan = Plan {
        cluster: k3s.as_ref().map(|k| k.runtime()),
        cluster_id: cfg.cluster.id.clone(),
        site: Default::default(),
        hosts: out,
    };
    if let Some(source) = cfg.time_source() {
        hold_followers_of_a_lost_source(&mut plan, &source.name);
    }
    if k3s.is_some() {
        hold_joiners_of_a_lost_first_server(&mut plan, &crate::cluster::Topology::of(&cfg.members));
    }
    Ok(plan)
}

/// `blocked` or `unreachable` when `host` will not be set up by this plan.
fn lost(plan: &Plan, host: &str) -> Option<&'static str> {
    plan.hosts
        .iter()
        .find(|hp| hp.host == host)
        .and_then(|hp| match hp.status {
            HostStatus::Blocked => Some("blocked"),
            HostStatus::Unreachable => Some("unreachable"),
            HostStatus::Ready | HostStatus::NoChanges => None,
        })
}

/// When the time source will not be set up (blocked or unreachable), a host whose time sync
/// would change is blocked too: its check after the change needs the source serving, so its
/// apply would fail there and roll back everything it did before. A follower already synced
/// (no time sync change) goes ahead.
fn hold_followers_of_a_lost_source(plan: &mut Plan, source: &str) {
    let Some(lost) = lost(plan, source) else {
        return;
    };
    for hp in &mut plan.hosts {
        let follows = matches!(time_role(hp), Some(TimeRole::Follower { .. }));
        let changes_time = hp.changes.iter().any(|c| c.resource == timesync::ID);
        if hp.status == HostStatus::Ready && follows && changes_time {
            hp.status = HostStatus::Blocked;
            hp.reasons.push(format!(
                "its time source {source} is {lost}, and this host's time sync needs it serving; \
                 fix: make {source} ready first (see its reasons), or set baseline.time.source \
                 to another host"
            ));
            hp.resources.clear();
        }
    }
}

/// When the first server will not be set up (blocked or unreachable), every other host whose
/// cluster steps have changes is blocked too: joining needs the first server serving.
fn hold_joiners_of_a_lost_first_server(plan: &mut Plan, topology: &crate::cluster::Topology) {
    let first = topology.first();
    let Some(lost) = lost(plan, first) else {
        return;
    };
    for hp in &mut plan.hosts {
        let joins = hp.changes.iter().any(|c| {
            c.resource == crate::engine::guard::K3S_AGENT_STEP
                || c.resource == crate::engine::guard::K3S_SERVER_STEP
        });
        if hp.status == HostStatus::Ready && joins && hp.host != first {
            hp.status = HostStatus::Blocked;
            hp.reasons.push(format!(
                "the first server {first} is {lost}, and joining the cluster needs it serving; \
                 fix: make {first} ready first (see its reasons)"
            ));
            hp.resources.clear();
            hp.cluster.clear();
        }
    }
}

/// Observes every resource and returns the changes (reads only).
async fn observe_all(
    pool: &Pool,
    t: &Target,
    resources: &[&dyn DynResource],
) -> anyhow::Result<Vec<PlannedChange>> {
    let ssh = SshHost::new(pool.session(t).await?);
    // The files every resource reads and the probes it runs, in one command rather than one
    // each (a plan only reads, so they stay as read).
    let reads: Vec<String> = resources.iter().flat_map(|r| r.reads()).collect();
    let probes: Vec<String> = resources.iter().flat_map(|r| r.probes()).collect();
    let host = ferry_bootos::Prefetched::new(&ssh, &reads, &probes).await;
    let mut out = Vec::new();
    for r in resources {
        let id = r.id();
        let observed = r
            .observe(&host)
            .await
            .with_context(|| format!("observing {id}"))?;
        for c in r.diff(&observed)? {
            out.push(PlannedChange {
                resource: id.clone(),
                what: c.what,
                from: c.from,
                to: c.to,
            });
        }
    }
    Ok(out)
}

/// The host's part in the site's time sync, when it has one.
fn time_role(hp: &HostPlan) -> Option<&TimeRole> {
    hp.resources.iter().find_map(|r| r.time_role())
}

/// The gates that make followers' time sync wait for the time source's, when the source has
/// something to apply (a source with no changes is already serving; followers of one that is
/// blocked or unreachable are blocked in the plan, see [`hold_followers_of_a_lost_source`]).
fn time_gates(plan: &Plan) -> BTreeMap<String, Gates> {
    let ready = |hp: &&HostPlan| hp.status == HostStatus::Ready;
    let mut out = BTreeMap::new();
    let Some(source) = plan
        .hosts
        .iter()
        .filter(ready)
        .find(|hp| matches!(time_role(hp), Some(TimeRole::Source { .. })))
    else {
        return out;
    };
    let (tx, rx) = Gates::channel();
    let step = timesync::ID.to_string();
    for hp in plan.hosts.iter().filter(ready) {
        if matches!(time_role(hp), Some(TimeRole::Follower { .. })) {
            out.insert(
                hp.host.clone(),
                Gates {
                    wait: vec![(
                        step.clone(),
                        format!("the time source {} to serve", source.host),
                        rx.clone(),
                    )],
                    open: Vec::new(),
                },
            );
        }
    }
    out.insert(
        source.host.clone(),
        Gates {
            wait: Vec::new(),
            open: vec![(step, tx)],
        },
    );
    out
}

/// `rollback = "run"`: a host failed (and undid its own changes), so every other host undoes
/// this run's changes too, from the run's journal: the site ends as it was before the run.
async fn roll_back_the_run(
    hosts: &Hosts,
    summaries: &mut [HostSummary],
    journal: &Arc<RunJournal>,
    sink: &Sink,
) -> anyhow::Result<()> {
    let failed: Vec<String> = summaries
        .iter()
        .filter(|s| !s.outcome.success())
        .map(|s| s.host.clone())
        .collect();
    let records = journal::read(journal.local.path())?;
    let others: Vec<String> = summaries
        .iter()
        .filter(|s| s.outcome == Outcome::Ok)
        .map(|s| s.host.clone())
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let pending = journal::pending_reverts(&records, &others);
    let reports = rollback(hosts, pending, journal.clone(), sink).await?;
    for r in reports {
        if let Some(s) = summaries.iter_mut().find(|s| s.host == r.host) {
            let why = format!(
                "rolled back with the run (rollback = \"run\") because {} failed",
                failed.join(", ")
            );
            if r.failed.is_empty() {
                s.outcome = Outcome::RolledBack;
                s.changes = 0;
                s.reason = Some(why);
            } else {
                s.outcome = Outcome::RollbackIncomplete;
                s.reason = Some(format!("{why}; not reverted: {}", r.failed.join(", ")));
            }
        }
    }
    Ok(())
}

/// The gates of the cluster phase: the servers' k3s steps one after another in inventory order
/// (the first initializes the cluster), then every agent's in parallel once the last server's
/// has passed. A host with nothing to apply (already in the cluster) holds nobody; a host
/// that fails opens its gate too, and the next one's join then fails on its own check.
fn cluster_gates(plan: &Plan) -> BTreeMap<String, Gates> {
    let mut out: BTreeMap<String, Gates> = BTreeMap::new();
    let ready = |hp: &&HostPlan| hp.status == HostStatus::Ready && !hp.cluster.is_empty();
    let node = |hp: &HostPlan| {
        hp.cluster
            .iter()
            .find_map(|c| c.node())
            .map(|n| (n.role, n.role.step_id().to_string()))
    };
    let mut prev: Option<(String, tokio::sync::watch::Receiver<bool>)> = None;
    for hp in plan.hosts.iter().filter(ready) {
        let Some((crate::cluster::k3s::NodeRole::Server, step)) = node(hp) else {
            continue;
        };
        let g = out.entry(hp.host.clone()).or_default();
        if let Some((by, rx)) = &prev {
            g.wait.push((
                step.clone(),
                format!("server {by} to join the cluster"),
                rx.clone(),
            ));
        }
        let (tx, rx) = Gates::channel();
        g.open.push((step, tx));
        prev = Some((hp.host.clone(), rx));
    }
    // The site registry: every other node pulls once the first server's registry serves (a
    // first server with nothing to change serves already).
    if let Some(first) = plan.hosts.iter().filter(ready).find(|hp| {
        hp.cluster
            .iter()
            .any(|c| matches!(c, ClusterStep::Registry(_)))
    }) {
        let (tx, rx) = Gates::channel();
        let step = crate::cluster::registry::SERVER_ID.to_string();
        out.entry(first.host.clone())
            .or_default()
            .open
            .push((step, tx));
        for hp in plan.hosts.iter().filter(ready) {
            if hp.host != first.host && hp.cluster.iter().any(ClusterStep::pulls) {
                out.entry(hp.host.clone()).or_default().wait.push((
                    crate::cluster::images::ID.to_string(),
                    format!("the registry on {} to serve", first.host),
                    rx.clone(),
                ));
            }
        }
    }
    let Some((by, rx)) = prev else {
        return out;
    };
    for hp in plan.hosts.iter().filter(ready) {
        if let Some((crate::cluster::k3s::NodeRole::Agent, step)) = node(hp) {
            out.entry(hp.host.clone()).or_default().wait.push((
                step,
                format!("server {by} to serve"),
                rx.clone(),
            ));
        }
    }
    out
}

/// Applies the plan: every ready host in parallel (bounded by the pool), each on its own, so
/// a slow or failed host holds no other. Blocked, unreachable and unchanged hosts are only
/// summarized.
pub async fn apply(
    plan: &Plan,
    hosts: &Hosts,
    journal: Arc<RunJournal>,
    policy: RollbackPolicy,
    sink: &Sink,
) -> anyhow::Result<Vec<HostSummary>> {
    let no_rollback = policy == RollbackPolicy::Never;
    let mut gates = time_gates(plan);
    for (host, g) in cluster_gates(plan) {
        let e = gates.entry(host).or_default();
        e.wait.extend(g.wait);
        e.open.extend(g.open);
    }
    // The time source first: it takes its slot before any follower can, so with fewer slots
    // than hosts no follower holds one while it waits for the source.
    let mut order: Vec<(usize, &HostPlan)> = plan.hosts.iter().enumerate().collect();
    order.sort_by_key(|(_, hp)| gates.get(&hp.host).is_none_or(|g| g.open.is_empty()));
    // Files many hosts' steps upload leave the jump host once, host to host, before them.
    let relayed = relay::prestage(plan, hosts, sink).await;
    let mut tasks = Vec::new();
    for (index, hp) in order {
        let fixed = |outcome: Outcome, reason: Option<String>| HostSummary {
            host: hp.host.clone(),
            outcome,
            changes: 0,
            seconds: 0.0,
            reason,
        };
        let summary = match hp.status {
            HostStatus::Blocked => fixed(Outcome::Blocked, Some(hp.reasons.join("; "))),
            HostStatus::Unreachable => fixed(Outcome::Unreachable, Some(hp.reasons.join("; "))),
            HostStatus::NoChanges => fixed(Outcome::NoChanges, None),
            HostStatus::Ready => {
                let Some(t) = hosts.target(&hp.host).cloned() else {
                    continue;
                };
                let steps: Vec<Arc<dyn Step>> = hp
                    .resources
                    .iter()
                    .map(|r| Arc::new(r.clone()) as Arc<dyn Step>)
                    .chain(
                        hp.cluster
                            .iter()
                            .map(|c| Arc::new(c.clone()) as Arc<dyn Step>),
                    )
                    .collect();
                let (pool, journal, sink) = (hosts.pool.clone(), journal.clone(), sink.clone());
                let host_gates = gates.remove(&hp.host).unwrap_or_default();
                let early = if host_gates.open.is_empty() {
                    None
                } else {
                    Some(pool.permit().await)
                };
                tasks.push((
                    index,
                    tokio::spawn(async move {
                        let _permit = match early {
                            Some(p) => p,
                            None => pool.permit().await,
                        };
                        let start = Instant::now();
                        match pool.session(&t).await {
                            Ok(s) => {
                                let host = SshHost::new(s);
                                apply::apply_host(
                                    &host,
                                    &steps,
                                    host_gates,
                                    &journal,
                                    no_rollback,
                                    &sink,
                                )
                                .await
                            }
                            Err(e) => HostSummary {
                                host: t.name.clone(),
                                outcome: Outcome::Unreachable,
                                changes: 0,
                                seconds: start.elapsed().as_secs_f64(),
                                reason: Some(one_line(&e)),
                            },
                        }
                    }),
                ));
                continue;
            }
        };
        tasks.push((index, tokio::spawn(std::future::ready(summary))));
    }
    // Summaries in inventory order, whatever order the hosts started in.
    tasks.sort_by_key(|(index, _)| *index);
    let mut out = Vec::new();
    for (_, t) in tasks {
        out.push(t.await.context("applying a host crashed")?);
    }
    relay::clean(hosts, &relayed).await;
    if policy == RollbackPolicy::Run && out.iter().any(|s| !s.outcome.success()) {
        roll_back_the_run(hosts, &mut out, &journal, sink).await?;
    }
    Ok(out)
}

/// A step as a journal recorded it: a baseline resource or a cluster step.
pub fn step_from_journal(v: serde_json::Value) -> Result<Arc<dyn Step>, serde_json::Error> {
    if v.get("cluster-step").is_some() {
        return serde_json::from_value::<ClusterStep>(v).map(|c| Arc::new(c) as Arc<dyn Step>);
    }
    serde_json::from_value::<ResourceSpec>(v).map(|r| Arc::new(r) as Arc<dyn Step>)
}

/// One host's rollback result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RollbackSummary {
    /// The host.
    pub host: String,
    /// Changes reverted.
    pub reverted: usize,
    /// Resources that could not be reverted (or the host not reached: all of them).
    pub failed: Vec<String>,
    /// Why, when something failed.
    pub reason: Option<String>,
    /// What was left as found because it changed after the run (`resource: what: why`).
    pub kept: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// Reverts `pending` (per host, newest first, from [`journal::pending_reverts`]) on every
/// host in parallel, journaling each revert.
pub async fn rollback(
    hosts: &Hosts,
    pending: BTreeMap<String, Vec<journal::Undo>>,
    journal: Arc<RunJournal>,
    sink: &Sink,
) -> anyhow::Result<Vec<RollbackSummary>> {
    let mut tasks = Vec::new();
    for (name, undos) in pending {
        let ids: Vec<String> = undos.iter().map(|r| r.resource_id.clone()).collect();
        let Some(t) = hosts.target(&name).cloned() else {
            tasks.push(tokio::spawn(std::future::ready(RollbackSummary {
                host: name.clone(),
                reverted: 0,
                failed: ids,
                reason: Some(format!(
                    "{name} is no longer in the inventory; add it back to roll it back"
                )),
                kept: Vec::new(),
                seconds: 0.0,
            })));
            continue;
        };
        let mut items: Vec<apply::Revertible> = Vec::new();
        let mut unreadable = Vec::new();
        for u in undos {
            match step_from_journal(u.resource) {
                Ok(step) => items.push(apply::Revertible {
                    step,
                    before: u.observed,
                    effects: u.effects,
                }),
                Err(e) => unreadable.push(format!("{} ({e})", u.resource_id)),
            }
        }
        let (pool, journal, sink) = (hosts.pool.clone(), journal.clone(), sink.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = pool.permit().await;
            let start = Instant::now();
            let count = items.len();
            let mut summary = RollbackSummary {
                host: t.name.clone(),
                reverted: 0,
                failed: Vec::new(),
                reason: None,
                kept: Vec::new(),
                seconds: 0.0,
            };
            match pool.session(&t).await {
                Ok(s) => {
                    let host = SshHost::new(s);
                    let report = apply::revert_all(&host, items, &journal, &sink).await;
                    summary.reverted = count - report.failed.len();
                    summary.failed = report.failed;
                    summary.kept = report.kept;
                }
                Err(e) => {
                    summary.failed = ids;
                    summary.reason = Some(one_line(&e));
                }
            }
            if !unreadable.is_empty() {
                summary.reason = Some(format!(
                    "journal entries this ferry cannot read: {}",
                    unreadable.join(", ")
                ));
                summary.failed.extend(unreadable);
            }
            summary.seconds = (start.elapsed().as_secs_f64() * 100.0).round() / 100.0;
            summary
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.context("rolling back a host crashed")?);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Fixtures shared by the engine's unit tests.
    #![allow(clippy::unwrap_used)]

    use crate::config::InstallConfig;

    /// A config for two hosts `a` (agent) and `b` (server), all defaults.
    pub fn config() -> InstallConfig {
        let d = tempfile::tempdir().unwrap();
        // Only its presence is checked offline.
        std::fs::write(d.path().join("k"), "a private key\n").unwrap();
        std::fs::write(
            d.path().join("inventory.toml"),
            "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nuser = \"root\"\nkey = \"k\"\nroles = [\"agent\"]\n\n\
             [[hosts]]\nname = \"b\"\naddress = \"10.0.0.2\"\nuser = \"root\"\nkey = \"k\"\nroles = [\"server\"]\n",
        )
        .unwrap();
        let p = d.path().join("site.toml");
        std::fs::write(
            &p,
            "inventory = \"inventory.toml\"\n[cluster]\nname = \"t\"\n",
        )
        .unwrap();
        InstallConfig::load(&p).unwrap()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ferry_bootos::resources::software::SoftwareResource;
    use ferry_bootos::resources::timesync::{TimeSync, CHECK_TIMEOUT_SECS};

    use super::*;

    fn host(name: &str, status: HostStatus, role: TimeRole) -> HostPlan {
        HostPlan {
            host: name.into(),
            status,
            reasons: Vec::new(),
            warnings: Vec::new(),
            changes: Vec::new(),
            resources: vec![ResourceSpec::Software(SoftwareResource::TimeSync(
                TimeSync {
                    role,
                    max_skew_ms: 500,
                    check_timeout_secs: CHECK_TIMEOUT_SECS,
                },
            ))],
            cluster: Vec::new(),
        }
    }

    fn plan(source: HostStatus) -> Plan {
        let source_role = TimeRole::Source {
            allow: vec!["10.0.0.2".into(), "10.0.0.3".into()],
            upstream: Vec::new(),
        };
        let follower = || TimeRole::Follower {
            source: "10.0.0.1".into(),
        };
        Plan {
            cluster: None,
            cluster_id: "ferry-test".into(),
            site: Default::default(),
            hosts: vec![
                host("f1", HostStatus::Ready, follower()),
                host("src", source, source_role),
                host("f2", HostStatus::NoChanges, follower()),
                host("f3", HostStatus::Ready, follower()),
            ],
        }
    }

    #[test]
    fn followers_with_changes_wait_for_a_source_with_changes() {
        let g = time_gates(&plan(HostStatus::Ready));
        assert_eq!(g.keys().collect::<Vec<_>>(), ["f1", "f3", "src"]);
        assert_eq!(g["src"].open.len(), 1);
        assert!(g["src"].wait.is_empty());
        for f in ["f1", "f3"] {
            let (step, on, _) = &g[f].wait[0];
            assert_eq!(
                (step.as_str(), on.as_str()),
                ("timesync", "the time source src to serve")
            );
        }
    }

    fn change(resource: &str) -> plan::PlannedChange {
        plan::PlannedChange {
            resource: resource.into(),
            what: "a setting".into(),
            from: "old".into(),
            to: "new".into(),
        }
    }

    #[test]
    fn followers_that_would_change_time_sync_are_held_when_the_source_is_lost() {
        for status in [HostStatus::Blocked, HostStatus::Unreachable] {
            let mut p = plan(status);
            p.hosts[0].changes.push(change("timesync"));
            p.hosts[3].changes.push(change("sysctl"));
            hold_followers_of_a_lost_source(&mut p, "src");
            let f1 = &p.hosts[0];
            assert_eq!(f1.status, HostStatus::Blocked, "{status:?}");
            assert!(
                f1.reasons[0].starts_with("its time source src is "),
                "{:?}",
                f1.reasons
            );
            assert!(f1.resources.is_empty());
            assert_eq!(p.hosts[2].status, HostStatus::NoChanges);
            assert_eq!(
                p.hosts[3].status,
                HostStatus::Ready,
                "already synced: goes ahead"
            );
        }
        let mut p = plan(HostStatus::Ready);
        p.hosts[0].changes.push(change("timesync"));
        hold_followers_of_a_lost_source(&mut p, "src");
        assert_eq!(p.hosts[0].status, HostStatus::Ready);
    }

    #[test]
    fn nobody_waits_for_a_source_that_has_nothing_to_apply_or_cannot_be_applied() {
        for status in [
            HostStatus::NoChanges,
            HostStatus::Blocked,
            HostStatus::Unreachable,
        ] {
            assert!(time_gates(&plan(status)).is_empty(), "{status:?}");
        }
    }
}
