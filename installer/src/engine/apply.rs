//! Applying a host's resources in order, each recorded in the journal before and after, and
//! undoing them newest first: on a failure during apply (unless `--no-rollback`) and for
//! `ferry rollback` from a journal.

use std::sync::Arc;
use std::time::Instant;

use ferry_bootos::{DynResource, Host, ResourceSpec};
use ferry_inventory::ssh::shell_quote;
use serde::Serialize;
use serde_json::Value;

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

fn secs(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 100.0).round() / 100.0
}

/// Applies `steps` on `host` in order: each is observed again, skipped when already as
/// wanted, else journaled (`begin`), applied and journaled (`done`/`failed`). On the first
/// failure the changes begun in this run are reverted newest first, unless `no_rollback`.
pub async fn apply_host(
    host: &dyn Host,
    steps: &[Arc<dyn Step>],
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
