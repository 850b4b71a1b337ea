//! Applying a host's resources in order, each recorded in the journal before and after, and
//! undoing them newest first: on a failure during apply (unless `--no-rollback`) and for
//! `ferry rollback` from a journal.

use std::sync::Arc;
use std::time::Instant;

use ferry_bootos::{DynResource, Host, ResourceSpec};
use ferry_inventory::ssh::shell_quote;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use super::events::{one_line, Event, Sink};
use super::journal::{Entry, Journal, Record, HOST_JOURNAL_DIR};

/// Something the engine applies: a resource with the JSON form a journal keeps.
pub trait Step: Send + Sync {
    /// Its id on the host.
    fn id(&self) -> String;
    /// What the journal records so `ferry rollback` can rebuild it.
    fn journal_form(&self) -> Value;
    /// The resource.
    fn resource(&self) -> &dyn DynResource;
}

impl Step for ResourceSpec {
    fn id(&self) -> String {
        ResourceSpec::id(self)
    }

    fn journal_form(&self) -> Value {
        // Resources are plain data (strings, numbers, lists): serializing cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn resource(&self) -> &dyn DynResource {
        self.as_dyn()
    }
}

/// How a host's apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every change made.
    Ok,
    /// Nothing to change.
    NoChanges,
    /// A change failed and every change of the run was undone.
    RolledBack,
    /// A change failed and undoing it failed too.
    RollbackIncomplete,
    /// A change failed and `--no-rollback` left the host as it was.
    Failed,
    /// Not touched: a guard or preflight check.
    Blocked,
    /// Not touched: could not be reached.
    Unreachable,
}

impl Outcome {
    /// The word the summary shows.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NoChanges => "no changes",
            Outcome::RolledBack => "rolled back",
            Outcome::RollbackIncomplete => "FAILED (rollback incomplete)",
            Outcome::Failed => "FAILED",
            Outcome::Blocked => "blocked",
            Outcome::Unreachable => "unreachable",
        }
    }

    /// Whether the host ended as wanted.
    pub fn success(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::NoChanges)
    }
}

/// One host's result.
#[derive(Debug, Clone, Serialize)]
pub struct HostSummary {
    /// The host.
    pub host: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Resources changed (and still changed, after a rollback: 0).
    pub changes: usize,
    /// Wall time on this host.
    pub seconds: f64,
    /// Why, when it did not end ok.
    pub reason: Option<String>,
}

/// The journal of one run, on the jump host and mirrored on each host.
pub struct RunJournal {
    /// The run id.
    pub run_id: String,
    /// The jump host's journal.
    pub local: Arc<Journal>,
}

impl RunJournal {
    /// Records a line: first on the jump host (fsynced), then on the host. A failure to write
    /// the jump host's line is always an error; the host's copy only when `mirror_required`
    /// (a `begin` that cannot be mirrored means the host cannot be written to at all).
    pub async fn record(
        &self,
        host: &dyn Host,
        resource_id: &str,
        entry: Entry,
        mirror_required: bool,
        sink: &Sink,
    ) -> anyhow::Result<()> {
        let rec = Record::now(&self.run_id, host.name(), resource_id, entry);
        self.local.append(&rec)?;
        if let Err(e) = append_on_host(host, &self.run_id, &rec.to_line()).await {
            if mirror_required {
                return Err(e.context("writing the host's journal"));
            }
            sink(Event::Warning {
                host: host.name().to_string(),
                message: format!("host journal not written: {}", one_line(&e)),
            });
        }
        Ok(())
    }
}

