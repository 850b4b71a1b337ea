//! The guard: a host that already belongs to another cluster is never touched unless the
//! operator names it with `--force HOST`. A host is ours when it carries our marker (the
//! cluster's random id, not just its name) and every k3s/kubelet on it is one this cluster's
//! own ferry runs installed (journaled on the host). Also where a run's cluster id comes from.

use std::collections::{BTreeMap, BTreeSet};

use ferry_inventory::facts::{ClusterKind, Facts, FerryMarker};

use super::journal::{Entry, Record};
use super::preflight::Finding;

/// The journal step id under which the cluster phase installs a k3s server. The guard counts
/// a k3s server on a host as this cluster's own only when a run of this cluster journaled this
/// step there (begun and done, not reverted).
pub const K3S_SERVER_STEP: &str = "k3s-server";
/// The same for a k3s agent.
pub const K3S_AGENT_STEP: &str = "k3s-agent";
/// The same for a kubelet (kubeadm, later).
pub const KUBELET_STEP: &str = "kubelet";

/// The installations (k3s server, agent, kubelet) on one host that this cluster's own ferry
/// runs made, from the host's journals: see [`own_installs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnInstalls(BTreeSet<KindKey>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KindKey {
    K3sServer,
    K3sAgent,
    Kubelet,
}

fn key(kind: ClusterKind) -> Option<KindKey> {
    match kind {
        ClusterKind::K3sServer => Some(KindKey::K3sServer),
        ClusterKind::K3sAgent => Some(KindKey::K3sAgent),
        ClusterKind::Kubelet => Some(KindKey::Kubelet),
        ClusterKind::Ferry => None,
    }
}

impl OwnInstalls {
    /// Whether ferry installed this kind for the cluster.
    pub fn contains(&self, kind: ClusterKind) -> bool {
        let k3s = [KindKey::K3sServer, KindKey::K3sAgent];
        key(kind).is_some_and(|k| {
            // A server's k3s step writes the agent's directory first (the air-gap images): a
            // run cut short there leaves what looks like an agent. Either k3s step makes any
            // k3s on the host this cluster's.
            self.0.contains(&k) || (k3s.contains(&k) && k3s.iter().any(|x| self.0.contains(x)))
        })
    }
}

/// Which installations on a host this cluster's own runs made, from every journal line the
/// host keeps (`/var/lib/ferry/journal/*.jsonl`): a kind counts when its step
/// ([`K3S_SERVER_STEP`], ...) was begun by a run for `cluster_id` (the `begin` line names the
/// cluster) and not reverted since (finished or cut short: a run killed half way still made it). This is the function the cluster phase
/// calls before it touches a host that already runs k3s.
pub fn own_installs(records: &[Record], cluster_id: &str) -> OwnInstalls {
    let steps = [
        (K3S_SERVER_STEP, KindKey::K3sServer),
        (K3S_AGENT_STEP, KindKey::K3sAgent),
        (KUBELET_STEP, KindKey::Kubelet),
    ];
    let mut state: BTreeMap<(String, &str), (bool, bool)> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for r in records {
        let Some((step, _)) = steps.iter().find(|(s, _)| *s == r.resource_id) else {
            continue;
        };
        let k = (r.run.clone(), *step);
        match &r.entry {
            Entry::Begin { cluster, .. } => {
                state.insert(k, (cluster.as_deref() == Some(cluster_id), false));
            }
            Entry::Done { .. } => {
                if let Some(s) = state.get_mut(&k) {
                    s.1 = true;
                }
            }
            Entry::Reverted { .. } => {
                state.remove(&k);
            }
            _ => {}
        }
    }
    // Begun is enough: a run killed while k3s started (not yet `done`) still installed it,
    // and the next run of the same cluster must resume there, not take the host for foreign.
    for ((_, step), (ours, _done)) in state {
        if ours {
            if let Some((_, kind)) = steps.iter().find(|(s, _)| *s == step) {
                out.insert(*kind);
            }
        }
    }
    OwnInstalls(out)
}

/// Whether the guard needs the host's journals: a ferry marker and a k3s or kubelet both
/// there (only then can an installation be this cluster's own).
pub fn needs_journals(facts: &Facts) -> bool {
    let kinds: Vec<ClusterKind> = facts.installations.iter().map(|i| i.kind).collect();
    kinds.contains(&ClusterKind::Ferry) && kinds.iter().any(|k| key(*k).is_some())
}

