//! Host-to-host relay: a blob leaves the jump host once and spreads among the site's hosts.
//! Each host's agent serves the blobs of the run from its store (`STORE/<sha256>`) over a
//! small HTTP listener bound to its site address, and fetches from a peer: the jump host sends
//! to the first host, every other host fetches from its parent in a tree of bounded fan-out,
//! and a blob still arriving is already passed on. Every host checks the sha256 before the
//! blob takes its name; a source that dies or sends wrong bytes is replaced ([`tree`] says by
//! whom) and the next one resumes from the partial file.

pub mod peer;
pub mod tree;

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, DuplexStream};

use crate::agent::protocol::Op;
use crate::agent::{AgentError, Client};
use crate::remote::{start_agent, AgentBinary, RemoteAgent};
use crate::ssh::{shell_quote, Pool, Session};
use crate::target::Target;
use crate::transfer::{place, upload, TransferError, UploadOptions, UploadSource};
use tree::{Source, Tree};

/// Where a file waits while it arrives: the transfer's convention (`DEST.ferry-partial`).
pub const PARTIAL_SUFFIX: &str = ".ferry-partial";

/// The store on a real host: where relayed blobs wait for the steps that place them.
pub const HOST_STORE: &str = "/var/cache/ferry/blobs";

/// A blob as the relay names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobSpec {
    /// Its sha256, lowercase hex.
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

/// One host of a relay.
#[derive(Debug, Clone)]
pub struct RelayHost {
    /// How to reach it over SSH.
    pub target: Target,
    /// Its address on the site network, where its peers reach its listener.
    pub site_address: String,
    /// Its store directory (absolute), e.g. [`HOST_STORE`].
    pub store: String,
    /// Run the agent (and write the store) as root.
    pub as_root: bool,
}

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Most receivers one host feeds.
    pub fan_out: usize,
    /// How long without a byte before a source counts as gone.
    pub stall: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            fan_out: 4,
            stall: Duration::from_secs(30),
        }
    }
}

/// What the relay did, for the front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// A host's agent listens for its peers.
    Serving {
        /// Host name.
        host: String,
        /// Its listener's port.
        port: u16,
    },
    /// A host starts receiving a blob (`from` is `None` for the jump host).
    Fetching {
        /// Host name.
        host: String,
        /// The blob's digest.
        blob: String,
        /// The peer it comes from; `None`: the jump host.
        from: Option<String>,
    },
    /// A source failed a host; another is chosen.
    SourceFailed {
        /// Host name.
        host: String,
        /// The blob's digest.
        blob: String,
        /// The failed peer; `None`: the jump host.
        from: Option<String>,
        /// Why.
        reason: String,
    },
    /// A host holds a blob, verified.
    Done {
        /// Host name.
        host: String,
        /// The blob's digest.
        blob: String,
        /// The jump host sent it (not a peer).
        from_jump: bool,
    },
}

/// A relay that could not deliver.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayError {
    /// The run was asked for something it cannot do.
    #[error("relay: {0}")]
    BadInput(String),
    /// The host's agent could not start or serve.
    #[error("{host}: relay agent: {reason}")]
    Agent {
        /// Host name.
        host: String,
        /// Why.
        reason: String,
    },
    /// A blob did not reach the host.
    #[error("{host}: blob {blob} not delivered: {reason}")]
    Failed {
        /// Host name.
        host: String,
        /// The blob's digest (short).
        blob: String,
        /// The last failure.
        reason: String,
    },
}

type AgentClient = Client<DuplexStream, Pin<Box<dyn AsyncWrite + Send>>>;

/// A host's agent during the run.
struct Member {
    host: RelayHost,
    session: Arc<Session>,
    running: RemoteAgent,
    client: AgentClient,
    /// `ADDR:PORT` of its listener.
    addr: String,
    have: HashSet<String>,
}

/// A progress callback.
pub type RelayProgress = Arc<dyn Fn(RelayEvent) + Send + Sync>;

