//! Every baseline resource as one serializable value: a plan lists them, a journal stores them
//! with their undo data, and `ferry rollback` rebuilds them from the journal alone.

use serde::{Deserialize, Serialize};

use crate::resource::DynResource;
use crate::resources::software::SoftwareResource;
use crate::resources::system::SystemResource;
use crate::resources::timesync::TimeRole;

/// One resource of a host's baseline. Serialized with a `kind` field naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResourceSpec {
    /// Kernel, network and identity settings.
    System(SystemResource),
    /// Software from the bundle and services.
    Software(SoftwareResource),
}

impl ResourceSpec {
    /// The resource behind it.
    pub fn as_dyn(&self) -> &dyn DynResource {
        match self {
            ResourceSpec::System(r) => r.as_dyn(),
            ResourceSpec::Software(r) => r.as_dyn(),
        }
    }

    /// Its id (unique on one host).
    pub fn id(&self) -> String {
        self.as_dyn().id()
    }

    /// The host's part in the site's time sync, when this is its time sync resource.
    pub fn time_role(&self) -> Option<&TimeRole> {
        match self {
            ResourceSpec::Software(SoftwareResource::TimeSync(t)) => Some(&t.role),
            _ => None,
        }
    }
}
