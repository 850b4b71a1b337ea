//! Before the hosts' steps run, the files that several hosts' steps will upload (each step
//! says which: [`ferry_bootos::Resource::uploads`], e.g. the k3s binary and air-gap archive,
//! the baseline's OS package repository and GPU driver) are relayed host to host into each
//! host's store ([`ferry_inventory::relay`]): the jump host's link carries each once, and each
//! host's step then finds a verified copy on the host instead of receiving it. Only a
//! speed-up: a host the relay missed gets the file from its step, directly, as before.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use ferry_bootos::DynResource;
use ferry_inventory::relay::{relay, RelayHost, RelayOptions, HOST_STORE};
use ferry_inventory::transfer::UploadSource;

use super::events::{one_line, Event, Sink};
use super::plan::{HostStatus, Plan};
use super::Hosts;

/// A file several hosts' steps send, and those hosts.
struct Wanted {
    source: Arc<dyn UploadSource>,
    hosts: Vec<String>,
}

/// What the plan's ready hosts' steps will upload, by digest: a step's upload counts for a
/// host when the host's plan has the change that sends it.
fn wanted(plan: &Plan) -> BTreeMap<String, Wanted> {
    let mut out: BTreeMap<String, Wanted> = BTreeMap::new();
    for hp in plan.hosts.iter().filter(|h| h.status == HostStatus::Ready) {
        let steps = hp
            .resources
            .iter()
            .map(|r| r.as_dyn())
            .chain(hp.cluster.iter().map(|c| c.as_dyn()));
        for step in steps {
            let id = DynResource::id(step);
            for up in step.uploads() {
                if !hp
                    .changes
                    .iter()
                    .any(|c| c.resource == id && c.what == up.change)
                {
                    continue;
                }
                let w = out
                    .entry(up.source.sha256().to_string())
                    .or_insert_with(|| Wanted {
                        source: up.source.clone(),
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

/// The sets of hosts worth a relay, each with the files they all need: files two or more
/// hosts need, grouped by the hosts that need them, where sending the group's files to each
/// host directly would put at least `min_saved` bytes more over the jump host's link than
/// sending them once. A relay has a cost of its own (an agent started on every host, peers
/// connecting: seconds, 10.8 s on the emulated test bed), which a few MiB do not repay.
fn groups(plan: &Plan, min_saved: u64) -> BTreeMap<Vec<String>, Vec<Wanted>> {
    let mut groups: BTreeMap<Vec<String>, Vec<Wanted>> = BTreeMap::new();
    for (_, w) in wanted(plan) {
        if w.hosts.len() >= 2 {
            groups.entry(w.hosts.clone()).or_default().push(w);
        }
    }
    groups.retain(|names, blobs| {
        let bytes: u64 = blobs.iter().map(|w| w.source.size()).sum();
        bytes.saturating_mul(names.len() as u64 - 1) >= min_saved
    });
    groups
}

/// Relays what two or more hosts need (see [`groups`]); returns the hosts and digests it
/// delivered, for [`clean`] once the steps ran. Tells what it does as progress lines of the
/// first host of each relay (step `relay`); failures are warnings, never fatal.
pub async fn prestage(plan: &Plan, hosts: &Hosts, sink: &Sink) -> Vec<(String, String)> {
    let Some(agent) = &hosts.agent else {
        return Vec::new();
    };
    let mut delivered = Vec::new();
    for (names, blobs) in groups(plan, hosts.relay_min_saved) {
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
        let sources: Vec<Arc<dyn UploadSource>> = blobs.iter().map(|w| w.source.clone()).collect();
        let first = names.first().cloned().unwrap_or_default();
        let tell = |message: String| {
            sink(Event::Progress {
                host: first.clone(),
                resource: "relay".into(),
                message,
            })
        };
        let bytes: u64 = sources.iter().map(|s| s.size()).sum();
        tell(format!(
            "{} file(s), {:.1} MiB, to {} hosts, host to host: each leaves the jump host once",
            sources.len(),
            bytes as f64 / 1048576.0,
            members.len()
        ));
        let started = Instant::now();
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
                let mut ok = 0;
                for (host, r) in results {
                    match r {
                        Ok(()) => {
                            ok += 1;
                            delivered.extend(
                                sources
                                    .iter()
                                    .map(|s| (host.clone(), s.sha256().to_string())),
                            )
                        }
                        Err(e) => sink(Event::Warning {
                            host,
                            message: format!(
                                "relay: {}; its steps send the files directly",
                                one_line(&e)
                            ),
                        }),
                    }
                }
                tell(format!(
                    "delivered to {ok} of {} hosts in {:.1} s",
                    members.len(),
                    started.elapsed().as_secs_f64()
                ));
            }
            Err(e) => sink(Event::Warning {
                host: first.clone(),
                message: format!("{}; the steps send the files directly", one_line(&e)),
            }),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ferry_bootos::baseline::{LocalDriver, LocalRepo};
    use ferry_bootos::resources::gpu::GpuDriver;
    use ferry_bootos::resources::packages::{OsRepo, RepoRef};
    use ferry_bootos::resources::software::SoftwareResource;
    use ferry_bootos::tree::PackedTree;
    use ferry_bootos::ResourceSpec;
    use ferry_inventory::relay::BlobSpec;

    use super::*;
    use crate::engine::plan::{HostPlan, PlannedChange};

    fn change(resource: &str, what: &str) -> PlannedChange {
        PlannedChange {
            resource: resource.into(),
            what: what.into(),
            from: "absent".into(),
            to: "x".into(),
        }
    }

    #[test]
    fn the_relay_carries_what_the_hosts_steps_will_send_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let repo_dir = d.path().join("repo");
        std::fs::create_dir_all(&repo_dir).unwrap();
        std::fs::write(repo_dir.join("Packages"), "Package: a\n").unwrap();
        let packed = PackedTree::measure(&repo_dir).unwrap();
        let repo = LocalRepo {
            dir: repo_dir,
            digest: "sha256:ab".into(),
            distro: "debian-12".into(),
            format: "deb".into(),
            packed: Some(BlobSpec {
                sha256: packed.sha256.clone(),
                size: packed.size,
            }),
        };
        let driver_file = d.path().join("NVIDIA-Linux-x86_64-550.run");
        std::fs::write(&driver_file, "driver").unwrap();
        let driver = LocalDriver {
            file: driver_file,
            sha256: "d".repeat(64),
            version: "550".into(),
            kernels: Vec::new(),
        };
        let resources = vec![
            ResourceSpec::Software(SoftwareResource::OsRepo(OsRepo { repo: repo.clone() })),
            ResourceSpec::Software(SoftwareResource::GpuDriver(GpuDriver { driver })),
        ];
        let host = |name: &str, status, changes| HostPlan {
            host: name.into(),
            status,
            reasons: Vec::new(),
            warnings: Vec::new(),
            changes,
            resources: resources.clone(),
            cluster: Vec::new(),
        };
        let repo_change = || change("os-repo", &RepoRef::of(&repo).dir());
        let plan = Plan {
            cluster: None,
            cluster_id: "c".into(),
            site: Default::default(),
            hosts: vec![
                host(
                    "a",
                    HostStatus::Ready,
                    vec![repo_change(), change("gpu-driver", "NVIDIA driver")],
                ),
                // Has the repository already; only its apt source differs.
                host(
                    "b",
                    HostStatus::Ready,
                    vec![
                        change("os-repo", "/etc/apt/sources.list.d/ferry.list"),
                        change("gpu-driver", "NVIDIA driver"),
                    ],
                ),
                host("c", HostStatus::Ready, vec![repo_change()]),
                host("d", HostStatus::Blocked, vec![repo_change()]),
            ],
        };
        let got: BTreeMap<String, Vec<String>> = wanted(&plan)
            .into_iter()
            .map(|(sha, w)| (sha, w.hosts))
            .collect();
        let want = BTreeMap::from([
            (
                packed.sha256.clone(),
                vec!["a".to_string(), "c".to_string()],
            ),
            ("d".repeat(64), vec!["a".to_string(), "b".to_string()]),
        ]);
        assert_eq!(got, want);

        // Relayed only where sending to each host directly would cost the jump host's link
        // at least the threshold more: each file here goes to 2 hosts, so 1 copy more.
        let relayed =
            |min_saved: u64| -> Vec<Vec<String>> { groups(&plan, min_saved).into_keys().collect() };
        let (ab, ac) = (
            vec!["a".to_string(), "b".into()],
            vec!["a".to_string(), "c".into()],
        );
        assert_eq!(relayed(0), vec![ab.clone(), ac.clone()]);
        assert_eq!(
            relayed(6),
            vec![ab, ac.clone()],
            "the 6-byte driver, 1 copy more"
        );
        assert_eq!(relayed(7), vec![ac], "the driver saves 6 bytes");
        assert!(relayed(packed.size + 1).is_empty());
        assert!(
            relayed(256 << 20).is_empty(),
            "the default: a few KiB are sent directly"
        );
    }
}
