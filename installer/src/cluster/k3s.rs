//! One k3s node, by k3s's documented air-gap contract: the binary at /usr/local/bin/k3s, the
//! air-gap image archive in /var/lib/rancher/k3s/agent/images/, every setting in
//! /etc/rancher/k3s/config.yaml (never flags: a re-run forgets flags it is not given),
//! registries.yaml, the system containerd as the runtime, and the systemd unit install.sh
//! writes (`k3s` for servers, `k3s-agent` for agents). Joining nodes get the first server's
//! token in a file of its own (0600; never in config.yaml, a command line or the journal).
//!
//! Revert: on a host that had no k3s before the run, what k3s's killall and uninstall scripts
//! remove (the service, its processes and containers, files, data directories, interfaces,
//! mounts, iptables rules), and the images k3s imported; on a host that had it, the files as
//! they were and the service restarted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_bootos::host::sha256_hex;
use ferry_bootos::{Change, FileState, Host, Resource, ResourceError, Upload};
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::shell_quote;
use serde::{Deserialize, Serialize};

use super::bundle::{airgap_dest, BlobRef};
use super::ClusterRuntime;
use crate::engine::guard::{K3S_AGENT_STEP, K3S_SERVER_STEP};

/// Where k3s's binary goes.
pub const BINARY: &str = "/usr/local/bin/k3s";
/// k3s's settings.
pub const CONFIG: &str = "/etc/rancher/k3s/config.yaml";
/// Where k3s reads its registry mirrors.
pub const REGISTRIES: &str = "/etc/rancher/k3s/registries.yaml";
/// The join token of a node that joins (server or agent).
pub const TOKEN_FILE: &str = "/etc/rancher/k3s/ferry-join-token";
/// The first server's token, which the others join with.
pub const SERVER_TOKEN: &str = "/var/lib/rancher/k3s/server/token";
/// k3s's data.
pub const DATA_DIR: &str = "/var/lib/rancher/k3s";

/// How long a node may take to start and register before the step fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(300);

/// A server or an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs the control plane (unit `k3s`).
    Server,
    /// Runs workloads (unit `k3s-agent`).
    Agent,
}

impl NodeRole {
    /// The systemd unit.
    pub fn unit(self) -> &'static str {
        match self {
            NodeRole::Server => "k3s",
            NodeRole::Agent => "k3s-agent",
        }
    }

    /// The step id in plans and journals (what the guard looks for).
    pub fn step_id(self) -> &'static str {
        match self {
            NodeRole::Server => K3S_SERVER_STEP,
            NodeRole::Agent => K3S_AGENT_STEP,
        }
    }

    fn unit_path(self) -> String {
        format!("/etc/systemd/system/{}.service", self.unit())
    }
}

/// One node's k3s: what it is written from, as the journal records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct K3sNode {
    /// Server or agent.
    pub role: NodeRole,
    /// The node (the inventory name).
    pub node: String,
    /// The k3s version.
    pub version: String,
    /// The binary in the bundle.
    pub binary: BlobRef,
    /// The air-gap archive in the bundle.
    pub airgap: BlobRef,
    /// config.yaml.
    pub config: String,
    /// registries.yaml.
    pub registries: String,
    /// The unit file.
    pub unit: String,
    /// Whether it joins a first server (needs the token).
    pub joins: bool,
    /// The first server, for messages.
    pub first_server: String,
    /// Reaches the first server and the bundle; absent when rebuilt from a journal.
    #[serde(skip)]
    pub runtime: Option<Arc<ClusterRuntime>>,
}

