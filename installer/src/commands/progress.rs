//! How the command line shows the engine's events. For a few hosts, a line per host and step;
//! above [`SUMMARIZE_ABOVE`] hosts, the running steps now and then on one line and each step
//! once more when it ends (`facts 312/500 done, 2 failed: h17 (…), h230 (…)`), so 500 hosts do
//! not print 500 lines per step. The `--json` document and the run directory's per-host logs keep every host's detail.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_inventory::ssh::{KeyNotice, NewHostKey};

use crate::engine::events::{Event, Sink};
use crate::engine::meter::human;
pub use crate::engine::plan::SUMMARIZE_ABOVE;
use crate::engine::plan::{HostStatus, Plan};

/// Shortest time between two lines of the steps still running; they are shown when one of
/// them moved by a tenth of its hosts (or had a failure) since it was last shown, or after
/// [`AT_LEAST`] in any case.
const EVERY: Duration = Duration::from_secs(5);

/// Longest time without a line while steps run.
const AT_LEAST: Duration = Duration::from_secs(30);

/// Failed hosts a step's line names; the others are counted.
const NAMED: usize = 3;

/// Longest reason shown beside a failed host's name in a step's line.
const REASON_CHARS: usize = 60;

/// One line to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// On stdout (the run's record) rather than stderr (progress).
    pub stdout: bool,
    /// The text, without newline.
    pub text: String,
}

/// The events of one run, turned into lines.
pub struct Progress {
    /// Lines that would go to stdout go to stderr (stdout carries JSON).
    to_stderr: bool,
    /// Per-step tallies, or `None`: a line per event.
    tally: Option<Tally>,
}

impl Progress {
    /// Progress for a run on `hosts` hosts.
    pub fn new(hosts: usize, to_stderr: bool) -> Self {
        Progress {
            to_stderr,
            tally: (hosts > SUMMARIZE_ABOVE).then(|| Tally::new(hosts)),
        }
    }

    /// Whether steps are summarized.
    pub fn summarized(&self) -> bool {
        self.tally.is_some()
    }

    /// Learns from the plan how many hosts each step will run on, so a step's line says
    /// `12/480` and is shown once more when its last host is through.
    pub fn expect(&mut self, plan: &Plan) {
        let Some(t) = &mut self.tally else {
            return;
        };
        for hp in plan.hosts.iter().filter(|h| h.status == HostStatus::Ready) {
            let mut ids: Vec<&str> = hp.changes.iter().map(|c| c.resource.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                *t.step(format!("apply {id}"), true)
                    .expected
                    .get_or_insert(0) += 1;
            }
        }
    }

    /// The lines `e` calls for at `now` (none while a summarized step is not due).
    pub fn event(&mut self, e: Event, now: Instant) -> Vec<Line> {
        let out = !self.to_stderr;
        match &mut self.tally {
            None => vec![per_host(e, out)],
            Some(t) => t.event(e, now, out),
        }
    }

    /// The lines a host key recorded on first contact calls for: its own line for a few hosts;
    /// for many, the first in full and then how many (each is in the known_hosts file named).
    pub fn new_host_key(&mut self, k: &NewHostKey, now: Instant) -> Vec<Line> {
        let Some(t) = &mut self.tally else {
            return vec![Line {
                stdout: false,
                text: k.message(),
            }];
        };
        t.keys.count += 1;
        if t.keys.count == 1 {
            t.keys.file = k.file.display().to_string();
            t.keys.shown_at = Some(now);
            return vec![Line {
                stdout: false,
                text: k.message(),
            }];
        }
        if t.keys.shown_at.is_some_and(|at| now - at < EVERY) {
            return Vec::new();
        }
        t.keys.shown_at = Some(now);
        t.keys.line().into_iter().collect()
    }

    /// The last state of every summarized step not shown yet, and warnings repeated on many
    /// hosts; call once the run is over.
    pub fn finish(&mut self) -> Vec<Line> {
        match &mut self.tally {
            None => Vec::new(),
            Some(t) => t.finish(!self.to_stderr),
        }
    }
}

