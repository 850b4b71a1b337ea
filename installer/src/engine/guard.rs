//! The guard: a host that already belongs to another cluster is never touched unless the
//! operator names it with `--force HOST`. A host carrying our own marker is ours.

use ferry_inventory::facts::{ClusterKind, Facts};

use super::preflight::Finding;

/// Whether the host carries ferry's marker for `cluster_id`.
pub fn is_ours(facts: &Facts, cluster_id: &str) -> bool {
    facts
        .installations
        .iter()
        .any(|i| i.kind == ClusterKind::Ferry && i.cluster_id.as_deref() == Some(cluster_id))
}

/// `None` when the host is free or ours; otherwise what was found, blocking unless `forced`
/// (then a warning that it is being taken over).
pub fn check(host: &str, facts: &Facts, cluster_id: &str, forced: bool) -> Option<Finding> {
    if is_ours(facts, cluster_id) {
        return None;
    }
    let found: Vec<String> = facts
        .installations
        .iter()
        .map(|i| {
            let what = match i.kind {
                ClusterKind::Ferry => "a ferry marker",
                ClusterKind::K3sServer => "a k3s server",
                ClusterKind::K3sAgent => "a k3s agent",
                ClusterKind::Kubelet => "a kubelet",
            };
            match (&i.cluster_id, &i.server_url) {
                (Some(id), _) => format!("{what} of cluster {id}"),
                (None, Some(url)) => format!("{what} joined to {url}"),
                (None, None) => format!("{what} of an unknown cluster"),
            }
        })
        .collect();
    if found.is_empty() {
        return None;
    }
    let found = found.join(" and ");
    Some(if forced {
        Finding::warn(
            format!("{found} found; taken over because of --force {host}"),
            "",
        )
    } else {
        Finding::block(
            format!("belongs to another cluster: {found} (ours is {cluster_id})"),
            format!("if this host really is to be reused, add --force {host}, or wipe it first"),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ferry_inventory::facts::Installation;

    fn with(kind: ClusterKind, id: Option<&str>) -> Facts {
        let mut f = Facts::default();
        f.installations.push(Installation {
            kind,
            cluster_id: id.map(String::from),
            server_url: None,
            cluster_name: None,
        });
        f
    }

    #[test]
    fn a_fresh_host_and_our_own_host_pass() {
        assert!(check("vm0", &Facts::default(), "ferry-1", false).is_none());
        assert!(check(
            "vm0",
            &with(ClusterKind::Ferry, Some("ferry-1")),
            "ferry-1",
            false
        )
        .is_none());
    }

    #[test]
    fn another_clusters_marker_blocks_and_names_both_ids_and_the_fix() {
        let f = check(
            "vm1",
            &with(ClusterKind::Ferry, Some("ferry-2")),
            "ferry-1",
            false,
        )
        .unwrap();
        assert!(f.blocking);
        assert!(
            f.reason.contains("ferry-2") && f.reason.contains("ferry-1"),
            "{}",
            f.reason
        );
        assert!(f.fix.contains("--force vm1"), "{}", f.fix);
    }

    #[test]
    fn a_k3s_without_our_marker_blocks_unless_forced() {
        let f = with(ClusterKind::K3sServer, Some("abc"));
        assert!(check("vm2", &f, "ferry-1", false).unwrap().blocking);
        let forced = check("vm2", &f, "ferry-1", true).unwrap();
        assert!(!forced.blocking);
        assert!(forced.reason.contains("k3s server"));
    }
}