/// What a node has now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeState {
    /// sha256 of /usr/local/bin/k3s.
    pub binary: Option<String>,
    /// sha256 of the air-gap archive where it goes.
    pub airgap: Option<String>,
    /// config.yaml.
    pub config: FileState,
    /// registries.yaml.
    pub registries: FileState,
    /// The unit file.
    pub unit: FileState,
    /// sha256 of the join token file (never its content).
    pub token: Option<String>,
    /// `systemctl is-active`.
    pub active: bool,
    /// Whether k3s's data directory existed: when not, a revert removes k3s entirely.
    pub data_existed: bool,
    /// The images containerd's k8s.io namespace held (a revert on a host that had no k3s
    /// removes those k3s imported since).
    pub images: Vec<String>,
}

/// The unit install.sh writes for `k3s server` / `k3s agent`, with no flags: everything is in
/// config.yaml.
pub fn unit_file(role: NodeRole) -> String {
    let (description, cmd) = match role {
        NodeRole::Server => ("Lightweight Kubernetes", "server"),
        NodeRole::Agent => ("Lightweight Kubernetes (agent)", "agent"),
    };
    format!(
        "# Written by ferry, as k3s's install.sh writes it; settings are in {CONFIG}.\n\
         [Unit]\n\
         Description={description}\n\
         Documentation=https://k3s.io\n\
         Wants=network-online.target containerd.service\n\
         After=network-online.target containerd.service\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         EnvironmentFile=-/etc/default/%N\n\
         EnvironmentFile=-/etc/sysconfig/%N\n\
         KillMode=process\n\
         Delegate=yes\n\
         User=root\n\
         LimitNOFILE=1048576\n\
         LimitNPROC=infinity\n\
         LimitCORE=infinity\n\
         TasksMax=infinity\n\
         TimeoutStartSec=0\n\
         Restart=always\n\
         RestartSec=5s\n\
         ExecStartPre=-/sbin/modprobe br_netfilter\n\
         ExecStartPre=-/sbin/modprobe overlay\n\
         ExecStart={BINARY} {cmd}\n"
    )
}

fn q(s: &str) -> String {
    shell_quote(s)
}

/// The last lines of the unit's log, and what they mean for the operator.
fn diagnose(role: NodeRole, node: &str, first: &str, log: &str) -> String {
    let tail: Vec<&str> = log.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let cause = if log.contains("401 Unauthorized") || log.contains("token CA hash does not match")
    {
        format!(
            "{first} refused this node's join token; fix: remove the hand-edited token from \
             {CONFIG} and {TOKEN_FILE}, then run `ferry apply` again (ferry writes the first \
             server's token)"
        )
    } else if log.contains("Node password rejected") {
        format!(
            "a node named {node} is already registered with another password (a reused host \
             name); fix: `k3s kubectl delete node {node}` on {first}, then run `ferry apply` again"
        )
    } else if log.contains("bootstrap data already found and encrypted with different token") {
        format!(
            "{node} holds the data of a cluster with another token; fix: `ferry reset --host \
             {node}` if it is this cluster's, or take it out of the inventory"
        )
    } else if log.contains("unable to select an IP from default routes") {
        "the host has no default route; fix: set baseline.default-route (see docs/host-init.md)"
            .to_string()
    } else {
        format!("see `journalctl -u {}` on {node}", role.unit())
    };
    if tail.is_empty() {
        cause
    } else {
        format!("{cause} (last log: {})", tail.join(" / "))
    }
}

impl K3sNode {
    fn unit_path(&self) -> String {
        self.role.unit_path()
    }

    async fn token(&self) -> Result<String, ResourceError> {
        let rt = self.runtime.as_ref().ok_or_else(|| {
            ResourceError::Refused(
                "no connection to the first server to take the join token from".into(),
            )
        })?;
        rt.join_token().await.map_err(|e| {
            ResourceError::Refused(format!(
                "taking the join token from {}: {e}",
                self.first_server
            ))
        })
    }

