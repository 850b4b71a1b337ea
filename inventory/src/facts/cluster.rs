//! Existing cluster installations and their identity, so ferry never initializes a host that
//! belongs to another cluster. Tokens and keys are read only to take their public part (the
//! CA hash); the secret part is never kept.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::source::Source;

/// Where ferry records that a host belongs to a cluster it installed.
pub const FERRY_MARKER: &str = "/var/lib/ferry/cluster.json";

/// The content of [`FERRY_MARKER`], written by the installer when a host joins a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FerryMarker {
    /// A unique id chosen when the cluster was first installed.
    pub cluster_id: String,
    /// The cluster's name, if it has one.
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// This host's role in it (`server`, `agent`).
    #[serde(default)]
    pub role: Option<String>,
}

/// What kind of installation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterKind {
    /// A k3s server (`/var/lib/rancher/k3s/server`).
    K3sServer,
    /// A k3s agent joined to a server.
    K3sAgent,
    /// A kubelet with `/etc/kubernetes/kubelet.conf` (kubeadm and others).
    Kubelet,
    /// ferry's own marker.
    Ferry,
}

/// One installation found on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    /// What it is.
    pub kind: ClusterKind,
    /// The cluster's identity: ferry's cluster id, or the cluster CA's sha256 (k3s's `K10`
    /// token prefix, or the hash of the kubelet's CA certificate data).
    pub cluster_id: Option<String>,
    /// The API server it talks to, if written down.
    pub server_url: Option<String>,
    /// The cluster's name (ferry marker only).
    pub cluster_name: Option<String>,
}

/// The CA hash of a k3s token `K10<sha256>::<user>:<password>`; the rest is never kept.
fn k3s_token_ca(token: &str) -> Option<String> {
    let rest = token.trim().strip_prefix("K10")?;
    let hash = rest.split("::").next()?;
    (hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hash.to_ascii_lowercase())
}

/// `key: value` from a flat YAML-like text (k3s config.yaml, kubeconfig).
fn yaml_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l
            .trim_start()
            .trim_start_matches("- ")
            .strip_prefix(key)?
            .strip_prefix(':')?;
        let v = v.trim().trim_matches('"').trim_matches('\'');
        (!v.is_empty()).then(|| v.to_string())
    })
}

pub(crate) fn installations(src: &dyn Source) -> Vec<Installation> {
    let mut out = Vec::new();
    if let Some(text) = src.read(FERRY_MARKER) {
        let marker: Option<FerryMarker> = serde_json::from_str(&text).ok();
        out.push(Installation {
            kind: ClusterKind::Ferry,
            cluster_id: marker.as_ref().map(|m| m.cluster_id.clone()),
            server_url: None,
            cluster_name: marker.and_then(|m| m.cluster_name),
        });
    }

    let config = src.read("/etc/rancher/k3s/config.yaml").unwrap_or_default();
    let agent_env = src
        .read("/etc/systemd/system/k3s-agent.service.env")
        .map(|t| super::key_values(&t))
        .unwrap_or_default();
    let config_token = yaml_value(&config, "token").and_then(|t| k3s_token_ca(&t));
    if src.exists("/var/lib/rancher/k3s/server") {
        let token = src.read("/var/lib/rancher/k3s/server/token");
        out.push(Installation {
            kind: ClusterKind::K3sServer,
            cluster_id: token.and_then(|t| k3s_token_ca(&t)).or(config_token),
            server_url: yaml_value(&config, "server"),
            cluster_name: None,
        });
    } else if src.exists("/var/lib/rancher/k3s/agent") || agent_env.contains_key("K3S_URL") {
        out.push(Installation {
            kind: ClusterKind::K3sAgent,
            cluster_id: agent_env
                .get("K3S_TOKEN")
                .and_then(|t| k3s_token_ca(t))
                .or(config_token),
            server_url: agent_env
                .get("K3S_URL")
                .cloned()
                .or_else(|| yaml_value(&config, "server")),
            cluster_name: None,
        });
    }

    if let Some(conf) = src.read("/etc/kubernetes/kubelet.conf") {
        let ca = yaml_value(&conf, "certificate-authority-data")
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .or_else(|| {
                yaml_value(&conf, "certificate-authority")
                    .and_then(|p| src.read(&p))
                    .map(String::into_bytes)
            })
            .map(|bytes| hex(&Sha256::digest(&bytes)));
        out.push(Installation {
            kind: ClusterKind::Kubelet,
            cluster_id: ca,
            server_url: yaml_value(&conf, "server"),
            cluster_name: None,
        });
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::k3s_token_ca;

    #[test]
    fn keeps_only_the_ca_hash_of_a_k3s_token() {
        let hash = "a".repeat(64);
        assert_eq!(
            k3s_token_ca(&format!("K10{hash}::server:supersecret\n")),
            Some(hash)
        );
        assert_eq!(k3s_token_ca("plainpassword"), None);
    }
}
