//! What is installed from the bundle and the services that run: time sync, the offline
//! package repository and its packages, the container runtime, the GPU driver. This module
//! chooses which of them a host gets and in what order; each lives in its own module.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::baseline::{BaselineConfig, GpuPolicy, HostContext};
use crate::host::{Host, HostError};
use crate::resource::DynResource;

use super::containerd::Containerd;
use super::gpu::GpuDriver;
use super::packages::{OsRepo, Packages, RepoRef};
use super::timesync::TimeSync;

/// A software resource, as a plan and a journal record it (`kind` names the variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SoftwareResource {
    /// chrony: the site's time source or a follower of it.
    #[serde(rename = "timesync")]
    TimeSync(TimeSync),
    /// The bundle's OS package repository on the host, as an apt source.
    OsRepo(OsRepo),
    /// Packages installed from that repository.
    Packages(Packages),
    /// containerd installed and running.
    Containerd(Containerd),
    /// The NVIDIA driver from the bundle.
    GpuDriver(GpuDriver),
}

impl SoftwareResource {
    /// The resource behind the variant.
    pub fn as_dyn(&self) -> &dyn DynResource {
        match self {
            SoftwareResource::TimeSync(r) => r,
            SoftwareResource::OsRepo(r) => r,
            SoftwareResource::Packages(r) => r,
            SoftwareResource::Containerd(r) => r,
            SoftwareResource::GpuDriver(r) => r,
        }
    }
}

/// The software resources for `ctx`'s host, in apply order: time first (package installs and
/// TLS later on want a right clock), then the repository, the packages, containerd (which may
/// come from the repository) and the GPU driver.
pub fn resources(cfg: &BaselineConfig, ctx: &HostContext<'_>) -> Vec<SoftwareResource> {
    let mut out = Vec::new();
    if let Some(t) = TimeSync::for_host(&cfg.time, ctx) {
        out.push(SoftwareResource::TimeSync(t));
    }
    let repo = ctx.artifacts.os_repo.as_ref();
    let containerd_missing = !ctx
        .facts
        .container_runtimes
        .iter()
        .any(|r| r.name == "containerd" && r.binary.is_some());
    let containerd_needs_repo = cfg.container_runtime && containerd_missing;
    if let Some(repo) = repo {
        if !cfg.packages.is_empty() || containerd_needs_repo {
            out.push(SoftwareResource::OsRepo(OsRepo { repo: repo.clone() }));
        }
    }
    let repo_ref = repo.map(RepoRef::of);
    if !cfg.packages.is_empty() {
        out.push(SoftwareResource::Packages(Packages {
            packages: cfg.packages.clone(),
            repo: repo_ref.clone(),
        }));
    }
    if cfg.container_runtime {
        out.push(SoftwareResource::Containerd(Containerd {
            package: "containerd".into(),
            repo: repo_ref,
        }));
    }
    if let Some(driver) = &ctx.artifacts.gpu_driver {
        let older = match &ctx.facts.nvidia_driver {
            None => true,
            Some(have) => compare_versions(have, &driver.version) == Ordering::Less,
        };
        if cfg.gpu == GpuPolicy::Auto && !ctx.facts.gpus.is_empty() && older {
            out.push(SoftwareResource::GpuDriver(GpuDriver {
                driver: driver.clone(),
            }));
        }
    }
    out
}

/// Orders two package or driver versions as dpkg does (Debian policy 5.6.12: epoch, then
/// upstream and revision compared in runs of non-digits, where `~` sorts before everything,
/// even the end, and runs of digits compared as numbers): `1.6.20~ds1-1+deb12u3` < `1.6.20-1`,
/// `535.104.05` > `535.54.03`, `550.54` < `550.54.14`. The `debversion` crate does the
/// comparison (the same one the bundle's apt repositories use); a string that is no Debian
/// version at all sorts before every version, so a garbled installed version is replaced.
/// RPM's ordering (rpmvercmp) comes with RedHat support.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parse = |s: &str| s.trim().parse::<debversion::Version>().ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Whether a systemd unit is enabled and active, as undo data for services ferry starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceState {
    /// `systemctl is-enabled` said `enabled` (or `enabled-runtime`, `alias`).
    pub enabled: bool,
    /// `systemctl is-active` said `active`.
    pub active: bool,
}

impl ServiceState {
    /// Reads the unit's state.
    pub(crate) async fn observe(host: &dyn Host, unit: &str) -> Result<Self, HostError> {
        let out = host
            .run(&format!(
                "systemctl is-enabled {unit} 2>/dev/null; echo; systemctl is-active {unit} 2>/dev/null; true"
            ))
            .await?;
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        Ok(Self {
            enabled: words
                .iter()
                .any(|w| matches!(*w, "enabled" | "enabled-runtime" | "alias")),
            active: words.contains(&"active"),
        })
    }

