//! What a host's baseline should be (the settings an answer file gives) and the ordered list of
//! resources that make a given host so. The installer builds the config; this module decides
//! which resources a host gets from its facts (a GPU, a missing default route, its OS).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ferry_inventory::facts::Facts;
use serde::{Deserialize, Serialize};

use crate::resources::software;
use crate::resources::system::{self, SystemResource};
use crate::spec::ResourceSpec;

/// Time synchronization for a site without internet time: one host serves, the others follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeConfig {
    /// Manage time sync at all.
    pub enabled: bool,
    /// The host that serves time (inventory name); default: the first server.
    pub source: Option<String>,
    /// Upstream servers the source itself follows (a site GPS/NTP appliance), if any; without
    /// them the source serves its own clock (`local stratum 8`).
    pub upstream: Vec<String>,
    /// Largest offset from the source accepted after sync, in milliseconds.
    pub max_skew_ms: u64,
}

impl Default for TimeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            source: None,
            upstream: Vec::new(),
            max_skew_ms: 500,
        }
    }
}

/// DNS resolver settings; absent means the host's resolver is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// Name servers, in order.
    pub nameservers: Vec<String>,
    /// Search domains.
    pub search: Vec<String>,
}

/// Process limits (`/etc/security/limits.d` and systemd's defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsConfig {
    /// Open files.
    pub nofile: u64,
    /// Processes per user, if set.
    pub nproc: Option<u64>,
}

/// What to do on a host without a default route (k3s refuses to start without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DefaultRouteFix {
    /// Add k3s's documented fix where a host has none: a dummy interface with a blackhole
    /// default route.
    #[default]
    Auto,
    /// Never add one (preflight still reports a missing route).
    Skip,
}

/// When to install the GPU driver from the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GpuPolicy {
    /// On hosts whose facts show an NVIDIA GPU and no driver or an older one.
    #[default]
    Auto,
    /// Never.
    Skip,
}

/// The whole baseline, as validated from an answer file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineConfig {
    /// Set each host's hostname to its inventory name.
    pub hostname: bool,
    /// Keep an `/etc/hosts` block with every cluster member.
    pub hosts_file: bool,
    /// Kernel settings, persisted in a drop-in.
    pub sysctl: BTreeMap<String, String>,
    /// Kernel modules loaded now and at boot.
    pub modules: Vec<String>,
    /// Swap off now and at boot.
    pub swap_off: bool,
    /// Time sync.
    pub time: TimeConfig,
    /// DNS resolver, if managed.
    pub dns: Option<DnsConfig>,
    /// Limits, if managed.
    pub limits: Option<LimitsConfig>,
    /// A host without a default route.
    pub default_route: DefaultRouteFix,
    /// Packages installed from the bundle's offline repository.
    pub packages: Vec<String>,
    /// Install containerd from the bundle (when missing) and run it.
    pub container_runtime: bool,
    /// GPU driver install.
    pub gpu: GpuPolicy,
}

impl Default for BaselineConfig {
    /// What k3s and Kubernetes need on every node.
    fn default() -> Self {
        let sysctl = [
            ("net.ipv4.ip_forward", "1"),
            ("net.bridge.bridge-nf-call-iptables", "1"),
            ("net.bridge.bridge-nf-call-ip6tables", "1"),
            ("fs.inotify.max_user_instances", "8192"),
            ("fs.inotify.max_user_watches", "524288"),
            ("vm.max_map_count", "262144"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self {
            hostname: true,
            hosts_file: true,
            sysctl,
            modules: vec!["overlay".into(), "br_netfilter".into()],
            swap_off: true,
            time: TimeConfig::default(),
            dns: None,
            limits: Some(LimitsConfig {
                nofile: 1_048_576,
                nproc: None,
            }),
            default_route: DefaultRouteFix::Auto,
            packages: Vec::new(),
            container_runtime: true,
            gpu: GpuPolicy::Auto,
        }
    }
}

/// A cluster member, as the hosts file and time sync need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Inventory name (becomes the hostname).
    pub name: String,
    /// The address other members reach it at.
    pub address: String,
    /// Whether it is a server (control plane).
    pub server: bool,
}

/// An offline OS package repository taken out of the bundle onto the jump host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRepo {
    /// The repository directory on the jump host (`Packages` index and `.deb` files).
    pub dir: PathBuf,
    /// The bundle item's digest: the directory name on hosts, so a re-run finds it.
    pub digest: String,
    /// Distribution it fits (`debian-12`).
    pub distro: String,
    /// `deb` or `rpm`.
    pub format: String,
    /// The directory packed as one blob ([`crate::tree::PackedTree`]), measured when `apply`
    /// extracts it: what the relay carries and a host's step may find in its store. `None` in
    /// a plan, or in a step rebuilt from a journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed: Option<ferry_inventory::relay::BlobSpec>,
}

/// A GPU driver package taken out of the bundle onto the jump host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalDriver {
    /// The package file on the jump host.
    pub file: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// Driver version (`535.104.05`).
    pub version: String,
    /// Kernel releases it is built for (empty: any).
    pub kernels: Vec<String>,
}

/// What the bundle provides for the baseline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifacts {
    /// The offline package repository for the hosts' distribution.
    pub os_repo: Option<LocalRepo>,
    /// The GPU driver.
    pub gpu_driver: Option<LocalDriver>,
}

/// Everything known about one host when its resources are chosen.
#[derive(Debug, Clone)]
pub struct HostContext<'a> {
    /// This host, as a member.
    pub member: &'a Member,
    /// Its facts.
    pub facts: &'a Facts,
    /// Every member of the cluster (this host included).
    pub members: &'a [Member],
    /// The host serving time, if time sync is managed.
    pub time_source: Option<&'a Member>,
    /// What the bundle provides.
    pub artifacts: &'a Artifacts,
    /// The cluster this host is being prepared for.
    pub cluster_id: &'a str,
    /// The cluster's name.
    pub cluster_name: &'a str,
}

/// The resources that make `ctx`'s host as `cfg` says, in the order they are applied
/// (reverted in the opposite order). The cluster marker comes last: a host is marked only
/// when its whole baseline is in place.
pub fn resources_for(cfg: &BaselineConfig, ctx: &HostContext<'_>) -> Vec<ResourceSpec> {
    let mut out: Vec<ResourceSpec> = system::resources(cfg, ctx)
        .into_iter()
        .map(ResourceSpec::System)
        .collect();
    out.extend(
        software::resources(cfg, ctx)
            .into_iter()
            .map(ResourceSpec::Software),
    );
    out.push(ResourceSpec::System(SystemResource::marker(ctx)));
    out
}
