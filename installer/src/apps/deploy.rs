//! Deploying rendered packages to the cluster through `k3s kubectl` on the first server:
//! apply server-side, wait until every workload is healthy, record the revision as a Secret;
//! on failure put the previous revision back (or remove a first install) and say which
//! component failed and why. Also the reading side: history, status, rollback, remove.
//! The engine reports through [`Progress`]; it never prints.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::health::{self, ComponentHealth, GpuUnavailable, Health, Verdict};
use super::revision::{self, Revision, Status};
use crate::cluster::kubectl::{json_part, Kubectl};

/// Progress lines for the front end (`deploy mcd-web 1.2.0: applying 9 objects`).
pub type Progress<'a> = &'a (dyn Fn(String) + Send + Sync);

/// A package rendered for the site, ready to deploy.
#[derive(Debug, Clone)]
pub struct Release {
    /// The app.
    pub app: String,
    /// Its version.
    pub version: String,
    /// Its namespace.
    pub namespace: String,
    /// The package's sha256, or `rollback to N`.
    pub source: String,
    /// The license module it needs, if any.
    pub license_feature: Option<String>,
    /// The parameters' values.
    pub values: BTreeMap<String, Value>,
    /// The rendered objects, in apply order (the Namespace first).
    pub objects: Vec<Value>,
}

/// How long a deploy waits to become healthy, and what it accepts when done.
#[derive(Debug, Clone, Copy)]
pub struct WaitPolicy {
    /// The time it may take.
    pub limit: Duration,
    /// Whether components waiting for a GPU node may end it (`[apps] gpu-unavailable`).
    pub gpu_unavailable: GpuUnavailable,
}

/// How a deploy ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The app.
    pub app: String,
    /// The version deployed (or tried).
    pub version: String,
    /// The revision recorded.
    pub revision: u32,
    /// `deployed` or `failed`.
    pub status: Status,
    /// Why it failed: the failing component and Kubernetes' reason, one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The revision put back after a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<u32>,
    /// A failed first install was removed.
    pub removed: bool,
    /// Each workload at the end.
    pub components: Vec<ComponentHealth>,
    /// Deployed, but these components wait for a GPU node (the site allows it): one line
    /// each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for_gpu: Vec<String>,
    /// Seconds spent applying.
    pub apply_secs: f64,
    /// Seconds spent waiting for health.
    pub wait_secs: f64,
}

/// The cluster, as app commands see it.
pub struct Apps<'a> {
    kubectl: &'a Kubectl,
    progress: Progress<'a>,
}

fn now_rfc3339() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `kind` as kubectl names the resource (`Deployment` → `deployment`).
fn resource(kind: &str) -> String {
    kind.to_ascii_lowercase()
}

