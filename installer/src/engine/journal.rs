//! The run journal: one JSON line per step, fsynced, kept on the jump host
//! (`~/.ferry/runs/<RUN-ID>/journal.jsonl`) and mirrored on each host
//! (`/var/lib/ferry/journal/<RUN-ID>.jsonl`). A `begin` line holds the resource itself and the
//! state observed before it changed, so `ferry rollback` can undo a run from the journal alone,
//! even one killed between `begin` and `done`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ferry_bootos::Change;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The journal's file name inside a run's directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Where each host keeps its copy of the journal lines about it.
pub const HOST_JOURNAL_DIR: &str = "/var/lib/ferry/journal";

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Seconds since the epoch when written.
    pub t: f64,
    /// The run.
    pub run: String,
    /// The host (inventory name).
    pub host: String,
    /// The resource id on that host.
    pub resource_id: String,
    /// What happened.
    #[serde(flatten)]
    pub entry: Entry,
}

/// What a journal line records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Entry {
    /// About to apply: the resource, what it found (the undo data) and the diff.
    Begin {
        /// The resource as JSON (a bootos `ResourceSpec`).
        resource: Value,
        /// Its observed state before the change.
        observed: Value,
        /// What it is about to change.
        changes: Vec<Change>,
    },
    /// Applied.
    Done {
        /// How long it took.
        seconds: f64,
    },
    /// Applying failed.
    Failed {
        /// Why (one line).
        error: String,
    },
    /// Undone.
    Reverted {
        /// How long it took.
        seconds: f64,
    },
    /// Undoing failed (a later `ferry rollback` tries again).
    RevertFailed {
        /// Why (one line).
        error: String,
    },
}

impl Record {
    /// A line written now.
    pub fn now(run: &str, host: &str, resource_id: &str, entry: Entry) -> Record {
        Record {
            t: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
                .unwrap_or(0.0),
            run: run.to_string(),
            host: host.to_string(),
            resource_id: resource_id.to_string(),
            entry,
        }
    }

    /// The line as written (no newline).
    pub fn to_line(&self) -> String {
        // A struct of strings, numbers and JSON values always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The jump host's journal of one run, appended to by every host's task.
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    /// Opens (creating) `dir/journal.jsonl` for appending; `dir` is made 0700.
    pub fn open(dir: &Path) -> anyhow::Result<Journal> {
        create_private_dir(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts
            .open(&path)
            .with_context(|| format!("opening journal {}", path.display()))?;
        Ok(Journal {
            path,
            file: Mutex::new(file),
        })
    }

    /// Its file.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and waits until it is on disk: a crash right after still finds it.
    pub fn append(&self, rec: &Record) -> anyhow::Result<()> {
        let mut line = rec.to_line();
        line.push('\n');
        let file = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))?;
        (&*file)
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing journal {}", self.path.display()))
    }
}