/// Appends one line to `/var/lib/ferry/journal/<run>.jsonl` on the host (dir 0700, file 0600).
async fn append_on_host(host: &dyn Host, run_id: &str, line: &str) -> anyhow::Result<()> {
    let file = format!("{HOST_JOURNAL_DIR}/{run_id}.jsonl");
    let prep = format!(
        "umask 077 && mkdir -p {d} && chmod 700 {d}",
        d = shell_quote(HOST_JOURNAL_DIR)
    );
    // A command line has a size limit (128 KiB per argument on Linux): large undo data goes
    // through a file.
    if line.len() < 32 * 1024 {
        host.run_ok(&format!(
            "{prep} && printf '%s\\n' {} >> {}",
            shell_quote(line),
            shell_quote(&file)
        ))
        .await?;
    } else {
        let part = format!("{file}.part");
        host.run_ok(&prep).await?;
        let mut content = line.as_bytes().to_vec();
        content.push(b'\n');
        host.write_file(&part, &content, 0o600).await?;
        host.run_ok(&format!(
            "umask 077 && cat {p} >> {f} && rm -f {p}",
            p = shell_quote(&part),
            f = shell_quote(&file)
        ))
        .await?;
    }
    Ok(())
}

/// Cross-host ordering within one apply: a step on this host that waits until another host
/// has passed one of its steps. Followers' time sync waits for the time source's (their check
/// needs it serving); the cluster install will have agents wait for the first server.
#[derive(Default)]
pub struct Gates {
    /// Before the step with this id: wait until the gate opens, or until the host that would
    /// open it has finished without doing so (then the step runs and its own check decides).
    pub wait: Vec<(String, String, watch::Receiver<bool>)>,
    /// After the step with this id, whatever its outcome, open the gate. Gates still closed
    /// when the host's apply ends (it failed earlier, or had no such step) open then.
    pub open: Vec<(String, watch::Sender<bool>)>,
}

impl Gates {
    /// A gate: the opening side for the host that opens it, the waiting side (clone it for
    /// every waiting host).
    pub fn channel() -> (watch::Sender<bool>, watch::Receiver<bool>) {
        watch::channel(false)
    }

    async fn before(&mut self, host: &str, id: &str, sink: &Sink) {
        for (step, what, rx) in self.wait.iter_mut().filter(|(s, _, _)| s == id) {
            if *rx.borrow() {
                continue;
            }
            sink(Event::Waiting {
                host: host.to_string(),
                resource: step.clone(),
                on: what.clone(),
            });
            // An error means the opening side is gone: nothing more to wait for.
            let _ = rx.wait_for(|open| *open).await;
        }
    }

    fn after(&mut self, id: &str) {
        for (step, tx) in &self.open {
            if step == id {
                tx.send_replace(true);
            }
        }
    }
}

fn secs(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 100.0).round() / 100.0
}

