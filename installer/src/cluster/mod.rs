//! The cluster phase: from hosts with the OS baseline to a Ready k3s cluster. Each host gets
//! two more steps after its baseline, journaled and undone like every other: `images` (the
//! bundle's images into containerd) and `k3s-server` / `k3s-agent` (k3s by its air-gap
//! contract, see [`k3s`]). Across hosts, gates order them: the first server, then the other
//! servers one at a time, then the agents in parallel. After the apply, ferry waits on the
//! first server for every node to be Ready and saves a kubeconfig with the API address.
//!
//! The distribution sits behind [`Distribution`] so kubeadm can follow k3s.

pub mod bundle;
pub mod images;
#[cfg(test)]
mod images_bench;
pub mod k3s;
pub mod kubectl;
pub mod registry;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ferry_bootos::{DynResource, Member};
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::Pool;
use ferry_inventory::Target;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::config::cluster::Cidr;
use crate::config::InstallConfig;
use crate::engine::apply::Step;
use bundle::ClusterBundle;
use k3s::{K3sNode, NodeRole};

/// A step of the cluster phase on one host, as plans and journals hold it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cluster-step", rename_all = "kebab-case")]
pub enum ClusterStep {
    /// The bundle served as the site's registry (first server).
    Registry(Box<registry::RegistryServer>),
    /// The site CA and containerd's mirror settings (every node).
    Mirror(registry::Mirror),
    /// The bundle's images into containerd.
    Images(images::Images),
    /// k3s itself.
    K3s(Box<K3sNode>),
}

impl ClusterStep {
    /// Its resource.
    pub fn as_dyn(&self) -> &dyn DynResource {
        match self {
            ClusterStep::Registry(r) => r.as_ref(),
            ClusterStep::Mirror(m) => m,
            ClusterStep::Images(i) => i,
            ClusterStep::K3s(k) => k.as_ref(),
        }
    }

    /// The k3s node, for a k3s step.
    pub fn node(&self) -> Option<&K3sNode> {
        match self {
            ClusterStep::K3s(k) => Some(k),
            _ => None,
        }
    }

    /// Whether this is the images step pulling through the site registry.
    pub fn pulls(&self) -> bool {
        matches!(self, ClusterStep::Images(i) if i.source != registry::ImageSource::Import)
    }
}

impl Step for ClusterStep {
    fn id(&self) -> String {
        self.as_dyn().id()
    }

    fn journal_form(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn resource(&self) -> &dyn DynResource {
        self.as_dyn()
    }
}

/// What the steps of one apply share: the open bundle and the way to the first server.
pub struct ClusterRuntime {
    /// The bundle.
    pub bundle: Arc<ClusterBundle>,
    pool: Arc<Pool>,
    first: Target,
    token: OnceCell<String>,
}

impl std::fmt::Debug for ClusterRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRuntime")
            .field("first", &self.first.name)
            .finish_non_exhaustive()
    }
}

impl ClusterRuntime {
    /// The first server's token (read once, over ferry's session, when the first joiner needs
    /// it: the first server has started by then).
    pub async fn join_token(&self) -> anyhow::Result<String> {
        self.token
            .get_or_try_init(|| async {
                let s = self.pool.session(&self.first).await?;
                let out = s
                    .exec_ok(&format!("cat {}", k3s::SERVER_TOKEN), true)
                    .await?;
                let token = out
                    .lines()
                    .rev()
                    .map(str::trim)
                    .find(|l| l.starts_with("K10"))
                    .map(str::to_string)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{} holds no k3s token in it", k3s::SERVER_TOKEN)
                    })?;
                anyhow::Ok(token)
            })
            .await
            .cloned()
    }

    /// Runs `k3s kubectl ARGS` on the first server.
    pub async fn kubectl(&self, args: &str) -> anyhow::Result<String> {
        kubectl::Kubectl::new(self.pool.clone(), self.first.clone())
            .run(args)
            .await
    }
}