fn check_inputs(hosts: &[RelayHost], blobs: &[Arc<dyn UploadSource>]) -> Result<(), RelayError> {
    let bad = |m: String| Err(RelayError::BadInput(m));
    let mut names = HashSet::new();
    for h in hosts {
        if !names.insert(h.target.name.as_str()) {
            return bad(format!("host {} is named twice", h.target.name));
        }
        if !h.store.starts_with('/') {
            return bad(format!(
                "host {}: the store {:?} must be an absolute path",
                h.target.name, h.store
            ));
        }
        if h.site_address.trim().is_empty() || h.site_address.contains(char::is_whitespace) {
            return bad(format!(
                "host {}: site address {:?} is not an address",
                h.target.name, h.site_address
            ));
        }
    }
    for b in blobs {
        let d = b.sha256();
        if d.len() != 64
            || !d
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return bad(format!(
                "{}: {d:?} is not a sha256 (64 lowercase hex digits)",
                b.describe().display()
            ));
        }
    }
    Ok(())
}

/// A fresh token for one run: 32 random bytes, hex.
fn run_token() -> Result<String, RelayError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            RelayError::BadInput(format!("reading /dev/urandom for the run's token: {e}"))
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Delivers every blob to every host's store, each leaving the jump host once (more only
/// when every host holding it failed). Returns each host's result in the order of `hosts`; an
/// `Err` for the whole run only when the inputs are wrong.
pub async fn relay(
    pool: Arc<Pool>,
    agent: &AgentBinary,
    hosts: &[RelayHost],
    blobs: &[Arc<dyn UploadSource>],
    opts: &RelayOptions,
    progress: RelayProgress,
) -> Result<Vec<(String, Result<(), RelayError>)>, RelayError> {
    check_inputs(hosts, blobs)?;
    let token = run_token()?;
    let specs: Vec<BlobSpec> = blobs
        .iter()
        .map(|b| BlobSpec {
            sha256: b.sha256().to_string(),
            size: b.size(),
        })
        .collect();
    // 1. Every host's agent, listening. Only the first gets the agent's binary from the jump
    // host; each other host copies it from its parent in the tree once that one runs.
    let k = opts.fan_out.max(1);
    let joined: Vec<tokio::sync::watch::Sender<Option<Option<String>>>> = hosts
        .iter()
        .map(|_| tokio::sync::watch::channel(None).0)
        .collect();
    let starts = hosts.iter().enumerate().map(|(i, h)| {
        let (pool, h, token, specs, progress) = (
            pool.clone(),
            h.clone(),
            token.clone(),
            specs.clone(),
            progress.clone(),
        );
        let agent = agent.clone();
        let stall = opts.stall;
        let parent = (i > 0).then(|| joined[(i - 1) / k].subscribe());
        let done = joined[i].clone();
        tokio::spawn(async move {
            let r = join(&pool, &agent, h, &token, specs, stall, parent, &progress).await;
            done.send_replace(Some(r.as_ref().ok().map(|m| m.addr.clone())));
            r
        })
    });
    let mut members: Vec<Option<Arc<tokio::sync::Mutex<Member>>>> = Vec::new();
    let mut results: Vec<Option<RelayError>> = Vec::new();
    for (task, h) in futures_join(starts).await.into_iter().zip(hosts) {
        match task {
            Ok(Ok(m)) => {
                members.push(Some(Arc::new(tokio::sync::Mutex::new(m))));
                results.push(None);
            }
            Ok(Err(e)) => {
                members.push(None);
                results.push(Some(e));
            }
            Err(e) => {
                members.push(None);
                results.push(Some(RelayError::Agent {
                    host: h.target.name.clone(),
                    reason: format!("task failed: {e}"),
                }));
            }
        }
    }
    // 2. Each blob through the tree.
    let mut addr_list = Vec::with_capacity(hosts.len());
    for m in &members {
        addr_list.push(match m {
            Some(m) => m.lock().await.addr.clone(),
            None => String::new(),
        });
    }
    let addrs = Arc::new(addr_list);
    for (blob, spec) in blobs.iter().zip(&specs) {
        let mut needing = Vec::new();
        let mut tree_complete = vec![false; hosts.len()];
        for (i, m) in members.iter().enumerate() {
            let Some(m) = m else { continue };
            if results[i].is_some() {
                continue;
            }
            if m.lock().await.have.contains(&spec.sha256) {
                tree_complete[i] = true;
            } else {
                needing.push(i);
            }
        }
        let mut tree = Tree::new(hosts.len(), &needing, opts.fan_out);
        tree.complete = tree_complete;
        for (i, r) in results.iter().enumerate() {
            tree.failed[i] = r.is_some() || members[i].is_none();
        }
        let tree = Arc::new(Mutex::new(tree));
        let run = |h: usize| BlobRun {
            tree: tree.clone(),
            addrs: addrs.clone(),
            blob: blob.clone(),
            spec: spec.clone(),
            token: token.clone(),
            stall: opts.stall,
            progress: progress.clone(),
            tries: 2 * hosts.len() + 3,
            host: h,
        };
        let mut round = needing;
        // A host that a receiver caught serving wrong bytes is checked in a second round, and
        // gets the blob again if its own copy is bad.
        for _ in 0..2 {
            let mut tasks = Vec::new();
            for &h in &round {
                let Some(member) = members[h].clone() else {
                    continue;
                };
                let ctx = run(h);
                tasks.push((h, tokio::spawn(async move { ctx.deliver(member).await })));
            }
            for (h, task) in tasks {
                let r = task.await.unwrap_or_else(|e| {
                    Err(RelayError::Failed {
                        host: hosts[h].target.name.clone(),
                        blob: short(&spec.sha256),
                        reason: format!("task failed: {e}"),
                    })
                });
                if let Err(e) = r {
                    results[h].get_or_insert(e);
                }
            }
            let suspects: Vec<usize> = {
                let t = tree.lock().unwrap_or_else(|p| p.into_inner());
                t.refused
                    .iter()
                    .copied()
                    .filter(|&p| t.complete[p] && !t.failed[p])
                    .collect()
            };
            round = Vec::new();
            for p in suspects {
                let Some(member) = &members[p] else { continue };
                let mut m = member.lock().await;
                let path = format!("{}/{}", m.host.store.trim_end_matches('/'), spec.sha256);
                let ok = match m.client.stat(&path, true).await {
                    Ok(st) => st.sha256.as_deref() == Some(spec.sha256.as_str()),
                    Err(_) => false,
                };
                let mut t = tree.lock().unwrap_or_else(|p| p.into_inner());
                t.refused.remove(&p);
                if !ok {
                    t.complete[p] = false;
                    m.have.remove(&spec.sha256);
                    round.push(p);
                }
            }
            if round.is_empty() {
                break;
            }
        }
    }
    // 3. Agents end; their listeners with them.
    for m in members.into_iter().flatten() {
        let Ok(m) = Arc::try_unwrap(m) else { continue };
        let m = m.into_inner();
        let _ = m.client.exit().await;
        let _ = m.running.finish(&m.session).await;
    }
    Ok(hosts
        .iter()
        .zip(results)
        .map(|(h, r)| (h.target.name.clone(), r.map_or(Ok(()), Err)))
        .collect())
}

