//! How ferry reads the cluster: `k3s kubectl ... -o json` on the first server over the SSH
//! session ferry already has (it works through bastions and opens nothing new on site), the
//! JSON parsed into k8s-openapi's types.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::sync::Arc;

use ferry_inventory::ssh::Pool;
use ferry_inventory::Target;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::List;
use tokio::io::AsyncReadExt as _;

use super::ClusterRuntime;

/// `k3s kubectl` on the cluster's first server, over ferry's SSH session to it. Manifests go
/// on stdin, never in argv (a Secret's data would show in `ps` and in logs).
#[derive(Debug, Clone)]
pub struct Kubectl {
    pool: Arc<Pool>,
    first: Target,
}

impl Kubectl {
    /// Through `pool` to `first`, the first server.
    pub fn new(pool: Arc<Pool>, first: Target) -> Kubectl {
        Kubectl { pool, first }
    }

    /// Runs `k3s kubectl ARGS`; fails with kubectl's own message unless it exits 0.
    pub async fn run(&self, args: &str) -> anyhow::Result<String> {
        let s = self.pool.session(&self.first).await?;
        Ok(s.exec_ok(&format!("k3s kubectl {args}"), true).await?)
    }

    /// Runs `k3s kubectl ARGS` with `input` on its stdin; the host log gets the command and
    /// byte counts only (the input may hold secrets). `Err` is kubectl's stderr.
    pub async fn run_with_input(&self, args: &str, input: &[u8]) -> anyhow::Result<String> {
        let s = self.pool.session(&self.first).await?;
        let mut child = s
            .spawn_unlogged(&format!("k3s kubectl {args}"), true)
            .await?;
        let (write, read) = {
            let (stdin, stdout) = child
                .take_streams()
                .ok_or_else(|| anyhow::anyhow!("kubectl {args}: no stdin"))?;
            (stdin, stdout)
        };
        // Written and read at once: kubectl answers per object while it reads.
        let writer = async move {
            let mut w = write;
            let r = tokio::io::AsyncWriteExt::write_all(&mut w, input).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut w).await;
            r
        };
        let reader = async move {
            let mut r = read;
            let mut out = String::new();
            r.read_to_string(&mut out).await.map(|_| out)
        };
        let (w, out) = tokio::join!(writer, reader);
        let exit = child.wait().await?;
        let out = out.unwrap_or_default();
        if exit.success() {
            return Ok(out);
        }
        let why = exit.stderr_tail.trim();
        match w {
            Err(e) if why.is_empty() => anyhow::bail!("kubectl {args}: {e}"),
            _ => anyhow::bail!(
                "{}",
                if why.is_empty() {
                    exit.describe()
                } else {
                    why.to_string()
                }
            ),
        }
    }
}

/// One node as `kubectl get nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// Its name.
    pub name: String,
    /// `True`, `False`, `Unknown`, or `absent` when not registered.
    pub ready: String,
    /// Why, when not Ready (the Ready condition's message).
    pub message: String,
    /// The kubelet's version.
    pub version: String,
}

/// Parses `kubectl get nodes -o json`.
pub fn parse_nodes(json: &str) -> anyhow::Result<Vec<NodeReport>> {
    // kubectl prints a `List` of nodes (`kind: List`), or a `NodeList` from the API.
    let mut v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| anyhow::anyhow!("`kubectl get nodes -o json` printed no JSON: {e}"))?;
    v["kind"] = "NodeList".into();
    v["apiVersion"] = "v1".into();
    let list: List<Node> = serde_json::from_value(v)
        .map_err(|e| anyhow::anyhow!("`kubectl get nodes -o json` printed no node list: {e}"))?;
    let items = list.items;
    Ok(items
        .into_iter()
        .map(|n| {
            let name = n.metadata.name.unwrap_or_default();
            let status = n.status.unwrap_or_default();
            let ready = status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "Ready");
            NodeReport {
                name,
                ready: ready
                    .as_ref()
                    .map(|c| c.status.clone())
                    .unwrap_or_else(|| "Unknown".into()),
                message: ready.and_then(|c| c.message).unwrap_or_default(),
                version: status
                    .node_info
                    .map(|i| i.kubelet_version)
                    .unwrap_or_default(),
            }
        })
        .collect())
}

/// Waits until every node of `expected` is registered and Ready, up to `limit`. Returns the
/// last reports (every expected node in them, `absent` when not registered).
pub async fn wait_ready(
    rt: &ClusterRuntime,
    expected: &BTreeMap<String, bool>,
    limit: Duration,
) -> anyhow::Result<(bool, Vec<NodeReport>)> {
    let start = Instant::now();
    loop {
        let reports = match rt.kubectl("get nodes -o json").await {
            Ok(out) => parse_nodes(json_part(&out))?,
            Err(e) if start.elapsed() < limit => {
                tracing::debug!("kubectl get nodes: {e:#}");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let mut all: Vec<NodeReport> = expected
            .keys()
            .map(|name| {
                reports
                    .iter()
                    .find(|r| &r.name == name)
                    .cloned()
                    .unwrap_or(NodeReport {
                        name: name.clone(),
                        ready: "absent".into(),
                        message: "not registered".into(),
                        version: String::new(),
                    })
            })
            .collect();
        let ready = all.iter().all(|r| r.ready == "True");
        if ready || start.elapsed() >= limit {
            all.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok((ready, all));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// The JSON document in a command's output (a login shell may print before it).
pub fn json_part(out: &str) -> &str {
    out.find('{').map(|i| &out[i..]).unwrap_or(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_read_from_kubectl_json() {
        let json = r#"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"items":[
          {"apiVersion":"v1","kind":"Node","metadata":{"name":"vm0"},
           "status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status"}],
                     "nodeInfo":{"kubeletVersion":"v1.31.4+k3s1","architecture":"amd64","bootID":"","containerRuntimeVersion":"","kernelVersion":"","kubeProxyVersion":"","machineID":"","operatingSystem":"linux","osImage":"","systemUUID":""}}},
          {"apiVersion":"v1","kind":"Node","metadata":{"name":"vm1"},
           "status":{"conditions":[{"type":"Ready","status":"Unknown","reason":"NodeStatusUnknown","message":"Kubelet stopped posting node status."}]}}]}"#;
        let n = parse_nodes(json).unwrap();
        assert_eq!(n[0].ready, "True");
        assert_eq!(n[0].version, "v1.31.4+k3s1");
        assert_eq!(n[1].ready, "Unknown");
        assert_eq!(n[1].message, "Kubelet stopped posting node status.");
    }
}