/// A line per event: what ferry shows for a few hosts.
fn per_host(e: Event, out: bool) -> Line {
    let (stdout, text) = match e {
        Event::Applied {
            host,
            resource,
            seconds,
        } => (out, format!("{host} {resource} applied ({seconds:.1}s)")),
        Event::ApplyFailed {
            host,
            resource,
            error,
        } => (out, format!("{host} {resource} FAILED: {error}")),
        Event::Reverted {
            host,
            resource,
            seconds,
        } => (out, format!("{host} {resource} reverted ({seconds:.1}s)")),
        Event::RevertFailed {
            host,
            resource,
            error,
        } => (out, format!("{host} {resource} revert FAILED: {error}")),
        Event::Warning { host, message } => (out, format!("{host}: warning: {message}")),
        Event::Waiting { host, resource, on } => (out, format!("{host} {resource} waits for {on}")),
        Event::Progress {
            host,
            resource,
            message,
        } => (false, format!("{host} {resource}: {message}")),
        // Progress only: the plan itself says what was found.
        Event::HostSurveyed { host, seconds } => {
            (false, format!("{host} surveyed ({seconds:.1}s)"))
        }
        Event::HostUnreachable { host, reason } => (false, format!("{host} unreachable: {reason}")),
        Event::Transferred {
            host,
            resource,
            what,
            bytes,
            total,
            done,
        } => {
            let of = total
                .map(|t| format!(" of {}", human(t)))
                .unwrap_or_default();
            let state = if done { "sent" } else { "sending" };
            (
                false,
                format!("{host} {resource} {state} {}{of}: {what}", human(bytes)),
            )
        }
    };
    Line { stdout, text }
}

/// Every step's counts so far.
struct Tally {
    steps: BTreeMap<String, Step>,
    /// When the running steps were last shown.
    shown_at: Option<Instant>,
    keys: NewKeys,
    /// Each warning's text, the first host that gave it and how many more did.
    warnings: BTreeMap<String, usize>,
}

/// One step across every host: `facts`, `apply sysctl`, `revert hosts-file`.
#[derive(Default)]
struct Step {
    /// Shown on stdout (apply and revert) rather than stderr (facts).
    stdout: bool,
    expected: Option<usize>,
    done: usize,
    failed: usize,
    /// The first few failed hosts and why.
    named: Vec<(String, String)>,
    /// What hosts waited for, and how many.
    waited: BTreeMap<String, usize>,
    /// Streams to hosts: (host, what) -> (bytes, total, ended).
    sent: BTreeMap<(String, String), (u64, Option<u64>, bool)>,
    /// How the step was last shown, with its hosts through and failed then.
    shown: String,
    shown_through: usize,
    shown_failed: usize,
}

/// Host keys recorded on first contact.
#[derive(Default)]
struct NewKeys {
    count: usize,
    file: String,
    shown_at: Option<Instant>,
    shown: usize,
}

impl NewKeys {
    /// How many so far, unless that was shown already.
    fn line(&mut self) -> Option<Line> {
        if self.count == self.shown {
            return None;
        }
        self.shown = self.count;
        Some(Line {
            stdout: false,
            text: format!(
                "{} host keys trusted on first contact, each recorded in {} (--strict-host-keys \
                 refuses unknown keys instead)",
                self.count, self.file
            ),
        })
    }
}

impl Step {
    fn complete(&self) -> bool {
        self.expected.is_some_and(|n| self.done + self.failed >= n)
    }

    fn started(&self) -> bool {
        self.done + self.failed > 0 || !self.waited.is_empty() || !self.sent.is_empty()
    }

    /// Moved by a tenth of its hosts, or had a failure, since it was last shown.
    fn moved(&self) -> bool {
        let tenth = (self.expected.unwrap_or(SUMMARIZE_ABOVE * 10) / 10).max(1);
        self.done + self.failed >= self.shown_through + tenth || self.failed > self.shown_failed
    }

