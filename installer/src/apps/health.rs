//! Whether an app's workloads are healthy, read from what `kubectl get -o json` prints: the
//! workload's status (observedGeneration, updated and available replicas, a Job's
//! conditions) and, when not healthy, why, in Kubernetes' words from its pods and events;
//! and whether a deploy is done, from its components' health and the site's policy.
//! Pure: no I/O.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds ferry waits on (a CronJob is healthy once applied: it runs later).
pub const WORKLOAD_KINDS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "Job"];

/// Waiting reasons that do not get better by waiting on an air-gapped site: the image is not
/// there, or the pod's configuration is wrong.
const HOPELESS: [&str; 5] = [
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
];

/// The GPU resource and the label of nodes that have one, as the NVIDIA device plugin and
/// GPU feature discovery name them (render.rs asks for them).
const GPU: &str = "nvidia.com/gpu";
const GPU_LABEL: &str = "nvidia.com/gpu.present";

/// What a component waiting for a GPU node is said to be.
pub const NO_GPU: &str = "Pending: no node has nvidia.com/gpu";

/// One workload's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum Health {
    /// Rolled out: every replica updated and available (a Job: complete).
    Healthy,
    /// Not yet; why, when Kubernetes says.
    Progressing(String),
    /// Pending because no node has `nvidia.com/gpu`: it runs once a GPU node joins. Whether
    /// a deploy may end so is the site's [`GpuUnavailable`].
    NoGpu,
    /// Will not become healthy (a failed Job, an image that is not there).
    Failed(String),
}

impl Health {
    /// Why a workload is where it is, ranked for the one line shown: a failure before a
    /// reason to wait, that before waiting for a GPU node (nothing else may be wrong).
    fn rank(&self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::NoGpu => 1,
            Health::Progressing(_) => 2,
            Health::Failed(_) => 3,
        }
    }
}

/// `[apps] gpu-unavailable`: whether a deploy may end with components waiting for a GPU
/// node (a site whose GPU nodes come later, or never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpuUnavailable {
    /// The deploy fails when its time is up, and is rolled back as any unhealthy deploy.
    #[default]
    Fail,
    /// The deploy succeeds; the components say they wait for a GPU node.
    Allow,
}

/// Where a deploy stands, from its components' health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not done yet: wait.
    Wait,
    /// Done. `waiting_for_gpu`: the lines of components waiting for a GPU node, which the
    /// site allows.
    Deployed {
        /// One line per component waiting for a GPU node.
        waiting_for_gpu: Vec<String>,
    },
    /// Will not become healthy: the component at fault and why, one line.
    Failed(String),
}

/// Whether a deploy whose components are in `components` is done. `time_up`: the deploy's
/// time limit when it has passed. A failing component fails the deploy at once; one still
/// progressing makes it wait, and fail when the time is up. A component waiting for a GPU
/// node does the same under [`GpuUnavailable::Fail`] (a GPU node's device plugin may be
/// registering still); under [`GpuUnavailable::Allow`] it does not hold the deploy back.
pub fn verdict(
    components: &[ComponentHealth],
    gpu: GpuUnavailable,
    time_up: Option<Duration>,
) -> Verdict {
    if let Some(bad) = components
        .iter()
        .find(|c| matches!(c.health, Health::Failed(_)))
    {
        return Verdict::Failed(bad.line());
    }
    let allowed = |c: &&ComponentHealth| c.health == Health::NoGpu && gpu == GpuUnavailable::Allow;
    let waiting = components
        .iter()
        .filter(|c| c.health != Health::Healthy)
        .find(|c| !allowed(c));
    match (waiting, time_up) {
        (None, _) => Verdict::Deployed {
            waiting_for_gpu: components
                .iter()
                .filter(allowed)
                .map(|c| c.line())
                .collect(),
        },
        (Some(_), None) => Verdict::Wait,
        (Some(c), Some(limit)) => Verdict::Failed(format!(
            "{} (not healthy after {}s)",
            c.line(),
            limit.as_secs()
        )),
    }
}