/// A Kubernetes distribution ferry installs: the steps of each node. k3s today; kubeadm's
/// steps (kubelet, kubeadm init/join) would be another implementation.
pub trait Distribution {
    /// The steps for `member` after its baseline, in order.
    fn steps(&self, member: &Member) -> Vec<ClusterStep>;
}

/// The cluster's servers in the order the phase takes them.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Servers in inventory order; the first initializes the cluster.
    pub servers: Vec<String>,
}

impl Topology {
    /// From the members.
    pub fn of(members: &[Member]) -> Topology {
        Topology {
            servers: members
                .iter()
                .filter(|m| m.server)
                .map(|m| m.name.clone())
                .collect(),
        }
    }

    /// The first server.
    pub fn first(&self) -> &str {
        self.servers.first().map(String::as_str).unwrap_or("")
    }
}

/// k3s, from the bundle.
pub struct K3s<'a> {
    cfg: &'a InstallConfig,
    topology: Topology,
    runtime: Arc<ClusterRuntime>,
    registry: Option<Arc<registry::SiteRegistry>>,
}

impl<'a> K3s<'a> {
    /// For `cfg`, reaching the first server through `pool`; the images pulled through
    /// `registry` when given, else imported.
    pub fn new(
        cfg: &'a InstallConfig,
        bundle: Arc<ClusterBundle>,
        pool: Arc<Pool>,
        targets: &[Target],
        registry: Option<registry::SiteRegistry>,
    ) -> anyhow::Result<K3s<'a>> {
        let topology = Topology::of(&cfg.members);
        let first = targets
            .iter()
            .find(|t| t.name == topology.first())
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the first server is not among the hosts reached"))?;
        Ok(K3s {
            cfg,
            topology,
            runtime: Arc::new(ClusterRuntime {
                bundle,
                pool,
                first,
                token: OnceCell::new(),
            }),
            registry: registry.map(Arc::new),
        })
    }

    /// The state the steps share.
    pub fn runtime(&self) -> Arc<ClusterRuntime> {
        self.runtime.clone()
    }

    fn address_of(&self, name: &str) -> String {
        self.cfg
            .members
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.address.clone())
            .unwrap_or_default()
    }
}

impl Distribution for K3s<'_> {
    fn steps(&self, member: &Member) -> Vec<ClusterStep> {
        let role = if member.server {
            NodeRole::Server
        } else {
            NodeRole::Agent
        };
        let first = self.topology.first().to_string();
        let joins = member.name != first;
        let server_url = joins.then(|| format!("https://{}:6443", self.address_of(&first)));
        let config = config_yaml(
            self.cfg,
            member,
            role,
            server_url.as_deref(),
            &self.topology,
        );
        let b = &self.runtime.bundle;
        let mut steps = Vec::new();
        let (source, registries) = match &self.registry {
            Some(r) => {
                if member.name == r.server {
                    steps.push(ClusterStep::Registry(Box::new(r.server_step())));
                }
                steps.push(ClusterStep::Mirror(r.mirror_step(&b.images)));
                let hosts = registry::registry_hosts(&b.images);
                (
                    r.source(),
                    registry::registries_yaml(&hosts, &r.endpoint, &r.server),
                )
            }
            None => (registry::ImageSource::Import, REGISTRIES_YAML.to_string()),
        };
        steps.extend([
            ClusterStep::Images(images::Images {
                images: b.images.clone(),
                source,
                runtime: Some(self.runtime.clone()),
            }),
            ClusterStep::K3s(Box::new(K3sNode {
                role,
                node: member.name.clone(),
                version: b.version.clone(),
                binary: b.binary.clone(),
                airgap: b.airgap.clone(),
                config,
                registries,
                unit: k3s::unit_file(role),
                joins,
                first_server: first,
                runtime: Some(self.runtime.clone()),
            })),
        ]);
        steps
    }
}