    /// Starts (or restarts) the unit and waits until systemd says it is active: k3s notifies
    /// systemd once a server serves and has registered its node, or an agent has registered.
    async fn start(&self, host: &dyn Host, restart: bool) -> Result<(), ResourceError> {
        let unit = self.role.unit();
        let verb = if restart { "restart" } else { "start" };
        host.run_ok(&format!(
            "systemctl daemon-reload && systemctl enable {unit} >/dev/null 2>&1 && \
             systemctl {verb} --no-block {unit}"
        ))
        .await?;
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let state = host
                .run(&format!("systemctl is-active {unit}"))
                .await?
                .stdout
                .trim()
                .to_string();
            if state == "active" {
                return Ok(());
            }
            let failed = state == "failed";
            if failed || start.elapsed() > START_TIMEOUT {
                let log = host
                    .run(&format!(
                        "journalctl -u {unit} -n 40 --no-pager -o cat 2>/dev/null | \
                         grep -v '^$' | tail -n 40"
                    ))
                    .await?
                    .stdout;
                return Err(ResourceError::Check(format!(
                    "{unit} did not become ready on {} within {}s ({state}): {}",
                    self.node,
                    START_TIMEOUT.as_secs(),
                    diagnose(self.role, &self.node, &self.first_server, &log)
                )));
            }
        }
    }
}

/// Stops k3s and removes what its killall and uninstall scripts remove. Run only on a host
/// that had no k3s before the run that is undone.
fn teardown_script(role: NodeRole) -> String {
    let unit = role.unit();
    format!(
        "systemctl stop {unit} 2>/dev/null; systemctl disable {unit} >/dev/null 2>&1; \
         pkill -TERM -x k3s 2>/dev/null; pkill -TERM -f '^{BINARY} ' 2>/dev/null; sleep 1; \
         pkill -KILL -f '^{BINARY} ' 2>/dev/null; \
         if command -v ctr >/dev/null 2>&1; then \
           for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks kill -s KILL \"$t\" >/dev/null 2>&1; done; sleep 1; \
           for c in $(ctr -n k8s.io containers ls -q 2>/dev/null); do ctr -n k8s.io tasks rm -f \"$c\" >/dev/null 2>&1; ctr -n k8s.io containers rm \"$c\" >/dev/null 2>&1; done; \
         fi; \
         for m in $(awk '$2 ~ \"^(/run/k3s|/var/lib/rancher/k3s|/var/lib/kubelet|/run/netns/cni-|/run/netns/k3s-)\" {{print $2}}' /proc/self/mounts | sort -r); do umount -l \"$m\" 2>/dev/null; done; \
         for n in $(ls /run/netns 2>/dev/null | grep -E '^(cni-|k3s-standin-)'); do ip netns delete \"$n\" 2>/dev/null; done; \
         for i in cni0 flannel.1 flannel-v6.1 flannel-wg flannel-wg-v6 kube-ipvs0; do ip link delete \"$i\" 2>/dev/null; done; \
         for i in $(ip -o link show 2>/dev/null | awk -F': ' '{{print $2}}' | cut -d@ -f1 | grep -E '^veth'); do ip link delete \"$i\" 2>/dev/null; done; \
         if command -v iptables-save >/dev/null 2>&1; then \
           iptables-save | grep -v -E 'KUBE-|CNI-|flannel' | iptables-restore 2>/dev/null; \
         fi; \
         rm -rf /etc/rancher/k3s/k3s.yaml /etc/rancher/node {DATA_DIR} /var/lib/kubelet /run/k3s /run/flannel /var/log/pods /var/log/containers; \
         rm -f /etc/systemd/system/{unit}.service.env; \
         systemctl daemon-reload; systemctl reset-failed {unit} 2>/dev/null; true"
    )
}

/// The images in containerd's k8s.io namespace.
pub async fn k8s_images(host: &dyn Host) -> Result<Vec<String>, ResourceError> {
    let out = host
        .run("command -v ctr >/dev/null 2>&1 || exit 0; ctr -n k8s.io images ls -q 2>/dev/null")
        .await?;
    let mut v: Vec<String> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    Ok(v)
}

fn shown(state: &FileState) -> &'static str {
    if state.exists() {
        "differs"
    } else {
        "absent"
    }
}

