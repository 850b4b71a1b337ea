//! Live host checks: each host is reached in the background (SSH, sudo, clock, facts) while
//! the engineer goes on typing; results come back per host and are shown with each problem's
//! fix. A result for a host edited since is dropped: the edit started a fresh check.

use std::collections::HashMap;

use ferry_inventory::facts::Facts;
use ferry_inventory::model::raw::RawHost;

use crate::config::PreflightConfig;

/// What a check found on one host.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The host.
    pub host: String,
    /// The host's entry when the check started (see [`fingerprint`]).
    pub fingerprint: String,
    /// SSH and authentication worked.
    pub reachable: bool,
    /// Its facts, when gathered.
    pub facts: Option<FactsRow>,
    /// Host clock minus ours, seconds.
    pub skew: Option<f64>,
    /// Each problem as `what; fix: what to do`.
    pub problems: Vec<String>,
    /// Its license fingerprint components, read with its facts (what `ferry license request`
    /// reads), so the License screen can export the site's request without a second login.
    pub components: Option<Box<ferry_license::HostComponents>>,
}

/// The facts the hosts table shows.
#[derive(Debug, Clone, PartialEq)]
pub struct FactsRow {
    /// `Debian GNU/Linux 12 (bookworm)`.
    pub os: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Memory, bytes.
    pub memory: u64,
    /// Free bytes on the file system holding /var/lib, if known.
    pub disk_free: Option<u64>,
    /// GPUs found.
    pub gpus: usize,
}

impl FactsRow {
    /// The row of `facts`.
    pub fn of(f: &Facts) -> FactsRow {
        let os = if f.os.pretty_name.is_empty() {
            format!("{} {}", f.os.id, f.os.version_id)
        } else {
            f.os.pretty_name.clone()
        };
        let disk_free = f
            .filesystems
            .iter()
            .filter(|fs| {
                let m = fs.mount.trim_end_matches('/');
                m.is_empty() || "/var/lib".starts_with(&format!("{m}/")) || m == "/var/lib"
            })
            .max_by_key(|fs| fs.mount.len())
            .map(|fs| fs.available_bytes);
        FactsRow {
            os,
            cpus: f.cpu.logical,
            memory: f.memory.total_bytes,
            disk_free,
            gpus: f.gpus.len(),
        }
    }
}

/// The problems with fixes a host's facts show against the preflight thresholds (the plan
/// blocks on the same ones).
pub fn fact_problems(f: &FactsRow, p: &PreflightConfig) -> Vec<String> {
    let mut out = Vec::new();
    if f.cpus < p.min_cpus {
        out.push(format!(
            "{} CPUs, preflight needs {}; fix: give the host more CPUs, or lower preflight.min-cpus",
            f.cpus, p.min_cpus
        ));
    }
    let mib = f.memory / (1 << 20);
    if mib < p.min_memory_mib {
        out.push(format!(
            "{mib} MiB of memory, preflight needs {}; fix: add memory, or lower preflight.min-memory-mib",
            p.min_memory_mib
        ));
    }
    if let Some(free) = f.disk_free {
        let gib = free / (1 << 30);
        if gib < p.min_disk_gib {
            out.push(format!(
                "{gib} GiB free under /var/lib, preflight needs {}; fix: free or add disk space, or lower preflight.min-disk-gib",
                p.min_disk_gib
            ));
        }
    }
    out
}

/// A host entry as text: a check is of exactly this entry.
pub fn fingerprint(h: &RawHost) -> String {
    toml::to_string(h).unwrap_or_else(|_| format!("{h:?}"))
}

/// A host's check.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckState {
    /// Running.
    Pending(String),
    /// Done.
    Done(CheckReport),
}

/// Every host's check.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    by_host: HashMap<String, CheckState>,
}

impl Checks {
    /// Whether `h` has no check of its current entry.
    pub fn stale(&self, h: &RawHost) -> bool {
        let fp = fingerprint(h);
        match self.by_host.get(&h.name) {
            None => true,
            Some(CheckState::Pending(f)) => *f != fp,
            Some(CheckState::Done(r)) => r.fingerprint != fp,
        }
    }

    /// Marks `h`'s check as started.
    pub fn start(&mut self, h: &RawHost) {
        self.by_host
            .insert(h.name.clone(), CheckState::Pending(fingerprint(h)));
    }

    /// Records a result, unless the host changed since its check started.
    pub fn record(&mut self, r: CheckReport) {
        let current = match self.by_host.get(&r.host) {
            Some(CheckState::Pending(f)) => f == &r.fingerprint,
            Some(CheckState::Done(d)) => d.fingerprint == r.fingerprint,
            None => false,
        };
        if current {
            self.by_host.insert(r.host.clone(), CheckState::Done(r));
        }
    }

    /// A host's check.
    pub fn get(&self, host: &str) -> Option<&CheckState> {
        self.by_host.get(host)
    }

    /// Hosts checked, and of those with problems, among `hosts`.
    pub fn counts<'a>(&self, hosts: impl Iterator<Item = &'a RawHost>) -> (usize, usize) {
        let mut done = 0;
        let mut bad = 0;
        for h in hosts {
            if let Some(CheckState::Done(r)) = self.by_host.get(&h.name) {
                done += 1;
                if !r.problems.is_empty() {
                    bad += 1;
                }
            }
        }
        (done, bad)
    }
}
