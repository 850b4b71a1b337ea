//! The install's progress as hosts x phases, built only from the engine's typed events and its
//! plan and summaries: what the run screen draws. A new phase of the engine is a new column
//! as soon as its resources report; [`phase_of`] is the one place that names them.

use std::collections::HashMap;
use std::path::PathBuf;

use super::app::RunEnd;
use crate::engine::apply::Outcome;
use crate::engine::events::Event;
use crate::engine::plan::{HostStatus, Plan};

/// Lines of log kept per host (the newest).
const LOG_LINES: usize = 200;

/// The phase a resource belongs to. Baseline resources are bootos's ids; later phases name
/// their steps with their own prefix.
pub fn phase_of(resource: &str) -> &'static str {
    const BASELINE: &[&str] = &[
        "hostname",
        "hosts-file",
        "sysctl",
        "modules",
        "swap",
        "dns",
        "limits",
        "default-route",
        "timesync",
        "os-repo",
        "packages",
        "containerd",
        "gpu-driver",
        "cluster-marker",
    ];
    let head = resource.split([':', '/']).next().unwrap_or(resource);
    if BASELINE.contains(&head) {
        "baseline"
    } else if head.starts_with("k3s") || head.starts_with("kube") || head.starts_with("cluster") {
        "cluster"
    } else if head.starts_with("image") {
        "images"
    } else if head.starts_with("app") {
        "apps"
    } else if head.starts_with("license") {
        "license"
    } else if head.starts_with("health") {
        "health"
    } else {
        "other"
    }
}

/// One host x phase.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cell {
    /// Not started.
    #[default]
    Pending,
    /// Working on this step.
    Running(String),
    /// Finished.
    Done,
    /// Nothing to change.
    Unchanged,
    /// Failed at this step.
    Failed(String),
    /// Rolled back (the count so far).
    RolledBack(usize),
    /// Not run on this host: blocked, unreachable.
    Skipped,
}

/// One host's row.
#[derive(Debug, Clone, Default)]
pub struct HostRow {
    /// The host.
    pub name: String,
    /// Cells, one per phase of [`Board::phases`].
    pub cells: Vec<Cell>,
    /// The host's own lines, newest last.
    pub log: Vec<String>,
    /// Why it failed or was left out (one line).
    pub reason: Option<String>,
    /// The outcome, at the end.
    pub outcome: Option<Outcome>,
}

impl HostRow {
    fn log(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.remove(0);
        }
        self.log.push(line);
    }

    /// The outcome's word, or `running`.
    pub fn outcome_label(&self) -> &'static str {
        self.outcome.map(Outcome::label).unwrap_or("running")
    }
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct Board {
    /// The run id, once the hosts are locked and planned.
    pub run_id: Option<String>,
    /// Its journal and logs.
    pub run_dir: Option<PathBuf>,
    /// Columns, in the order phases run.
    pub phases: Vec<&'static str>,
    /// Rows, in inventory order.
    pub hosts: Vec<HostRow>,
    index: HashMap<String, usize>,
    /// Whether the run has ended.
    pub ended: bool,
    /// Why it stopped, when it did not run to the end.
    pub error: Option<String>,
    /// The cluster's nodes and kubeconfig lines, when the cluster phase ran.
    pub cluster: Option<String>,
    /// The kubeconfig, when the cluster became Ready.
    pub kubeconfig: Option<PathBuf>,
    /// The license and apps phases' lines, when they ran.
    pub apps: Option<String>,
}

impl Board {
    /// A board for these hosts, before anything ran.
    pub fn new(hosts: &[String]) -> Board {
        let mut b = Board {
            phases: vec!["survey", "baseline"],
            ..Board::default()
        };
        for h in hosts {
            b.row(h);
        }
        b
    }

    fn row(&mut self, host: &str) -> &mut HostRow {
        let i = match self.index.get(host) {
            Some(&i) => i,
            None => {
                self.hosts.push(HostRow {
                    name: host.to_string(),
                    cells: vec![Cell::Pending; self.phases.len()],
                    ..HostRow::default()
                });
                self.index.insert(host.to_string(), self.hosts.len() - 1);
                self.hosts.len() - 1
            }
        };
        &mut self.hosts[i]
    }

    fn column(&mut self, phase: &'static str) -> usize {
        match self.phases.iter().position(|p| *p == phase) {
            Some(i) => i,
            None => {
                self.phases.push(phase);
                for r in &mut self.hosts {
                    r.cells.push(Cell::Pending);
                }
                self.phases.len() - 1
            }
        }
    }

    fn set(&mut self, host: &str, phase: &'static str, cell: Cell) {
        let c = self.column(phase);
        let row = self.row(host);
        // Every earlier phase that was running is done once a later one starts.
        for earlier in row.cells.iter_mut().take(c) {
            if matches!(earlier, Cell::Running(_)) {
                *earlier = Cell::Done;
            }
        }
        row.cells[c] = cell;
    }