    /// Puts the unit back as it was.
    pub(crate) async fn restore(&self, host: &dyn Host, unit: &str) -> Result<(), HostError> {
        // Only when it differs: enabling or disabling may run update-rc.d (see `start`).
        let enable = if self.enabled {
            format!("systemctl is-enabled --quiet {unit} || systemctl enable --quiet {unit}")
        } else {
            format!("! systemctl is-enabled --quiet {unit} || systemctl disable --quiet {unit}")
        };
        let run = if self.active { "restart" } else { "stop" };
        host.run_ok(&format!("{{ {enable}; }} && systemctl {run} {unit}"))
            .await?;
        Ok(())
    }

    /// Enables the unit (unless this state says it is) and (re)starts it so it reads its
    /// configuration anew. `systemctl enable` is skipped when not needed: for units with a
    /// SysV script beside them it runs update-rc.d, seconds on a small host.
    pub(crate) async fn start(&self, host: &dyn Host, unit: &str) -> Result<(), HostError> {
        let enable = if self.enabled {
            String::new()
        } else {
            format!("systemctl enable --quiet {unit} && ")
        };
        host.run_ok(&format!("{enable}systemctl restart {unit}"))
            .await?;
        Ok(())
    }

    /// `enabled, active` / `disabled, inactive` for a plan row.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}, {}",
            if self.enabled { "enabled" } else { "disabled" },
            if self.active { "active" } else { "inactive" }
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use ferry_inventory::facts::{ContainerRuntime, Facts, Gpu};

    use super::*;
    use crate::baseline::{Artifacts, LocalDriver, LocalRepo, Member};

    #[test]
    fn compares_dotted_driver_versions_numerically() {
        assert_eq!(
            compare_versions("535.104.05", "535.54.03"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("550.54.14", "550.90.07"), Ordering::Less);
        assert_eq!(compare_versions("550.90.07", "550.90.07"), Ordering::Equal);
        assert_eq!(compare_versions("550.54", "550.54.14"), Ordering::Less);
        assert_eq!(compare_versions("9.0", "10.0"), Ordering::Less);
    }

    /// Debian policy 5.6.12's own examples, and dpkg's (`dpkg --compare-versions` agrees with
    /// each of these).
    #[test]
    fn orders_versions_as_dpkg_does() {
        let ascending = [
            "",
            "1.6.20~~",
            "1.6.20~~a",
            "1.6.20~",
            "1.6.20~ds1-1+deb12u3",
            "1.6.20",
            "1.6.20-1",
            "1.6.20-1+deb12u1",
            "1.6.20a",
            "1.6.20+dfsg-1",
            "1.6.21",
            "1.10",
            "1:0.1",
            "2:0.0.1~rc1",
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(compare_versions(a, b), i.cmp(&j), "{a:?} against {b:?}");
            }
        }
        // The policy's `~` example: a pre-release sorts before the release.
        assert_eq!(compare_versions("1.0~rc1-1", "1.0-1"), Ordering::Less);
        // A revision counts after the upstream version, numerically.
        assert_eq!(compare_versions("1.0-10", "1.0-9"), Ordering::Greater);
        // No epoch is epoch 0.
        assert_eq!(compare_versions("0:1.2-3", "1.2-3"), Ordering::Equal);
    }

    struct World {
        members: Vec<Member>,
        facts: Facts,
        artifacts: Artifacts,
    }

    impl World {
        fn new() -> Self {
            let members = vec![
                Member {
                    name: "s1".into(),
                    address: "10.0.0.1".into(),
                    server: true,
                },
                Member {
                    name: "a1".into(),
                    address: "10.0.0.2".into(),
                    server: false,
                },
            ];
            let mut facts = Facts::default();
            facts.os.id = "debian".into();
            facts.os.version_id = "12".into();
            facts.container_runtimes = vec![ContainerRuntime {
                name: "containerd".into(),
                binary: Some("/usr/bin/containerd".into()),
                socket: None,
            }];
            let artifacts = Artifacts {
                os_repo: Some(LocalRepo {
                    dir: PathBuf::from("/tmp/repo"),
                    digest: "sha256-abc".into(),
                    distro: "debian-12".into(),
                    format: "deb".into(),
                    packed: None,
                }),
                gpu_driver: Some(LocalDriver {
                    file: PathBuf::from("/tmp/NVIDIA-Linux-x86_64-550.90.07.run"),
                    sha256: "ab".repeat(32),
                    version: "550.90.07".into(),
                    kernels: vec![],
                }),
            };
            Self {
                members,
                facts,
                artifacts,
            }
        }