#[async_trait]
impl Resource for K3sNode {
    type State = NodeState;

    fn id(&self) -> String {
        self.role.step_id().to_string()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        if facts.os.id.is_empty() || facts.kernel.is_empty() {
            return Ok(());
        }
        if !facts.arch.is_empty() && !matches!(facts.arch.as_str(), "x86_64" | "amd64") {
            return Err(format!(
                "k3s in this bundle is for amd64; {} is {}",
                self.node, facts.arch
            ));
        }
        Ok(())
    }

    async fn observe(&self, host: &dyn Host) -> Result<NodeState, ResourceError> {
        let active = host
            .run(&format!("systemctl is-active {}", self.role.unit()))
            .await?
            .stdout
            .trim()
            == "active";
        let data_existed = host.run(&format!("[ -d {DATA_DIR} ]")).await?.success();
        Ok(NodeState {
            binary: host.file_sha256(BINARY).await?,
            airgap: host.file_sha256(&airgap_dest(&self.airgap)).await?,
            config: host.read_file(CONFIG).await?,
            registries: host.read_file(REGISTRIES).await?,
            unit: host.read_file(&self.unit_path()).await?,
            token: if self.joins {
                host.file_sha256(TOKEN_FILE).await?
            } else {
                None
            },
            active,
            data_existed,
            images: k8s_images(host).await?,
        })
    }

    fn diff(&self, s: &NodeState) -> Vec<Change> {
        let mut out = Vec::new();
        if s.binary.as_deref() != Some(self.binary.sha256.as_str()) {
            out.push(Change::new(
                BINARY,
                if s.binary.is_some() {
                    "another build"
                } else {
                    "absent"
                },
                format!("k3s {}", self.version),
            ));
        }
        if s.airgap.as_deref() != Some(self.airgap.sha256.as_str()) {
            out.push(Change::new(
                airgap_dest(&self.airgap),
                if s.airgap.is_some() {
                    "another archive"
                } else {
                    "absent"
                },
                format!("air-gap images ({} MiB)", self.airgap.size >> 20),
            ));
        }
        for (path, state, want) in [
            (CONFIG.to_string(), &s.config, &self.config),
            (REGISTRIES.to_string(), &s.registries, &self.registries),
            (self.unit_path(), &s.unit, &self.unit),
        ] {
            if state.bytes() != Some(want.as_bytes()) {
                out.push(Change::new(path, shown(state), "ferry's"));
            }
        }
        if self.joins && s.token.is_none() {
            out.push(Change::new(
                TOKEN_FILE,
                "absent",
                format!("the token of {}", self.first_server),
            ));
        }
        if !s.active {
            out.push(Change::new(
                format!("service {}", self.role.unit()),
                "inactive",
                "active",
            ));
        }
        out
    }

    async fn apply(&self, host: &dyn Host, s: &NodeState) -> Result<(), ResourceError> {
        let rt = self.runtime.as_ref().ok_or_else(|| {
            ResourceError::Refused("the bundle is not open (a step rebuilt from a journal)".into())
        })?;
        let mut changed = false;
        if s.binary.as_deref() != Some(self.binary.sha256.as_str()) {
            let src = rt.bundle.source(&self.binary);
            host.upload_from(&src, BINARY, 0o755).await?;
            changed = true;
        }
        if s.airgap.as_deref() != Some(self.airgap.sha256.as_str()) {
            let src = rt.bundle.source(&self.airgap);
            host.upload_from(&src, &airgap_dest(&self.airgap), 0o644)
                .await?;
            changed = true;
        }
        if self.joins {
            let token = self.token().await?;
            let want = format!("{token}\n");
            if s.token.as_deref() != Some(sha256_hex(want.as_bytes()).as_str()) {
                host.write_file(TOKEN_FILE, want.as_bytes(), 0o600).await?;
                changed = true;
            }
        }
        for (path, state, want, mode) in [
            (CONFIG.to_string(), &s.config, &self.config, 0o600),
            (
                REGISTRIES.to_string(),
                &s.registries,
                &self.registries,
                0o644,
            ),
            (self.unit_path(), &s.unit, &self.unit, 0o644),
        ] {
            if state.bytes() != Some(want.as_bytes()) {
                host.write_file(&path, want.as_bytes(), mode).await?;
                changed = true;
            }
        }
        // A running node whose settings changed restarts to take them; otherwise it starts.
        self.start(host, s.active && changed).await
    }

