//! The one way a host changes: a resource observes the host, says what differs from what it
//! wants (the diff a plan shows), applies that, and can put back what it observed before
//! (revert). Observed states are serializable so a journal can keep them as undo data and a
//! later `ferry rollback` can revert without the run that made the change.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use ferry_inventory::transfer::UploadSource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::{Host, HostError};

/// One difference between a host and what a resource wants, as a plan row shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What differs (`net.ipv4.ip_forward`, `/etc/hostname`, `swap`).
    pub what: String,
    /// What the host has now (`absent`, `0`, `on (/swapfile)`).
    pub from: String,
    /// What it will have.
    pub to: String,
}

impl Change {
    /// A change of `what` from `from` to `to`.
    pub fn new(what: impl Into<String>, from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            from: from.into(),
            to: to.into(),
        }
    }
}

/// A resource could not do its job on a host.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// Reaching the host or running a command failed.
    #[error(transparent)]
    Host(Box<HostError>),
    /// The host is not in a state the resource can work with; the text says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// The change was made but the check after it failed (e.g. `nvidia-smi`, clock skew).
    #[error("{0}")]
    Check(String),
    /// Undo data from a journal does not fit this resource (a journal from another version).
    #[error("undo data for {id} cannot be read: {source}")]
    UndoData {
        /// The resource id.
        id: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl From<HostError> for ResourceError {
    fn from(e: HostError) -> Self {
        ResourceError::Host(Box::new(e))
    }
}

/// A file a resource's apply sends to its host, which other hosts' resources may send too (a
/// bundle file): when several hosts need it, the relay ([`ferry_inventory::relay`]) carries it
/// ahead of the steps, and the step finds it on the host.
#[derive(Clone)]
pub struct Upload {
    /// The change (its [`Change::what`]) whose apply sends it: a host whose plan does not have
    /// that change does not need the file.
    pub change: String,
    /// The file.
    pub source: Arc<dyn UploadSource>,
}

impl Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("change", &self.change)
            .field("sha256", &self.source.sha256())
            .finish()
    }
}

/// A host change with observe, diff, apply and revert. `State` is what `observe` finds; it is
/// also the undo data: `revert(before)` brings the host back to `before`.
#[async_trait]
pub trait Resource: Send + Sync {
    /// What `observe` finds and `revert` restores.
    type State: Serialize + DeserializeOwned + Debug + Clone + PartialEq + Send + Sync;

    /// A short stable id, unique on one host (`sysctl`, `module:overlay`, `hostname`).
    fn id(&self) -> String;

    /// Whether it can work on this host's OS; `Err` says which OSes it supports.
    fn supports(&self, facts: &Facts) -> Result<(), String>;

    /// Reads the host's current state. Changes nothing.
    async fn observe(&self, host: &dyn Host) -> Result<Self::State, ResourceError>;

    /// What `apply` would change; empty when the host is already as wanted.
    fn diff(&self, observed: &Self::State) -> Vec<Change>;

    /// Makes the host as wanted. `observed` is what `observe` just found.
    async fn apply(&self, host: &dyn Host, observed: &Self::State) -> Result<(), ResourceError>;

    /// Brings the host back to `before` (what `observe` found before `apply`).
    async fn revert(&self, host: &dyn Host, before: &Self::State) -> Result<(), ResourceError>;

    /// The files `apply` sends that other hosts may need too (none unless said).
    fn uploads(&self) -> Vec<Upload> {
        Vec::new()
    }

    /// The files `observe` reads with [`Host::read_file`] (none unless said): a plan fetches
    /// every resource's at once ([`crate::host::Prefetched`]) instead of one command each.
    fn reads(&self) -> Vec<String> {
        Vec::new()
    }

    /// The read-only scripts `observe` runs with [`Host::run`] (none unless said), fetched
    /// with its [`Resource::reads`]: the same script text, the same output.
    fn probes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A resource with its state as JSON, so resources of every kind sit in one plan and one
/// journal. Implemented for every [`Resource`].
#[async_trait]
pub trait DynResource: Send + Sync {
    /// See [`Resource::id`].
    fn id(&self) -> String;
    /// See [`Resource::supports`].
    fn supports(&self, facts: &Facts) -> Result<(), String>;
    /// See [`Resource::observe`]; the state as JSON.
    async fn observe(&self, host: &dyn Host) -> Result<Value, ResourceError>;
    /// See [`Resource::diff`].
    fn diff(&self, observed: &Value) -> Result<Vec<Change>, ResourceError>;
    /// See [`Resource::apply`].
    async fn apply(&self, host: &dyn Host, observed: &Value) -> Result<(), ResourceError>;
    /// See [`Resource::revert`].
    async fn revert(&self, host: &dyn Host, before: &Value) -> Result<(), ResourceError>;
    /// See [`Resource::uploads`].
    fn uploads(&self) -> Vec<Upload>;
    /// See [`Resource::reads`].
    fn reads(&self) -> Vec<String>;
    /// See [`Resource::probes`].
    fn probes(&self) -> Vec<String>;
}

fn state<R: Resource + ?Sized>(r: &R, v: &Value) -> Result<R::State, ResourceError> {
    serde_json::from_value(v.clone())
        .map_err(|source| ResourceError::UndoData { id: r.id(), source })
}

#[async_trait]
impl<R: Resource> DynResource for R {
    fn id(&self) -> String {
        Resource::id(self)
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        Resource::supports(self, facts)
    }

    async fn observe(&self, host: &dyn Host) -> Result<Value, ResourceError> {
        let s = Resource::observe(self, host).await?;
        serde_json::to_value(&s).map_err(|source| ResourceError::UndoData {
            id: Resource::id(self),
            source,
        })
    }

    fn diff(&self, observed: &Value) -> Result<Vec<Change>, ResourceError> {
        Ok(Resource::diff(self, &state(self, observed)?))
    }

    async fn apply(&self, host: &dyn Host, observed: &Value) -> Result<(), ResourceError> {
        let s = state(self, observed)?;
        Resource::apply(self, host, &s).await
    }

    async fn revert(&self, host: &dyn Host, before: &Value) -> Result<(), ResourceError> {
        let s = state(self, before)?;
        Resource::revert(self, host, &s).await
    }

    fn uploads(&self) -> Vec<Upload> {
        Resource::uploads(self)
    }
    fn reads(&self) -> Vec<String> {
        Resource::reads(self)
    }
    fn probes(&self) -> Vec<String> {
        Resource::probes(self)
    }
}