/// Creates `dir` (and parents) with mode 0700 for the last component.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Reads a journal. A last line cut short (ferry killed while writing it) is ignored; any
/// other unreadable line is an error naming it.
pub fn read(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading journal {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => anyhow::bail!("{} line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// What undoing a run must revert, per host, newest first: every `begin` not followed by a
/// `reverted` for the same resource. A `begin` without `done` counts (the change may be half
/// made); a `revert-failed` leaves it to revert again. `hosts` limits it (empty: all).
pub fn pending_reverts(records: &[Record], hosts: &[String]) -> BTreeMap<String, Vec<Record>> {
    let mut open: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for r in records {
        if !hosts.is_empty() && !hosts.contains(&r.host) {
            continue;
        }
        let list = open.entry(r.host.clone()).or_default();
        match &r.entry {
            Entry::Begin { .. } => {
                list.retain(|b| b.resource_id != r.resource_id);
                list.push(r.clone());
            }
            Entry::Reverted { .. } => list.retain(|b| b.resource_id != r.resource_id),
            Entry::Done { .. } | Entry::Failed { .. } | Entry::RevertFailed { .. } => {}
        }
    }
    open.retain(|_, v| !v.is_empty());
    for v in open.values_mut() {
        v.reverse();
    }
    open
}

/// A new run id: `YYYYMMDD-HHMMSS-<4 hex>` in UTC, so ids sort by start time.
pub fn new_run_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut r = [0u8; 2];
    if getrandom::getrandom(&mut r).is_err() {
        // No randomness: the process id still separates two runs started in one second.
        r = (std::process::id() as u16).to_be_bytes();
    }
    run_id_at(secs, r)
}

/// The run id for `secs` since the epoch and two random bytes.
pub fn run_id_at(secs: u64, random: [u8; 2]) -> String {
    // Any clock this side of year 9999 converts; past it, the id stays well-formed at the epoch.
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{:02x}{:02x}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        random[0],
        random[1]
    )
}

/// Whether `s` has the form of a run id (checked before it becomes a path).
pub fn is_run_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b[8] == b'-'
        && b[15] == b'-'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && b[16..].iter().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn begin(host: &str, id: &str) -> Record {
        Record::now(
            "r",
            host,
            id,
            Entry::Begin {
                resource: serde_json::json!({"kind": id}),
                observed: serde_json::json!({"content": null}),
                changes: vec![Change::new(id, "a", "b")],
            },
        )
    }

    fn rec(host: &str, id: &str, entry: Entry) -> Record {
        Record::now("r", host, id, entry)
    }

    #[test]
    fn run_ids_are_utc_timestamps_that_sort() {
        assert_eq!(run_id_at(0, [0, 0]), "19700101-000000-0000");
        // 2024-02-29 23:59:59 UTC, a leap day.
        assert_eq!(
            run_id_at(1_709_251_199, [0xab, 0x0c]),
            "20240229-235959-ab0c"
        );
        assert!(run_id_at(1_709_251_199, [0xff, 0xff]) < run_id_at(1_709_251_200, [0, 0]));
        let id = new_run_id();
        assert!(is_run_id(&id), "{id}");
        assert!(!is_run_id("../../etc"));
        assert!(!is_run_id("20240229-235959-ab0g"));
    }

    #[test]
    fn journal_round_trips_and_survives_a_cut_last_line() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(&d.path().join("run")).unwrap();
        let recs = vec![
            begin("a", "sysctl"),
            rec("a", "sysctl", Entry::Done { seconds: 0.5 }),
            begin("a", "swap"),
        ];
        for r in &recs {
            j.append(r).unwrap();
        }
        assert_eq!(read(j.path()).unwrap(), recs);
        // ferry killed in the middle of a line.
        let mut f = OpenOptions::new().append(true).open(j.path()).unwrap();
        f.write_all(b"{\"t\":1,\"run\":\"r\",\"ho").unwrap();
        assert_eq!(read(j.path()).unwrap(), recs);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(j.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn rollback_reverts_begun_changes_newest_first_including_unfinished_ones() {
        let recs = vec![
            begin("a", "hostname"),
            rec("a", "hostname", Entry::Done { seconds: 0.1 }),
            begin("b", "hostname"),
            rec("b", "hostname", Entry::Done { seconds: 0.1 }),
            begin("a", "sysctl"),
            rec("a", "sysctl", Entry::Done { seconds: 0.1 }),
            // Killed here: a begin without done.
            begin("a", "swap"),
        ];
        let p = pending_reverts(&recs, &[]);
        let ids: Vec<&str> = p["a"].iter().map(|r| r.resource_id.as_str()).collect();
        assert_eq!(ids, ["swap", "sysctl", "hostname"]);
        assert_eq!(p["b"].len(), 1);
        let only_b = pending_reverts(&recs, &["b".to_string()]);
        assert_eq!(only_b.keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn reverted_changes_are_not_reverted_again_but_failed_reverts_are() {
        let recs = vec![
            begin("a", "hostname"),
            rec("a", "hostname", Entry::Done { seconds: 0.1 }),
            begin("a", "sysctl"),
            rec("a", "sysctl", Entry::Failed { error: "x".into() }),
            rec("a", "sysctl", Entry::Reverted { seconds: 0.1 }),
            rec(
                "a",
                "hostname",
                Entry::RevertFailed {
                    error: "down".into(),
                },
            ),
        ];
        let p = pending_reverts(&recs, &[]);
        let ids: Vec<&str> = p["a"].iter().map(|r| r.resource_id.as_str()).collect();
        assert_eq!(ids, ["hostname"]);
        let mut all = recs.clone();
        all.push(rec("a", "hostname", Entry::Reverted { seconds: 0.1 }));
        assert!(pending_reverts(&all, &[]).is_empty());
    }
}