        fn kinds(&self, cfg: &BaselineConfig, me: usize) -> Vec<String> {
            let ctx = HostContext {
                member: &self.members[me],
                facts: &self.facts,
                members: &self.members,
                time_source: Some(&self.members[0]),
                artifacts: &self.artifacts,
                cluster_id: "c1",
                cluster_name: "site",
            };
            resources(cfg, &ctx)
                .iter()
                .map(|r| r.as_dyn().id())
                .collect()
        }
    }

    #[test]
    fn a_plain_host_gets_time_and_containerd_only() {
        let w = World::new();
        assert_eq!(
            w.kinds(&BaselineConfig::default(), 1),
            ["timesync", "containerd"]
        );
    }

    #[test]
    fn packages_bring_the_repository_first() {
        let w = World::new();
        let cfg = BaselineConfig {
            packages: vec!["jq".into()],
            ..BaselineConfig::default()
        };
        assert_eq!(
            w.kinds(&cfg, 1),
            ["timesync", "os-repo", "packages", "containerd"]
        );
    }

    #[test]
    fn a_host_without_containerd_gets_the_repository_for_it() {
        let mut w = World::new();
        w.facts.container_runtimes.clear();
        assert_eq!(
            w.kinds(&BaselineConfig::default(), 1),
            ["timesync", "os-repo", "containerd"]
        );
    }

    #[test]
    fn without_a_repository_packages_are_still_planned_and_refused() {
        let mut w = World::new();
        w.artifacts.os_repo = None;
        let cfg = BaselineConfig {
            packages: vec!["jq".into()],
            ..BaselineConfig::default()
        };
        assert_eq!(w.kinds(&cfg, 1), ["timesync", "packages", "containerd"]);
        let p = Packages {
            packages: cfg.packages.clone(),
            repo: None,
        };
        let why = crate::resource::Resource::supports(&p, &w.facts).unwrap_err();
        assert!(why.contains("no OS package repository"), "{why}");
    }

    #[test]
    fn the_gpu_driver_goes_only_to_gpu_hosts_with_an_older_or_no_driver() {
        let mut w = World::new();
        let cfg = BaselineConfig::default();
        assert!(!w.kinds(&cfg, 1).contains(&"gpu-driver".to_string()));
        w.facts.gpus = vec![Gpu {
            pci_address: "0000:3b:00.0".into(),
            vendor_id: "0x10de".into(),
            device_id: "0x20b5".into(),
            driver: None,
        }];
        assert_eq!(w.kinds(&cfg, 1).last().unwrap(), "gpu-driver");
        w.facts.nvidia_driver = Some("550.54.14".into());
        assert_eq!(w.kinds(&cfg, 1).last().unwrap(), "gpu-driver");
        w.facts.nvidia_driver = Some("550.90.07".into());
        assert!(!w.kinds(&cfg, 1).contains(&"gpu-driver".to_string()));
        w.facts.nvidia_driver = None;
        let skip = BaselineConfig {
            gpu: GpuPolicy::Skip,
            ..BaselineConfig::default()
        };
        assert!(!w.kinds(&skip, 1).contains(&"gpu-driver".to_string()));
        w.artifacts.gpu_driver = None;
        assert!(!w.kinds(&cfg, 1).contains(&"gpu-driver".to_string()));
    }

    #[test]
    fn a_journal_can_rebuild_every_resource_from_json() {
        let mut w = World::new();
        w.facts.container_runtimes.clear();
        w.facts.gpus = vec![Gpu::default()];
        let cfg = BaselineConfig {
            packages: vec!["jq".into()],
            ..BaselineConfig::default()
        };
        let ctx = HostContext {
            member: &w.members[1],
            facts: &w.facts,
            members: &w.members,
            time_source: Some(&w.members[0]),
            artifacts: &w.artifacts,
            cluster_id: "c1",
            cluster_name: "site",
        };
        let all = resources(&cfg, &ctx);
        assert_eq!(all.len(), 5);
        for r in all {
            let json = serde_json::to_value(&r).unwrap();
            let kind = json["kind"].as_str().unwrap().to_string();
            assert_eq!(kind, r.as_dyn().id(), "{json}");
            let back: SoftwareResource = serde_json::from_value(json).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn time_sync_off_means_no_time_resource() {
        let w = World::new();
        let mut cfg = BaselineConfig::default();
        cfg.time.enabled = false;
        assert_eq!(w.kinds(&cfg, 0), ["containerd"]);
    }
}
