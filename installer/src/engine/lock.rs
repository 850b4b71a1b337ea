//! The per-host lock: one `ferry apply` or `ferry rollback` at a time on a host, whichever
//! jump host runs it. It lives on the host (`/var/lib/ferry/lock`, created atomically with a
//! hard link) and names the run, the command, the jump host and its process, so a second run
//! is refused with one line saying who holds it, and a lock left by a run that died can be
//! broken knowingly (`--break-lock RUN-ID`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_bootos::{Host, HostError, SshHost};
use ferry_inventory::ssh::shell_quote;
use serde::{Deserialize, Serialize};

use super::plan::{HostStatus, Plan};
use super::Hosts;

/// The lock file on each host.
pub const LOCK_FILE: &str = "/var/lib/ferry/lock";

/// Who holds a host's lock: the content of [`LOCK_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The run id.
    pub run: String,
    /// `apply` or `rollback`.
    pub command: String,
    /// The jump host's name.
    pub jump_host: String,
    /// The ferry process on the jump host.
    pub pid: u32,
    /// Seconds since the epoch when taken.
    pub since: u64,
}

impl LockHolder {
    /// This process, for run `run` doing `command`.
    pub fn this_process(run: &str, command: &str) -> LockHolder {
        LockHolder {
            run: run.to_string(),
            command: command.to_string(),
            jump_host: jump_host_name(),
            pid: std::process::id(),
            since: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// Whether its process is known to be gone: it ran on this jump host and no process with
    /// its id runs here now. (On another jump host nothing can be known from here.)
    pub fn is_gone(&self) -> bool {
        self.jump_host == jump_host_name()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// `run X (apply) from jump host J, process P, taken 2025-01-01 12:00:00 UTC`.
    pub fn describe(&self) -> String {
        format!(
            "run {} ({}) from jump host {}, process {}, taken {}",
            self.run,
            self.command,
            self.jump_host,
            self.pid,
            utc(self.since)
        )
    }

    /// The one line a refused run prints for `host`.
    pub fn refusal(&self, host: &str) -> String {
        let state = if self.is_gone() {
            format!(
                "; process {} is no longer running on this jump host, so the lock is stale",
                self.pid
            )
        } else {
            String::new()
        };
        format!(
            "{host} is locked by {}{state}; fix: wait for that run to end, or, if it is dead, \
             break the lock with --break-lock {}",
            self.describe(),
            self.run
        )
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` from the run id's own calendar code.
fn utc(secs: u64) -> String {
    let id = super::journal::run_id_at(secs, [0, 0]);
    let (d, t) = (&id[..8], &id[9..15]);
    format!(
        "{}-{}-{} {}:{}:{} UTC",
        &d[..4],
        &d[4..6],
        &d[6..],
        &t[..2],
        &t[2..4],
        &t[4..]
    )
}

/// The jump host's name (the kernel's), or `unknown`.
pub fn jump_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// How taking a host's lock went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Ours now.
    Yes,
    /// Held by another run.
    HeldBy(LockHolder),
    /// Held, but its content cannot be read (written by hand, or cut short).
    HeldUnreadable(String),
}

/// What the lock file holds now, if anything.
pub async fn holder(host: &dyn Host) -> Result<Option<Result<LockHolder, String>>, HostError> {
    let f = host.read_file(LOCK_FILE).await?;
    Ok(f.bytes().map(|b| {
        serde_json::from_slice::<LockHolder>(b)
            .map_err(|_| String::from_utf8_lossy(b).trim().to_string())
    }))
}

/// Takes `host`'s lock for `me`, unless another run holds it. The lock file is made beside
/// its name and hard-linked into place: `ln` fails if it exists, so of two runs racing one
/// wins. The holder goes on stdin.
pub async fn acquire(host: &dyn Host, me: &LockHolder) -> Result<Taken, HostError> {
    let script = format!(
        "umask 077 && mkdir -p \"$(dirname {l})\" && t={l}.$$ && cat > \"$t\" && \
         if ln \"$t\" {l} 2>/dev/null; then rm -f \"$t\"; \
         {{ sync {l} \"$(dirname {l})\" 2>/dev/null || sync; }}; echo ferry-lock-taken; \
         else rm -f \"$t\"; echo ferry-lock-held; fi",
        l = shell_quote(LOCK_FILE)
    );
    // serde_json of a plain struct cannot fail.
    let data = serde_json::to_vec(me).unwrap_or_default();
    let out = host.run_data(&script, &data).await?;
    let said = String::from_utf8_lossy(&out.stdout);
    // A login shell may print a banner first: the answer is the last line.
    let last = said
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if !out.success() || !last.starts_with("ferry-lock-") {
        return Err(HostError::Failed {
            host: host.name().to_string(),
            command: format!("taking the lock {LOCK_FILE}"),
            status: out.described,
            stderr: out.stderr,
        });
    }
    if last == "ferry-lock-taken" {
        return Ok(Taken::Yes);
    }
    Ok(match holder(host).await? {
        // Released between the two commands: try once more.
        None => Box::pin(acquire(host, me)).await?,
        Some(Ok(h)) if h == *me => Taken::Yes,
        Some(Ok(h)) => Taken::HeldBy(h),
        Some(Err(text)) => Taken::HeldUnreadable(text),
    })
}

/// Gives `host`'s lock back, if `me` still holds it.
pub async fn release(host: &dyn Host, me: &LockHolder) -> Result<(), HostError> {
    if let Some(Ok(h)) = holder(host).await? {
        if h == *me {
            host.run_ok(&format!("rm -f {}", shell_quote(LOCK_FILE)))
                .await?;
        }
    }
    Ok(())
}

/// Removes `host`'s lock if run `run` holds it; returns who held it.
pub async fn break_lock(host: &dyn Host, run: &str) -> Result<Option<LockHolder>, HostError> {
    match holder(host).await? {
        Some(Ok(h)) if h.run == run => {
            host.run_ok(&format!("rm -f {}", shell_quote(LOCK_FILE)))
                .await?;
            Ok(Some(h))
        }
        _ => Ok(None),
    }
}

/// The hosts a run could not lock, with the line saying why (`reason; fix: ...`).
pub type Refused = BTreeMap<String, String>;

/// The refusal line for a lock whose content cannot be read.
pub fn unreadable_refusal(host: &str, text: &str) -> String {
    let shown: String = text.chars().take(80).collect();
    format!(
        "{host} is locked ({LOCK_FILE} holds {shown:?}, not a ferry lock); fix: make sure no \
         other ferry runs on it, then remove {LOCK_FILE} on {host}"
    )
}

/// Runs `op` on each host of `names` that can be reached (at most the pool's limit at once),
/// and returns each host's result.
async fn on_each<T, F, Fut>(
    hosts: &Hosts,
    names: &[String],
    op: F,
) -> BTreeMap<String, Result<T, String>>
where
    T: Send + 'static,
    F: Fn(SshHost) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<T, HostError>> + Send,
{
    let mut tasks = Vec::new();
    for t in hosts.targets.iter().filter(|t| names.contains(&t.name)) {
        let (pool, t, op) = (hosts.pool.clone(), t.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = pool.permit().await;
            let r = match pool.session(&t).await {
                Ok(s) => op(SshHost::new(s)).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            (t.name, r)
        }));
    }
    let mut out = BTreeMap::new();
    for task in tasks {
        if let Ok((name, r)) = task.await {
            out.insert(name, r);
        }
    }
    out
}

/// Takes the lock of every host in `names`. Returns the hosts locked and, for the others, the
/// line saying why not (held by another run, or the host could not be reached).
pub async fn acquire_all(
    hosts: &Hosts,
    names: &[String],
    me: &LockHolder,
) -> (Vec<String>, Refused) {
    let mine = me.clone();
    let results = on_each(hosts, names, move |h| {
        let me = mine.clone();
        async move { acquire(&h, &me).await }
    })
    .await;
    let (mut locked, mut refused) = (Vec::new(), Refused::new());
    for (host, r) in results {
        match r {
            Ok(Taken::Yes) => locked.push(host),
            Ok(Taken::HeldBy(h)) => {
                let line = h.refusal(&host);
                refused.insert(host, line);
            }
            Ok(Taken::HeldUnreadable(text)) => {
                let line = unreadable_refusal(&host, &text);
                refused.insert(host, line);
            }
            Err(e) => {
                let line = format!(
                    "{host}: its lock could not be taken ({e}); fix: check that it can be \
                     reached (`ferry inventory check`)"
                );
                refused.insert(host, line);
            }
        }
    }
    (locked, refused)
}

/// Gives back the locks `me` took on `names` (a host that cannot be reached keeps it: the
/// next run then names this run, and `--break-lock` clears it).
pub async fn release_all(hosts: &Hosts, names: &[String], me: &LockHolder) {
    let mine = me.clone();
    on_each(hosts, names, move |h| {
        let me = mine.clone();
        async move { release(&h, &me).await }
    })
    .await;
}

/// Who holds the locks of `names`, for the hosts that have one.
pub async fn holders(hosts: &Hosts, names: &[String]) -> BTreeMap<String, LockHolder> {
    on_each(hosts, names, |h| async move { holder(&h).await })
        .await
        .into_iter()
        .filter_map(|(host, r)| match r {
            Ok(Some(Ok(h))) => Some((host, h)),
            _ => None,
        })
        .collect()
}

/// Breaks run `run`'s locks on `names`; returns the hosts whose lock was broken.
pub async fn break_all(hosts: &Hosts, names: &[String], run: &str) -> Vec<String> {
    let run = run.to_string();
    on_each(hosts, names, move |h| {
        let run = run.clone();
        async move { break_lock(&h, &run).await }
    })
    .await
    .into_iter()
    .filter_map(|(host, r)| matches!(r, Ok(Some(_))).then_some(host))
    .collect()
}

/// Blocks, in the plan, every host that would change but is not locked by this run, with the
/// reason: applying it could collide with another run.
pub fn hold_unlocked(plan: &mut Plan, locked: &[String], refused: &Refused) {
    for hp in &mut plan.hosts {
        let would_change = matches!(hp.status, HostStatus::Ready | HostStatus::NoChanges);
        if would_change && !locked.contains(&hp.host) {
            hp.status = HostStatus::Blocked;
            hp.reasons = vec![refused
                .get(&hp.host)
                .cloned()
                .unwrap_or_else(|| format!("{}: its lock was not taken; fix: run again", hp.host))];
            hp.changes.clear();
            hp.resources.clear();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_run_the_jump_host_and_the_way_out() {
        let h = LockHolder {
            run: "20250101-120000-abcd".into(),
            command: "apply".into(),
            jump_host: "jump-7".into(),
            pid: 4242,
            since: 1_735_732_800,
        };
        assert_eq!(
            h.refusal("vm1"),
            "vm1 is locked by run 20250101-120000-abcd (apply) from jump host jump-7, process \
             4242, taken 2025-01-01 12:00:00 UTC; fix: wait for that run to end, or, if it is \
             dead, break the lock with --break-lock 20250101-120000-abcd"
        );
        let mut here = LockHolder::this_process("20250101-120000-abcd", "apply");
        assert!(!here.is_gone(), "this process runs");
        here.pid = u32::MAX;
        assert!(here.is_gone());
        assert!(here.refusal("vm1").contains("the lock is stale"));
    }
}