    fn line(&self, key: &str) -> String {
        let mut s = match self.expected {
            Some(n) => format!("{key} {}/{n} done", self.done),
            None => format!("{key} {} done", self.done),
        };
        if self.failed > 0 {
            let names: Vec<String> = self
                .named
                .iter()
                .map(|(h, why)| format!("{h} ({})", shorten(why)))
                .collect();
            s.push_str(&format!(", {} failed: {}", self.failed, names.join(", ")));
            if self.failed > self.named.len() {
                s.push_str(&format!(" and {} more", self.failed - self.named.len()));
            }
        }
        for (on, n) in &self.waited {
            s.push_str(&format!(", {n} waited for {on}"));
        }
        if !self.sent.is_empty() {
            let bytes: u64 = self.sent.values().map(|v| v.0).sum();
            let total: Option<u64> = self.sent.values().map(|v| v.1).sum();
            let ended = self.sent.values().filter(|v| v.2).count();
            let of = total
                .map(|t| format!(" of {}", human(t)))
                .unwrap_or_default();
            s.push_str(&format!(
                ", sent {}{of} ({ended}/{} streams ended)",
                human(bytes),
                self.sent.len()
            ));
        }
        s
    }
}

/// A reason cut to one short line for a step's summary (the whole one is in the run's record).
fn shorten(why: &str) -> String {
    if why.chars().count() > REASON_CHARS {
        let cut: String = why.chars().take(REASON_CHARS - 3).collect();
        format!("{cut}...")
    } else {
        why.to_string()
    }
}

impl Tally {
    fn new(hosts: usize) -> Self {
        let mut t = Tally {
            steps: BTreeMap::new(),
            shown_at: None,
            keys: NewKeys::default(),
            warnings: BTreeMap::new(),
        };
        t.step("facts".into(), false).expected = Some(hosts);
        t
    }

    fn step(&mut self, key: String, stdout: bool) -> &mut Step {
        self.steps.entry(key).or_insert_with(|| Step {
            stdout,
            ..Step::default()
        })
    }

    fn event(&mut self, e: Event, now: Instant, out: bool) -> Vec<Line> {
        let (key, stdout) = match e {
            Event::HostSurveyed { .. } => {
                self.step("facts".into(), false).done += 1;
                ("facts".to_string(), false)
            }
            Event::HostUnreachable { host, reason } => {
                fail(self.step("facts".into(), false), host, reason);
                ("facts".to_string(), false)
            }
            Event::Applied { resource, .. } => {
                let key = format!("apply {resource}");
                self.step(key.clone(), out).done += 1;
                (key, out)
            }
            Event::ApplyFailed {
                host,
                resource,
                error,
            } => {
                let key = format!("apply {resource}");
                fail(self.step(key.clone(), out), host, error);
                (key, out)
            }
            Event::Reverted { resource, .. } => {
                let key = format!("revert {resource}");
                self.step(key.clone(), out).done += 1;
                (key, out)
            }
            Event::RevertFailed {
                host,
                resource,
                error,
            } => {
                let key = format!("revert {resource}");
                fail(self.step(key.clone(), out), host, error);
                (key, out)
            }
            Event::Waiting { resource, on, .. } => {
                let key = format!("apply {resource}");
                *self.step(key.clone(), out).waited.entry(on).or_default() += 1;
                (key, out)
            }
            Event::Transferred {
                host,
                resource,
                what,
                bytes,
                total,
                done,
            } => {
                let key = format!("apply {resource}");
                self.step(key.clone(), out)
                    .sent
                    .insert((host, what), (bytes, total, done));
                (key, out)
            }
            // A long step's own words (the apps phase runs on one host): shown as they come.
            Event::Progress {
                host,
                resource,
                message,
            } => {
                return vec![Line {
                    stdout: false,
                    text: format!("{host} {resource}: {message}"),
                }];
            }
            // The first host to warn of something is named; the same warning from the others
            // is counted and told at the end.
            Event::Warning { host, message } => {
                let seen = self.warnings.entry(message.clone()).or_insert(0);
                *seen += 1;
                if *seen > 1 {
                    return Vec::new();
                }
                return vec![Line {
                    stdout: out,
                    text: format!("{host}: warning: {message}"),
                }];
            }
        };
        let Some(step) = self.steps.get_mut(&key) else {
            return Vec::new();
        };
        // A step whose last host is through has a line of its own.
        if step.complete() {
            return show(step, &key, stdout).into_iter().collect();
        }
        let due = match self.shown_at.map(|t| now - t) {
            None => true,
            Some(d) if d < EVERY => false,
            Some(d) => d >= AT_LEAST || self.steps.values().any(|s| s.started() && s.moved()),
        };
        if !due {
            return Vec::new();
        }
        // Then the running steps that moved, all on one line.
        self.shown_at = Some(now);
        let parts: Vec<String> = self
            .steps
            .iter_mut()
            .filter(|(_, s)| s.started() && !s.complete())
            .filter_map(|(k, s)| show(s, k, stdout).map(|l| l.text))
            .collect();
        if parts.is_empty() {
            return Vec::new();
        }
        vec![Line {
            stdout,
            text: parts.join("; "),
        }]
    }