/// A component's line in `ferry app status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// The component (`app.kubernetes.io/component`).
    pub component: String,
    /// The workload's kind.
    pub kind: String,
    /// The workload's name.
    pub name: String,
    /// Ready replicas of desired (`2/3`), or a Job's `complete`.
    pub ready: String,
    /// Its state.
    pub health: Health,
}

impl ComponentHealth {
    /// One line: `component web (Deployment web): ImagePullBackOff: ...`.
    pub fn line(&self) -> String {
        let why = match &self.health {
            Health::Healthy => "healthy".to_string(),
            Health::NoGpu => NO_GPU.to_string(),
            Health::Progressing(r) if r.is_empty() => format!("not ready ({})", self.ready),
            Health::Progressing(r) | Health::Failed(r) => r.clone(),
        };
        format!(
            "component {} ({} {}): {why}",
            self.component, self.kind, self.name
        )
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// A workload's rollout state from its own status: `(health, ready)`. Reasons come from
/// [`pod_reason`]; this only knows whether the controller is done.
pub fn rollout(obj: &Value) -> (Health, String) {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let st = &obj["status"];
    let generation = int(&obj["metadata"]["generation"]);
    let observed = int(&st["observedGeneration"]);
    if kind != "Job" && observed < generation {
        return (
            Health::Progressing("the controller has not seen the new spec yet".into()),
            "0/?".into(),
        );
    }
    let progressing = |ready: String, done: bool, why: String| {
        if done {
            (Health::Healthy, ready)
        } else {
            (Health::Progressing(why), ready)
        }
    };
    match kind {
        "Deployment" => {
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let (updated, available, total) = (
                int(&st["updatedReplicas"]),
                int(&st["availableReplicas"]),
                int(&st["replicas"]),
            );
            if let Some(c) = condition(st, "Progressing") {
                if c["reason"] == "ProgressDeadlineExceeded" {
                    return (
                        Health::Failed(reason_text(c)),
                        format!("{available}/{want}"),
                    );
                }
            }
            progressing(
                format!("{available}/{want}"),
                updated >= want && available >= want && total <= updated,
                String::new(),
            )
        }
        "StatefulSet" => {
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let (ready, updated) = (int(&st["readyReplicas"]), int(&st["updatedReplicas"]));
            let same =
                st["updateRevision"].is_null() || st["currentRevision"] == st["updateRevision"];
            progressing(
                format!("{ready}/{want}"),
                ready >= want && (updated >= want || same),
                String::new(),
            )
        }
        "DaemonSet" => {
            let want = int(&st["desiredNumberScheduled"]);
            // Wanted on no node although it needs a GPU: no node has one (a node with a GPU
            // would be wanted). Its rollout is done, but the component runs nowhere.
            if want == 0 && needs_gpu(&obj["spec"]["template"]) {
                return (Health::NoGpu, "0/0".into());
            }
            let (updated, available) = (
                int(&st["updatedNumberScheduled"]),
                int(&st["numberAvailable"]),
            );
            progressing(
                format!("{available}/{want}"),
                updated >= want && available >= want,
                String::new(),
            )
        }
        "Job" => {
            if condition(st, "Complete").is_some_and(|c| c["status"] == "True") {
                return (Health::Healthy, "complete".into());
            }
            if let Some(c) = condition(st, "Failed").filter(|c| c["status"] == "True") {
                return (Health::Failed(reason_text(c)), "failed".into());
            }
            (Health::Progressing(String::new()), "running".into())
        }
        _ => (Health::Healthy, "-".into()),
    }
}

fn condition<'a>(status: &'a Value, t: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
}

fn reason_text(c: &Value) -> String {
    let reason = c["reason"].as_str().unwrap_or_default();
    let message = c["message"].as_str().unwrap_or_default().trim();
    match (reason, message) {
        ("", m) => m.to_string(),
        (r, "") => r.to_string(),
        (r, m) => format!("{r}: {m}"),
    }
}

/// Whether a pod template asks for a GPU: it selects GPU nodes by label, or a container
/// requests `nvidia.com/gpu`.
fn needs_gpu(template: &Value) -> bool {
    let spec = &template["spec"];
    !spec["nodeSelector"][GPU_LABEL].is_null()
        || spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                !c["resources"]["limits"][GPU].is_null()
                    || !c["resources"]["requests"][GPU].is_null()
            })
}