/// Every reachable host's ferry marker (hosts without one, or unreachable, are left out).
pub async fn read_markers(hosts: &super::Hosts) -> BTreeMap<String, FerryMarker> {
    let mut tasks = Vec::new();
    for t in hosts.targets.clone() {
        let pool = hosts.pool.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = pool.permit().await;
            let s = pool.session(&t).await.ok()?;
            let f = ferry_bootos::Host::read_file(
                &ferry_bootos::SshHost::new(s),
                ferry_inventory::facts::FERRY_MARKER,
            )
            .await
            .ok()?;
            let m = serde_json::from_slice::<FerryMarker>(f.bytes()?).ok()?;
            Some((t.name, m))
        }));
    }
    let mut out = BTreeMap::new();
    for task in tasks {
        if let Ok(Some((name, m))) = task.await {
            out.insert(name, m);
        }
    }
    out
}

/// The ferry marker a host's facts show, when it names a cluster id (an unreadable marker
/// names none, as [`read_markers`] leaves it out).
pub fn marker_in(facts: &Facts) -> Option<FerryMarker> {
    facts.installations.iter().find_map(|i| {
        (i.kind == ClusterKind::Ferry).then_some(())?;
        Some(FerryMarker {
            cluster_id: i.cluster_id.clone()?,
            cluster_name: i.cluster_name.clone(),
            role: None,
        })
    })
}

/// Where a run's cluster id came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdFrom {
    /// `cluster.id` in the answer file.
    Answers,
    /// The markers of the hosts already prepared for this cluster (by name).
    Markers,
    /// This jump host's record of an earlier run for the cluster (no host is marked yet).
    JumpHost,
    /// Nothing known: a new random id, written at the first apply.
    New,
}

/// The cluster id a run uses, when the answer file gives none. The hosts are the truth: the
/// markers of hosts already prepared for a cluster of this name give its id; when they name
/// more than one id, the operator must choose (`cluster.id`), since ferry cannot tell which
/// cluster this install is for. With no marker, the id this jump host recorded for the
/// cluster's name at an earlier apply (`recorded`), else `new` (random, made by the config).
pub fn resolve_cluster_id(
    name: &str,
    markers: &BTreeMap<String, FerryMarker>,
    recorded: Option<&str>,
    new: &str,
) -> Result<(String, IdFrom), String> {
    let mut ids: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (host, m) in markers {
        if m.cluster_name.as_deref() == Some(name) {
            ids.entry(m.cluster_id.as_str()).or_default().push(host);
        }
    }
    match ids.len() {
        0 => Ok(match recorded {
            Some(id) => (id.to_string(), IdFrom::JumpHost),
            None => (new.to_string(), IdFrom::New),
        }),
        1 => Ok((
            ids.keys().next().map(|s| s.to_string()).unwrap_or_default(),
            IdFrom::Markers,
        )),
        _ => {
            let list: Vec<String> = ids
                .iter()
                .map(|(id, hosts)| format!("{id} ({})", hosts.join(", ")))
                .collect();
            Err(format!(
                "the hosts carry markers of {} different clusters named {name:?}: {}; set \
                 cluster.id in the answer file to the id of the cluster this install is for \
                 (hosts of the other clusters are then refused)",
                ids.len(),
                list.join(", ")
            ))
        }
    }
}

/// Whether the host carries ferry's marker for `cluster_id`.
pub fn is_ours(facts: &Facts, cluster_id: &str) -> bool {
    facts
        .installations
        .iter()
        .any(|i| i.kind == ClusterKind::Ferry && i.cluster_id.as_deref() == Some(cluster_id))
}

