//! The run journal: one JSON line per step, fsynced, kept on the jump host
//! (`~/.ferry/runs/<RUN-ID>/journal.jsonl`) and mirrored on each host
//! (`/var/lib/ferry/journal/<RUN-ID>.jsonl`). A `begin` line holds the resource itself and the
//! state observed before it changed, so `ferry rollback` can undo a run from the journal alone,
//! even one killed between `begin` and `done`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ferry_bootos::{Change, Effect, Host, HostError};
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
        /// Its effects are recorded in `effect` lines (every run of this ferry does so; a
        /// journal without them is undone the older way, see `apply::StepHost`).
        #[serde(default)]
        records_effects: bool,
        /// The cluster the run was for (so the guard can tell this cluster's own installs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<String>,
    },
    /// What the change is about to leave on the host (a file's digest, packages installed),
    /// written before it does so: its undo removes only that.
    Effect {
        /// The effect.
        effect: Effect,
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
        /// What the undo left as it found it (changed since the run), one line each.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<String>,
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

/// The jump host's journal of one run, appended to by every host's task. Lines appended at
/// the same time share one fsync (group commit): 500 hosts journaling each step would
/// otherwise wait on thousands of fsyncs one after another (2.7 ms each on the test machine's
/// disk, 8000 of them for a light baseline on 500 hosts).
pub struct Journal {
    path: PathBuf,
    tail: Mutex<Tail>,
    synced: Condvar,
}

/// The lines handed in and how many of them are known to be on disk.
struct Tail {
    file: Arc<File>,
    /// Lines written so far (to the page cache, in order, whole).
    written: u64,
    /// Lines known to be on disk.
    synced: u64,
    /// Someone is syncing now; the others wait for the outcome.
    syncing: bool,
    /// The last failed sync: the lines it was to cover, and why.
    failed: Option<(u64, String)>,
}

impl Journal {
    /// Opens (creating) `dir/journal.jsonl` for appending; `dir` is made 0700. A last line
    /// cut short (ferry killed while writing it) is cut off first, so the next line does not
    /// glue onto it; a new file is made durable with its directory.
    pub fn open(dir: &Path) -> anyhow::Result<Journal> {
        let new_dir = !dir.exists();
        create_private_dir(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let new_file = !path.exists();
        let mut opts = OpenOptions::new();
        opts.create(true).append(true).read(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts
            .open(&path)
            .with_context(|| format!("opening journal {}", path.display()))?;
        cut_torn_tail(&file).with_context(|| format!("repairing journal {}", path.display()))?;
        if new_file {
            sync_dir(dir)?;
        }
        if new_dir {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(Journal {
            path,
            tail: Mutex::new(Tail {
                file: Arc::new(file),
                written: 0,
                synced: 0,
                syncing: false,
                failed: None,
            }),
            synced: Condvar::new(),
        })
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and waits until it is on disk: a crash right after still finds it.
    /// Blocks: call it where blocking is allowed (`spawn_blocking` in async code).
    pub fn append(&self, rec: &Record) -> anyhow::Result<()> {
        let mut line = rec.to_line();
        line.push('\n');
        let poisoned = || anyhow::anyhow!("journal lock poisoned");
        let err = |e: &dyn std::fmt::Display| {
            anyhow::anyhow!("writing journal {}: {e}", self.path.display())
        };
        let mut t = self.tail.lock().map_err(|_| poisoned())?;
        // Written under the lock: lines never interleave.
        (&*t.file).write_all(line.as_bytes()).map_err(|e| err(&e))?;
        t.written += 1;
        let mine = t.written;
        loop {
            if t.synced >= mine {
                return Ok(());
            }
            if let Some((upto, why)) = &t.failed {
                if *upto >= mine {
                    return Err(err(why));
                }
            }
            if t.syncing {
                t = self.synced.wait(t).map_err(|_| poisoned())?;
                continue;
            }
            // This caller syncs every line written so far, its own and the others'.
            t.syncing = true;
            let upto = t.written;
            let file = t.file.clone();
            drop(t);
            let r = file.sync_data();
            t = self.tail.lock().map_err(|_| poisoned())?;
            t.syncing = false;
            match r {
                Ok(()) => t.synced = t.synced.max(upto),
                Err(e) => t.failed = Some((upto, e.to_string())),
            }
            self.synced.notify_all();
        }
    }
}

/// Cuts a last line that has no newline (a write cut short) off `file`.
fn cut_torn_tail(file: &File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut f = file;
    // Read back from the end until a newline (a line is at most a few MiB of undo data).
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if end == len && buf[n - 1] == b'\n' {
            return Ok(());
        }
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            file.set_len(start + i as u64 + 1)?;
            return file.sync_data();
        }
        if start == 0 {
            file.set_len(0)?;
            return file.sync_data();
        }
        end = start;
    }
}

/// fsyncs a directory, so an entry just made in it survives a crash.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
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
    parse(&text, &path.display().to_string())
}

/// Reads a journal's text (`origin` names it in errors), as [`read`] does.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Vec<Record>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => anyhow::bail!("{origin} line {}: {e}", i + 1),
        }
    }
    Ok(out)
}