/// registries.yaml when the images are imported: no mirror, and every registry's endpoint a
/// closed local port, so no node ever reaches for the internet (images come from the bundle,
/// imported ahead). With the site registry, [`registry::registries_yaml`].
pub const REGISTRIES_YAML: &str =
    "# Written by ferry: an air-gapped site. Images come from the bundle, imported\n\
# into containerd ahead; no registry is ever reached.\n\
mirrors:\n  \"*\":\n    endpoint:\n      - \"http://127.0.0.1:1\"\n";

fn yaml_str(s: &str) -> String {
    // JSON strings are valid YAML flow scalars, with every character escaped as needed.
    serde_json::to_string(s).unwrap_or_default()
}

/// A value of `[cluster.k3s]` as YAML (JSON is YAML).
fn yaml_value(v: &Value) -> String {
    v.to_string()
}

/// config.yaml for one node: every setting ferry manages, then `[cluster.k3s]` as given.
pub fn config_yaml(
    cfg: &InstallConfig,
    member: &Member,
    role: NodeRole,
    server_url: Option<&str>,
    topology: &Topology,
) -> String {
    let s = &cfg.cluster.settings;
    let mut y = String::from(
        "# Written by ferry from the answer file's [cluster]; edit that and run `ferry apply`.\n",
    );
    let mut line = |k: &str, v: String| y.push_str(&format!("{k}: {v}\n"));
    line("node-name", yaml_str(&member.name));
    line("node-ip", yaml_str(&member.address));
    line(
        "container-runtime-endpoint",
        yaml_str("unix:///run/containerd/containerd.sock"),
    );
    line("private-registry", yaml_str(k3s::REGISTRIES));
    if let Some(url) = server_url {
        line("server", yaml_str(url));
        line("token-file", yaml_str(k3s::TOKEN_FILE));
    }
    if role == NodeRole::Server {
        line("cluster-cidr", yaml_str(&s.cluster_cidr.to_string()));
        line("service-cidr", yaml_str(&s.service_cidr.to_string()));
        line("cluster-dns", yaml_str(&s.cluster_dns.to_string()));
        line("write-kubeconfig-mode", yaml_str("0600"));
        if server_url.is_none() && topology.servers.len() > 1 {
            line("cluster-init", "true".into());
        }
        let mut sans = vec![s.api_address.clone()];
        sans.extend(s.tls_san.iter().cloned());
        sans.dedup();
        let list: Vec<String> = sans.iter().map(|x| yaml_str(x)).collect();
        line("tls-san", format!("[{}]", list.join(", ")));
    }
    if let Some(n) = s.nodes.get(&member.name) {
        if !n.labels.is_empty() {
            let l: Vec<String> = n.labels.iter().map(|x| yaml_str(x)).collect();
            line("node-label", format!("[{}]", l.join(", ")));
        }
        if !n.taints.is_empty() {
            let t: Vec<String> = n.taints.iter().map(|x| yaml_str(x)).collect();
            line("node-taint", format!("[{}]", t.join(", ")));
        }
    }
    for (k, v) in &s.k3s {
        line(k, yaml_value(v));
    }
    y
}

/// Host networks that overlap the cluster's, from facts: `(network, what)` per clash. The
/// interfaces k3s makes itself (cni0, flannel, veth) are not the host's.
pub fn network_clashes(cfg: &InstallConfig, facts: &Facts) -> Vec<String> {
    let s = &cfg.cluster.settings;
    let mut out = Vec::new();
    for nic in &facts.nics {
        let n = nic.name.as_str();
        if n == "cni0" || n.starts_with("flannel") || n.starts_with("veth") || n == "lo" {
            continue;
        }
        for a in &nic.addresses {
            let Some((ip, len)) = a.split_once('/') else {
                continue;
            };
            let (Ok(ip), Ok(len)) = (ip.parse::<Ipv4Addr>(), len.parse::<u8>()) else {
                continue;
            };
            if len > 32 {
                continue;
            }
            let net = Cidr {
                addr: Ipv4Addr::from(
                    u32::from(ip) & (u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)),
                ),
                len,
            };
            for (key, c) in [
                ("cluster-cidr", s.cluster_cidr),
                ("service-cidr", s.service_cidr),
            ] {
                if c.overlaps(net) {
                    out.push(format!(
                        "cluster.{key} {c} overlaps {n}'s network {net}; fix: pick a {key} \
                         no host network uses"
                    ));
                }
            }
        }
    }
    out
}