    /// An engine event.
    pub fn event(&mut self, e: Event) {
        match e {
            Event::HostSurveyed { host, seconds } => {
                self.set(&host, "survey", Cell::Done);
                self.row(&host).log(format!("surveyed ({seconds:.1}s)"));
            }
            Event::HostUnreachable { host, reason } => {
                self.set(&host, "survey", Cell::Failed(String::new()));
                let row = self.row(&host);
                row.log(format!("unreachable: {reason}"));
                row.reason = Some(reason);
            }
            Event::Applied {
                host,
                resource,
                seconds,
            } => {
                let phase = phase_of(&resource);
                self.set(&host, phase, Cell::Running(resource.clone()));
                self.row(&host)
                    .log(format!("{resource} applied ({seconds:.1}s)"));
            }
            Event::ApplyFailed {
                host,
                resource,
                error,
            } => {
                let phase = phase_of(&resource);
                self.set(&host, phase, Cell::Failed(resource.clone()));
                let row = self.row(&host);
                row.log(format!("{resource} FAILED: {error}"));
                row.reason = Some(format!("{resource}: {error}"));
            }
            Event::Reverted {
                host,
                resource,
                seconds,
            } => {
                let c = self.column(phase_of(&resource));
                let row = self.row(&host);
                let n = match &row.cells[c] {
                    Cell::RolledBack(n) => n + 1,
                    _ => 1,
                };
                row.cells[c] = Cell::RolledBack(n);
                row.log(format!("{resource} reverted ({seconds:.1}s)"));
            }
            Event::RevertFailed {
                host,
                resource,
                error,
            } => {
                let row = self.row(&host);
                row.log(format!("{resource} revert FAILED: {error}"));
            }
            Event::Waiting { host, resource, on } => {
                let phase = phase_of(&resource);
                self.set(&host, phase, Cell::Running(format!("{resource}: waits")));
                self.row(&host).log(format!("{resource} waits for {on}"));
            }
            Event::Warning { host, message } => {
                self.row(&host).log(format!("warning: {message}"));
            }
            Event::Progress {
                host,
                resource,
                message,
            } => {
                let phase = phase_of(&resource);
                self.set(&host, phase, Cell::Running(resource.clone()));
                self.row(&host).log(format!("{resource}: {message}"));
            }
            Event::Transferred {
                host,
                resource,
                bytes,
                total,
                done,
                ..
            } => {
                use crate::engine::meter::human;
                let phase = phase_of(&resource);
                let of = total.map(|t| format!("/{}", human(t))).unwrap_or_default();
                self.set(
                    &host,
                    phase,
                    Cell::Running(format!("{resource} {}{of}", human(bytes))),
                );
                if done {
                    self.row(&host)
                        .log(format!("{resource} sent {}", human(bytes)));
                }
            }
        }
    }

    /// The run locked and planned its hosts: hosts that will not run say why now.
    pub fn started(&mut self, run_id: String, plan: &Plan, run_dir: PathBuf) {
        self.run_id = Some(run_id);
        // Absolute: the engineer reads it on the Done screen, maybe from another directory.
        self.run_dir = Some(std::path::absolute(&run_dir).unwrap_or(run_dir));
        let survey = self.column("survey");
        for hp in &plan.hosts {
            let skip = match hp.status {
                HostStatus::Ready => continue,
                HostStatus::NoChanges => Cell::Unchanged,
                HostStatus::Blocked | HostStatus::Unreachable => Cell::Skipped,
            };
            let phases = self.phases.len();
            let row = self.row(&hp.host);
            for (i, c) in row.cells.iter_mut().enumerate().take(phases) {
                if i != survey || matches!(c, Cell::Pending) {
                    *c = skip.clone();
                }
            }
            if !hp.reasons.is_empty() {
                row.reason = Some(hp.reasons.join("; "));
                for r in &hp.reasons {
                    row.log(r.clone());
                }
            }
        }
    }

    /// The run ended.
    pub fn ended(&mut self, r: Result<RunEnd, String>) {
        self.ended = true;
        match r {
            Err(e) => self.error = Some(e),
            Ok(end) => {
                self.cluster = end.cluster;
                self.kubeconfig = end.kubeconfig;
                self.apps = end.apps;
                for s in end.summaries {
                    let row = self.row(&s.host);
                    row.outcome = Some(s.outcome);
                    for c in &mut row.cells {
                        if matches!(c, Cell::Running(_)) {
                            *c = if s.outcome.success() {
                                Cell::Done
                            } else {
                                Cell::Failed(String::new())
                            };
                        }
                    }
                    if row.reason.is_none() {
                        row.reason = s.reason.clone();
                    }
                }
            }
        }
    }

    /// Hosts that ended well, of all, once the run has ended.
    pub fn outcome_counts(&self) -> Option<(usize, usize)> {
        if !self.ended || self.error.is_some() {
            return None;
        }
        let ok = self
            .hosts
            .iter()
            .filter(|h| h.outcome.is_some_and(Outcome::success))
            .count();
        Some((ok, self.hosts.len()))
    }

    /// Whether the run ended with every host fine.
    pub fn finished_ok(&self) -> bool {
        self.outcome_counts().is_some_and(|(ok, all)| ok == all)
    }

    /// Hosts finished so far.
    pub fn finished(&self) -> usize {
        self.hosts.iter().filter(|h| h.outcome.is_some()).count()
    }
}