    /// The binary and the air-gap archive, from the bundle (every node gets the same).
    fn uploads(&self) -> Vec<Upload> {
        let Some(rt) = &self.runtime else {
            return Vec::new();
        };
        [
            (&self.binary, BINARY.to_string()),
            (&self.airgap, airgap_dest(&self.airgap)),
        ]
        .into_iter()
        .map(|(blob, dest)| Upload {
            change: dest,
            source: Arc::new(rt.bundle.source(blob)),
        })
        .collect()
    }

    async fn revert(&self, host: &dyn Host, before: &NodeState) -> Result<(), ResourceError> {
        if !before.data_existed && !before.active {
            host.run(&teardown_script(self.role)).await?;
            // Images k3s imported (its air-gap archive) go with it; those there before stay.
            let now = k8s_images(host).await?;
            let added: Vec<&String> = now.iter().filter(|i| !before.images.contains(i)).collect();
            if !added.is_empty() {
                let list: Vec<String> = added.iter().map(|i| q(i)).collect();
                host.run(&format!(
                    "ctr -n k8s.io images rm {} >/dev/null 2>&1; true",
                    list.join(" ")
                ))
                .await?;
            }
        } else if before.active {
            host.run(&format!("systemctl stop {}", self.role.unit()))
                .await?;
        }
        for (path, state) in [
            (CONFIG.to_string(), &before.config),
            (REGISTRIES.to_string(), &before.registries),
            (self.unit_path(), &before.unit),
        ] {
            host.restore_file(&path, state).await?;
        }
        if self.joins && before.token.is_none() {
            host.restore_file(TOKEN_FILE, &FileState::absent()).await?;
        }
        // The binary and archive: removed only while they hold what the run sent.
        if before.binary.is_none() {
            host.restore_file(BINARY, &FileState::absent()).await?;
        }
        if before.airgap.is_none() {
            host.restore_file(&airgap_dest(&self.airgap), &FileState::absent())
                .await?;
        }
        if !before.data_existed {
            host.run(&format!(
                "rmdir /var/lib/rancher/k3s/agent/images /var/lib/rancher/k3s/agent \
                 {DATA_DIR} /var/lib/rancher /etc/rancher/k3s /etc/rancher 2>/dev/null; true"
            ))
            .await?;
        }
        host.run("systemctl daemon-reload").await?;
        if before.active {
            host.run_ok(&format!("systemctl restart {}", self.role.unit()))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_and_a_reused_name_say_what_to_do() {
        let log = "level=info msg=\"Waiting to retrieve agent configuration; server is not ready: \
                   https://10.0.0.1:6443/v1-k3s/client-kubelet.crt: 401 Unauthorized\"";
        let d = diagnose(NodeRole::Agent, "vm2", "vm0", log);
        assert!(
            d.starts_with("vm0 refused this node's join token; fix:"),
            "{d}"
        );
        let d = diagnose(
            NodeRole::Agent,
            "vm2",
            "vm0",
            "Node password rejected, duplicate hostname",
        );
        assert!(d.contains("k3s kubectl delete node vm2` on vm0"), "{d}");
    }

    #[test]
    fn units_start_k3s_without_flags() {
        let u = unit_file(NodeRole::Agent);
        assert!(u.contains("ExecStart=/usr/local/bin/k3s agent\n"), "{u}");
        assert!(u.contains("Type=notify"));
    }
}