/// Where a host keeps its copy of run `run_id`'s lines.
pub fn host_copy(run_id: &str) -> String {
    format!("{HOST_JOURNAL_DIR}/{run_id}.jsonl")
}

/// Reads a host's copy of a journal (lenient: a torn or unreadable line is skipped, since
/// the host's copy is a second record, not the only one). `Ok(None)` when it has none.
pub async fn read_host_copy(
    host: &dyn Host,
    run_id: &str,
) -> Result<Option<Vec<Record>>, HostError> {
    let f = host.read_file(&host_copy(run_id)).await?;
    Ok(f.bytes()
        .map(|b| parse_lenient(&String::from_utf8_lossy(b))))
}

/// Every journal line a host keeps, of every run (for the guard, see
/// `guard::own_installs`).
pub async fn read_host_journals(host: &dyn Host) -> Result<Vec<Record>, HostError> {
    let list = host
        .run_ok(&format!("ls -1 {HOST_JOURNAL_DIR} 2>/dev/null; true"))
        .await?;
    let mut out = Vec::new();
    for name in list.lines().filter_map(|l| l.trim().strip_suffix(".jsonl")) {
        if is_run_id(name) {
            out.extend(read_host_copy(host, name).await?.unwrap_or_default());
        }
    }
    Ok(out)
}

/// The records of `text` that can be read.
pub fn parse_lenient(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .collect()
}

/// One journal from the jump host's copy (if any) and the hosts' own copies: each host's lines
/// as its copy has them, with the jump host's lines about it that its copy lacks (a mirror
/// write that failed) put in by time. A jump host's copy that is lost, or cut short anywhere,
/// loses nothing the hosts kept.
pub fn merge(jump_host: &[Record], hosts: &BTreeMap<String, Vec<Record>>) -> Vec<Record> {
    let mut per_host: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for (host, recs) in hosts {
        per_host.insert(
            host.clone(),
            recs.iter().filter(|r| &r.host == host).cloned().collect(),
        );
    }
    for r in jump_host {
        let list = per_host.entry(r.host.clone()).or_default();
        if list.contains(r) {
            continue;
        }
        let at = list.iter().rposition(|x| x.t <= r.t).map_or(0, |i| i + 1);
        list.insert(at, r.clone());
    }
    per_host.into_values().flatten().collect()
}

/// One change a rollback undoes: the resource, what it observed before, and what the run
/// recorded it left (see [`Entry::Effect`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Undo {
    /// The resource id.
    pub resource_id: String,
    /// The resource as JSON (a bootos `ResourceSpec`).
    pub resource: Value,
    /// Its state before the change.
    pub observed: Value,
    /// What the run recorded the change left; `None` for a journal that records no effects.
    pub effects: Option<Vec<Effect>>,
}