    fn finish(&mut self, out: bool) -> Vec<Line> {
        let mut lines: Vec<Line> = Vec::new();
        if self.keys.count > 1 {
            lines.extend(self.keys.line());
        }
        for (key, step) in &mut self.steps {
            if step.done + step.failed == 0 && step.waited.is_empty() && step.sent.is_empty() {
                continue;
            }
            let stdout = step.stdout;
            lines.extend(show(step, key, stdout));
        }
        for (message, n) in &self.warnings {
            if *n > 1 {
                lines.push(Line {
                    stdout: out,
                    text: format!("warning: {message} (on {} more hosts)", n - 1),
                });
            }
        }
        lines
    }
}

fn fail(step: &mut Step, host: String, why: String) {
    step.failed += 1;
    if step.named.len() < NAMED {
        step.named.push((host, why));
    }
}

/// The step's line, unless it was shown exactly so already.
fn show(step: &mut Step, key: &str, stdout: bool) -> Option<Line> {
    let text = step.line(key);
    if text == step.shown {
        return None;
    }
    step.shown.clone_from(&text);
    step.shown_through = step.done + step.failed;
    step.shown_failed = step.failed;
    Some(Line { stdout, text })
}

/// The command line's printer: events become lines on stdout and stderr.
#[derive(Clone)]
pub struct Printer(Arc<Mutex<Progress>>);

impl Printer {
    /// A printer for a run on `hosts` hosts; with `to_stderr`, nothing goes to stdout (it
    /// carries JSON).
    pub fn new(hosts: usize, to_stderr: bool) -> Self {
        Printer(Arc::new(Mutex::new(Progress::new(hosts, to_stderr))))
    }

    /// Whether steps are summarized (more than [`SUMMARIZE_ABOVE`] hosts).
    pub fn summarized(&self) -> bool {
        self.0.lock().is_ok_and(|p| p.summarized())
    }

    /// The engine's sink.
    pub fn sink(&self) -> Sink {
        let p = self.0.clone();
        Arc::new(move |e: Event| {
            let lines = match p.lock() {
                Ok(mut p) => p.event(e, Instant::now()),
                Err(_) => return,
            };
            print(&lines);
        })
    }

    /// Who is told of host keys recorded on first contact (see [`Progress::new_host_key`]).
    pub fn key_notice(&self) -> KeyNotice {
        let p = self.0.clone();
        KeyNotice::new(move |k| {
            let lines = match p.lock() {
                Ok(mut p) => p.new_host_key(k, Instant::now()),
                Err(_) => return,
            };
            print(&lines);
        })
    }

    /// See [`Progress::expect`].
    pub fn expect(&self, plan: &Plan) {
        if let Ok(mut p) = self.0.lock() {
            p.expect(plan);
        }
    }

    /// Shows what is left to show; call once the engine is done.
    pub fn finish(&self) {
        let lines = match self.0.lock() {
            Ok(mut p) => p.finish(),
            Err(_) => return,
        };
        print(&lines);
    }
}