/// Applies `steps` on `host` in order: each is observed again, skipped when already as
/// wanted, else journaled (`begin`), applied and journaled (`done`/`failed`). On the first
/// failure the changes begun in this run are reverted newest first, unless `no_rollback`.
/// `gates` order steps against other hosts' (see [`Gates`]).
pub async fn apply_host(
    host: &dyn Host,
    steps: &[Arc<dyn Step>],
    mut gates: Gates,
    journal: &RunJournal,
    no_rollback: bool,
    sink: &Sink,
) -> HostSummary {
    let start = Instant::now();
    let name = host.name().to_string();
    let mut begun: Vec<(Arc<dyn Step>, Value)> = Vec::new();
    let mut failure: Option<String> = None;
    for step in steps {
        let id = step.id();
        let r = step.resource();
        gates.before(&name, &id, sink).await;
        let t = Instant::now();
        let result: anyhow::Result<bool> = async {
            let observed = r.observe(host).await?;
            let changes = r.diff(&observed)?;
            if changes.is_empty() {
                return Ok(false);
            }
            // Counted as begun before the journal line: should writing it fail half way, the
            // revert (back to what was just observed) is harmless.
            begun.push((step.clone(), observed.clone()));
            journal
                .record(
                    host,
                    &id,
                    Entry::Begin {
                        resource: step.journal_form(),
                        observed: observed.clone(),
                        changes,
                    },
                    true,
                    sink,
                )
                .await?;
            r.apply(host, &observed).await?;
            Ok(true)
        }
        .await;
        gates.after(&id);
        match result {
            Ok(false) => {}
            Ok(true) => {
                let seconds = secs(t);
                if let Err(e) = journal
                    .record(host, &id, Entry::Done { seconds }, false, sink)
                    .await
                {
                    failure = Some(format!("{id}: {}", one_line(&e)));
                    break;
                }
                sink(Event::Applied {
                    host: name.clone(),
                    resource: id,
                    seconds,
                });
            }
            Err(e) => {
                let error = one_line(&e);
                let _ = journal
                    .record(
                        host,
                        &id,
                        Entry::Failed {
                            error: error.clone(),
                        },
                        false,
                        sink,
                    )
                    .await;
                sink(Event::ApplyFailed {
                    host: name.clone(),
                    resource: id.clone(),
                    error: error.clone(),
                });
                failure = Some(format!("{id}: {error}"));
                break;
            }
        }
    }
    // Whoever waits on this host goes on now, not after its rollback.
    drop(gates);
    let applied = begun.len();
    let Some(reason) = failure else {
        return HostSummary {
            host: name,
            outcome: if applied == 0 {
                Outcome::NoChanges
            } else {
                Outcome::Ok
            },
            changes: applied,
            seconds: secs(start),
            reason: None,
        };
    };
    if no_rollback {
        return HostSummary {
            host: name.clone(),
            outcome: Outcome::Failed,
            changes: applied,
            seconds: secs(start),
            reason: Some(format!(
                "{reason}; left as is (--no-rollback): undo with `ferry rollback --run {} --answers FILE --host {name}`",
                journal.run_id
            )),
        };
    }
    begun.reverse();
    let failed = revert_all(host, begun, journal, sink).await;
    HostSummary {
        host: name,
        outcome: if failed.is_empty() {
            Outcome::RolledBack
        } else {
            Outcome::RollbackIncomplete
        },
        changes: 0,
        seconds: secs(start),
        reason: Some(if failed.is_empty() {
            reason
        } else {
            format!(
                "{reason}; not reverted: {} (retry with `ferry rollback --run {}`)",
                failed.join(", "),
                journal.run_id
            )
        }),
    }
}

