//! `[cluster]` beyond its name and id: which Kubernetes distribution ferry installs, the
//! cluster's networks and API address, labels and taints per host or group, further k3s
//! settings passed through (checked against k3s's own flags), and what a failure undoes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ferry_inventory::{Inventory, Role};
use serde::{Deserialize, Serialize};

use super::bail;

/// `[cluster]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawCluster {
    pub name: String,
    pub id: Option<String>,
    pub distribution: Option<Distribution>,
    pub version: Option<String>,
    pub cluster_cidr: Option<String>,
    pub service_cidr: Option<String>,
    pub cluster_dns: Option<String>,
    pub api_address: Option<String>,
    pub tls_san: Option<Vec<String>>,
    pub rollback: Option<RollbackPolicy>,
    pub images: Option<ImagesFrom>,
    /// `[cluster.nodes.NAME]`, NAME a host or a group of the inventory.
    #[serde(default)]
    pub nodes: BTreeMap<String, RawNodes>,
    /// `[cluster.k3s]`: further k3s settings, written into config.yaml as given.
    #[serde(default)]
    pub k3s: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawNodes {
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    taints: Vec<String>,
}

/// The Kubernetes distribution ferry installs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    /// None: the hosts get the OS baseline only.
    #[default]
    None,
    /// k3s, at the version the bundle carries.
    K3s,
}

/// How the bundle's images reach the nodes' containerd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImagesFrom {
    /// Streamed from the jump host into `ctr images import` on every node.
    #[default]
    Import,
    /// Pulled by every node from the bundle served as a registry on the first server (a
    /// cluster of two nodes or more). Not yet verified end to end on the VM test bed: opt in.
    Registry,
}

impl ImagesFrom {
    /// The default.
    pub fn is_import(&self) -> bool {
        *self == ImagesFrom::Import
    }
}

/// What a failed apply undoes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackPolicy {
    /// Every host's changes of the run, when any host fails: the site is as before.
    Run,
    /// The failed host's own changes; the others keep theirs (the default).
    #[default]
    Host,
    /// Nothing: the next `ferry apply` continues from where it stopped.
    Never,
}

/// An IPv4 network `a.b.c.d/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: Ipv4Addr,
    /// The prefix length.
    pub len: u8,
}

impl Cidr {
    /// Parses `10.42.0.0/16`; `Err` says what is wrong.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a network: write it as 10.42.0.0/16"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{s:?}: {a:?} is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("{s:?}: the prefix length must be 0-32"))?;
        let c = Cidr { addr, len };
        if c.network() != u32::from(addr) {
            return Err(format!(
                "{s:?} has host bits set; the network is {}/{len}",
                Ipv4Addr::from(c.network())
            ));
        }
        Ok(c)
    }

    fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        }
    }

    fn network(self) -> u32 {
        u32::from(self.addr) & self.mask()
    }

    /// Whether `ip` is in it.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network()
    }

    /// Whether the two share any address.
    pub fn overlaps(self, other: Cidr) -> bool {
        let len = self.len.min(other.len);
        let m = Cidr {
            addr: self.addr,
            len,
        }
        .mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Labels and taints one node registers with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeSettings {
    /// `key=value`.
    pub labels: Vec<String>,
    /// `key=value:Effect`.
    pub taints: Vec<String>,
}

/// The validated cluster settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterSettings {
    /// The distribution.
    pub distribution: Distribution,
    /// The k3s version asked for (the bundle must carry it); `None`: the bundle's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Pod network.
    pub cluster_cidr: Cidr,
    /// Service network.
    pub service_cidr: Cidr,
    /// The cluster DNS service address (in the service network).
    pub cluster_dns: Ipv4Addr,
    /// Where clients reach the API: a VIP or the first server's address.
    pub api_address: String,
    /// Further names and addresses in the API certificate.
    pub tls_san: Vec<String>,
    /// What a failure undoes.
    pub rollback: RollbackPolicy,
    /// How the images reach the nodes.
    #[serde(skip_serializing_if = "ImagesFrom::is_import")]
    pub images: ImagesFrom,
    /// Per host name (groups resolved).
    pub nodes: BTreeMap<String, NodeSettings>,
    /// Further k3s settings, as given.
    pub k3s: BTreeMap<String, serde_json::Value>,
}

