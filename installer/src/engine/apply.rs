//! Applying a host's resources in order, each recorded in the journal before and after, and
//! undoing them newest first: on a failure during apply (unless `--no-rollback`) and for
//! `ferry rollback` from a journal.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferry_bootos::host::sha256_hex;
use ferry_bootos::{
    CmdOutput, DataOutput, DynResource, Effect, FileState, Host, HostError, Kept, ResourceSpec,
};
use ferry_inventory::ssh::shell_quote;
use ferry_inventory::transfer::UploadSource;
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
    /// The cluster the run is for, named in every `begin` line.
    pub cluster_id: String,
    /// Lines the jump host's journal has and a host's copy not yet, by host: they travel with
    /// the host's next line ([`RunJournal::record_later`]).
    pending: Mutex<std::collections::BTreeMap<String, Vec<String>>>,
}

impl RunJournal {
    /// The journal of run `run_id` for cluster `cluster_id`, kept on the jump host in `local`.
    pub fn new(run_id: String, local: Arc<Journal>, cluster_id: String) -> Self {
        Self {
            run_id,
            local,
            cluster_id,
            pending: Mutex::default(),
        }
    }

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
        let rec = self.record_local(host, resource_id, entry).await?;
        let mut lines = self.take_pending(host.name());
        lines.push(rec.to_line());
        if let Err(e) = append_on_host(host, &self.run_id, &lines).await {
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

    /// Records a line on the jump host now (fsynced) and on the host with its next line or
    /// [`RunJournal::flush`]: one command instead of one per line. For lines that may reach
    /// the host late: a `begin` is flushed before the step's first command on the host
    /// ([`StepHost`]), a `done` with whatever comes next. A host copy cut short by a crash in
    /// between lacks only lines about changes not yet made, or lacks a `done`, as a run killed
    /// between `begin` and `done` does.
    pub async fn record_later(
        &self,
        host: &dyn Host,
        resource_id: &str,
        entry: Entry,
    ) -> anyhow::Result<()> {
        let rec = self.record_local(host, resource_id, entry).await?;
        if let Ok(mut p) = self.pending.lock() {
            p.entry(host.name().to_string())
                .or_default()
                .push(rec.to_line());
        }
        Ok(())
    }

    /// Writes the host's pending lines (see [`RunJournal::record_later`]) in one command.
    pub async fn flush(&self, host: &dyn Host) -> anyhow::Result<()> {
        let lines = self.take_pending(host.name());
        if lines.is_empty() {
            return Ok(());
        }
        append_on_host(host, &self.run_id, &lines)
            .await
            .map_err(|e| e.context("writing the host's journal"))
    }

    /// The line on the jump host's journal (fsynced).
    async fn record_local(
        &self,
        host: &dyn Host,
        resource_id: &str,
        entry: Entry,
    ) -> anyhow::Result<Record> {
        let rec = Record::now(&self.run_id, host.name(), resource_id, entry);
        // The fsync waits off the async workers, which keep every other host's session moving.
        let (local, line) = (self.local.clone(), rec.clone());
        tokio::task::spawn_blocking(move || local.append(&line))
            .await
            .map_err(|e| anyhow::anyhow!("writing the journal crashed: {e}"))??;
        Ok(rec)
    }

    fn take_pending(&self, host: &str) -> Vec<String> {
        self.pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(host))
            .unwrap_or_default()
    }
}

/// A journal line that could not be written, as the host operation's error.
fn journal_error(e: anyhow::Error) -> HostError {
    HostError::Local {
        what: "recording a change in the run's journal".into(),
        source: std::io::Error::other(one_line(&e)),
    }
}