fn print(lines: &[Line]) {
    for l in lines {
        if l.stdout {
            println!("{}", l.text);
            let _ = std::io::stdout().flush();
        } else {
            eprintln!("{}", l.text);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engine::plan::{HostPlan, PlannedChange};

    fn surveyed(h: usize) -> Event {
        Event::HostSurveyed {
            host: format!("h{h}"),
            seconds: 0.5,
        }
    }

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn a_few_hosts_get_a_line_each() {
        let mut p = Progress::new(SUMMARIZE_ABOVE, false);
        let t = Instant::now();
        let lines: Vec<Line> = (0..SUMMARIZE_ABOVE)
            .flat_map(|h| p.event(surveyed(h), t))
            .collect();
        assert_eq!(lines.len(), SUMMARIZE_ABOVE);
        assert_eq!(lines[3].text, "h3 surveyed (0.5s)");
        assert!(p.finish().is_empty());
    }

    #[test]
    fn facts_of_500_hosts_are_a_few_lines_naming_the_failed() {
        let mut p = Progress::new(500, false);
        let t0 = Instant::now();
        let mut lines = Vec::new();
        for h in 0..500 {
            // 20 ms apart: 10 s in all.
            let now = t0 + Duration::from_millis(20 * h as u64);
            let e = match h {
                17 => Event::HostUnreachable {
                    host: "h17".into(),
                    reason: "connecting to 10.0.0.17:22: connection refused".into(),
                },
                230 => Event::HostUnreachable {
                    host: "h230".into(),
                    reason: "x".repeat(100),
                },
                _ => surveyed(h),
            };
            lines.extend(p.event(e, now));
        }
        let texts = texts(&lines);
        // The first event, one after 5 s (a tenth of the hosts were through since), the end.
        assert_eq!(texts.len(), 3, "{texts:#?}");
        assert_eq!(texts[0], "facts 1/500 done");
        assert!(
            texts[1].starts_with("facts 249/500 done, 2 failed: h17 (connecting"),
            "{}",
            texts[1]
        );
        assert_eq!(
            texts[2],
            format!(
                "facts 498/500 done, 2 failed: h17 (connecting to 10.0.0.17:22: connection \
                 refused), h230 ({}...)",
                "x".repeat(57)
            )
        );
        assert!(lines.iter().all(|l| !l.stdout));
        assert!(p.finish().is_empty(), "the last state was shown");
    }

    #[test]
    fn many_new_host_keys_are_counted_after_the_first() {
        let mut p = Progress::new(100, false);
        let t = Instant::now();
        let key = |h: usize| NewHostKey {
            host: format!("h{h}"),
            entry: format!("[10.0.0.{h}]:22"),
            key: "ED25519 SHA256:abc".into(),
            file: "/root/.ferry/known_hosts".into(),
        };
        let mut lines = Vec::new();
        for h in 0..100 {
            lines.extend(p.new_host_key(&key(h), t + Duration::from_millis(60 * h as u64)));
        }
        let texts = texts(&lines);
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert_eq!(texts[0], key(0).message());
        assert!(
            texts[1].starts_with(
                "85 host keys trusted on first contact, each recorded in \
             /root/.ferry/known_hosts"
            ),
            "{}",
            texts[1]
        );
        assert_eq!(
            p.finish()[0].text,
            "100 host keys trusted on first contact, each recorded in /root/.ferry/known_hosts \
             (--strict-host-keys refuses unknown keys instead)"
        );
    }

    fn ready(host: &str, resources: &[&str]) -> HostPlan {
        HostPlan {
            host: host.into(),
            status: HostStatus::Ready,
            reasons: Vec::new(),
            warnings: Vec::new(),
            changes: resources
                .iter()
                .flat_map(|r| {
                    // Two changes of one resource count it once.
                    [0, 1].map(|i| PlannedChange {
                        resource: r.to_string(),
                        what: format!("key.{i}"),
                        from: "absent".into(),
                        to: "1".into(),
                    })
                })
                .collect(),
            resources: Vec::new(),
            cluster: Vec::new(),
        }
    }

    #[test]
    fn apply_steps_count_against_the_plan_and_many_failures_are_counted() {
        let mut p = Progress::new(30, false);
        let plan = Plan {
            cluster: None,
            cluster_id: "c".into(),
            site: Default::default(),
            hosts: (0..30)
                .map(|h| {
                    if h < 25 {
                        ready(&format!("h{h}"), &["sysctl", "hosts-file"])
                    } else {
                        ready(&format!("h{h}"), &["sysctl"])
                    }
                })
                .collect(),
        };
        p.expect(&plan);
        let t = Instant::now();
        let mut lines = Vec::new();
        for h in 0..25 {
            let e = if h % 5 == 0 {
                Event::ApplyFailed {
                    host: format!("h{h}"),
                    resource: "hosts-file".into(),
                    error: "disk full".into(),
                }
            } else {
                Event::Applied {
                    host: format!("h{h}"),
                    resource: "hosts-file".into(),
                    seconds: 0.1,
                }
            };
            lines.extend(p.event(e, t));
        }
        assert_eq!(
            texts(&lines),
            [
                "apply hosts-file 0/25 done, 1 failed: h0 (disk full)",
                "apply hosts-file 20/25 done, 5 failed: h0 (disk full), h5 (disk full), \
                 h10 (disk full) and 2 more"
            ]
        );
        assert!(lines.iter().all(|l| l.stdout));
        // A step not finished (sysctl: 3 of 30) is shown as it stands at the end.
        let mut lines = Vec::new();
        for h in 0..3 {
            lines.extend(p.event(
                Event::Applied {
                    host: format!("h{h}"),
                    resource: "sysctl".into(),
                    seconds: 0.1,
                },
                t,
            ));
        }
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(texts(&p.finish()), ["apply sysctl 3/30 done"]);
    }

    #[test]
    fn running_steps_share_a_line_when_one_moved_by_a_tenth() {
        let mut p = Progress::new(100, false);
        let plan = Plan {
            cluster: None,
            cluster_id: "c".into(),
            site: Default::default(),
            hosts: (0..100)
                .map(|h| ready(&format!("h{h}"), &["a", "b"]))
                .collect(),
        };
        p.expect(&plan);
        let applied = |h: usize, r: &str| Event::Applied {
            host: format!("h{h}"),
            resource: r.into(),
            seconds: 0.1,
        };
        let t = Instant::now();
        assert_eq!(texts(&p.event(applied(0, "a"), t)), ["apply a 1/100 done"]);
        let later = t + Duration::from_secs(6);
        let mut lines = Vec::new();
        for h in 0..5 {
            lines.extend(p.event(applied(h, "b"), later));
        }
        for h in 1..20 {
            lines.extend(p.event(applied(h, "a"), later));
        }
        assert_eq!(texts(&lines), ["apply a 11/100 done; apply b 5/100 done"]);
    }

    #[test]
    fn waits_transfers_and_warnings_are_folded_into_few_lines() {
        let mut p = Progress::new(100, true);
        let t = Instant::now();
        let mut lines = Vec::new();
        for h in 0..100 {
            lines.extend(p.event(
                Event::Waiting {
                    host: format!("h{h}"),
                    resource: "timesync".into(),
                    on: "the time source h0 to serve".into(),
                },
                t,
            ));
            lines.extend(p.event(
                Event::Transferred {
                    host: format!("h{h}"),
                    resource: "images".into(),
                    what: "image a:1".into(),
                    bytes: 1 << 20,
                    total: Some(2 << 20),
                    done: false,
                },
                t,
            ));
            lines.extend(p.event(
                Event::Warning {
                    host: format!("h{h}"),
                    message: "clock 2 s ahead".into(),
                },
                t,
            ));
        }
        assert_eq!(
            texts(&lines),
            [
                "apply timesync 0 done, 1 waited for the time source h0 to serve",
                "h0: warning: clock 2 s ahead",
            ]
        );
        // With --json nothing goes to stdout.
        assert!(lines.iter().all(|l| !l.stdout));
        assert_eq!(
            texts(&p.finish()),
            [
                "apply images 0 done, sent 100.0 MiB of 200.0 MiB (0/100 streams ended)",
                "apply timesync 0 done, 100 waited for the time source h0 to serve",
                "warning: clock 2 s ahead (on 99 more hosts)",
            ]
        );
    }
}