/// Reverts `items` (resource and the state observed before it changed) in the order given,
/// journaling each; goes on after a failure so one stuck resource does not keep the others
/// changed. Returns the ids that could not be reverted.
pub async fn revert_all(
    host: &dyn Host,
    items: Vec<(Arc<dyn Step>, Value)>,
    journal: &RunJournal,
    sink: &Sink,
) -> Vec<String> {
    let mut failed = Vec::new();
    for (step, before) in items {
        let id = step.id();
        let t = Instant::now();
        match step.resource().revert(host, &before).await {
            Ok(()) => {
                let seconds = secs(t);
                if let Err(e) = journal
                    .record(host, &id, Entry::Reverted { seconds }, false, sink)
                    .await
                {
                    sink(Event::Warning {
                        host: host.name().to_string(),
                        message: format!("{id} reverted but not journaled: {}", one_line(&e)),
                    });
                }
                sink(Event::Reverted {
                    host: host.name().to_string(),
                    resource: id,
                    seconds,
                });
            }
            Err(e) => {
                let error = one_line(&e);
                let _ = journal
                    .record(
                        host,
                        &id,
                        Entry::RevertFailed {
                            error: error.clone(),
                        },
                        false,
                        sink,
                    )
                    .await;
                sink(Event::RevertFailed {
                    host: host.name().to_string(),
                    resource: id.clone(),
                    error,
                });
                failed.push(id);
            }
        }
    }
    failed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! The engine's ordering and failure handling over an in-memory [`Host`] (a test double of
    //! bootos's own trait) and a small file resource; real hosts are covered by the VM tests.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use ferry_bootos::{Change, CmdOutput, FileState, HostError, Resource, ResourceError};
    use ferry_inventory::facts::Facts;

    use super::*;
    use crate::engine::events::quiet;
    use crate::engine::journal;

    #[derive(Default)]
    struct MemHost {
        files: Mutex<BTreeMap<String, String>>,
        fail_write: BTreeSet<String>,
        fail_restore: BTreeSet<String>,
        ops: Mutex<Vec<String>>,
        host_journal: Mutex<Vec<String>>,
    }

    impl MemHost {
        fn with(files: &[(&str, &str)]) -> MemHost {
            let h = MemHost::default();
            for (p, c) in files {
                h.files.lock().unwrap().insert(p.to_string(), c.to_string());
            }
            h
        }

        fn file(&self, p: &str) -> Option<String> {
            self.files.lock().unwrap().get(p).cloned()
        }

        fn failed(&self, what: &str) -> HostError {
            HostError::Failed {
                host: "mem".into(),
                command: what.into(),
                status: "exit 1".into(),
                stderr: "injected".into(),
            }
        }
    }

    #[async_trait]
    impl Host for MemHost {
        fn name(&self) -> &str {
            "mem"
        }

        async fn run(&self, script: &str) -> Result<CmdOutput, HostError> {
            if script.contains(HOST_JOURNAL_DIR) {
                self.host_journal.lock().unwrap().push(script.to_string());
            }
            Ok(CmdOutput {
                status: Some(0),
                described: "exit 0".into(),
                ..CmdOutput::default()
            })
        }

        async fn write_file(
            &self,
            path: &str,
            content: &[u8],
            _mode: u32,
        ) -> Result<(), HostError> {
            if self.fail_write.contains(path) {
                return Err(self.failed(path));
            }
            self.ops.lock().unwrap().push(format!("write {path}"));
            self.files
                .lock()
                .unwrap()
                .insert(path.into(), String::from_utf8_lossy(content).into());
            Ok(())
        }

        async fn upload(&self, _: &Path, _: &str, _: u32) -> Result<(), HostError> {
            Err(self.failed("upload"))
        }

        async fn send_tree(&self, _: &Path, _: &str) -> Result<(), HostError> {
            Err(self.failed("send_tree"))
        }

        async fn read_file(&self, path: &str) -> Result<FileState, HostError> {
            Ok(match self.file(path) {
                Some(c) => FileState::present(c, 0o644),
                None => FileState::absent(),
            })
        }

        async fn restore_file(&self, path: &str, state: &FileState) -> Result<(), HostError> {
            if self.fail_restore.contains(path) {
                return Err(self.failed(path));
            }
            self.ops.lock().unwrap().push(format!("restore {path}"));
            let mut files = self.files.lock().unwrap();
            match &state.content {
                Some(c) => files.insert(path.into(), c.clone()),
                None => files.remove(path),
            };
            Ok(())
        }
    }

    /// One whole file with a wanted content.
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    struct TestFile {
        path: String,
        content: String,
    }

    #[async_trait]
    impl Resource for TestFile {
        type State = FileState;

        fn id(&self) -> String {
            self.path.clone()
        }

        fn supports(&self, _: &Facts) -> Result<(), String> {
            Ok(())
        }

        async fn observe(&self, host: &dyn Host) -> Result<FileState, ResourceError> {
            Ok(host.read_file(&self.path).await?)
        }

        fn diff(&self, observed: &FileState) -> Vec<Change> {
            if observed.content.as_deref() == Some(self.content.as_str()) {
                return Vec::new();
            }
            vec![Change::new(
                &self.path,
                observed.content.clone().unwrap_or("absent".into()),
                &self.content,
            )]
        }

        async fn apply(&self, host: &dyn Host, _: &FileState) -> Result<(), ResourceError> {
            Ok(host
                .write_file(&self.path, self.content.as_bytes(), 0o644)
                .await?)
        }

        async fn revert(&self, host: &dyn Host, before: &FileState) -> Result<(), ResourceError> {
            Ok(host.restore_file(&self.path, before).await?)
        }
    }

    impl Step for TestFile {
        fn id(&self) -> String {
            self.path.clone()
        }

        fn journal_form(&self) -> Value {
            serde_json::to_value(self).unwrap()
        }

        fn resource(&self) -> &dyn DynResource {
            self
        }
    }

    fn steps(files: &[(&str, &str)]) -> Vec<Arc<dyn Step>> {
        files
            .iter()
            .map(|(p, c)| {
                Arc::new(TestFile {
                    path: p.to_string(),
                    content: c.to_string(),
                }) as Arc<dyn Step>
            })
            .collect()
    }

    fn run_journal(dir: &Path) -> RunJournal {
        RunJournal {
            run_id: "20250101-000000-abcd".into(),
            local: Arc::new(Journal::open(dir).unwrap()),
        }
    }

    fn events(j: &RunJournal) -> Vec<String> {
        journal::read(j.local.path())
            .unwrap()
            .iter()
            .map(|r| {
                let e = serde_json::to_value(&r.entry).unwrap();
                format!("{} {}", e["event"].as_str().unwrap(), r.resource_id)
            })
            .collect()
    }

    #[tokio::test]
    async fn applies_in_order_journals_each_change_and_skips_what_is_already_right() {
        let d = tempfile::tempdir().unwrap();
        let j = run_journal(d.path());
        let host = MemHost::with(&[("/b", "B")]);
        let s = apply_host(
            &host,
            &steps(&[("/a", "A"), ("/b", "B"), ("/c", "C")]),
            Gates::default(),
            &j,
            false,
            &quiet(),
        )
        .await;
        assert_eq!(s.outcome, Outcome::Ok);
        assert_eq!(s.changes, 2);
        assert_eq!(*host.ops.lock().unwrap(), ["write /a", "write /c"]);
        assert_eq!(events(&j), ["begin /a", "done /a", "begin /c", "done /c"]);
        // Every line is mirrored on the host.
        assert_eq!(host.host_journal.lock().unwrap().len(), 4);
        let again = apply_host(
            &host,
            &steps(&[("/a", "A"), ("/b", "B"), ("/c", "C")]),
            Gates::default(),
            &j,
            false,
            &quiet(),
        )
        .await;
        assert_eq!(again.outcome, Outcome::NoChanges);
    }

    #[tokio::test]
    async fn a_failure_reverts_this_runs_changes_newest_first() {
        let d = tempfile::tempdir().unwrap();
        let j = run_journal(d.path());
        let mut host = MemHost::with(&[("/a", "old a")]);
        host.fail_write.insert("/c".into());
        let s = apply_host(
            &host,
            &steps(&[("/a", "A"), ("/b", "B"), ("/c", "C"), ("/d", "D")]),
            Gates::default(),
            &j,
            false,
            &quiet(),
        )
        .await;
        assert_eq!(s.outcome, Outcome::RolledBack);
        assert!(s.reason.as_deref().unwrap().starts_with("/c: "), "{s:?}");
        assert_eq!(
            *host.ops.lock().unwrap(),
            [
                "write /a",
                "write /b",
                "restore /c",
                "restore /b",
                "restore /a"
            ]
        );
        assert_eq!(host.file("/a").as_deref(), Some("old a"));
        assert_eq!(host.file("/b"), None);
        assert_eq!(
            events(&j),
            [
                "begin /a",
                "done /a",
                "begin /b",
                "done /b",
                "begin /c",
                "failed /c",
                "reverted /c",
                "reverted /b",
                "reverted /a"
            ]
        );
        // Nothing left for `ferry rollback`.
        assert!(journal::pending_reverts(&journal::read(j.local.path()).unwrap(), &[]).is_empty());
    }

    #[tokio::test]
    async fn no_rollback_leaves_the_host_and_says_how_to_undo_later() {
        let d = tempfile::tempdir().unwrap();
        let j = run_journal(d.path());
        let mut host = MemHost::default();
        host.fail_write.insert("/b".into());
        let s = apply_host(
            &host,
            &steps(&[("/a", "A"), ("/b", "B")]),
            Gates::default(),
            &j,
            true,
            &quiet(),
        )
        .await;
        assert_eq!(s.outcome, Outcome::Failed);
        assert!(s
            .reason
            .as_deref()
            .unwrap()
            .contains("ferry rollback --run 20250101-000000-abcd"));
        assert_eq!(host.file("/a").as_deref(), Some("A"));
        // The later rollback reverts the failed (maybe half-made) change and the done one.
        let pending = journal::pending_reverts(&journal::read(j.local.path()).unwrap(), &[]);
        let ids: Vec<&str> = pending["mem"]
            .iter()
            .map(|r| r.resource_id.as_str())
            .collect();
        assert_eq!(ids, ["/b", "/a"]);
        let items = pending["mem"]
            .iter()
            .map(|r| match &r.entry {
                journal::Entry::Begin {
                    resource, observed, ..
                } => (
                    Arc::new(serde_json::from_value::<TestFile>(resource.clone()).unwrap())
                        as Arc<dyn Step>,
                    observed.clone(),
                ),
                _ => unreachable!(),
            })
            .collect();
        assert!(revert_all(&host, items, &j, &quiet()).await.is_empty());
        assert_eq!(host.file("/a"), None);
        assert!(journal::pending_reverts(&journal::read(j.local.path()).unwrap(), &[]).is_empty());
    }

    #[tokio::test]
    async fn a_revert_that_fails_is_reported_and_the_others_still_revert() {
        let d = tempfile::tempdir().unwrap();
        let j = run_journal(d.path());
        let mut host = MemHost::default();
        host.fail_write.insert("/c".into());
        host.fail_restore.insert("/b".into());
        let s = apply_host(
            &host,
            &steps(&[("/a", "A"), ("/b", "B"), ("/c", "C")]),
            Gates::default(),
            &j,
            false,
            &quiet(),
        )
        .await;
        assert_eq!(s.outcome, Outcome::RollbackIncomplete);
        assert!(
            s.reason.as_deref().unwrap().contains("not reverted: /b"),
            "{s:?}"
        );
        assert_eq!(host.file("/a"), None);
        assert_eq!(host.file("/b").as_deref(), Some("B"));
        let pending = journal::pending_reverts(&journal::read(j.local.path()).unwrap(), &[]);
        assert_eq!(pending["mem"].len(), 1);
    }

    #[tokio::test]
    async fn a_gated_step_waits_for_the_other_host_and_the_steps_before_it_do_not() {
        let d = tempfile::tempdir().unwrap();
        let j = run_journal(d.path());
        let host = MemHost::with(&[]);
        let (tx, rx) = Gates::channel();
        let gates = Gates {
            wait: vec![("/b".into(), "the source".into(), rx)],
            open: Vec::new(),
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink: Sink = {
            let seen = seen.clone();
            Arc::new(move |e| seen.lock().unwrap().push(e))
        };
        let ab = steps(&[("/a", "A"), ("/b", "B")]);
        let apply = apply_host(&host, &ab, gates, &j, false, &sink);
        let other = async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let before = (host.file("/a"), host.file("/b"));
            tx.send_replace(true);
            before
        };
        let (s, before) = tokio::join!(apply, other);
        assert_eq!(before, (Some("A".to_string()), None), "/a applied, /b held");
        assert_eq!(s.outcome, Outcome::Ok);
        assert_eq!(host.file("/b").as_deref(), Some("B"));
        assert!(seen.lock().unwrap().contains(&Event::Waiting {
            host: "mem".into(),
            resource: "/b".into(),
            on: "the source".into(),
        }));
    }

    #[tokio::test]
    async fn a_host_that_fails_before_its_gate_step_releases_the_waiting_hosts() {
        let d = tempfile::tempdir().unwrap();
        let j = run_journal(d.path());
        let mut source = MemHost::with(&[]);
        source.fail_write.insert("/a".into());
        let follower = MemHost::with(&[]);
        let (tx, rx) = Gates::channel();
        let opens = Gates {
            wait: Vec::new(),
            open: vec![("/b".into(), tx)],
        };
        let waits = Gates {
            wait: vec![("/b".into(), "the source".into(), rx)],
            open: Vec::new(),
        };
        let (ab, b, sink) = (
            steps(&[("/a", "A"), ("/b", "B")]),
            steps(&[("/b", "B")]),
            quiet(),
        );
        let (s, f) = tokio::join!(
            apply_host(&source, &ab, opens, &j, false, &sink),
            apply_host(&follower, &b, waits, &j, false, &sink),
        );
        assert_eq!(s.outcome, Outcome::RolledBack);
        assert_eq!(f.outcome, Outcome::Ok, "the follower went on: {f:?}");
    }
}