/// Whether `pod`, unscheduled as `unscheduled` says, waits only for a GPU node: the
/// scheduler names `nvidia.com/gpu` and no node advertises one, or the pod selects
/// `nvidia.com/gpu.present` and no node carries that label. (A GPU that nodes have but is
/// in use keeps Kubernetes' own message: that is not a site without GPUs.)
fn waits_for_gpu(pod: &Value, unscheduled: &Value, nodes: &[Value]) -> bool {
    if unscheduled["reason"] != "Unschedulable" {
        return false;
    }
    let advertised = nodes.iter().any(|n| {
        n["status"]["allocatable"][GPU]
            .as_str()
            .is_some_and(|q| !q.trim().trim_start_matches('0').is_empty())
    });
    let named = unscheduled["message"]
        .as_str()
        .is_some_and(|m| m.contains(GPU));
    let selected = pod["spec"]["nodeSelector"][GPU_LABEL].as_str();
    let labelled = |want: &str| {
        nodes
            .iter()
            .any(|n| n["metadata"]["labels"][GPU_LABEL] == want)
    };
    (named && !advertised) || selected.is_some_and(|want| !labelled(want))
}

/// Whether some of `pods` is not scheduled: only then do the cluster's nodes tell anything
/// (whether any has a GPU).
pub fn any_unscheduled(pods: &[Value]) -> bool {
    pods.iter()
        .any(|p| condition(&p["status"], "PodScheduled").is_some_and(|c| c["status"] == "False"))
}

