//! `k3s agent` (and the agent inside every server): registers the node over the network the
//! way k3s does — fetch `/cacerts` and check it against the token's hash, get a kubelet client
//! certificate from `/v1-k3s/client-kubelet.crt` with the token and the node password of
//! `/etc/rancher/node/password` — imports the air-gap images into containerd, creates the Node
//! object and posts its status every `node-status-update-frequency` (default 10s).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::NODE_PASSWORD_REJECTED;
use crate::client::Client;
use crate::config::Settings;
use crate::images::Runtime;
use crate::pki;
use crate::server::status_text;
use crate::{host, log, VERSION};

/// Where k3s keeps the node password.
pub const NODE_PASSWORD_FILE: &str = "/etc/rancher/node/password";

/// What an agent needs.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// `https://server:6443`.
    pub server_url: String,
    /// The join token.
    pub token: pki::Token,
    /// The node's name.
    pub node_name: String,
    /// Addresses to advertise (InternalIP).
    pub node_ips: Vec<Ipv4Addr>,
    /// ExternalIP addresses.
    pub external_ips: Vec<String>,
    /// Labels set at registration.
    pub labels: Vec<(String, String)>,
    /// Taints set at registration.
    pub taints: Vec<Value>,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// containerd.
    pub runtime: Option<Runtime>,
    /// How often the node posts its status.
    pub status_frequency: Duration,
    /// registries.yaml.
    pub private_registry: PathBuf,
}

/// The addresses a node advertises: `--node-ip`, else the default route's interface (k3s fails
/// without a default route in that case).
pub fn node_ips(settings: &Settings) -> Result<Vec<Ipv4Addr>, String> {
    let given = settings.list("node-ip");
    if given.is_empty() {
        return Ok(vec![host::default_route_ip()?]);
    }
    given
        .iter()
        .map(|s| {
            s.parse::<Ipv4Addr>().map_err(|_| {
                format!("invalid node-ip {s:?}: the k3s stand-in takes IPv4 addresses")
            })
        })
        .collect()
}

/// Parses `key=value:Effect` (or `key:Effect`) as the kubelet's `--register-with-taints`.
pub fn parse_taint(spec: &str) -> Result<Value, String> {
    let (kv, effect) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid taint spec: {spec}: missing effect (NoSchedule, PreferNoSchedule or NoExecute)"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(format!(
            "invalid taint effect: {effect}, unsupported taint effect"
        ));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(format!("invalid taint spec: {spec}"));
    }
    let mut t = json!({"key": key, "effect": effect});
    if let Some(v) = value {
        t["value"] = json!(v);
    }
    Ok(t)
}

impl AgentOptions {
    /// Options from the settings, for the server at `server_url` with `token`, plus
    /// `extra_labels` (`k=v`, the roles a server adds).
    pub fn from_settings(
        settings: &Settings,
        server_url: String,
        token: String,
        extra_labels: Vec<String>,
    ) -> Result<AgentOptions, String> {
        if !server_url.starts_with("https://") {
            return Err(format!(
                "only https:// URLs are supported, invalid scheme: {server_url}"
            ));
        }
        let token = pki::parse_token(&token)?;
        let node_name = settings
            .str("node-name")
            .map(str::to_lowercase)
            .unwrap_or_else(host::hostname);
        let mut labels = Vec::new();
        for l in extra_labels
            .iter()
            .chain(settings.list("node-label").iter())
        {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| format!("invalid node-label {l:?}: want key=value"))?;
            labels.push((k.to_string(), v.to_string()));
        }
        let taints = settings
            .list("node-taint")
            .iter()
            .map(|t| parse_taint(t))
            .collect::<Result<Vec<_>, _>>()?;
        let frequency = settings
            .component_arg("kubelet-arg", "node-status-update-frequency")
            .and_then(|v| crate::config::parse_go_duration(&v))
            .unwrap_or(Duration::from_secs(10));
        let runtime = settings
            .str("container-runtime-endpoint")
            .map(Runtime::from_endpoint);
        Ok(AgentOptions {
            server_url,
            token,
            node_name,
            node_ips: node_ips(settings)?,
            external_ips: settings.list("node-external-ip"),
            labels,
            taints,
            data_dir: settings.data_dir(),
            runtime,
            status_frequency: frequency,
            private_registry: PathBuf::from(
                settings
                    .str("private-registry")
                    .unwrap_or("/etc/rancher/k3s/registries.yaml"),
            ),
        })
    }
}

/// Runs `k3s agent` until SIGTERM.
pub async fn run_agent(settings: Settings) -> Result<(), String> {
    let url = settings
        .str("server")
        .ok_or("--server is required (K3S_URL): the https:// address of a k3s server")?
        .to_string();
    let token = crate::server::read_token(&settings, "token", "token-file")?
        .ok_or("--token is required (K3S_TOKEN or K3S_TOKEN_FILE)")?;
    let opts = AgentOptions::from_settings(&settings, url, token, Vec::new())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(run(opts, Some(tx)));
    tokio::spawn(async move {
        if rx.await.is_ok() {
            log::notify_ready();
        }
    });
    crate::server::wait_for_signal().await;
    Ok(())
}