/// What undoing a run must revert, per host, newest first: every `begin` not followed by a
/// `reverted` for the same resource, with the effects recorded after it. A `begin` without
/// `done` counts (the change may be half made); a `revert-failed` leaves it to revert again.
/// `hosts` limits it (empty: all).
pub fn pending_reverts(records: &[Record], hosts: &[String]) -> BTreeMap<String, Vec<Undo>> {
    let mut open: BTreeMap<String, Vec<Undo>> = BTreeMap::new();
    for r in records {
        if !hosts.is_empty() && !hosts.contains(&r.host) {
            continue;
        }
        let list = open.entry(r.host.clone()).or_default();
        match &r.entry {
            Entry::Begin {
                resource,
                observed,
                records_effects,
                ..
            } => {
                list.retain(|b| b.resource_id != r.resource_id);
                list.push(Undo {
                    resource_id: r.resource_id.clone(),
                    resource: resource.clone(),
                    observed: observed.clone(),
                    effects: records_effects.then(Vec::new),
                });
            }
            Entry::Effect { effect } => {
                if let Some(u) = list.iter_mut().find(|b| b.resource_id == r.resource_id) {
                    u.effects.get_or_insert_with(Vec::new).push(effect.clone());
                }
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
                records_effects: true,
                cluster: None,
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
    fn lines_appended_at_once_by_many_hosts_all_land_whole() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(&d.path().join("run")).unwrap();
        std::thread::scope(|s| {
            for h in 0..16 {
                let j = &j;
                s.spawn(move || {
                    for i in 0..50 {
                        j.append(&rec(
                            &format!("h{h}"),
                            &format!("step{i}"),
                            Entry::Done { seconds: 0.1 },
                        ))
                        .unwrap();
                    }
                });
            }
        });
        let got = read(j.path()).unwrap();
        assert_eq!(got.len(), 16 * 50);
        for h in 0..16 {
            // Each host's lines in the order it wrote them.
            let ids: Vec<&str> = got
                .iter()
                .filter(|r| r.host == format!("h{h}"))
                .map(|r| r.resource_id.as_str())
                .collect();
            let want: Vec<String> = (0..50).map(|i| format!("step{i}")).collect();
            assert_eq!(ids, want);
        }
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
    fn reopening_cuts_a_torn_last_line_so_the_next_line_stands_alone() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("run");
        let first = begin("a", "sysctl");
        Journal::open(&dir).unwrap().append(&first).unwrap();
        let path = dir.join(JOURNAL_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"t\":1,\"run\":\"r\",\"ho").unwrap();
        drop(f);
        let done = rec("a", "sysctl", Entry::Done { seconds: 0.5 });
        Journal::open(&dir).unwrap().append(&done).unwrap();
        assert_eq!(read(&path).unwrap(), vec![first, done]);
        // A journal that is nothing but a torn line is emptied.
        std::fs::write(&path, b"{\"t\":1").unwrap();
        let again = begin("b", "swap");
        Journal::open(&dir).unwrap().append(&again).unwrap();
        assert_eq!(read(&path).unwrap(), vec![again]);
    }

    #[test]
    fn the_hosts_copies_make_up_for_a_lost_or_cut_jump_host_journal() {
        let mut a1 = begin("a", "hostname");
        a1.t = 1.0;
        let mut a2 = rec("a", "hostname", Entry::Done { seconds: 0.1 });
        a2.t = 2.0;
        let mut a3 = begin("a", "sysctl");
        a3.t = 3.0;
        let mut b1 = begin("b", "hostname");
        b1.t = 1.5;
        // The jump host's copy was cut after a1; a's copy lacks a2 (its mirror failed).
        let jump = vec![a1.clone()];
        let hosts: BTreeMap<String, Vec<Record>> = [
            ("a".to_string(), vec![a1.clone(), a3.clone()]),
            ("b".to_string(), vec![b1.clone()]),
        ]
        .into();
        let mut with_a2 = jump.clone();
        with_a2.push(a2.clone());
        let merged = merge(&with_a2, &hosts);
        assert_eq!(merged, vec![a1.clone(), a2, a3.clone(), b1.clone()]);
        let p = pending_reverts(&merge(&jump, &hosts), &[]);
        let ids: Vec<&str> = p["a"].iter().map(|u| u.resource_id.as_str()).collect();
        assert_eq!(ids, ["sysctl", "hostname"]);
        assert_eq!(p["b"].len(), 1);
        // Lost entirely: the hosts' copies alone.
        assert_eq!(merge(&[], &hosts), vec![a1, a3, b1]);
    }

    #[test]
    fn effects_belong_to_the_change_they_follow() {
        let wrote = |p: &str| Entry::Effect {
            effect: Effect::wrote(p, b"x"),
        };
        let recs = vec![
            begin("a", "swap"),
            rec("a", "swap", wrote("/etc/fstab")),
            rec("a", "swap", Entry::Done { seconds: 0.1 }),
            begin("a", "hosts-file"),
            rec("a", "hosts-file", wrote("/etc/hosts")),
        ];
        let p = pending_reverts(&recs, &[]);
        let got: Vec<(String, usize)> = p["a"]
            .iter()
            .map(|u| (u.resource_id.clone(), u.effects.as_ref().unwrap().len()))
            .collect();
        assert_eq!(
            got,
            [("hosts-file".to_string(), 1), ("swap".to_string(), 1)]
        );
        // A journal from before effects were recorded: no record at all, not an empty one.
        let mut old = begin("a", "swap");
        if let Entry::Begin {
            records_effects, ..
        } = &mut old.entry
        {
            *records_effects = false;
        }
        assert_eq!(pending_reverts(&[old], &[])["a"][0].effects, None);
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
            rec(
                "a",
                "sysctl",
                Entry::Reverted {
                    seconds: 0.1,
                    kept: vec![],
                },
            ),
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
        all.push(rec(
            "a",
            "hostname",
            Entry::Reverted {
                seconds: 0.1,
                kept: vec![],
            },
        ));
        assert!(pending_reverts(&all, &[]).is_empty());
    }
}