/// Why the pods of a component are not ready, in Kubernetes' words: [`Health::Failed`] when
/// waiting will not help, [`Health::NoGpu`] when they wait for a GPU node, else
/// [`Health::Progressing`]. `pods` are the component's pods, `events` the namespace's
/// events, `nodes` the cluster's. Unscheduled pods give the scheduler's message, waiting
/// containers their reason and message, failing probes the kubelet's `Unhealthy` event.
pub fn pod_reason(pods: &[&Value], events: &[Value], nodes: &[Value]) -> Option<Health> {
    let mut best: Option<Health> = None;
    let mut consider = |h: Health| {
        if best.as_ref().is_none_or(|b| h.rank() > b.rank()) {
            best = Some(h);
        }
    };
    for pod in pods {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let st = &pod["status"];
        if let Some(c) = condition(st, "PodScheduled").filter(|c| c["status"] == "False") {
            consider(if waits_for_gpu(pod, c, nodes) {
                Health::NoGpu
            } else {
                Health::Progressing(format!("Pending: {}", reason_text(c)))
            });
            continue;
        }
        for cs in st["containerStatuses"].as_array().into_iter().flatten() {
            let w = &cs["state"]["waiting"];
            if let Some(r) = w["reason"].as_str() {
                if r == "ContainerCreating" || r == "PodInitializing" {
                    continue;
                }
                let msg = w["message"].as_str().unwrap_or_default().trim();
                let text = if r == "CrashLoopBackOff" {
                    crash_text(cs)
                } else if msg.is_empty() {
                    r.to_string()
                } else {
                    format!("{r}: {msg}")
                };
                consider(if HOPELESS.contains(&r) {
                    Health::Failed(text)
                } else {
                    Health::Progressing(text)
                });
            }
        }
        if condition(st, "Ready").is_some_and(|c| c["status"] == "False") {
            let unhealthy = events.iter().rev().find(|e| {
                e["involvedObject"]["name"] == name
                    && (e["reason"] == "Unhealthy" || e["reason"] == "BackOff")
            });
            if let Some(e) = unhealthy {
                consider(Health::Progressing(
                    e["message"].as_str().unwrap_or_default().to_string(),
                ));
            } else if st["phase"] == "Running" {
                let probe = pod["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["readinessProbe"].is_object());
                if probe {
                    consider(Health::Progressing(
                        "running, readiness probe not passing".into(),
                    ));
                }
            }
        }
    }
    best
}

/// A crashing container in the words an engineer acts on: which container, how its last run
/// ended and how often it was restarted (Kubernetes' own message only names the back-off).
fn crash_text(cs: &Value) -> String {
    let name = cs["name"].as_str().unwrap_or("?");
    let last = &cs["lastState"]["terminated"];
    let ended = match (last["exitCode"].as_i64(), last["reason"].as_str()) {
        (Some(code), Some(reason)) if !reason.is_empty() => {
            format!("exited with code {code} ({reason})")
        }
        (Some(code), _) => format!("exited with code {code}"),
        (None, _) => "keeps exiting".to_string(),
    };
    let restarts = int(&cs["restartCount"]);
    let times = if restarts == 1 { "time" } else { "times" };
    format!("CrashLoopBackOff: container {name} {ended}, restarted {restarts} {times}")
}

/// The health of every workload in `workloads` (as the cluster has them), each with the
/// reason its pods give when it is not healthy (`nodes`: the cluster's, to tell a site
/// without GPUs).
pub fn evaluate(
    workloads: &[Value],
    pods: &[Value],
    events: &[Value],
    nodes: &[Value],
) -> Vec<ComponentHealth> {
    workloads
        .iter()
        .map(|w| {
            let component = w["metadata"]["labels"]["app.kubernetes.io/component"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (mut health, ready) = rollout(w);
            if health != Health::Healthy {
                let mine: Vec<&Value> = pods
                    .iter()
                    .filter(|p| {
                        p["metadata"]["labels"]["app.kubernetes.io/component"] == component.as_str()
                    })
                    .collect();
                match (&health, pod_reason(&mine, events, nodes)) {
                    // A Deployment past its progress deadline because no node has a GPU
                    // still waits for a GPU node.
                    (Health::Failed(_), Some(Health::NoGpu)) => health = Health::NoGpu,
                    (Health::Failed(_), _) | (_, None) => {}
                    (_, Some(h)) => health = h,
                }
            }
            ComponentHealth {
                component,
                kind: w["kind"].as_str().unwrap_or_default().to_string(),
                name: w["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                ready,
                health,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(gen: i64, observed: i64, updated: i64, available: i64, total: i64) -> Value {
        json!({"kind": "Deployment",
               "metadata": {"name": "web", "generation": gen,
                            "labels": {"app.kubernetes.io/component": "web"}},
               "spec": {"replicas": 2},
               "status": {"observedGeneration": observed, "updatedReplicas": updated,
                          "availableReplicas": available, "replicas": total}})
    }

    #[test]
    fn a_deployment_is_healthy_when_every_replica_is_updated_and_available() {
        assert_eq!(rollout(&deployment(2, 2, 2, 2, 2)).0, Health::Healthy);
        // The controller has not seen generation 2.
        assert!(matches!(
            rollout(&deployment(2, 1, 2, 2, 2)).0,
            Health::Progressing(_)
        ));
        // An old pod is still there.
        assert!(matches!(
            rollout(&deployment(2, 2, 2, 2, 3)).0,
            Health::Progressing(_)
        ));
        assert_eq!(rollout(&deployment(2, 2, 1, 2, 2)).1, "2/2");
        assert!(matches!(
            rollout(&deployment(2, 2, 2, 1, 2)).0,
            Health::Progressing(_)
        ));
    }

    #[test]
    fn daemonsets_statefulsets_and_jobs_follow_their_own_fields() {
        let ds = json!({"kind": "DaemonSet", "metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
                       "updatedNumberScheduled": 2, "numberAvailable": 1}});
        assert_eq!(rollout(&ds).1, "1/2");
        assert!(matches!(rollout(&ds).0, Health::Progressing(_)));
        let sts = json!({"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1,
                       "currentRevision": "a", "updateRevision": "a"}});
        assert_eq!(rollout(&sts).0, Health::Healthy);
        let done = json!({"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(rollout(&done).0, Health::Healthy);
        let failed = json!({"kind": "Job", "status": {"conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            rollout(&failed).0,
            Health::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
    }

    #[test]
    fn the_reason_is_kubernetes_own_and_a_missing_image_fails_at_once() {
        let w = deployment(1, 1, 0, 0, 2);
        let pull = json!({"metadata": {"name": "web-1", "labels": {"app.kubernetes.io/component": "web"}},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "web", "state": {"waiting": {
                "reason": "ErrImageNeverPull",
                "message": "Container image \"x@sha256:00\" is not present with pull policy of Never"}}}]}});
        let h = evaluate(std::slice::from_ref(&w), &[pull], &[], &[]);
        assert_eq!(
            h[0].health,
            Health::Failed("ErrImageNeverPull: Container image \"x@sha256:00\" is not present with pull policy of Never".into())
        );
        assert_eq!(
            h[0].line(),
            "component web (Deployment web): ErrImageNeverPull: Container image \"x@sha256:00\" is not present with pull policy of Never"
        );

        // Pending with the scheduler's message when the reason is not a missing GPU.
        let full = json!({"metadata": {"name": "web-2", "labels": {"app.kubernetes.io/component": "web"}},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/2 nodes are available: 2 Insufficient memory."}]}});
        let h = evaluate(std::slice::from_ref(&w), &[full], &[], &[]);
        assert_eq!(
            h[0].health,
            Health::Progressing(
                "Pending: Unschedulable: 0/2 nodes are available: 2 Insufficient memory.".into()
            )
        );

        let probing = json!({"metadata": {"name": "web-3", "labels": {"app.kubernetes.io/component": "web"}},
            "spec": {"containers": [{"name": "web", "readinessProbe": {"httpGet": {"port": 80}}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [{"name": "web", "ready": false, "state": {"running": {}}}]}});
        let h = evaluate(
            std::slice::from_ref(&w),
            std::slice::from_ref(&probing),
            &[],
            &[],
        );
        assert_eq!(
            h[0].health,
            Health::Progressing("running, readiness probe not passing".into())
        );
        let event = json!({"involvedObject": {"name": "web-3"}, "reason": "Unhealthy",
            "message": "Readiness probe failed: HTTP probe failed with statuscode: 500"});
        let h = evaluate(&[w], &[probing], &[event], &[]);
        assert_eq!(
            h[0].health,
            Health::Progressing(
                "Readiness probe failed: HTTP probe failed with statuscode: 500".into()
            )
        );
    }

    fn node(gpus: Option<&str>, labelled: bool) -> Value {
        let mut n = json!({"metadata": {"name": "n", "labels": {"kubernetes.io/os": "linux"}},
                           "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}});
        if let Some(g) = gpus {
            n["status"]["allocatable"]["nvidia.com/gpu"] = json!(g);
        }
        if labelled {
            n["metadata"]["labels"]["nvidia.com/gpu.present"] = json!("true");
        }
        n
    }

    fn unscheduled(component: &str, message: &str, selector: Value) -> Value {
        json!({"metadata": {"name": format!("{component}-1"),
                            "labels": {"app.kubernetes.io/component": component}},
            "spec": {"nodeSelector": selector},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": message}]}})
    }

    fn workload(component: &str) -> Value {
        json!({"kind": "Deployment",
               "metadata": {"name": component, "generation": 1,
                            "labels": {"app.kubernetes.io/component": component}},
               "spec": {"replicas": 1},
               "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}})
    }

    #[test]
    fn a_gpu_daemon_wanted_on_no_node_waits_for_a_gpu_node_and_a_plain_one_is_healthy() {
        let ds = |template: Value| {
            json!({"kind": "DaemonSet", "metadata": {"generation": 1, "name": "agent",
                "labels": {"app.kubernetes.io/component": "agent"}},
                "spec": {"template": template},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 0,
                    "updatedNumberScheduled": 0, "numberAvailable": 0}})
        };
        let by_label = ds(
            json!({"spec": {"nodeSelector": {"nvidia.com/gpu.present": "true"},
            "containers": [{"name": "agent"}]}}),
        );
        let by_request = ds(json!({"spec": {"containers": [{"name": "agent",
            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}));
        for w in [by_label, by_request] {
            let h = evaluate(std::slice::from_ref(&w), &[], &[], &[]);
            assert_eq!(h[0].health, Health::NoGpu);
            assert_eq!(
                h[0].line(),
                "component agent (DaemonSet agent): Pending: no node has nvidia.com/gpu"
            );
            // Under "fail" it fails the deploy when its time is up; under "allow" the deploy
            // is done with a warning.
            let up = Some(Duration::from_secs(5));
            assert!(matches!(
                verdict(&h, GpuUnavailable::Fail, up),
                Verdict::Failed(_)
            ));
            assert_eq!(
                verdict(&h, GpuUnavailable::Allow, None),
                Verdict::Deployed {
                    waiting_for_gpu: vec![h[0].line()]
                }
            );
        }
        let plain = ds(json!({"spec": {"nodeSelector": {"role": "edge"},
            "containers": [{"name": "agent"}]}}));
        assert_eq!(
            evaluate(std::slice::from_ref(&plain), &[], &[], &[])[0].health,
            Health::Healthy
        );
    }

    #[test]
    fn a_gpu_pod_on_a_site_without_gpus_waits_for_a_gpu_node() {
        let w = workload("train");
        let insufficient = unscheduled(
            "train",
            "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
            json!({}),
        );
        let no_gpus = [node(None, false), node(Some("0"), false)];
        // Only an unscheduled pod makes the nodes worth reading.
        assert!(any_unscheduled(std::slice::from_ref(&insufficient)));
        assert!(!any_unscheduled(&[json!({"status": {"phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}]}})]));
        let h = evaluate(
            std::slice::from_ref(&w),
            std::slice::from_ref(&insufficient),
            &[],
            &no_gpus,
        );
        assert_eq!(h[0].health, Health::NoGpu);
        assert_eq!(
            h[0].line(),
            "component train (Deployment train): Pending: no node has nvidia.com/gpu"
        );

        // Selected by the GPU label no node carries: the scheduler only says "didn't match".
        let selected = unscheduled(
            "train",
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
            json!({"nvidia.com/gpu.present": "true"}),
        );
        let h = evaluate(
            std::slice::from_ref(&w),
            std::slice::from_ref(&selected),
            &[],
            &no_gpus,
        );
        assert_eq!(h[0].health, Health::NoGpu);

        // GPU nodes there, their GPUs in use or another label missing: Kubernetes' words.
        let gpu_node = [node(Some("1"), true)];
        for pod in [insufficient, selected] {
            let h = evaluate(std::slice::from_ref(&w), &[pod], &[], &gpu_node);
            assert!(
                matches!(&h[0].health, Health::Progressing(r) if r.starts_with("Pending: Unschedulable: 0/2")),
                "{:?}",
                h[0].health
            );
        }

        // Past a Deployment's progress deadline it still only waits for a GPU node.
        let mut late = workload("train");
        late["status"]["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet has timed out progressing."}]);
        let pod = unscheduled(
            "train",
            "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
            json!({}),
        );
        assert_eq!(evaluate(&[late], &[pod], &[], &[])[0].health, Health::NoGpu);
    }

    fn component(name: &str, health: Health) -> ComponentHealth {
        ComponentHealth {
            component: name.into(),
            kind: "Deployment".into(),
            name: name.into(),
            ready: "0/1".into(),
            health,
        }
    }

    #[test]
    fn allow_deploys_with_components_waiting_for_a_gpu_node_and_fail_does_not() {
        let h = [
            component("web", Health::Healthy),
            component("train", Health::NoGpu),
        ];
        let line = "component train (Deployment train): Pending: no node has nvidia.com/gpu";
        assert_eq!(
            verdict(&h, GpuUnavailable::Allow, None),
            Verdict::Deployed {
                waiting_for_gpu: vec![line.to_string()]
            }
        );
        // Under fail it waits (a device plugin may be registering), then fails naming it.
        assert_eq!(verdict(&h, GpuUnavailable::Fail, None), Verdict::Wait);
        assert_eq!(
            verdict(&h, GpuUnavailable::Fail, Some(Duration::from_secs(90))),
            Verdict::Failed(format!("{line} (not healthy after 90s)"))
        );
        let healthy = [component("web", Health::Healthy)];
        for policy in [GpuUnavailable::Fail, GpuUnavailable::Allow] {
            assert_eq!(
                verdict(&healthy, policy, None),
                Verdict::Deployed {
                    waiting_for_gpu: vec![]
                }
            );
        }
    }

    #[test]
    fn a_gpu_component_beside_a_real_failure_still_fails_under_allow() {
        let broken = [
            component("train", Health::NoGpu),
            component("web", Health::Failed("ImagePullBackOff".into())),
        ];
        assert_eq!(
            verdict(&broken, GpuUnavailable::Allow, None),
            Verdict::Failed("component web (Deployment web): ImagePullBackOff".into())
        );
        let probing = [
            component("train", Health::NoGpu),
            component("web", Health::Progressing("Readiness probe failed".into())),
        ];
        assert_eq!(
            verdict(&probing, GpuUnavailable::Allow, None),
            Verdict::Wait
        );
        assert_eq!(
            verdict(
                &probing,
                GpuUnavailable::Allow,
                Some(Duration::from_secs(20))
            ),
            Verdict::Failed(
                "component web (Deployment web): Readiness probe failed (not healthy after 20s)"
                    .into()
            )
        );
        // Within one component, a pod with a real problem is the reason shown.
        let w = workload("train");
        let pending = unscheduled(
            "train",
            "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
            json!({}),
        );
        let pulling = json!({"metadata": {"name": "train-2", "labels": {"app.kubernetes.io/component": "train"}},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "t", "state": {"waiting": {
                "reason": "CrashLoopBackOff"}}}]}});
        let h = evaluate(
            std::slice::from_ref(&w),
            &[pending.clone(), pulling],
            &[],
            &[],
        );
        assert_eq!(
            h[0].health,
            Health::Progressing(
                "CrashLoopBackOff: container t keeps exiting, restarted 0 times".into()
            )
        );
        // A crashing container says how it ended and how often it was restarted.
        let crashing = json!({"metadata": {"name": "train-3", "labels": {"app.kubernetes.io/component": "train"}},
            "status": {"phase": "Running", "containerStatuses": [{"name": "trainer", "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                    "message": "back-off 40s restarting failed container=trainer pod=train-3_ns(u)"}},
                "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}});
        let h = evaluate(&[w], &[pending, crashing], &[], &[]);
        assert_eq!(
            h[0].health,
            Health::Progressing(
                "CrashLoopBackOff: container trainer exited with code 2 (Error), restarted 3 times"
                    .into()
            )
        );
    }
}
