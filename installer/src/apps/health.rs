//! Whether an app's workloads are healthy, read from what `kubectl get -o json` prints: the
//! workload's status (observedGeneration, updated and available replicas, a Job's
//! conditions) and, when not healthy, why, in Kubernetes' words from its pods and events.
//! Pure: no I/O.

use serde::Serialize;
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

/// One workload's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum Health {
    /// Rolled out: every replica updated and available (a Job: complete).
    Healthy,
    /// Not yet; why, when Kubernetes says.
    Progressing(String),
    /// Will not become healthy (a failed Job, an image that is not there).
    Failed(String),
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

/// Why the pods of a component are not ready, in Kubernetes' words: `(hopeless, reason)`.
/// `pods` are the component's pods, `events` the namespace's events. Unscheduled pods give
/// the scheduler's message, waiting containers their reason and message, failing probes the
/// kubelet's `Unhealthy` event.
pub fn pod_reason(pods: &[&Value], events: &[Value]) -> Option<(bool, String)> {
    let mut best: Option<(bool, String)> = None;
    let mut consider = |hopeless: bool, text: String| {
        if best.as_ref().is_none_or(|(h, _)| hopeless && !h) {
            best = Some((hopeless, text));
        }
    };
    for pod in pods {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let st = &pod["status"];
        if let Some(c) = condition(st, "PodScheduled").filter(|c| c["status"] == "False") {
            consider(false, format!("Pending: {}", reason_text(c)));
            continue;
        }
        for cs in st["containerStatuses"].as_array().into_iter().flatten() {
            let w = &cs["state"]["waiting"];
            if let Some(r) = w["reason"].as_str() {
                if r == "ContainerCreating" || r == "PodInitializing" {
                    continue;
                }
                let msg = w["message"].as_str().unwrap_or_default().trim();
                let text = if msg.is_empty() {
                    r.to_string()
                } else {
                    format!("{r}: {msg}")
                };
                consider(HOPELESS.contains(&r), text);
            }
        }
        if condition(st, "Ready").is_some_and(|c| c["status"] == "False") {
            let unhealthy = events.iter().rev().find(|e| {
                e["involvedObject"]["name"] == name
                    && (e["reason"] == "Unhealthy" || e["reason"] == "BackOff")
            });
            if let Some(e) = unhealthy {
                consider(false, e["message"].as_str().unwrap_or_default().to_string());
            } else if st["phase"] == "Running" {
                let probe = pod["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["readinessProbe"].is_object());
                if probe {
                    consider(false, "running, readiness probe not passing".into());
                }
            }
        }
    }
    best
}

/// The health of every workload in `workloads` (as the cluster has them), each with the
/// reason its pods give when it is not healthy.
pub fn evaluate(workloads: &[Value], pods: &[Value], events: &[Value]) -> Vec<ComponentHealth> {
    workloads
        .iter()
        .map(|w| {
            let component = w["metadata"]["labels"]["app.kubernetes.io/component"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (mut health, ready) = rollout(w);
            if let Health::Progressing(why) = &health {
                let mine: Vec<&Value> = pods
                    .iter()
                    .filter(|p| {
                        p["metadata"]["labels"]["app.kubernetes.io/component"] == component.as_str()
                    })
                    .collect();
                match pod_reason(&mine, events) {
                    Some((true, r)) => health = Health::Failed(r),
                    Some((false, r)) => health = Health::Progressing(r),
                    None if why.is_empty() => {}
                    None => {}
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
        let h = evaluate(std::slice::from_ref(&w), &[pull], &[]);
        assert_eq!(
            h[0].health,
            Health::Failed("ErrImageNeverPull: Container image \"x@sha256:00\" is not present with pull policy of Never".into())
        );
        assert_eq!(
            h[0].line(),
            "component web (Deployment web): ErrImageNeverPull: Container image \"x@sha256:00\" is not present with pull policy of Never"
        );

        let gpu = json!({"metadata": {"name": "web-2", "labels": {"app.kubernetes.io/component": "web"}},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}]}});
        let h = evaluate(std::slice::from_ref(&w), &[gpu], &[]);
        assert_eq!(
            h[0].health,
            Health::Progressing(
                "Pending: Unschedulable: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
                    .into()
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
        );
        assert_eq!(
            h[0].health,
            Health::Progressing("running, readiness probe not passing".into())
        );
        let event = json!({"involvedObject": {"name": "web-3"}, "reason": "Unhealthy",
            "message": "Readiness probe failed: HTTP probe failed with statuscode: 500"});
        let h = evaluate(&[w], &[probing], &[event]);
        assert_eq!(
            h[0].health,
            Health::Progressing(
                "Readiness probe failed: HTTP probe failed with statuscode: 500".into()
            )
        );
    }
}