/// Appends lines to `/var/lib/ferry/journal/<run>.jsonl` on the host (dir 0700, file
/// 0600), in one command. The lines (undo data: whole configuration files) go on stdin,
/// never in the command line. A tail cut short by a crash is cut off first, so the new line
/// does not glue onto it. Everything is synced before the command returns (`sync`, not only the journal): a step's
/// `done` line must not outlive what the step wrote. A host powered off after a step had
/// ended came back with files the step had made empty (containerd's, seen on a VM test bed),
/// and the next run would have skipped the step as done.
async fn append_on_host(host: &dyn Host, run_id: &str, lines: &[String]) -> anyhow::Result<()> {
    let file = super::journal::host_copy(run_id);
    let script = format!(
        "umask 077 && d={d} && f={f} && mkdir -p \"$d\" && chmod 700 \"$d\" && \
         if [ -s \"$f\" ] && [ -n \"$(tail -c 1 \"$f\")\" ]; then sed -i '$d' \"$f\"; fi && \
         cat >> \"$f\" && sync",
        d = shell_quote(HOST_JOURNAL_DIR),
        f = shell_quote(&file)
    );
    let mut data = Vec::new();
    for line in lines {
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
    }
    let out = host.run_data(&script, &data).await?;
    if !out.success() {
        anyhow::bail!(
            "{}: appending to {file} failed ({}): {}",
            host.name(),
            out.described,
            out.stderr.trim()
        );
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
    let mut begun: Vec<Revertible> = Vec::new();
    let mut failure: Option<String> = None;
    for step in steps {
        let id = step.id();
        let r = step.resource();
        gates.before(&name, &id, sink).await;
        let t = Instant::now();
        let step_host = StepHost::applying(host, journal, &id, sink);
        let result: anyhow::Result<bool> = async {
            // What it reads and probes, in one command (read just now, before any change).
            let observing =
                ferry_bootos::Prefetched::new(&step_host, &r.reads(), &r.probes()).await;
            let observed = r.observe(&observing).await?;
            let changes = r.diff(&observed)?;
            if changes.is_empty() {
                return Ok(false);
            }
            // Counted as begun before the journal line: should writing it fail half way, the
            // revert (back to what was just observed) is harmless.
            begun.push(Revertible {
                step: step.clone(),
                before: observed.clone(),
                effects: Some(Vec::new()),
            });
            // On the jump host now; on the host before the step's first command there, in
            // one command with the previous step's `done` and often this step's first effect.
            journal
                .record_later(
                    host,
                    &id,
                    Entry::Begin {
                        resource: step.journal_form(),
                        observed: observed.clone(),
                        changes,
                        records_effects: true,
                        cluster: Some(journal.cluster_id.clone()),
                    },
                )
                .await?;
            step_host.arm();
            r.apply(&step_host, &observed).await?;
            Ok(true)
        }
        .await;
        if let Some(last) = begun.last_mut().filter(|b| b.step.id() == id) {
            last.effects = Some(step_host.take_effects());
        }
        gates.after(&id);
        match result {
            Ok(false) => {}
            Ok(true) => {
                let seconds = secs(t);
                if let Err(e) = journal
                    .record_later(host, &id, Entry::Done { seconds })
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
    // The lines still pending (the last `done`; a `begin` whose step ran no command).
    if let Err(e) = journal.flush(host).await {
        sink(Event::Warning {
            host: name.clone(),
            message: format!("host journal not written: {}", one_line(&e)),
        });
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
    let failed = revert_all(host, begun, journal, sink).await.failed;
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

/// A change to undo: the step, the state observed before it, and the effects its run
/// recorded (`None`: a journal from before effects were recorded).
pub struct Revertible {
    /// The step.
    pub step: Arc<dyn Step>,
    /// Its observed state before the change.
    pub before: Value,
    /// What the run recorded the change left on the host.
    pub effects: Option<Vec<Effect>>,
}

/// What undoing some changes on one host came to.
#[derive(Debug, Default)]
pub struct RevertReport {
    /// Resources that could not be reverted.
    pub failed: Vec<String>,
    /// What was left as found because it changed after the run (`resource: what: why`).
    pub kept: Vec<String>,
}

/// Reverts `items` in the order given, journaling each; goes on after a failure so one stuck
/// resource does not keep the others changed. What changed after the run is left as it is and
/// reported (a `warning` event and the `reverted` line's `kept`).
pub async fn revert_all(
    host: &dyn Host,
    items: Vec<Revertible>,
    journal: &RunJournal,
    sink: &Sink,
) -> RevertReport {
    let mut report = RevertReport::default();
    for item in items {
        let id = item.step.id();
        let t = Instant::now();
        let step_host = StepHost::reverting(host, &journal.run_id, item.effects);
        let result = item.step.resource().revert(&step_host, &item.before).await;
        let kept: Vec<String> = step_host
            .take_kept()
            .into_iter()
            .map(|k| format!("{}: {}", k.what, k.why))
            .collect();
        for k in &kept {
            sink(Event::Warning {
                host: host.name().to_string(),
                message: format!("{id}: {k}"),
            });
            report.kept.push(format!("{id}: {k}"));
        }
        match result {
            Ok(()) => {
                let seconds = secs(t);
                if let Err(e) = journal
                    .record(host, &id, Entry::Reverted { seconds, kept }, false, sink)
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
                report.failed.push(id);
            }
        }
    }
    report
}

/// A host as one step of a run sees it. Applying, every effect (each file written, the
/// packages an install adds) is journaled before it happens; undoing, the revert knows what its
/// run recorded, so it undoes only the run's own work: a file is put back only while it still
/// holds what the run wrote (changed since: it stays, with the state before the run beside it
/// as `PATH.ferry-rollback-RUN`), a file the run never wrote is left alone, and packages go
/// only while still at the version installed (see bootos `packages::undo_install`).
pub struct StepHost<'a> {
    inner: &'a dyn Host,
    role: Role<'a>,
    effects: Mutex<Vec<Effect>>,
    kept: Mutex<Vec<Kept>>,
    /// The step's `begin` waits in the journal's pending lines: it reaches the host before
    /// anything else the step does there ([`StepHost::arm`]).
    armed: std::sync::atomic::AtomicBool,
}

enum Role<'a> {
    Applying {
        journal: &'a RunJournal,
        id: String,
        sink: &'a Sink,
    },
    Reverting {
        run_id: String,
        recorded: Option<Vec<Effect>>,
    },
}

impl<'a> StepHost<'a> {
    /// For applying step `id`, journaling its effects in `journal`.
    pub fn applying(
        inner: &'a dyn Host,
        journal: &'a RunJournal,
        id: &str,
        sink: &'a Sink,
    ) -> Self {
        Self::new(
            inner,
            Role::Applying {
                journal,
                id: id.to_string(),
                sink,
            },
        )
    }

    /// For undoing a change of run `run_id` whose recorded effects are `recorded`.
    pub fn reverting(inner: &'a dyn Host, run_id: &str, recorded: Option<Vec<Effect>>) -> Self {
        Self::new(
            inner,
            Role::Reverting {
                run_id: run_id.to_string(),
                recorded,
            },
        )
    }

    fn new(inner: &'a dyn Host, role: Role<'a>) -> Self {
        Self {
            inner,
            role,
            effects: Mutex::new(Vec::new()),
            kept: Mutex::new(Vec::new()),
            armed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The step's `begin` was recorded with [`RunJournal::record_later`]: the journal's
    /// pending lines go to the host before the step's first command there (with its first
    /// effect line when that comes first, in the same command).
    pub fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Before a command on the host: the pending `begin` (and what waited with it) first.
    async fn ready(&self) -> Result<(), HostError> {
        let Role::Applying { journal, .. } = &self.role else {
            return Ok(());
        };
        if !self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        journal.flush(self.inner).await.map_err(journal_error)
    }

    /// A meter reporting the bytes of `what` as this step's (applying; undoing reports none).
    fn meter(&self, what: String, total: Option<u64>) -> Option<Arc<super::meter::Meter>> {
        match &self.role {
            Role::Applying { id, sink, .. } => Some(Arc::new(super::meter::Meter::new(
                (*sink).clone(),
                self.inner.name(),
                id,
                what,
                total,
            ))),
            Role::Reverting { .. } => None,
        }
    }

    /// The effects journaled so far (applying).
    pub fn take_effects(&self) -> Vec<Effect> {
        self.effects
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    /// What the revert left as found.
    pub fn take_kept(&self) -> Vec<Kept> {
        self.kept
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default()
    }

    /// Restores `path` only if it holds what the run wrote; see [`StepHost`].
    async fn restore_own(
        &self,
        path: &str,
        before: &FileState,
        recorded: &[Effect],
        run_id: &str,
    ) -> Result<(), HostError> {
        let written: Vec<&str> = recorded
            .iter()
            .filter_map(|e| match e {
                Effect::Wrote { path: p, sha256 } if p == path => Some(sha256.as_str()),
                _ => None,
            })
            .collect();
        if written.is_empty() {
            // The run never wrote it: nothing of the run's to undo.
            return Ok(());
        }
        // Hashed on the host: the file may be a binary or an image archive of gigabytes.
        let now = self.inner.file_sha256(path).await?;
        let ours = now.as_deref().is_some_and(|h| written.contains(&h));
        if ours {
            return self.inner.restore_file(path, before).await;
        }
        if now == before.bytes().map(sha256_hex) {
            // Already back as it was (by hand); only the directories the write made may be left.
            if !before.exists() {
                self.inner.remove_empty_dirs(&before.missing_dirs).await?;
            }
            return Ok(());
        }
        let why = match before.bytes() {
            Some(old) => {
                let snapshot = format!("{path}.ferry-rollback-{run_id}");
                self.inner
                    .write_file(&snapshot, old, before.mode.unwrap_or(0o600))
                    .await?;
                format!(
                    "changed since run {run_id} wrote it: kept as it is now; what it held \
                     before the run is in {snapshot}"
                )
            }
            None => format!("created by run {run_id} and changed since: kept as it is now"),
        };
        self.report_kept(Kept {
            what: path.to_string(),
            why,
        });
        Ok(())
    }
}

#[async_trait::async_trait]
impl Host for StepHost<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn run(&self, script: &str) -> Result<CmdOutput, HostError> {
        self.ready().await?;
        self.inner.run(script).await
    }

    async fn run_data(&self, script: &str, input: &[u8]) -> Result<DataOutput, HostError> {
        self.ready().await?;
        self.inner.run_data(script, input).await
    }

    async fn write_file(&self, path: &str, content: &[u8], mode: u32) -> Result<(), HostError> {
        self.record_effect(&Effect::wrote(path, content)).await?;
        self.inner.write_file(path, content, mode).await
    }

    async fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<(), HostError> {
        self.ready().await?;
        self.inner.upload(local, remote, mode).await
    }

    async fn send_tree(&self, local_dir: &Path, remote_dir: &str) -> Result<(), HostError> {
        self.ready().await?;
        self.inner.send_tree(local_dir, remote_dir).await
    }

    async fn unpack_staged(&self, sha256: &str, remote_dir: &str) -> Result<bool, HostError> {
        self.ready().await?;
        self.inner.unpack_staged(sha256, remote_dir).await
    }

    async fn upload_from(
        &self,
        source: &dyn UploadSource,
        remote: &str,
        mode: u32,
    ) -> Result<(), HostError> {
        self.record_effect(&Effect::Wrote {
            path: remote.to_string(),
            sha256: source.sha256().to_string(),
        })
        .await?;
        match self.meter(
            format!("{} to {remote}", source.describe().display()),
            Some(source.size()),
        ) {
            Some(m) => {
                let counted = super::meter::CountedSource::new(source, m);
                self.inner.upload_from(&counted, remote, mode).await
            }
            None => self.inner.upload_from(source, remote, mode).await,
        }
    }

    async fn run_piped(
        &self,
        script: &str,
        input: Box<dyn std::io::Read + Send>,
    ) -> Result<CmdOutput, HostError> {
        // What reads the stream, for the progress line: the command before its redirections.
        self.ready().await?;
        let what = script
            .split(" 2>")
            .next()
            .and_then(|c| c.split(" ||").next())
            .unwrap_or(script)
            .trim()
            .to_string();
        match self.meter(what, None) {
            Some(m) => {
                let counted = super::meter::Counting::new(input, m);
                self.inner.run_piped(script, Box::new(counted)).await
            }
            None => self.inner.run_piped(script, input).await,
        }
    }

    async fn read_file(&self, path: &str) -> Result<FileState, HostError> {
        self.ready().await?;
        self.inner.read_file(path).await
    }

    async fn restore_file(&self, path: &str, before: &FileState) -> Result<(), HostError> {
        self.ready().await?;
        match &self.role {
            Role::Reverting {
                run_id,
                recorded: Some(recorded),
            } => self.restore_own(path, before, recorded, run_id).await,
            _ => self.inner.restore_file(path, before).await,
        }
    }

    async fn record_effect(&self, effect: &Effect) -> Result<(), HostError> {
        let Role::Applying { journal, id, sink } = &self.role else {
            return Ok(());
        };
        // The pending `begin` goes in the same command as this line (see `record`).
        self.armed.store(false, std::sync::atomic::Ordering::SeqCst);
        journal
            .record(
                self.inner,
                id,
                Entry::Effect {
                    effect: effect.clone(),
                },
                true,
                sink,
            )
            .await
            .map_err(journal_error)?;
        if let Ok(mut all) = self.effects.lock() {
            all.push(effect.clone());
        }
        Ok(())
    }

    fn recorded_effects(&self) -> Option<Vec<Effect>> {
        match &self.role {
            Role::Reverting { recorded, .. } => recorded.clone(),
            Role::Applying { .. } => None,
        }
    }

    fn report_kept(&self, kept: Kept) {
        if let Ok(mut all) = self.kept.lock() {
            all.push(kept);
        }
    }
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
    use ferry_bootos::{
        Change, CmdOutput, DataOutput, FileState, HostError, Resource, ResourceError,
    };
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
        /// Every script run, as `ps` on the host would show it.
        scripts: Mutex<Vec<String>>,
        /// What the journal appends sent on stdin.
        host_journal: Mutex<Vec<String>>,
        /// For each journal append, how many of `ops` had been done before it.
        journal_after_ops: Mutex<Vec<usize>>,
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
            self.scripts.lock().unwrap().push(script.to_string());
            Ok(CmdOutput {
                status: Some(0),
                described: "exit 0".into(),
                ..CmdOutput::default()
            })
        }

        async fn run_data(&self, script: &str, input: &[u8]) -> Result<DataOutput, HostError> {
            self.scripts.lock().unwrap().push(script.to_string());
            if script.contains(HOST_JOURNAL_DIR) {
                let done = self.ops.lock().unwrap().len();
                self.journal_after_ops.lock().unwrap().push(done);
                self.host_journal
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(input).into_owned());
            }
            Ok(DataOutput {
                status: Some(0),
                described: "exit 0".into(),
                ..DataOutput::default()
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

        async fn file_sha256(&self, path: &str) -> Result<Option<String>, HostError> {
            Ok(self.file(path).map(|c| sha256_hex(c.as_bytes())))
        }

        async fn restore_file(&self, path: &str, state: &FileState) -> Result<(), HostError> {
            if self.fail_restore.contains(path) {
                return Err(self.failed(path));
            }
            self.ops.lock().unwrap().push(format!("restore {path}"));
            let mut files = self.files.lock().unwrap();
            match state.text() {
                Some(c) => files.insert(path.into(), c.to_string()),
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
            if observed.text() == Some(self.content.as_str()) {
                return Vec::new();
            }
            vec![Change::new(
                &self.path,
                observed.text().unwrap_or("absent"),
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
        RunJournal::new(
            "20250101-000000-abcd".into(),
            Arc::new(Journal::open(dir).unwrap()),
            "ferry-test".into(),
        )
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
        assert_eq!(
            events(&j),
            [
                "begin /a",
                "effect /a",
                "done /a",
                "begin /c",
                "effect /c",
                "done /c"
            ]
        );
        // Every line is mirrored on the host, in three commands rather than six: a `begin`
        // and its effect before the write they announce, a `done` with the next step's lines
        // (or alone at the end).
        let appends: Vec<Vec<String>> = host
            .host_journal
            .lock()
            .unwrap()
            .iter()
            .map(|lines| {
                lines
                    .lines()
                    .map(|l| {
                        let v: Value = serde_json::from_str(l).unwrap();
                        format!(
                            "{} {}",
                            v["event"].as_str().unwrap(),
                            v["resource_id"].as_str().unwrap()
                        )
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            appends,
            [
                vec!["begin /a", "effect /a"],
                vec!["done /a", "begin /c", "effect /c"],
                vec!["done /c"]
            ]
        );
        assert_eq!(*host.journal_after_ops.lock().unwrap(), [0, 1, 2]);
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
    async fn undo_data_reaches_the_hosts_journal_on_stdin_never_in_a_command_line() {
        let d = tempfile::tempdir().unwrap();
        let j = run_journal(d.path());
        let secret = "password = hunter2-undo-data";
        let host = MemHost::with(&[("/etc/app.conf", secret)]);
        let s = apply_host(
            &host,
            &steps(&[("/etc/app.conf", "password = new")]),
            Gates::default(),
            &j,
            false,
            &quiet(),
        )
        .await;
        assert_eq!(s.outcome, Outcome::Ok);
        let sent = host.host_journal.lock().unwrap().join("");
        assert!(sent.contains(secret), "the begin line carries the old file");
        for script in host.scripts.lock().unwrap().iter() {
            assert!(
                !script.contains("hunter2"),
                "data in a command line: {script}"
            );
        }
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
            // /c's write failed: it holds what it held before, nothing to restore.
            ["write /a", "write /b", "restore /b", "restore /a"]
        );
        assert_eq!(host.file("/a").as_deref(), Some("old a"));
        assert_eq!(host.file("/b"), None);
        assert_eq!(
            events(&j),
            [
                "begin /a",
                "effect /a",
                "done /a",
                "begin /b",
                "effect /b",
                "done /b",
                "begin /c",
                "effect /c",
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
            .map(|u| Revertible {
                step: Arc::new(serde_json::from_value::<TestFile>(u.resource.clone()).unwrap()),
                before: u.observed.clone(),
                effects: u.effects.clone(),
            })
            .collect();
        assert!(revert_all(&host, items, &j, &quiet())
            .await
            .failed
            .is_empty());
        assert_eq!(host.file("/a"), None);
        assert!(journal::pending_reverts(&journal::read(j.local.path()).unwrap(), &[]).is_empty());
    }

    /// `ferry rollback` from the journal alone, as after a finished run.
    async fn roll_back(host: &MemHost, j: &RunJournal) -> RevertReport {
        let pending = journal::pending_reverts(&journal::read(j.local.path()).unwrap(), &[]);
        let items = pending["mem"]
            .iter()
            .map(|u| Revertible {
                step: Arc::new(serde_json::from_value::<TestFile>(u.resource.clone()).unwrap()),
                before: u.observed.clone(),
                effects: u.effects.clone(),
            })
            .collect();
        revert_all(host, items, j, &quiet()).await
    }

    #[tokio::test]
    async fn rollback_keeps_a_file_edited_since_the_run_and_leaves_the_old_one_beside_it() {
        let d = tempfile::tempdir().unwrap();
        let j = run_journal(d.path());
        let host = MemHost::with(&[("/etc/fstab", "root\nswap\n")]);
        let s = apply_host(
            &host,
            &steps(&[("/etc/fstab", "root\n# swap\n"), ("/etc/new.conf", "x")]),
            Gates::default(),
            &j,
            false,
            &quiet(),
        )
        .await;
        assert_eq!(s.outcome, Outcome::Ok);
        // An admin edits both files after the run.
        let edited = "root\n# swap\n/dev/vdb /data ext4 defaults 0 2\n";
        host.files
            .lock()
            .unwrap()
            .insert("/etc/fstab".into(), edited.into());
        host.files
            .lock()
            .unwrap()
            .insert("/etc/new.conf".into(), "x, tuned".into());
        let report = roll_back(&host, &j).await;
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(host.file("/etc/fstab").as_deref(), Some(edited));
        let snapshot = "/etc/fstab.ferry-rollback-20250101-000000-abcd";
        assert_eq!(host.file(snapshot).as_deref(), Some("root\nswap\n"));
        assert_eq!(host.file("/etc/new.conf").as_deref(), Some("x, tuned"));
        let kept = report.kept.join("\n");
        assert!(
            kept.contains("/etc/fstab: changed since run 20250101-000000-abcd wrote it")
                && kept.contains(snapshot),
            "{kept}"
        );
        assert!(kept.contains("/etc/new.conf: created by run"), "{kept}");
        // The journal says so too.
        let text = std::fs::read_to_string(j.local.path()).unwrap();
        assert!(text.contains("\"kept\""), "{text}");
    }

    #[tokio::test]
    async fn rollback_restores_files_that_still_hold_what_the_run_wrote_and_no_others() {
        let d = tempfile::tempdir().unwrap();
        let j = run_journal(d.path());
        let host = MemHost::with(&[("/a", "old a")]);
        apply_host(
            &host,
            &steps(&[("/a", "A"), ("/b", "B")]),
            Gates::default(),
            &j,
            false,
            &quiet(),
        )
        .await;
        let report = roll_back(&host, &j).await;
        assert!(
            report.kept.is_empty() && report.failed.is_empty(),
            "{report:?}"
        );
        assert_eq!(host.file("/a").as_deref(), Some("old a"));
        assert_eq!(host.file("/b"), None);
        // Every write was journaled, with its digest, before it happened.
        let effects: Vec<String> = journal::read(j.local.path())
            .unwrap()
            .iter()
            .filter_map(|r| match &r.entry {
                journal::Entry::Effect {
                    effect: Effect::Wrote { path, sha256 },
                } => Some(format!("{path} {sha256}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            effects,
            [
                format!("/a {}", sha256_hex(b"A")),
                format!("/b {}", sha256_hex(b"B"))
            ]
        );
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