/// The node password, made at first start (k3s: 32 hex characters, mode 0600).
fn node_password() -> Result<String, String> {
    let path = std::path::Path::new(NODE_PASSWORD_FILE);
    match std::fs::read_to_string(path) {
        Ok(p) if !p.trim().is_empty() => Ok(p.trim().to_string()),
        _ => {
            let p = pki::random_hex(16);
            pki::write_private(path, format!("{p}\n").as_bytes()).map_err(|e| e.to_string())?;
            Ok(p)
        }
    }
}

/// The server's CA, fetched without verification and then checked against the token's hash
/// (what k3s's `ParseAndValidateToken` does).
pub async fn fetch_ca(url: &str, token: &pki::Token) -> Result<String, String> {
    let insecure = Client::new(url, None, None, None).map_err(|e| e.to_string())?;
    let (code, body) = insecure
        .request("GET", "/cacerts", None, Vec::new(), &[])
        .await
        .map_err(|e| format!("failed to get CA certs: Get \"{url}/cacerts\": {e}"))?;
    if code != 200 {
        return Err(format!(
            "failed to get CA certs: {url}/cacerts: {}",
            status_text(code)
        ));
    }
    if let Some(hash) = &token.ca_hash {
        let got = pki::ca_hash(&body);
        if *hash != got {
            return Err(format!(
                "token CA hash does not match the Cluster CA certificate hash: {hash} != {got}"
            ));
        }
    }
    String::from_utf8(body).map_err(|_| "the server's CA is not text".to_string())
}

enum RegisterError {
    PasswordRejected,
    Other(String),
}

struct Registration {
    ca: String,
    cert: String,
    key: String,
}

