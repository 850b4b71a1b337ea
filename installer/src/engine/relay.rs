//! Before the hosts' steps run, the bundle files that several hosts' steps will upload (the k3s
//! binary and its air-gap archive) are relayed host to host into each host's store
//! ([`ferry_inventory::relay`]): the jump host's link carries each once, and each host's step
//! then finds a verified copy on the host instead of receiving it (the upload's staged copy).
//! Only a speed-up: a host the relay missed gets the file from its step, directly, as before.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferry_inventory::relay::{relay, RelayHost, RelayOptions, HOST_STORE};
use ferry_inventory::transfer::UploadSource;

use super::plan::{HostStatus, Plan};
use super::Hosts;
use crate::cluster::bundle::{airgap_dest, BlobRef, ClusterBundle};
use crate::cluster::k3s::BINARY;

/// A blob several hosts need, with the bundle it comes from.
struct Wanted {
    bundle: Arc<ClusterBundle>,
    blob: BlobRef,
    hosts: Vec<String>,
}

/// What the plan's ready hosts will upload from the bundle, by digest.
fn wanted(plan: &Plan) -> BTreeMap<String, Wanted> {
    let mut out: BTreeMap<String, Wanted> = BTreeMap::new();
    for hp in plan.hosts.iter().filter(|h| h.status == HostStatus::Ready) {
        for node in hp.cluster.iter().filter_map(|c| c.node()) {
            let Some(rt) = &node.runtime else { continue };
            for (blob, dest) in [
                (&node.binary, BINARY.to_string()),
                (&node.airgap, airgap_dest(&node.airgap)),
            ] {
                if !hp.changes.iter().any(|c| c.what == dest) {
                    continue;
                }
                let w = out.entry(blob.sha256.clone()).or_insert_with(|| Wanted {
                    bundle: rt.bundle.clone(),
                    blob: blob.clone(),
                    hosts: Vec::new(),
                });
                if !w.hosts.contains(&hp.host) {
                    w.hosts.push(hp.host.clone());
                }
            }
        }
    }
    out
}

/// Relays what two or more hosts need; returns the hosts and digests it delivered, for
/// [`clean`] once the steps ran. Failures are logged, never fatal.
pub async fn prestage(plan: &Plan, hosts: &Hosts) -> Vec<(String, String)> {
    let Some(agent) = &hosts.agent else {
        return Vec::new();
    };
    // One relay per set of hosts, carrying every blob that set needs.
    let mut groups: BTreeMap<Vec<String>, Vec<Wanted>> = BTreeMap::new();
    for (_, w) in wanted(plan) {
        if w.hosts.len() >= 2 {
            groups.entry(w.hosts.clone()).or_default().push(w);
        }
    }
    let mut delivered = Vec::new();
    for (names, blobs) in groups {
        let members: Vec<RelayHost> = names
            .iter()
            .filter_map(|n| hosts.target(n))
            .map(|t| RelayHost {
                target: t.clone(),
                site_address: t.address.clone(),
                store: HOST_STORE.to_string(),
                as_root: true,
            })
            .collect();
        let sources: Vec<Arc<dyn UploadSource>> = blobs
            .iter()
            .map(|w| Arc::new(w.bundle.source(&w.blob)) as Arc<dyn UploadSource>)
            .collect();
        let quiet = Arc::new(|_| {});
        match relay(
            hosts.pool.clone(),
            agent,
            &members,
            &sources,
            &RelayOptions::default(),
            quiet,
        )
        .await
        {
            Ok(results) => {
                for (host, r) in results {
                    match r {
                        Ok(()) => delivered
                            .extend(blobs.iter().map(|w| (host.clone(), w.blob.sha256.clone()))),
                        Err(e) => tracing::warn!(
                            %host,
                            "relay: {e}; its steps send the files directly"
                        ),
                    }
                }
            }
            Err(e) => tracing::warn!("{e}; the steps send the files directly"),
        }
    }
    delivered
}

/// Removes the relayed copies from the hosts' stores (best effort: a copy left behind is only
/// disk space, and a later run checks its digest before using it).
pub async fn clean(hosts: &Hosts, delivered: &[(String, String)]) {
    let mut by_host: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (h, d) in delivered {
        by_host.entry(h).or_default().push(d);
    }
    for (host, digests) in by_host {
        let Some(t) = hosts.target(host) else {
            continue;
        };
        let Ok(s) = hosts.pool.session(t).await else {
            continue;
        };
        let files: Vec<String> = digests
            .iter()
            .map(|d| ferry_inventory::ssh::shell_quote(&format!("{HOST_STORE}/{d}")))
            .collect();
        let _ = s
            .exec(
                &format!(
                    "rm -f {}; rmdir {HOST_STORE} 2>/dev/null; true",
                    files.join(" ")
                ),
                true,
            )
            .await;
    }
}
