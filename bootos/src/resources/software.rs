//! What is installed from the bundle and the services that run: time sync, the offline
//! package repository and its packages, the container runtime, the GPU driver.

use serde::{Deserialize, Serialize};

use crate::baseline::{BaselineConfig, HostContext};
use crate::resource::DynResource;

/// A software resource, as a plan and a journal record it (`kind` names the variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SoftwareResource {}

impl SoftwareResource {
    /// The resource behind the variant.
    pub fn as_dyn(&self) -> &dyn DynResource {
        match *self {}
    }
}

/// The software resources for `ctx`'s host, in apply order.
pub fn resources(_cfg: &BaselineConfig, _ctx: &HostContext<'_>) -> Vec<SoftwareResource> {
    Vec::new()
}
