//! Sessions shared by target, a global concurrency limit, and handshake pacing.
//!
//! sshd's `MaxStartups` (default 10:30:100) starts dropping connections when more than ten are
//! unauthenticated at once. So: every host behind one jump host shares ONE connection to it
//! (inner connections are `direct-tcpip` channels on it), and at most
//! [`SessionOptions::handshakes_per_sshd`] handshakes run at once against any one sshd (a jump host counts as one, for all the hosts
//! behind it).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, OnceCell, OwnedSemaphorePermit, Semaphore};

use super::session::{Session, SessionOptions};
use super::SshError;
use crate::target::Target;

/// Default number of hosts worked on at once.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// Default handshakes in flight against one sshd: below MaxStartups' first threshold (10), with
/// a margin because sshd learns that a login finished a moment after the client does.
pub const HANDSHAKES_PER_SSHD: usize = 6;

type Slot = Arc<OnceCell<Arc<Session>>>;

/// Connections to many hosts, one per target, made on demand and shared.
#[derive(Debug)]
pub struct Pool {
    opts: SessionOptions,
    limit: Arc<Semaphore>,
    sessions: Mutex<HashMap<String, Slot>>,
    pacers: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Pool {
    /// A pool with the default concurrency limit (64).
    pub fn new(opts: SessionOptions) -> Self {
        Self::with_limit(opts, DEFAULT_CONCURRENCY)
    }

    /// A pool that works on at most `limit` hosts at once.
    pub fn with_limit(opts: SessionOptions, limit: usize) -> Self {
        Self {
            opts,
            limit: Arc::new(Semaphore::new(limit.max(1))),
            sessions: Mutex::new(HashMap::new()),
            pacers: Mutex::new(HashMap::new()),
        }
    }

    /// The options sessions are made with.
    pub fn options(&self) -> &SessionOptions {
        &self.opts
    }

    /// A slot of the global concurrency limit: hold it while working on one host.
    pub async fn permit(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so acquiring cannot fail.
        loop {
            if let Ok(p) = self.limit.clone().acquire_owned().await {
                return p;
            }
        }
    }

    /// The session to `target`, connecting (and connecting its jump host) on first use.
    pub async fn session(&self, target: &Target) -> Result<Arc<Session>, SshError> {
        let slot = {
            let mut map = self.sessions.lock().await;
            map.entry(key(target)).or_default().clone()
        };
        if let Some(s) = slot.get() {
            if s.is_open() {
                return Ok(s.clone());
            }
            // A dropped connection: forget it and connect again.
            self.sessions.lock().await.remove(&key(target));
            return Box::pin(self.session(target)).await;
        }
        slot.get_or_try_init(|| self.connect(target)).await.cloned()
    }

    async fn connect(&self, target: &Target) -> Result<Arc<Session>, SshError> {
        let via = match &target.bastion {
            Some(b) => Some(
                Box::pin(self.session(b))
                    .await
                    .map_err(|e| SshError::Bastion {
                        host: target.name.clone(),
                        bastion: b.name.clone(),
                        reason: e.to_string(),
                    })?,
            ),
            None => None,
        };
        let pacer = self.pacer(target).await;
        let _pace = pacer.acquire_owned().await;
        Session::connect_via(target, via, &self.opts)
            .await
            .map(Arc::new)
    }

    /// The pacer of the sshd that receives this target's handshake: the jump host's for hosts
    /// behind one (their handshakes travel over its connection), the target's own otherwise.
    async fn pacer(&self, target: &Target) -> Arc<Semaphore> {
        let k = match &target.bastion {
            Some(b) => format!("via {}", key(b)),
            None => format!("{}:{}", target.address, target.port),
        };
        self.pacers
            .lock()
            .await
            .entry(k)
            .or_insert_with(|| Arc::new(Semaphore::new(self.opts.handshakes_per_sshd.max(1))))
            .clone()
    }

    /// Number of live sessions (jump hosts included).
    pub async fn len(&self) -> usize {
        self.sessions
            .lock()
            .await
            .values()
            .filter(|s| s.get().is_some())
            .count()
    }

    /// True when no session is live.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// Disconnects every session.
    pub async fn close_all(&self) {
        let slots: Vec<Slot> = self.sessions.lock().await.drain().map(|(_, v)| v).collect();
        for s in slots {
            if let Some(s) = s.get() {
                s.close().await;
            }
        }
    }
}

/// Sessions are per login, per address, per path (the same inner address behind two jump hosts
/// is two hosts).
fn key(t: &Target) -> String {
    let mut k = format!("{}@{}:{}", t.user, t.address, t.port);
    if let Some(b) = &t.bastion {
        k.push_str(" via ");
        k.push_str(&key(b));
    }
    k
}
