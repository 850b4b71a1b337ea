//! Kernel, network and identity settings: hostname, /etc/hosts, sysctl, kernel modules, swap,
//! DNS, limits, the default-route fix, and the cluster marker.

use ferry_inventory::facts::FerryMarker;
use serde::{Deserialize, Serialize};

use crate::baseline::{BaselineConfig, HostContext};
use crate::resource::DynResource;

use super::marker::ClusterMarker;

/// A system resource, as a plan and a journal record it (`kind` names the variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SystemResource {
    /// The cluster marker.
    ClusterMarker(ClusterMarker),
}

impl SystemResource {
    /// The resource behind the variant.
    pub fn as_dyn(&self) -> &dyn DynResource {
        match self {
            SystemResource::ClusterMarker(r) => r,
        }
    }

    /// The marker for `ctx`'s host.
    pub fn marker(ctx: &HostContext<'_>) -> SystemResource {
        SystemResource::ClusterMarker(ClusterMarker {
            marker: FerryMarker {
                cluster_id: ctx.cluster_id.to_string(),
                cluster_name: Some(ctx.cluster_name.to_string()),
                role: Some(if ctx.member.server { "server" } else { "agent" }.to_string()),
            },
        })
    }
}

/// The system resources for `ctx`'s host, in apply order (the marker is added by the caller).
pub fn resources(_cfg: &BaselineConfig, _ctx: &HostContext<'_>) -> Vec<SystemResource> {
    Vec::new()
}
