//! Starts the jobs the app queues, each in the background, with results sent back as
//! messages: host checks, bundle verification, the plan, the install. Plan and install go
//! through the very functions `ferry plan` and `ferry apply` use, on the saved answer file.

use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_bundle::{Bundle, PublicKey, ReadEvent};
use ferry_inventory::ssh::{KeyNotice, Pool};
use ferry_inventory::Inventory;

use super::app::{App, AppInfo, BundleInfo, BundleState, Job, Msg, RunEnd};
use super::checks::{fact_problems, fingerprint, CheckReport, FactsRow};
use super::draft::Draft;
use crate::cmdline::host::{ApplyArgs, PlanArgs};
use crate::cmdline::install::InstallArgs;
use crate::cmdline::ReachArgs;
use crate::commands::host::{apply_with, plan_with, render_cluster, Front};
use crate::commands::inventory::check_host;
use crate::commands::reach::{one_off_run_dir, session_options};
use crate::config::{InstallConfig, PreflightConfig};
use crate::engine::events::{one_line, Event};

/// Runs jobs on the runtime, answering on `tx`.
pub struct Worker {
    handle: tokio::runtime::Handle,
    tx: Sender<Msg>,
    reach: ReachArgs,
    force: Vec<String>,
    no_rollback: bool,
}

impl Worker {
    /// A worker for the wizard started with `args`.
    pub fn new(handle: tokio::runtime::Handle, tx: Sender<Msg>, args: &InstallArgs) -> Worker {
        Worker {
            handle,
            tx,
            reach: args.reach.clone(),
            force: args.force.clone(),
            no_rollback: args.no_rollback,
        }
    }

    /// Starts every queued job.
    pub fn start(&self, app: &mut App, dir: &Path) {
        for job in std::mem::take(&mut app.model.jobs) {
            match job {
                Job::Remember => {
                    if let Err(e) = super::remember(dir, app) {
                        app.model.status = Some(format!("{e:#}"));
                    }
                }
                Job::CheckHosts(names) => self.check(&app.model.draft, names),
                Job::VerifyBundle => self.verify(&app.model.draft),
                Job::Plan => {
                    if let Some(cfg) = self.saved_config(app) {
                        self.plan(cfg, &app.model.draft);
                    }
                }
                Job::Install => {
                    if let Some(cfg) = self.saved_config(app) {
                        self.install(cfg, &app.model.draft);
                    }
                }
            }
        }
    }

    /// Saves the draft and loads it back as `ferry apply --answers` would.
    fn saved_config(&self, app: &mut App) -> Option<InstallConfig> {
        let m = &mut app.model;
        if !m.save() {
            let _ = self
                .tx
                .send(Msg::Planned(Err(m.status.clone().unwrap_or_default())));
            return None;
        }
        match InstallConfig::load(&m.draft.answers_path) {
            Ok(cfg) => Some(cfg),
            Err(e) => {
                let e = format!("{e:#}");
                let _ = self.tx.send(Msg::Planned(Err(e.clone())));
                let _ = self.tx.send(Msg::RunEnded(Err(e)));
                None
            }
        }
    }

    fn front(
        &self,
        draft: &Draft,
        on_event: impl Fn(Event) -> Option<Msg> + Send + Sync + 'static,
    ) -> Front {
        let tx = self.tx.clone();
        let notices = self.tx.clone();
        let tx = std::sync::Mutex::new(tx);
        let notices = std::sync::Mutex::new(notices);
        Front {
            sink: Arc::new(move |e| {
                if let (Some(msg), Ok(tx)) = (on_event(e), tx.lock()) {
                    let _ = tx.send(msg);
                }
            }),
            secrets: Arc::new(draft.secret_source()),
            notice: KeyNotice::new(move |k| {
                if let Ok(tx) = notices.lock() {
                    let _ = tx.send(Msg::Notice(k.message()));
                }
            }),
        }
    }