impl<'a> Apps<'a> {
    /// Through `kubectl`, reporting to `progress`.
    pub fn new(kubectl: &'a Kubectl, progress: Progress<'a>) -> Apps<'a> {
        Apps { kubectl, progress }
    }

    async fn get_json(&self, args: &str) -> anyhow::Result<Value> {
        let out = self.kubectl.run(&format!("{args} -o json")).await?;
        serde_json::from_str(json_part(&out))
            .map_err(|e| anyhow::anyhow!("`kubectl {args} -o json` printed no JSON: {e}"))
    }

    /// Every app's revisions, oldest first, read from the cluster.
    pub async fn all_history(&self) -> anyhow::Result<BTreeMap<String, Vec<Revision>>> {
        let list = self
            .get_json(&format!("get secrets -A -l {}", revision::APP_LABEL))
            .await?;
        let (by_app, warnings) = revision::from_list(&list);
        for w in warnings {
            (self.progress)(format!("warning: {w}"));
        }
        Ok(by_app)
    }

    /// `app`'s revisions, oldest first (empty when it was never deployed).
    pub async fn history(&self, app: &str) -> anyhow::Result<Vec<Revision>> {
        let list = self
            .get_json(&format!("get secrets -A -l {}={app}", revision::APP_LABEL))
            .await?;
        let (mut by_app, warnings) = revision::from_list(&list);
        for w in warnings {
            (self.progress)(format!("warning: {w}"));
        }
        Ok(by_app.remove(app).unwrap_or_default())
    }

    async fn apply(&self, objects: &[Value]) -> anyhow::Result<()> {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
        let input = serde_json::to_vec(&list)?;
        self.kubectl
            .run_with_input(
                "apply --server-side --force-conflicts --field-manager=ferry -f -",
                &input,
            )
            .await?;
        Ok(())
    }

    async fn record(&self, r: &Revision) -> anyhow::Result<()> {
        self.apply(&[r.to_secret()])
            .await
            .map_err(|e| anyhow::anyhow!("recording revision {} of {}: {e:#}", r.revision, r.app))
    }

    /// Deletes `objects` (in the order given), those already gone ignored.
    async fn delete(&self, objects: &[Value]) -> anyhow::Result<()> {
        // Runs of the same kind and namespace go in one call, keeping the order.
        let mut runs: Vec<((String, String), Vec<String>)> = Vec::new();
        for o in objects {
            let (kind, ns, name) = revision::key_of(o);
            match runs.last_mut() {
                Some((k, names)) if *k == (kind.clone(), ns.clone()) => names.push(name),
                _ => runs.push(((kind, ns), vec![name])),
            }
        }
        for ((kind, ns), names) in runs {
            let scope = if ns.is_empty() {
                String::new()
            } else {
                format!(" -n {ns}")
            };
            self.kubectl
                .run(&format!(
                    "delete {} {}{scope} --ignore-not-found --wait=false",
                    resource(&kind),
                    names.join(" ")
                ))
                .await?;
        }
        Ok(())
    }

    /// The health of the workloads among `objects`, as the cluster has them now.
    pub async fn health(
        &self,
        app: &str,
        namespace: &str,
        objects: &[Value],
    ) -> anyhow::Result<Vec<ComponentHealth>> {
        let selector = format!("-n {namespace} -l app.kubernetes.io/name={app}");
        let mut workloads = Vec::new();
        let mut missing = Vec::new();
        // Every kind of workload the app has, in one call (each `k3s kubectl` costs a process
        // start on the server and a round trip over SSH); a list's items carry their kind.
        let kinds: Vec<&str> = health::WORKLOAD_KINDS
            .into_iter()
            .filter(|k| objects.iter().any(|o| o["kind"] == *k))
            .collect();
        let have = if kinds.is_empty() {
            Vec::new()
        } else {
            let resources: Vec<String> = kinds.iter().map(|k| resource(k)).collect();
            let list = self
                .get_json(&format!("get {} {selector}", resources.join(",")))
                .await?;
            list["items"].as_array().cloned().unwrap_or_default()
        };
        for kind in kinds {
            let wanted = objects
                .iter()
                .filter(|o| o["kind"] == kind)
                .filter_map(|o| o["metadata"]["name"].as_str());
            for name in wanted {
                match have
                    .iter()
                    .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                {
                    Some(o) => {
                        let mut o = o.clone();
                        o["kind"] = json!(kind);
                        workloads.push(o);
                    }
                    None => missing.push((kind, name.to_string())),
                }
            }
        }
        let mut h = health::evaluate(&workloads, &[], &[], &[]);
        if h.iter().any(|c| c.health != Health::Healthy) {
            let pods = self.get_json(&format!("get pods {selector}")).await?;
            let events = self.get_json(&format!("get events -n {namespace}")).await?;
            let items = |v: &Value| v["items"].as_array().cloned().unwrap_or_default();
            let pods = items(&pods);
            let nodes = if health::any_unscheduled(&pods) {
                items(&self.get_json("get nodes").await?)
            } else {
                Vec::new()
            };
            h = health::evaluate(&workloads, &pods, &items(&events), &nodes);
        }
        // Deleted by hand, or never created: not healthy, and waiting will not help.
        for o in objects {
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            if missing.iter().any(|(k, m)| o["kind"] == *k && m == name) {
                h.push(ComponentHealth {
                    component: o["metadata"]["labels"]["app.kubernetes.io/component"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    kind: o["kind"].as_str().unwrap_or_default().to_string(),
                    name: name.to_string(),
                    ready: "-".into(),
                    health: Health::Failed("not found on the cluster".into()),
                });
            }
        }
        Ok(h)
    }

    /// Waits until the workloads of `objects` make a deploy done (see
    /// [`health::verdict`]): `Ok` with the lines of components allowed to wait for a GPU
    /// node, or `Err` with the first unhealthy component and why.
    async fn wait_healthy(
        &self,
        app: &str,
        namespace: &str,
        objects: &[Value],
        policy: WaitPolicy,
    ) -> anyhow::Result<(Vec<ComponentHealth>, Result<Vec<String>, String>)> {
        let start = Instant::now();
        // What is still awaited, said again whenever it changes (a crash loop's back-off, a
        // pod scheduled): a wait of minutes shows where it stands.
        let mut said = String::new();
        loop {
            let h = self.health(app, namespace, objects).await?;
            let time_up = (start.elapsed() >= policy.limit).then_some(policy.limit);
            match health::verdict(&h, policy.gpu_unavailable, time_up) {
                Verdict::Wait => {
                    let awaited: Vec<String> = h
                        .iter()
                        .filter(|c| c.health != Health::Healthy)
                        .map(ComponentHealth::line)
                        .collect();
                    let now = awaited.join("; ");
                    if !now.is_empty() && now != said {
                        (self.progress)(format!(
                            "{app}: after {}s, waiting for {now}",
                            start.elapsed().as_secs()
                        ));
                        said = now;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await
                }
                Verdict::Deployed { waiting_for_gpu } => return Ok((h, Ok(waiting_for_gpu))),
                Verdict::Failed(line) => return Ok((h, Err(line))),
            }
        }
    }

    /// The revision that already serves `release` (same package bytes, same values, deployed),
    /// so a second `ferry apply` deploys nothing new.
    pub async fn serving(&self, release: &Release) -> anyhow::Result<Option<u32>> {
        let history = self.history(&release.app).await?;
        Ok(revision::current(&history)
            .filter(|r| {
                r.status == Status::Deployed
                    && r.source == release.source
                    && r.values == release.values
            })
            .map(|r| r.revision))
    }

    /// Deploys `release` as the app's next revision; see the module's doc. `Err` only when
    /// the cluster could not be read or written; a deploy that did not become healthy is an
    /// `Ok` outcome with status `failed`.
    pub async fn deploy(&self, release: &Release, policy: WaitPolicy) -> anyhow::Result<Outcome> {
        let p = self.progress;
        let app = &release.app;
        let history = self.history(app).await?;
        let previous = revision::current(&history).cloned();
        let number = history.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
        let mut rev = Revision {
            app: app.clone(),
            version: release.version.clone(),
            namespace: release.namespace.clone(),
            revision: number,
            status: Status::Deploying,
            deployed_at: now_rfc3339(),
            source: release.source.clone(),
            reason: None,
            values: release.values.clone(),
            objects: release.objects.clone(),
        };
        p(format!(
            "{app} {}: applying {} objects as revision {number}",
            release.version,
            release.objects.len()
        ));
        let t = Instant::now();
        let applied = self.apply(&release.objects).await;
        let apply_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (components, verdict) = match applied {
            Ok(()) => {
                // The namespace exists now: the revision can be recorded in it.
                self.record(&rev).await?;
                p(format!(
                    "{app} {}: waiting until healthy (up to {}s)",
                    release.version,
                    policy.limit.as_secs()
                ));
                self.wait_healthy(app, &release.namespace, &release.objects, policy)
                    .await?
            }
            Err(e) => (Vec::new(), Err(format!("applying: {e:#}"))),
        };
        let wait_secs = t.elapsed().as_secs_f64();
        let mut outcome = Outcome {
            app: app.clone(),
            version: release.version.clone(),
            revision: number,
            status: Status::Deployed,
            reason: None,
            restored: None,
            removed: false,
            components,
            waiting_for_gpu: Vec::new(),
            apply_secs,
            wait_secs,
        };
        match verdict {
            Ok(waiting_for_gpu) => {
                if let Some(prev) = &previous {
                    let stale = revision::stale(&prev.objects, &release.objects);
                    if !stale.is_empty() {
                        p(format!(
                            "{app}: removing {} objects of revision {}",
                            stale.len(),
                            prev.revision
                        ));
                        self.delete(&stale).await?;
                    }
                    let mut old = prev.clone();
                    old.status = Status::Superseded;
                    self.record(&old).await?;
                }
                rev.status = Status::Deployed;
                if !waiting_for_gpu.is_empty() {
                    rev.reason = Some(format!(
                        "waiting for a GPU node: {}",
                        waiting_for_gpu.join("; ")
                    ));
                }
                self.record(&rev).await?;
                p(format!(
                    "{app} {}: deployed, revision {number}",
                    release.version
                ));
                outcome.waiting_for_gpu = waiting_for_gpu;
            }
            Err(reason) => {
                p(format!("{app} {}: failed: {reason}", release.version));
                outcome.status = Status::Failed;
                outcome.reason = Some(reason.clone());
                rev.status = Status::Failed;
                rev.reason = Some(reason);
                match &previous {
                    Some(prev) => {
                        p(format!(
                            "{app}: restoring revision {} ({})",
                            prev.revision, prev.version
                        ));
                        self.apply(&prev.objects).await?;
                        let added = revision::stale(&release.objects, &prev.objects);
                        self.delete(&added).await?;
                        self.record(&rev).await?;
                        let (h, back) = self
                            .wait_healthy(app, &prev.namespace, &prev.objects, policy)
                            .await?;
                        outcome.components = h;
                        outcome.restored = Some(prev.revision);
                        if let Err(s) = back {
                            p(format!(
                                "{app}: revision {} is back but not healthy: {s}",
                                prev.revision
                            ));
                        }
                    }
                    None => {
                        p(format!("{app}: removing the failed first install"));
                        self.remove_objects(app, &release.namespace, &release.objects)
                            .await?;
                        outcome.removed = true;
                    }
                }
            }
        }
        Ok(outcome)
    }

    /// Puts revision `to` (default: the one before the current) back as a new revision.
    pub async fn rollback(
        &self,
        app: &str,
        to: Option<u32>,
        policy: WaitPolicy,
    ) -> anyhow::Result<Outcome> {
        let history = self.history(app).await?;
        let Some(current) = revision::current(&history) else {
            anyhow::bail!("{app} has no deployed revision on this cluster; see `ferry app list`");
        };
        let target = match to {
            Some(n) => history.iter().find(|r| r.revision == n).ok_or_else(|| {
                anyhow::anyhow!("{app} has no revision {n}; see `ferry app history {app}`")
            })?,
            None => history
                .iter()
                .rev()
                .find(|r| r.revision < current.revision && r.status == Status::Superseded)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{app} has no earlier deployed revision to go back to; see `ferry app \
                         history {app}`"
                    )
                })?,
        };
        if target.revision == current.revision {
            anyhow::bail!(
                "revision {} is {app}'s current revision already",
                target.revision
            );
        }
        let release = Release {
            app: app.to_string(),
            version: target.version.clone(),
            namespace: target.namespace.clone(),
            source: format!("rollback to {}", target.revision),
            // It served at this site before: the license was checked when it was deployed.
            license_feature: None,
            values: target.values.clone(),
            objects: target.objects.clone(),
        };
        self.deploy(&release, policy).await
    }

    /// Removes `app`: every object of its current revision, and its revision records. The
    /// namespace goes too unless another app lives in it.
    pub async fn remove(&self, app: &str) -> anyhow::Result<Revision> {
        let history = self.history(app).await?;
        let Some(last) = revision::current(&history).or(history.last()).cloned() else {
            anyhow::bail!("{app} is not deployed on this cluster; see `ferry app list`");
        };
        (self.progress)(format!(
            "{app}: removing revision {} ({})",
            last.revision, last.version
        ));
        self.remove_objects(app, &last.namespace, &last.objects)
            .await?;
        Ok(last)
    }

    async fn remove_objects(
        &self,
        app: &str,
        namespace: &str,
        objects: &[Value],
    ) -> anyhow::Result<()> {
        let others = self
            .all_history()
            .await?
            .into_iter()
            .any(|(a, revs)| a != app && revs.iter().any(|r| r.namespace == namespace));
        let doomed: Vec<Value> = objects
            .iter()
            .rev()
            .filter(|o| !(others && o["kind"] == "Namespace"))
            .cloned()
            .collect();
        self.delete(&doomed).await?;
        if others {
            self.kubectl
                .run(&format!(
                    "delete secret -n {namespace} -l {}={app} --ignore-not-found --wait=false",
                    revision::APP_LABEL
                ))
                .await?;
        }
        Ok(())
    }
}