/// Awaits every task, in order.
async fn futures_join<T>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let tasks: Vec<_> = tasks.collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await);
    }
    out
}

fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

/// Starts a host's agent and its listener; the agent's binary comes from the `parent` host's
/// listener when it runs (the jump host's link is spared), over SSH otherwise.
#[allow(clippy::too_many_arguments)]
async fn join(
    pool: &Pool,
    agent: &AgentBinary,
    host: RelayHost,
    token: &str,
    blobs: Vec<BlobSpec>,
    stall: Duration,
    parent: Option<tokio::sync::watch::Receiver<Option<Option<String>>>>,
    progress: &RelayProgress,
) -> Result<Member, RelayError> {
    let name = host.target.name.clone();
    let fail = |reason: String| RelayError::Agent {
        host: name.clone(),
        reason,
    };
    let session = pool
        .session(&host.target)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut parent) = parent {
        let from = match parent.wait_for(Option::is_some).await {
            Ok(v) => v.clone().flatten(),
            Err(_) => None,
        };
        if let Some(from) = from {
            if let Err(e) = agent_from_peer(&session, agent, &from, token).await {
                tracing::debug!(host = %name, "the agent from {from}: {e}; sending it instead");
            }
        }
    }
    let mut running = start_agent(&session, agent, host.as_root)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (writer, reader) = running
        .child()
        .take_streams()
        .ok_or_else(|| fail("the agent's streams are gone".into()))?;
    let mut client = Client::connect(reader, writer)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let serving = client
        .relay_serve(Op::RelayServe {
            listen: host.site_address.clone(),
            token: token.to_string(),
            store: host.store.clone(),
            blobs,
            stall_secs: stall.as_secs().max(1),
            agent_sha256: Some(agent.file().sha256.clone()),
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
    progress(RelayEvent::Serving {
        host: name.clone(),
        port: serving.port,
    });
    let addr = if host.site_address.contains(':') {
        format!("[{}]:{}", host.site_address, serving.port)
    } else {
        format!("{}:{}", host.site_address, serving.port)
    };
    Ok(Member {
        host,
        session,
        running,
        client,
        addr,
        have: serving.have.into_iter().collect(),
    })
}

/// Copies the agent's binary to the host from a peer's listener with the host's own bash
/// (`/dev/tcp`): the request, token included, goes on stdin, never in the command line. The
/// digest is checked on the host and the file renamed into place as for an upload.
async fn agent_from_peer(
    session: &Session,
    agent: &AgentBinary,
    peer: &str,
    token: &str,
) -> Result<(), String> {
    let (addr, port) = peer
        .rsplit_once(':')
        .ok_or_else(|| format!("{peer} has no port"))?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let dest = agent.remote_path();
    let partial = format!("{dest}{PARTIAL_SUFFIX}");
    let script = "mkdir -p \"$(dirname \"$3\")\" && umask 077 && exec 3<>\"/dev/tcp/$1/$2\" \
                  && cat >&3 && cat <&3 > \"$3\"";
    let cmd = format!(
        "bash -c {} ferry-relay {} {} {}",
        shell_quote(script),
        shell_quote(addr),
        shell_quote(port),
        shell_quote(&partial)
    );
    let mut child = session
        .spawn(&cmd, false)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET /agent/{} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n",
        agent.file().sha256
    );
    child
        .write_stdin(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    child.close_stdin().await;
    let exit = child.wait().await.map_err(|e| e.to_string())?;
    if !exit.success() {
        return Err(format!("{}: {}", exit.describe(), exit.stderr_tail.trim()));
    }
    let opts = UploadOptions {
        as_root: false,
        mode: 0o700,
        staged: None,
    };
    place(session, agent.file(), &dest, &opts)
        .await
        .map_err(|e| e.to_string())
}

/// One blob's run, shared by its receivers.
struct BlobRun {
    tree: Arc<Mutex<Tree>>,
    addrs: Arc<Vec<String>>,
    blob: Arc<dyn UploadSource>,
    spec: BlobSpec,
    token: String,
    stall: Duration,
    progress: RelayProgress,
    tries: usize,
    /// The receiving host.
    host: usize,
}

/// How one attempt ended.
enum Attempt {
    Done,
    /// The source failed this host; another may do. `bad_bytes`: what it sent does not hash
    /// to the digest.
    SourceFailed {
        reason: String,
        bad_bytes: bool,
    },
    /// This host cannot go on.
    HostFailed(String),
}

impl BlobRun {
    fn tree(&self) -> std::sync::MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gets the blob to host `h`, changing sources as they fail.
    async fn deliver(self, member: Arc<tokio::sync::Mutex<Member>>) -> Result<(), RelayError> {
        let h = self.host;
        let mut m = member.lock().await;
        let name = m.host.target.name.clone();
        let blob = self.spec.sha256.clone();
        let mut excluded = HashSet::new();
        let mut peer_failures = std::collections::HashMap::new();
        let mut jump_failures = 0;
        let mut last = String::from("no source was tried");
        for _ in 0..self.tries {
            let source = {
                let mut t = self.tree();
                let s = t.choose(h, &excluded);
                if let Source::Peer(p) = s {
                    t.load[p] += 1;
                }
                s
            };
            let from = match source {
                Source::Jump => None,
                Source::Peer(p) => Some(self.addrs[p].clone()),
            };
            (self.progress)(RelayEvent::Fetching {
                host: name.clone(),
                blob: blob.clone(),
                from: from.clone(),
            });
            let outcome = match source {
                Source::Jump => {
                    let (session, host) = (m.session.clone(), m.host.clone());
                    self.send_from_jump(&session, &host).await
                }
                Source::Peer(p) => self.fetch_from_peer(&mut m, &self.addrs[p]).await,
            };
            if let Source::Peer(p) = source {
                let mut t = self.tree();
                t.load[p] = t.load[p].saturating_sub(1);
            }
            match outcome {
                Attempt::Done => {
                    let mut t = self.tree();
                    t.complete[h] = true;
                    drop(t);
                    m.have.insert(blob.clone());
                    (self.progress)(RelayEvent::Done {
                        host: name,
                        blob,
                        from_jump: source == Source::Jump,
                    });
                    return Ok(());
                }
                Attempt::SourceFailed { reason, bad_bytes } => {
                    (self.progress)(RelayEvent::SourceFailed {
                        host: name.clone(),
                        blob: blob.clone(),
                        from,
                        reason: reason.clone(),
                    });
                    match source {
                        Source::Peer(p) => {
                            // Wrong bytes: never again. Cut short: once more (its own
                            // source may have been what failed), then never again.
                            let n = peer_failures.entry(p).or_insert(0u32);
                            *n += 1;
                            if bad_bytes || *n >= 2 {
                                excluded.insert(p);
                            }
                            if bad_bytes {
                                self.tree().refused.insert(p);
                            }
                        }
                        Source::Jump => {
                            jump_failures += 1;
                            if jump_failures >= 3 {
                                last = reason;
                                break;
                            }
                        }
                    }
                    last = reason;
                }
                Attempt::HostFailed(reason) => {
                    last = reason;
                    break;
                }
            }
        }
        let mut t = self.tree();
        t.failed[h] = true;
        if t.jump_feeding == Some(h) {
            t.jump_feeding = None;
        }
        Err(RelayError::Failed {
            host: name,
            blob: short(&blob),
            reason: last,
        })
    }

    async fn send_from_jump(&self, session: &Session, host: &RelayHost) -> Attempt {
        let dest = format!("{}/{}", host.store.trim_end_matches('/'), self.spec.sha256);
        let opts = UploadOptions {
            as_root: host.as_root,
            mode: 0o644,
            ..UploadOptions::default()
        };
        let quiet = |_| {};
        match upload(session, self.blob.as_ref(), &dest, &opts, &quiet).await {
            Ok(_) => Attempt::Done,
            Err(e @ TransferError::DiskFull { .. }) | Err(e @ TransferError::Local { .. }) => {
                Attempt::HostFailed(e.to_string())
            }
            Err(e) => Attempt::SourceFailed {
                bad_bytes: matches!(e, TransferError::DigestMismatch { .. }),
                reason: e.to_string(),
            },
        }
    }

    async fn fetch_from_peer(&self, m: &mut Member, peer: &str) -> Attempt {
        let op = Op::RelayFetch {
            peer: peer.to_string(),
            token: self.token.clone(),
            store: m.host.store.clone(),
            blob: self.spec.clone(),
            stall_secs: self.stall.as_secs().max(1),
        };
        match m.client.relay_fetch(op).await {
            Ok(_) => Attempt::Done,
            Err(AgentError::Remote { error, .. })
                if error.kind == "peer_failed" || error.kind == "checksum_mismatch" =>
            {
                Attempt::SourceFailed {
                    reason: format!("from {peer}: {}", error.message),
                    bad_bytes: error.kind == "checksum_mismatch",
                }
            }
            Err(e) => Attempt::HostFailed(e.to_string()),
        }
    }
}