    fn plan(&self, cfg: InstallConfig, draft: &Draft) {
        let front = self.front(draft, |e| match e {
            Event::HostSurveyed { .. } | Event::HostUnreachable { .. } => Some(Msg::PlanProgress),
            _ => None,
        });
        let args = PlanArgs {
            answers: draft.answers_path.clone(),
            json: false,
            force: self.force.clone(),
            reach: self.reach.clone(),
        };
        let tx = self.tx.clone();
        self.handle.spawn(async move {
            let r = plan_with(cfg, &args, &front)
                .await
                .map_err(|e| format!("{e:#}"));
            let _ = tx.send(Msg::Planned(r));
        });
    }

    fn install(&self, cfg: InstallConfig, draft: &Draft) {
        let front = self.front(draft, |e| Some(Msg::Engine(e)));
        let args = ApplyArgs {
            answers: draft.answers_path.clone(),
            no_rollback: self.no_rollback,
            force: self.force.clone(),
            json: false,
            break_lock: None,
            reach: self.reach.clone(),
        };
        let tx = self.tx.clone();
        self.handle.spawn(async move {
            let started = std::sync::Mutex::new(tx.clone());
            let on_plan = move |id: &str, dir: &Path, plan: &crate::engine::plan::Plan| {
                if let Ok(tx) = started.lock() {
                    let _ = tx.send(Msg::RunStarted(
                        id.to_string(),
                        Box::new(plan.clone()),
                        dir.to_path_buf(),
                    ));
                }
            };
            let r = apply_with(cfg, &args, &front, &on_plan)
                .await
                .map(|run| RunEnd {
                    cluster: run.cluster.as_ref().map(render_cluster),
                    kubeconfig: run.cluster.and_then(|c| c.kubeconfig),
                    apps: run.apps.map(|a| a.render()),
                    summaries: run.summaries,
                })
                .map_err(|e| format!("{e:#}"));
            let _ = tx.send(Msg::RunEnded(r));
        });
    }

    fn verify(&self, draft: &Draft) {
        let bundle = draft.base().join(draft.get_text("bundle"));
        let key_path = draft.base().join(draft.get_text("bundle-pubkey"));
        let tx = self.tx.clone();
        self.handle.spawn_blocking(move || {
            let run = || -> anyhow::Result<BundleInfo> {
                let key = PublicKey::load(&key_path)?;
                let b = Bundle::open(&bundle, Some(&key))?;
                let (mut total, mut done) = (0u64, 0u64);
                let mut last = Instant::now();
                let report = b.verify(false, &mut |e| match e {
                    ReadEvent::Started { bytes } => total = bytes,
                    ReadEvent::Bytes { bytes } => {
                        done += bytes;
                        if last.elapsed() > Duration::from_millis(100) && total > 0 {
                            last = Instant::now();
                            let _ = tx.send(Msg::Bundle(BundleState::Verifying(
                                done as f64 / total as f64,
                            )));
                        }
                    }
                    ReadEvent::ItemExtracted { .. } => {}
                })?;
                // The packages as `ferry apply` reads them: each checked against the key.
                let apps = crate::apps::site::bundle_packages(&bundle, &key, &key_path)?
                    .iter()
                    .map(AppInfo::of)
                    .collect();
                let m = b.manifest();
                Ok(BundleInfo {
                    apps,
                    title: format!("{} {}", m.name, m.version),
                    key_id: report.key_id,
                    bytes: report.bytes,
                    items: m
                        .items
                        .iter()
                        .map(|i| {
                            (
                                i.name.clone(),
                                i.kind.label().to_string(),
                                i.version.clone().unwrap_or_else(|| "-".into()),
                                i.size(),
                            )
                        })
                        .collect(),
                })
            };
            let state = match run() {
                Ok(info) => BundleState::Verified(info),
                Err(e) => BundleState::Failed(one_line(&e)),
            };
            let _ = tx.send(Msg::Bundle(state));
        });
    }