/// Settings ferry writes itself: refused in `[cluster.k3s]` with the key to use instead.
const MANAGED: &[(&str, &str)] = &[
    ("cluster-cidr", "cluster.cluster-cidr"),
    ("service-cidr", "cluster.service-cidr"),
    ("cluster-dns", "cluster.cluster-dns"),
    ("tls-san", "cluster.tls-san"),
    ("node-label", "[cluster.nodes.NAME] labels"),
    ("node-taint", "[cluster.nodes.NAME] taints"),
    (
        "server",
        "the inventory's roles (ferry joins every node to the first server)",
    ),
    (
        "token",
        "nothing: ferry takes the token from the first server",
    ),
    (
        "token-file",
        "nothing: ferry takes the token from the first server",
    ),
    (
        "agent-token",
        "nothing: ferry takes the token from the first server",
    ),
    ("cluster-init", "nothing: ferry sets it for embedded etcd"),
    ("node-name", "the inventory's host names"),
    ("node-ip", "the inventory's addresses"),
    ("container-runtime-endpoint", "baseline.container-runtime"),
    ("private-registry", "nothing: ferry writes registries.yaml"),
    ("data-dir", "nothing: ferry uses k3s's default"),
    ("write-kubeconfig", "nothing: ferry writes the kubeconfig"),
];

/// k3s v1.31's server and agent flags (`k3s server --help`), less those in [`MANAGED`]: what
/// `[cluster.k3s]` may set.
const K3S_KEYS: &[&str] = &[
    "config",
    "debug",
    "v",
    "vmodule",
    "log",
    "alsologtostderr",
    "bind-address",
    "https-listen-port",
    "supervisor-port",
    "apiserver-port",
    "advertise-address",
    "advertise-port",
    "egress-selector-mode",
    "servicelb-namespace",
    "write-kubeconfig-mode",
    "helm-job-image",
    "service-node-port-range",
    "cluster-domain",
    "flannel-backend",
    "flannel-ipv6-masq",
    "flannel-external-ip",
    "flannel-iface",
    "flannel-conf",
    "flannel-cni-conf-file",
    "vpn-auth",
    "vpn-auth-file",
    "default-local-storage-path",
    "disable",
    "disable-scheduler",
    "disable-cloud-controller",
    "disable-kube-proxy",
    "disable-network-policy",
    "disable-helm-controller",
    "disable-apiserver",
    "disable-controller-manager",
    "disable-etcd",
    "disable-agent",
    "embedded-registry",
    "supervisor-metrics",
    "etcd-expose-metrics",
    "etcd-disable-snapshots",
    "etcd-snapshot-name",
    "etcd-snapshot-schedule-cron",
    "etcd-snapshot-retention",
    "etcd-snapshot-dir",
    "etcd-snapshot-compress",
    "etcd-arg",
    "etcd-s3",
    "datastore-endpoint",
    "datastore-cafile",
    "datastore-certfile",
    "datastore-keyfile",
    "kube-apiserver-arg",
    "kube-scheduler-arg",
    "kube-controller-manager-arg",
    "kube-cloud-controller-manager-arg",
    "kubelet-arg",
    "kube-proxy-arg",
    "protect-kernel-defaults",
    "secrets-encryption",
    "enable-pprof",
    "rootless",
    "prefer-bundled-bin",
    "selinux",
    "lb-server-port",
    "node-external-ip",
    "node-internal-dns",
    "node-external-dns",
    "resolv-conf",
    "flannel-ipv6-masq",
    "image-credential-provider-bin-dir",
    "image-credential-provider-config",
    "snapshotter",
    "pause-image",
    "system-default-registry",
    "airgap-extra-registry",
    "with-node-id",
    "kube-apiserver-image",
    "nonroot-devices",
    "etcd-snapshot-s3-endpoint",
    "cluster-reset",
    "cluster-reset-restore-path",
    "agent-token-file",
    "tls-san-security",
    "cluster-domain",
];