/// Where the kubeconfig of cluster `name` is kept on the jump host (0600 in a 0700
/// directory): `~/.ferry/clusters/NAME/kubeconfig`.
pub fn kubeconfig_path(ferry_home: &std::path::Path, name: &str) -> std::path::PathBuf {
    ferry_home.join("clusters").join(name).join("kubeconfig")
}

/// The kubeconfig k3s wrote on the first server, with the API address put in.
pub fn rewrite_kubeconfig(text: &str, api_address: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("server: https://127.0.0.1:")
                || t.starts_with("server: https://localhost:")
            {
                let indent = &l[..l.len() - t.len()];
                let port = t.rsplit(':').next().unwrap_or("6443");
                format!("{indent}server: https://{api_address}:{port}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The nodes of the plan that are expected Ready, by name, with their roles.
pub fn expected_nodes(cfg: &InstallConfig) -> BTreeMap<String, bool> {
    cfg.members
        .iter()
        .map(|m| (m.name.clone(), m.server))
        .collect()
}

/// What the cluster phase ended with.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// Every node Ready.
    pub ready: bool,
    /// Each node's state.
    pub nodes: Vec<NodeLine>,
    /// Where the kubeconfig was saved (only when Ready).
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The k3s version of the bundle.
    pub version: String,
}

/// A node in the report.
#[derive(Debug, Clone, Serialize)]
pub struct NodeLine {
    /// Its name.
    pub name: String,
    /// `True`, `False`, `Unknown` or `absent`.
    pub ready: String,
    /// Why not Ready.
    pub message: String,
}

/// After a successful apply: waits for every node to be Ready (up to `limit`), then saves
/// the kubeconfig with the API address under `home` (see [`kubeconfig_path`]) and links it
/// from the run directory (the file itself, a credential, stays out of the run directory).
pub async fn finish(
    rt: &ClusterRuntime,
    cfg: &InstallConfig,
    home: &std::path::Path,
    run_dir: &std::path::Path,
    limit: std::time::Duration,
) -> anyhow::Result<ClusterReport> {
    let (ready, nodes) = kubectl::wait_ready(rt, &expected_nodes(cfg), limit).await?;
    let mut report = ClusterReport {
        ready,
        nodes: nodes
            .into_iter()
            .map(|n| NodeLine {
                name: n.name,
                ready: n.ready,
                message: n.message,
            })
            .collect(),
        kubeconfig: None,
        version: rt.bundle.version.clone(),
    };
    if !ready {
        return Ok(report);
    }
    let s = rt.pool.session(&rt.first).await?;
    let text = s.exec_ok("cat /etc/rancher/k3s/k3s.yaml", true).await?;
    let text = text
        .find("apiVersion:")
        .map(|i| &text[i..])
        .unwrap_or(&text);
    let kc = rewrite_kubeconfig(text, &cfg.cluster.settings.api_address);
    let path = kubeconfig_path(home, &cfg.cluster.name);
    if let Some(dir) = path.parent() {
        crate::engine::journal::create_private_dir(dir)?;
    }
    write_private(&path, kc.as_bytes())?;
    let link = run_dir.join("kubeconfig");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&path, &link)
        .map_err(|e| anyhow::anyhow!("linking {}: {e}", link.display()))?;
    report.kubeconfig = Some(path);
    Ok(report)
}

/// Writes `data` to `path` with mode 0600 from the start (a credential is never readable by
/// others, not even for a moment), replacing it atomically.
fn write_private(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("ferry-tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_points_at_the_api_address() {
        let k = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: X\n    server: https://127.0.0.1:6443\n  name: default\n";
        let r = rewrite_kubeconfig(k, "10.0.0.5");
        assert!(r.contains("    server: https://10.0.0.5:6443\n"), "{r}");
        assert!(!r.contains("127.0.0.1"));
    }
}