    fn check(&self, draft: &Draft, names: Vec<String>) {
        let hosts: Vec<_> = draft
            .hosts()
            .iter()
            .filter(|h| names.contains(&h.name))
            .cloned()
            .collect();
        let raw = draft.inventory.clone();
        let inventory_path = draft.inventory_path();
        let secrets = draft.secret_source();
        let preflight = preflight_of(draft);
        let reach = self.reach.clone();
        let tx = self.tx.clone();
        self.handle.spawn(async move {
            let fail = |h: &ferry_inventory::model::raw::RawHost, why: String| CheckReport {
                host: h.name.clone(),
                fingerprint: fingerprint(h),
                reachable: false,
                facts: None,
                skew: None,
                problems: vec![why],
                components: None,
            };
            let mut inv = match Inventory::try_from(raw) {
                Ok(inv) => inv,
                Err(p) => {
                    for h in &hosts {
                        let _ = tx.send(Msg::Checked(fail(
                            h,
                            format!("{p}; fix: the message names what to change on this screen"),
                        )));
                    }
                    return;
                }
            };
            if let Some(dir) = inventory_path.parent() {
                inv.set_base_dir(dir);
            }
            let opts = one_off_run_dir(&reach, "wizard-check")
                .and_then(|d| session_options(&reach, Some(d)));
            let mut opts = match opts {
                Ok(o) => o,
                Err(e) => {
                    for h in &hosts {
                        let _ = tx.send(Msg::Checked(fail(h, format!("{e:#}"))));
                    }
                    return;
                }
            };
            let notices = std::sync::Mutex::new(tx.clone());
            opts.on_new_host_key = KeyNotice::new(move |k| {
                if let Ok(tx) = notices.lock() {
                    let _ = tx.send(Msg::Notice(k.message()));
                }
            });
            let pool = Arc::new(Pool::with_limit(opts, reach.parallel.max(1)));
            let mut tasks = Vec::new();
            for h in hosts {
                let target = inv.target(&h.name, &secrets);
                let (pool, tx, preflight) = (pool.clone(), tx.clone(), preflight.clone());
                let max_skew = preflight.max_clock_skew_secs;
                tasks.push(tokio::spawn(async move {
                    let t = match target {
                        Ok(t) => t,
                        Err(e) => {
                            let _ = tx.send(Msg::Checked(fail(
                                &h,
                                format!("{e}; fix: edit the host's login (Enter)"),
                            )));
                            return;
                        }
                    };
                    let r = check_host(pool, t, None, max_skew).await;
                    let facts = r.facts.as_ref().map(FactsRow::of);
                    let components = r
                        .facts
                        .as_ref()
                        .map(|f| Box::new(crate::site_license::components(f, &h.name)));
                    let mut problems = Vec::new();
                    if let Some(reason) = &r.reason {
                        // ferry's reasons often say what to check already.
                        problems.push(if r.reachable || reason.contains("; ") {
                            reason.clone()
                        } else {
                            format!(
                                "{reason}; fix: check the address, port, user and login (Enter edits the host)"
                            )
                        });
                    }
                    if let Some(f) = &facts {
                        problems.extend(fact_problems(f, &preflight));
                    }
                    let _ = tx.send(Msg::Checked(CheckReport {
                        host: h.name.clone(),
                        fingerprint: fingerprint(&h),
                        reachable: r.reachable,
                        facts,
                        skew: r.clock_skew_seconds,
                        problems,
                        components,
                    }));
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            pool.close_all().await;
        });
    }
}

/// The preflight thresholds the draft sets (defaults for what it leaves out).
fn preflight_of(d: &Draft) -> PreflightConfig {
    let mut p = PreflightConfig::default();
    let int = |k: &str| {
        d.get(k)
            .and_then(|v| v.as_integer())
            .and_then(|v| u64::try_from(v).ok())
    };
    if let Some(v) = int("preflight.min-cpus") {
        p.min_cpus = v as usize;
    }
    if let Some(v) = int("preflight.min-memory-mib") {
        p.min_memory_mib = v;
    }
    if let Some(v) = int("preflight.min-disk-gib") {
        p.min_disk_gib = v;
    }
    if let Some(v) = d
        .get("preflight.max-clock-skew-secs")
        .and_then(|v| v.as_float().or(v.as_integer().map(|i| i as f64)))
    {
        p.max_clock_skew_secs = v;
    }
    p
}