/// The closest word of `words` to `w` when it is near (a typo), for "did you mean".
pub(super) fn closest<'a>(w: &str, words: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != *cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    words
        .into_iter()
        .map(|c| (distance(w, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn label_ok(l: &str) -> bool {
    let Some((k, v)) = l.split_once('=') else {
        return false;
    };
    let word = |s: &str, extra: &[char]| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    };
    !k.is_empty() && word(k, &['-', '_', '.', '/']) && word(v, &['-', '_', '.'])
}

fn taint_ok(t: &str) -> bool {
    let Some((kv, effect)) = t.rsplit_once(':') else {
        return false;
    };
    let kv_ok = if kv.contains('=') {
        label_ok(kv)
    } else {
        label_ok(&format!("{kv}="))
    };
    kv_ok && matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    // TOML values are a subset of JSON's (datetimes become their text).
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Checks `[cluster]` against the inventory.
pub(super) fn settings(raw: &RawCluster, inventory: &Inventory) -> anyhow::Result<ClusterSettings> {
    let distribution = raw.distribution.unwrap_or_default();
    let cidr = |key: &str, v: &Option<String>, default: &str| -> anyhow::Result<Cidr> {
        Cidr::parse(v.as_deref().unwrap_or(default).trim()).map_err(|e| bail(key, e))
    };
    let cluster_cidr = cidr("cluster.cluster-cidr", &raw.cluster_cidr, "10.42.0.0/16")?;
    let service_cidr = cidr("cluster.service-cidr", &raw.service_cidr, "10.43.0.0/16")?;
    if cluster_cidr.overlaps(service_cidr) {
        return Err(bail(
            "cluster.service-cidr",
            format!(
                "{service_cidr} overlaps cluster-cidr {cluster_cidr}; pods and services need \
                 separate networks (k3s's defaults are 10.42.0.0/16 and 10.43.0.0/16)"
            ),
        ));
    }
    let cluster_dns = match &raw.cluster_dns {
        Some(d) => d.trim().parse::<Ipv4Addr>().map_err(|_| {
            bail(
                "cluster.cluster-dns",
                format!("{d:?} is not an IPv4 address"),
            )
        })?,
        // k3s's rule: the tenth address of the service network.
        None => Ipv4Addr::from(u32::from(service_cidr.addr) + 10),
    };
    if !service_cidr.contains(cluster_dns) {
        return Err(bail(
            "cluster.cluster-dns",
            format!("{cluster_dns} is not in service-cidr {service_cidr}; pick an address in it"),
        ));
    }

    let members: Vec<_> = inventory
        .hosts()
        .iter()
        .filter(|h| !h.is_jump_only())
        .collect();
    let servers: Vec<_> = members
        .iter()
        .filter(|h| h.has_role(&Role::Server))
        .collect();
    if distribution != Distribution::None {
        if servers.is_empty() {
            return Err(bail(
                "inventory",
                "no host has the role \"server\"; a cluster needs one (or 3 for embedded etcd)",
            ));
        }
        if servers.len() % 2 == 0 {
            return Err(bail(
                "inventory",
                format!(
                    "{} servers ({}): embedded etcd needs an odd number to keep a majority \
                     when one fails; make it {} or {} (roles = [\"agent\"] for the others)",
                    servers.len(),
                    servers
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    servers.len() - 1,
                    servers.len() + 1
                ),
            ));
        }
        for h in &members {
            let addr = h.address.trim();
            if let Ok(IpAddr::V4(ip)) = addr.parse::<IpAddr>() {
                for (key, net) in [
                    ("cluster-cidr", cluster_cidr),
                    ("service-cidr", service_cidr),
                ] {
                    if net.contains(ip) {
                        return Err(bail(
                            &format!("cluster.{key}"),
                            format!(
                                "{net} holds host {} ({ip}); pick a network no host is on",
                                h.name
                            ),
                        ));
                    }
                }
            }
        }
    }
    let api_address = match &raw.api_address {
        Some(a) if a.trim().is_empty() || a.contains(char::is_whitespace) => {
            return Err(bail(
                "cluster.api-address",
                format!("{a:?} is not an address or name"),
            ))
        }
        Some(a) => a.trim().to_string(),
        None => servers
            .first()
            .map(|h| h.address.clone())
            .unwrap_or_default(),
    };
    let tls_san = raw.tls_san.clone().unwrap_or_default();
    if let Some(bad) = tls_san
        .iter()
        .find(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(bail(
            "cluster.tls-san",
            format!("{bad:?} is not an address or name"),
        ));
    }

    let mut nodes: BTreeMap<String, NodeSettings> = BTreeMap::new();
    for (name, n) in &raw.nodes {
        let hosts: Vec<&str> = members
            .iter()
            .filter(|h| &h.name == name || h.groups.iter().any(|g| g == name))
            .map(|h| h.name.as_str())
            .collect();
        if hosts.is_empty() {
            let names = members
                .iter()
                .map(|h| h.name.as_str())
                .chain(inventory.groups().iter().map(|g| g.name.as_str()));
            let hint = closest(name, names)
                .map(|c| format!("did you mean {c}? "))
                .unwrap_or_default();
            return Err(bail(
                &format!("cluster.nodes.{name}"),
                format!("no host or group of the inventory is named {name}; {hint}name a host or a group"),
            ));
        }
        if let Some(bad) = n.labels.iter().find(|l| !label_ok(l)) {
            return Err(bail(
                &format!("cluster.nodes.{name}.labels"),
                format!("{bad:?} is not a label; write key=value (e.g. \"gpu=a100\")"),
            ));
        }
        if let Some(bad) = n.taints.iter().find(|t| !taint_ok(t)) {
            return Err(bail(
                &format!("cluster.nodes.{name}.taints"),
                format!(
                    "{bad:?} is not a taint; write key=value:Effect with Effect NoSchedule, \
                     PreferNoSchedule or NoExecute (e.g. \"gpu=true:NoSchedule\")"
                ),
            ));
        }
        for h in hosts {
            let e = nodes.entry(h.to_string()).or_default();
            e.labels.extend(n.labels.iter().cloned());
            e.taints.extend(n.taints.iter().cloned());
        }
    }

    let mut k3s = BTreeMap::new();
    for (k, v) in &raw.k3s {
        if let Some((_, instead)) = MANAGED.iter().find(|(m, _)| m == k) {
            return Err(bail(
                &format!("cluster.k3s.{k}"),
                format!("ferry sets {k} itself; use {instead}"),
            ));
        }
        if !K3S_KEYS.contains(&k.as_str()) {
            let hint = closest(k, K3S_KEYS.iter().copied())
                .map(|c| format!("did you mean {c}? "))
                .unwrap_or_default();
            return Err(bail(
                &format!("cluster.k3s.{k}"),
                format!("{k} is not a k3s setting; {hint}see `k3s server --help`"),
            ));
        }
        k3s.insert(k.clone(), toml_to_json(v));
    }

    Ok(ClusterSettings {
        distribution,
        version: raw.version.as_ref().map(|v| v.trim().to_string()),
        cluster_cidr,
        service_cidr,
        cluster_dns,
        api_address,
        tls_san,
        rollback: raw.rollback.unwrap_or_default(),
        images: raw.images.unwrap_or_default(),
        nodes,
        k3s,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_contain_and_overlap() {
        let a = Cidr::parse("10.42.0.0/16").unwrap();
        let b = Cidr::parse("10.43.0.0/16").unwrap();
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(!a.overlaps(b) && a.overlaps(c) && c.overlaps(b));
        assert!(a.contains("10.42.7.1".parse().unwrap()));
        assert!(Cidr::parse("10.42.0.1/16")
            .unwrap_err()
            .contains("host bits"));
        assert!(Cidr::parse("10.42.0.0").is_err());
        assert!(Cidr::parse("10.42.0.0/33").is_err());
    }

    #[test]
    fn labels_and_taints_are_checked() {
        assert!(label_ok("gpu=a100") && label_ok("topology.kubernetes.io/zone=a"));
        assert!(!label_ok("gpu") && !label_ok("a b=c"));
        assert!(taint_ok("gpu=true:NoSchedule") && taint_ok("dedicated:NoExecute"));
        assert!(!taint_ok("gpu=true") && !taint_ok("gpu=true:Never"));
        assert_eq!(
            closest("kubelet-args", K3S_KEYS.iter().copied()),
            Some("kubelet-arg")
        );
    }
}