/// `None` when the host is free or ours; otherwise what was found, blocking unless `forced`
/// (then a warning that it is being taken over). Our marker does not make the host ours when
/// a k3s or kubelet is there too that this cluster's runs did not install (`own`): that one
/// belongs to someone else.
pub fn check(
    host: &str,
    facts: &Facts,
    cluster_id: &str,
    forced: bool,
    own: &OwnInstalls,
) -> Option<Finding> {
    let ours = is_ours(facts, cluster_id);
    let found: Vec<String> = facts
        .installations
        .iter()
        .filter(|i| {
            if ours {
                // Our marker is ours; a k3s/kubelet only when our runs installed it.
                i.kind != ClusterKind::Ferry && !own.contains(i.kind)
            } else {
                true
            }
        })
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
    if ours {
        let f = format!("{found}, not installed by this cluster's ferry runs, beside our marker");
        return Some(if forced {
            Finding::warn(format!("{f}; taken over because of --force {host}"), "")
        } else {
            Finding::block(
                format!("{f} (cluster {cluster_id})"),
                format!(
                    "find out whose it is; if this host really is to be reused, add --force \
                     {host}, or remove it first"
                ),
            )
        });
    }
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

    fn none() -> OwnInstalls {
        OwnInstalls::default()
    }

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
        assert!(check("vm0", &Facts::default(), "ferry-1", false, &none()).is_none());
        assert!(check(
            "vm0",
            &with(ClusterKind::Ferry, Some("ferry-1")),
            "ferry-1",
            false,
            &none()
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
            &none(),
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
        assert!(
            check("vm2", &f, "ferry-1", false, &none())
                .unwrap()
                .blocking
        );
        let forced = check("vm2", &f, "ferry-1", true, &none()).unwrap();
        assert!(!forced.blocking);
        assert!(forced.reason.contains("k3s server"));
    }

    fn begin(run: &str, step: &str, cluster: &str) -> Record {
        Record::now(
            run,
            "vm0",
            step,
            Entry::Begin {
                resource: serde_json::json!({}),
                observed: serde_json::json!({}),
                changes: vec![],
                records_effects: true,
                cluster: Some(cluster.into()),
            },
        )
    }

    fn done(run: &str, step: &str) -> Record {
        Record::now(run, "vm0", step, Entry::Done { seconds: 1.0 })
    }

    #[test]
    fn our_marker_beside_a_foreign_k3s_is_refused() {
        let mut f = with(ClusterKind::Ferry, Some("ferry-1"));
        f.installations.push(Installation {
            kind: ClusterKind::K3sServer,
            cluster_id: Some("abc".into()),
            server_url: None,
            cluster_name: None,
        });
        let found = check("vm0", &f, "ferry-1", false, &none()).unwrap();
        assert!(found.blocking, "{found:?}");
        assert!(
            found.reason.contains(
                "a k3s server of cluster abc, not installed by this cluster's ferry runs"
            ),
            "{}",
            found.reason
        );
        // Installed by a run of this cluster, journaled on the host: ours.
        let journal = vec![
            begin("r1", K3S_SERVER_STEP, "ferry-1"),
            done("r1", K3S_SERVER_STEP),
        ];
        let own = own_installs(&journal, "ferry-1");
        assert!(check("vm0", &f, "ferry-1", false, &own).is_none());
        // Begun by a run of this cluster that was killed before `done`: ours, to resume.
        let own = own_installs(&[begin("r1", K3S_SERVER_STEP, "ferry-1")], "ferry-1");
        assert!(check("vm0", &f, "ferry-1", false, &own).is_none());
        // By another cluster's run, or reverted since: not ours.
        for j in [
            vec![
                begin("r1", K3S_SERVER_STEP, "ferry-2"),
                done("r1", K3S_SERVER_STEP),
            ],
            vec![
                begin("r1", K3S_SERVER_STEP, "ferry-1"),
                done("r1", K3S_SERVER_STEP),
                Record::now(
                    "r1",
                    "vm0",
                    K3S_SERVER_STEP,
                    Entry::Reverted {
                        seconds: 1.0,
                        kept: vec![],
                    },
                ),
            ],
        ] {
            let own = own_installs(&j, "ferry-1");
            assert!(check("vm0", &f, "ferry-1", false, &own).unwrap().blocking);
        }
    }

    fn marker(id: &str, name: &str) -> FerryMarker {
        FerryMarker {
            cluster_id: id.into(),
            cluster_name: Some(name.into()),
            role: None,
        }
    }

    #[test]
    fn the_cluster_id_comes_from_the_hosts_markers_then_the_jump_host_then_is_new() {
        let new = "ferry-5e1f0a7b9c2d4e6f";
        let none = BTreeMap::new();
        assert_eq!(
            resolve_cluster_id("prod", &none, None, new),
            Ok((new.to_string(), IdFrom::New))
        );
        assert_eq!(
            resolve_cluster_id("prod", &none, Some("ferry-aa"), new),
            Ok(("ferry-aa".to_string(), IdFrom::JumpHost))
        );
        let mut m = BTreeMap::new();
        m.insert("vm0".to_string(), marker("ferry-bb", "prod"));
        // Another cluster's marker with another name does not count.
        m.insert("vm1".to_string(), marker("ferry-cc", "test"));
        assert_eq!(
            resolve_cluster_id("prod", &m, Some("ferry-aa"), new),
            Ok(("ferry-bb".to_string(), IdFrom::Markers))
        );
        // Two clusters both named prod: the operator chooses.
        m.insert("vm2".to_string(), marker("ferry-dd", "prod"));
        let e = resolve_cluster_id("prod", &m, None, new).unwrap_err();
        assert!(
            e.contains("2 different clusters named \"prod\": ferry-bb (vm0), ferry-dd (vm2)")
                && e.contains("set cluster.id"),
            "{e}"
        );
    }
}
