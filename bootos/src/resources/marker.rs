//! The cluster marker (`/var/lib/ferry/cluster.json`): written last, it says the host belongs
//! to a cluster ferry prepared, so another install never takes it over by mistake.

use async_trait::async_trait;
use ferry_inventory::facts::{Facts, FerryMarker, FERRY_MARKER};
use serde::{Deserialize, Serialize};

use crate::host::{FileState, Host};
use crate::resource::{Change, Resource, ResourceError};

/// Marks the host as a member of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMarker {
    /// The marker to write.
    pub marker: FerryMarker,
}

impl ClusterMarker {
    fn content(&self) -> String {
        // serde_json of a plain struct of strings cannot fail.
        let mut s = serde_json::to_string_pretty(&self.marker).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[async_trait]
impl Resource for ClusterMarker {
    type State = FileState;

    fn id(&self) -> String {
        "cluster-marker".into()
    }

    fn supports(&self, _facts: &Facts) -> Result<(), String> {
        Ok(())
    }

    fn reads(&self) -> Vec<String> {
        vec![FERRY_MARKER.to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<FileState, ResourceError> {
        Ok(host.read_file(FERRY_MARKER).await?)
    }

    fn diff(&self, observed: &FileState) -> Vec<Change> {
        let want = self.content();
        if observed.text() == Some(want.as_str()) {
            return Vec::new();
        }
        let from = match observed.bytes().map(serde_json::from_slice::<FerryMarker>) {
            None => "absent".to_string(),
            Some(Ok(m)) => format!("cluster {}", m.cluster_id),
            Some(Err(_)) => "unreadable".to_string(),
        };
        vec![Change::new(
            FERRY_MARKER,
            from,
            format!("cluster {}", self.marker.cluster_id),
        )]
    }

    async fn apply(&self, host: &dyn Host, _observed: &FileState) -> Result<(), ResourceError> {
        host.write_file(FERRY_MARKER, self.content().as_bytes(), 0o644)
            .await?;
        Ok(())
    }

    async fn revert(&self, host: &dyn Host, before: &FileState) -> Result<(), ResourceError> {
        host.restore_file(FERRY_MARKER, before).await?;
        Ok(())
    }
}