async fn register(opts: &AgentOptions, password: &str) -> Result<Registration, RegisterError> {
    let url = &opts.server_url;
    let ca = fetch_ca(url, &opts.token)
        .await
        .map_err(RegisterError::Other)?;
    let client = Client::new(url, Some(&ca), None, Some(("node", &opts.token.password)))
        .map_err(|e| RegisterError::Other(e.to_string()))?;
    let (code, body) = client
        .request(
            "GET",
            "/v1-k3s/client-kubelet.crt",
            None,
            Vec::new(),
            &[
                ("k3s-Node-Name", &opts.node_name),
                ("k3s-Node-Password", password),
            ],
        )
        .await
        .map_err(|e| RegisterError::Other(e.to_string()))?;
    match code {
        200 => {}
        403 => return Err(RegisterError::PasswordRejected),
        _ => {
            return Err(RegisterError::Other(format!(
                "{url}/v1-k3s/client-kubelet.crt: {}",
                status_text(code)
            )))
        }
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let key_start = text
        .find("-----BEGIN PRIVATE KEY-----")
        .ok_or_else(|| RegisterError::Other("no key in the kubelet certificate answer".into()))?;
    Ok(Registration {
        ca,
        cert: text[..key_start].to_string(),
        key: text[key_start..].to_string(),
    })
}

/// Registers the node and keeps posting its status; `ready` fires once the node is registered.
pub async fn run(opts: AgentOptions, ready: Option<tokio::sync::oneshot::Sender<()>>) {
    log::info(format!(
        "Starting k3s agent {VERSION} (stand-in) for node {}",
        opts.node_name
    ));
    let password = loop {
        match node_password() {
            Ok(p) => break p,
            Err(e) => log::error(format!(
                "unable to make the node password {NODE_PASSWORD_FILE}: {e}"
            )),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    let reg = loop {
        match register(&opts, &password).await {
            Ok(r) => break r,
            Err(RegisterError::PasswordRejected) => log::error(NODE_PASSWORD_REJECTED),
            Err(RegisterError::Other(e)) => log::info(format!(
                "Waiting to retrieve agent configuration; server is not ready: {e}"
            )),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let agent_dir = opts.data_dir.join("agent");
    let _ = std::fs::create_dir_all(&agent_dir);
    let _ = std::fs::write(agent_dir.join("server-ca.crt"), &reg.ca);
    let _ = std::fs::write(agent_dir.join("client-kubelet.crt"), &reg.cert);
    let _ = pki::write_private(&agent_dir.join("client-kubelet.key"), reg.key.as_bytes());
    log::info(format!(
        "Node {} registered with {} with its node password",
        opts.node_name, opts.server_url
    ));

    crate::images::read_registries(&opts.private_registry);
    let runtime_version = match &opts.runtime {
        Some(rt) => {
            let v = rt.wait_ready().await;
            log::info(format!("containerd {v} at {} is ready", rt.socket));
            rt.import_dir(&agent_dir.join("images")).await;
            format!("containerd://{v}")
        }
        None => {
            log::error(
                "the k3s stand-in has no embedded containerd: set container-runtime-endpoint \
                 to the system containerd; no images imported and no pods will run",
            );
            "containerd://none".into()
        }
    };

    let client = match Client::new(
        &opts.server_url,
        Some(&reg.ca),
        Some((&reg.cert, &reg.key)),
        None,
    ) {
        Ok(c) => c,
        Err(e) => {
            log::error(format!("kubelet client: {e}"));
            return;
        }
    };
    let path = format!("/api/v1/nodes/{}", opts.node_name);
    loop {
        match create_node(&client, &opts, &runtime_version).await {
            Ok(()) => break,
            Err(e) => log::error(format!("Unable to register node with API server: {e}")),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let started = crate::store::now();
    let mut ready = ready;
    crate::kubelet::start(&opts, client.clone());
    loop {
        let status = node_status(&opts, &runtime_version, &started);
        let body = serde_json::to_vec(&json!({"status": status})).unwrap_or_default();
        match client
            .request(
                "PATCH",
                &format!("{path}/status"),
                Some("application/merge-patch+json"),
                body,
                &[],
            )
            .await
        {
            Ok((200, _)) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
            Ok((code, body)) => log::error(format!(
                "Error updating node status, will retry: {}: {}",
                status_text(code),
                String::from_utf8_lossy(&body)
            )),
            Err(e) => log::error(format!("Error updating node status, will retry: {e}")),
        }
        tokio::time::sleep(opts.status_frequency).await;
    }
}

async fn create_node(
    client: &Client,
    opts: &AgentOptions,
    runtime_version: &str,
) -> Result<(), String> {
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("beta.kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/instance-type", "k3s"),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/os", "linux"),
        ("node.kubernetes.io/instance-type", "k3s"),
    ] {
        labels.insert(k.into(), json!(v));
    }
    labels.insert("kubernetes.io/hostname".into(), json!(opts.node_name));
    for (k, v) in &opts.labels {
        labels.insert(k.clone(), json!(v));
    }
    let ip = opts
        .node_ips
        .first()
        .map(|i| i.to_string())
        .unwrap_or_default();
    let mut node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": opts.node_name,
            "labels": labels,
            "annotations": {
                "k3s.io/hostname": host::hostname(),
                "k3s.io/internal-ip": ip,
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {},
        "status": node_status(opts, runtime_version, &crate::store::now()),
    });
    if !opts.taints.is_empty() {
        node["spec"]["taints"] = json!(opts.taints);
    }
    let body = serde_json::to_vec(&node).unwrap_or_default();
    let (code, resp) = client
        .request("POST", "/api/v1/nodes", Some("application/json"), body, &[])
        .await
        .map_err(|e| e.to_string())?;
    match code {
        201 => {
            log::info(format!("Successfully registered node {}", opts.node_name));
            Ok(())
        }
        // As the kubelet: an existing node is taken as it is (k3s applies node labels and taints
        // only when a node first registers).
        409 => {
            log::info(format!(
                "Node {} was already registered; labels and taints are kept as they are",
                opts.node_name
            ));
            Ok(())
        }
        _ => Err(format!(
            "{}: {}",
            status_text(code),
            String::from_utf8_lossy(&resp)
        )),
    }
}

/// The node's status as the kubelet posts it.
fn node_status(opts: &AgentOptions, runtime_version: &str, ready_since: &str) -> Value {
    let now = crate::store::now();
    let mem = host::memory_kib();
    let disk = host::disk_kib(&opts.data_dir);
    let gpus = host::nvidia_gpus();
    let mut capacity = json!({
        "cpu": host::cpus().to_string(),
        "memory": format!("{mem}Ki"),
        "pods": "110",
        "ephemeral-storage": format!("{disk}Ki"),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    });
    if gpus > 0 {
        capacity["nvidia.com/gpu"] = json!(gpus.to_string());
    }
    let mut allocatable = capacity.clone();
    // The kubelet's default hard eviction threshold (memory.available<100Mi) is held back.
    allocatable["memory"] = json!(format!("{}Ki", mem.saturating_sub(100 * 1024)));
    let mut addresses: Vec<Value> = opts
        .node_ips
        .iter()
        .map(|ip| json!({"type": "InternalIP", "address": ip.to_string()}))
        .collect();
    addresses.extend(
        opts.external_ips
            .iter()
            .map(|ip| json!({"type": "ExternalIP", "address": ip})),
    );
    addresses.push(json!({"type": "Hostname", "address": opts.node_name}));
    let condition = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": ready_since})
    };
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "addresses": addresses,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": "amd64",
            "bootID": host::boot_id(),
            "containerRuntimeVersion": runtime_version,
            "kernelVersion": host::kernel(),
            "kubeProxyVersion": VERSION,
            "kubeletVersion": VERSION,
            "machineID": host::machine_id(),
            "operatingSystem": "linux",
            "osImage": host::os_image(),
            "systemUUID": host::machine_id(),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    #[test]
    fn taints_parse_as_the_kubelet_parses_them() {
        assert_eq!(
            parse_taint("gpu=true:NoSchedule").unwrap(),
            json!({"key": "gpu", "value": "true", "effect": "NoSchedule"})
        );
        assert_eq!(
            parse_taint("dedicated:NoExecute").unwrap(),
            json!({"key": "dedicated", "effect": "NoExecute"})
        );
        assert!(parse_taint("gpu=true").is_err());
        assert!(parse_taint("gpu=true:Sometimes").is_err());
    }
}
