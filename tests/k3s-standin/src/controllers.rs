//! The server's controllers and scheduler, run over the store after every change and every
//! second: Deployment (ReplicaSets by pod-template hash, rolling update), ReplicaSet, DaemonSet,
//! StatefulSet (ordered, with volume claim templates), Job, CronJob, the scheduler (readiness,
//! nodeSelector, taints and tolerations, cpu/memory/`nvidia.com/gpu` requests, bound volumes),
//! Service cluster IPs and Endpoints, PersistentVolumeClaim binding (k3s's `local-path` class
//! provisions a hostPath volume), and pods of NotReady nodes marked not ready. Status fields
//! are Kubernetes' own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::State;
use crate::resources::{self, Resource};
use crate::store::{self, name_of, namespace_of, FieldSelector, Selector, Store};

fn res(name: &str) -> &'static Resource {
    resources::by_name(name).unwrap_or_else(|| unreachable!("{name} is a served resource"))
}

/// Starts the control loop.
pub fn start(state: Arc<State>) {
    tokio::spawn(async move {
        let Some(store) = state.store.as_ref() else {
            return;
        };
        let mut changed = match store.lock() {
            Ok(s) => s.changed.subscribe(),
            Err(_) => return,
        };
        loop {
            if let Ok(mut s) = store.lock() {
                // A few passes so a chain (deployment → replicaset → pods → scheduled) settles.
                for _ in 0..3 {
                    let before = s.resource_version();
                    reconcile(&mut s);
                    if s.resource_version() == before {
                        break;
                    }
                }
            }
            changed.borrow_and_update();
            let _ = tokio::time::timeout(Duration::from_secs(1), changed.changed()).await;
        }
    });
}

fn all(s: &Store, r: &'static Resource) -> Vec<Value> {
    s.list(r, None, &Selector::default(), &FieldSelector::default())
}

fn owned_by<'a>(items: &'a [Value], owner: &Value) -> Vec<&'a Value> {
    let uid = &owner["metadata"]["uid"];
    items
        .iter()
        .filter(|i| {
            i["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| o.iter().any(|r| r["uid"] == *uid))
        })
        .collect()
}

fn owner_ref(owner: &Value) -> Value {
    json!([{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": name_of(owner),
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
    }])
}

/// A short stable hash of a pod template.
pub fn template_hash(template: &Value) -> String {
    hex::encode(&Sha256::digest(template.to_string().as_bytes())[..5])
}

fn suffix() -> String {
    crate::pki::random_hex(3)[..5].to_string()
}

fn int(v: &Value, default: i64) -> i64 {
    v.as_i64().unwrap_or(default)
}

/// Whether a pod's Ready condition is True.
pub fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn terminal(p: &Value) -> bool {
    matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn new_pod(
    template: &Value,
    ns: &str,
    name: &str,
    owner: &Value,
    labels: &[(&str, String)],
) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": template["metadata"]["labels"].clone(),
            "ownerReferences": owner_ref(owner),
        },
        "spec": template["spec"].clone(),
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    });
    if !template["metadata"]["annotations"].is_null() {
        pod["metadata"]["annotations"] = template["metadata"]["annotations"].clone();
    }
    if pod["metadata"]["labels"].is_null() {
        pod["metadata"]["labels"] = json!({});
    }
    for (k, v) in labels {
        pod["metadata"]["labels"][*k] = json!(v);
    }
    let spec = &mut pod["spec"];
    if spec["restartPolicy"].is_null() {
        spec["restartPolicy"] = json!("Always");
    }
    for (k, v) in [
        ("schedulerName", json!("default-scheduler")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("enableServiceLinks", json!(true)),
    ] {
        if spec[k].is_null() {
            spec[k] = v;
        }
    }
    pod
}

fn create(s: &mut Store, r: &'static Resource, ns: &str, obj: Value) {
    if let Err(e) = s.create(r, ns, obj, None) {
        crate::log::debug(format!("controller create {}: {}", r.kind, e.message));
    }
}

fn set_status(s: &mut Store, r: &'static Resource, obj: &Value, status: Value) {
    let mut merged = obj["status"].clone();
    if !merged.is_object() {
        merged = json!({});
    }
    store::deep_merge(&mut merged, &status);
    if merged != obj["status"] {
        let mut new = obj.clone();
        new["status"] = merged;
        let _ = s.update(r, namespace_of(obj), name_of(obj), new, true);
    }
}

fn condition(t: &str, status: bool, reason: &str, message: &str) -> Value {
    let now = store::now();
    json!({"type": t, "status": if status { "True" } else { "False" }, "reason": reason, "message": message,
           "lastUpdateTime": now, "lastTransitionTime": now})
}

/// Keeps a condition's times when its status and reason did not change.
fn keep_times(old: &Value, mut new: Vec<Value>) -> Value {
    for c in new.iter_mut() {
        if let Some(prev) = old
            .as_array()
            .and_then(|a| a.iter().find(|p| p["type"] == c["type"]))
        {
            if prev["status"] == c["status"] {
                c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
                if prev["reason"] == c["reason"] && prev["message"] == c["message"] {
                    c["lastUpdateTime"] = prev["lastUpdateTime"].clone();
                }
            }
        }
    }
    json!(new)
}

fn reconcile(s: &mut Store) {
    services(s);
    volumes(s);
    cronjobs(s);
    jobs(s);
    deployments(s);
    replicasets(s);
    daemonsets(s);
    statefulsets(s);
    schedule(s);
    pods_of_unready_nodes(s);
    endpoints(s);
}

fn deployments(s: &mut Store) {
    let (d_res, rs_res) = (res("deployments"), res("replicasets"));
    let sets = all(s, rs_res);
    for d in all(s, d_res) {
        let ns = namespace_of(&d).to_string();
        let spec = &d["spec"];
        let desired = int(&spec["replicas"], 1);
        let hash = template_hash(&spec["template"]);
        let mine: Vec<Value> = owned_by(&sets, &d).into_iter().cloned().collect();
        let new_rs = mine
            .iter()
            .find(|r| r["metadata"]["labels"]["pod-template-hash"] == json!(hash))
            .cloned();
        let new_name = format!("{}-{hash}", name_of(&d));
        match &new_rs {
            None => {
                let mut template = spec["template"].clone();
                template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut selector = spec["selector"].clone();
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let mut labels = template["metadata"]["labels"].clone();
                labels["pod-template-hash"] = json!(hash);
                create(
                    s,
                    rs_res,
                    &ns,
                    json!({
                        "apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "metadata": {"name": new_name, "namespace": ns, "labels": labels, "ownerReferences": owner_ref(&d),
                                     "annotations": {"deployment.kubernetes.io/desired-replicas": desired.to_string()}},
                        "spec": {"replicas": desired, "selector": selector, "template": template},
                    }),
                );
                crate::log::info(format!(
                    "deployment {ns}/{}: new ReplicaSet {new_name}",
                    name_of(&d)
                ));
            }
            Some(rs) if int(&rs["spec"]["replicas"], 1) != desired => {
                let _ = s.merge_patch(
                    rs_res,
                    &ns,
                    name_of(rs),
                    &json!({"spec": {"replicas": desired}}),
                    false,
                );
            }
            Some(_) => {}
        }
        let new_available = new_rs
            .as_ref()
            .map(|r| int(&r["status"]["availableReplicas"], 0))
            .unwrap_or(0);
        let mut old_pods = 0;
        for rs in mine.iter().filter(|r| name_of(r) != new_name) {
            let current = int(&rs["spec"]["replicas"], 0);
            // Old pods go as new ones become available (maxUnavailable 0 in effect).
            let target = (desired - new_available).clamp(0, current);
            if target != current {
                let _ = s.merge_patch(
                    rs_res,
                    &ns,
                    name_of(rs),
                    &json!({"spec": {"replicas": target}}),
                    false,
                );
            }
            old_pods += int(&rs["status"]["replicas"], 0);
        }
        let sum = |f: &str| mine.iter().map(|r| int(&r["status"][f], 0)).sum::<i64>();
        let updated = new_rs
            .as_ref()
            .map(|r| int(&r["status"]["replicas"], 0))
            .unwrap_or(0);
        let available = sum("availableReplicas");
        let complete = updated == desired && new_available == desired && old_pods == 0;
        let mut conditions = vec![if available >= desired {
            condition(
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            condition(
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        }];
        let deadline = int(&spec["progressDeadlineSeconds"], 600);
        let since = d["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"))
            .and_then(|c| c["lastUpdateTime"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let stalled = !complete
            && since.is_some_and(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds() > deadline
            })
            && d["status"]["observedGeneration"] == d["metadata"]["generation"];
        conditions.push(if complete {
            condition(
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            )
        } else if stalled {
            condition(
                "Progressing",
                false,
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            )
        } else {
            condition(
                "Progressing",
                true,
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{new_name}\" is progressing."),
            )
        });
        let status = json!({
            "observedGeneration": d["metadata"]["generation"],
            "replicas": sum("replicas"),
            "updatedReplicas": updated,
            "readyReplicas": sum("readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": (desired - available).max(0),
            "conditions": keep_times(&d["status"]["conditions"], conditions),
        });
        let mut full = d.clone();
        full["status"] = status;
        if full["status"] != d["status"] {
            let _ = s.update(d_res, &ns, name_of(&d), full, true);
        }
    }
}

fn replicasets(s: &mut Store) {
    let (rs_res, pod_res) = (res("replicasets"), res("pods"));
    let pods = all(s, pod_res);
    for rs in all(s, rs_res) {
        let ns = namespace_of(&rs).to_string();
        let desired = int(&rs["spec"]["replicas"], 1);
        let mut mine: Vec<Value> = owned_by(&pods, &rs)
            .into_iter()
            .filter(|p| !terminal(p))
            .cloned()
            .collect();
        let count = mine.len() as i64;
        for _ in count..desired {
            let name = format!("{}-{}", name_of(&rs), suffix());
            let pod = new_pod(&rs["spec"]["template"], &ns, &name, &rs, &[]);
            create(s, pod_res, &ns, pod);
        }
        if count > desired {
            // Not ready and unscheduled pods go first.
            mine.sort_by_key(|p| (pod_ready(p), !p["spec"]["nodeName"].is_null()));
            for p in mine.iter().take((count - desired) as usize) {
                let _ = s.delete(pod_res, &ns, name_of(p));
            }
        }
        let pods_now: Vec<Value> = all(s, pod_res);
        let mine: Vec<&Value> = owned_by(&pods_now, &rs)
            .into_iter()
            .filter(|p| !terminal(p))
            .collect();
        let ready = mine.iter().filter(|p| pod_ready(p)).count();
        set_status(
            s,
            rs_res,
            &rs,
            json!({
                "replicas": mine.len(), "fullyLabeledReplicas": mine.len(), "readyReplicas": ready,
                "availableReplicas": ready, "observedGeneration": rs["metadata"]["generation"],
            }),
        );
    }
}

/// Whether `tolerations` tolerate `taint`.
fn tolerates(tolerations: &Value, taint: &Value) -> bool {
    tolerations.as_array().is_some_and(|ts| {
        ts.iter().any(|t| {
            let effect_ok = t["effect"].is_null() || t["effect"] == taint["effect"];
            let key_ok =
                t["key"].is_null() && t["operator"] == "Exists" || t["key"] == taint["key"];
            let value_ok = t["operator"] == "Exists"
                || t["value"].as_str().unwrap_or_default()
                    == taint["value"].as_str().unwrap_or_default();
            effect_ok && key_ok && value_ok
        })
    })
}

fn node_ready(n: &Value) -> bool {
    n["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The first untolerated NoSchedule/NoExecute taint of `node` for a pod spec.
fn untolerated_taint(spec: &Value, node: &Value, daemon: bool) -> Option<Value> {
    node["spec"]["taints"]
        .as_array()?
        .iter()
        .find(|t| {
            t["effect"] != "PreferNoSchedule"
                && !(daemon
                    && t["key"]
                        .as_str()
                        .is_some_and(|k| k.starts_with("node.kubernetes.io/")))
                && !tolerates(&spec["tolerations"], t)
        })
        .cloned()
}

fn selector_matches(spec: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let by_selector = spec["nodeSelector"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels[k] == *v));
    let terms = &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    let by_affinity = terms.as_array().is_none_or(|terms| {
        terms.iter().any(|t| {
            Selector::from_label_selector(&json!({"matchExpressions": t["matchExpressions"]}))
                .matches(labels)
        })
    });
    by_selector && by_affinity
}

fn daemonsets(s: &mut Store) {
    let (ds_res, pod_res) = (res("daemonsets"), res("pods"));
    let nodes = all(s, res("nodes"));
    let pods = all(s, pod_res);
    for ds in all(s, ds_res) {
        let ns = namespace_of(&ds).to_string();
        let spec = &ds["spec"]["template"]["spec"];
        let hash = template_hash(&ds["spec"]["template"]);
        let eligible: Vec<&Value> = nodes
            .iter()
            .filter(|n| selector_matches(spec, n) && untolerated_taint(spec, n, true).is_none())
            .collect();
        let names: BTreeSet<&str> = eligible.iter().map(|n| name_of(n)).collect();
        let mine: Vec<&Value> = owned_by(&pods, &ds);
        for p in &mine {
            let on = p["spec"]["nodeName"].as_str().unwrap_or_default();
            if !names.contains(on) {
                let _ = s.delete(pod_res, &ns, name_of(p));
            }
        }
        let all_ready = mine.iter().all(|p| pod_ready(p));
        let mut replaced = false;
        for node in &eligible {
            let on_node: Vec<&&Value> = mine
                .iter()
                .filter(|p| p["spec"]["nodeName"] == json!(name_of(node)))
                .collect();
            match on_node.first() {
                None => {
                    let mut pod = new_pod(
                        &ds["spec"]["template"],
                        &ns,
                        &format!("{}-{}", name_of(&ds), suffix()),
                        &ds,
                        &[("controller-revision-hash", hash.clone())],
                    );
                    pod["spec"]["nodeName"] = json!(name_of(node));
                    pod["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": store::now()}]);
                    create(s, pod_res, &ns, pod);
                }
                Some(p)
                    if p["metadata"]["labels"]["controller-revision-hash"] != json!(hash)
                        && all_ready
                        && !replaced =>
                {
                    // Rolling update, one node at a time (maxUnavailable 1).
                    let _ = s.delete(pod_res, &ns, name_of(p));
                    replaced = true;
                }
                Some(_) => {}
            }
        }
        let pods_now = all(s, pod_res);
        let mine: Vec<&Value> = owned_by(&pods_now, &ds);
        let ready = mine.iter().filter(|p| pod_ready(p)).count();
        let updated = mine
            .iter()
            .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == json!(hash))
            .count();
        set_status(
            s,
            ds_res,
            &ds,
            json!({
                "desiredNumberScheduled": eligible.len(), "currentNumberScheduled": mine.len(),
                "numberReady": ready, "numberAvailable": ready, "numberUnavailable": eligible.len().saturating_sub(ready),
                "updatedNumberScheduled": updated, "numberMisscheduled": 0,
                "observedGeneration": ds["metadata"]["generation"],
            }),
        );
    }
}

fn statefulsets(s: &mut Store) {
    let (sts_res, pod_res, pvc_res) = (res("statefulsets"), res("pods"), res("pvc"));
    let pods = all(s, pod_res);
    for sts in all(s, sts_res) {
        let ns = namespace_of(&sts).to_string();
        let name = name_of(&sts).to_string();
        let desired = int(&sts["spec"]["replicas"], 1);
        let hash = format!("{name}-{}", template_hash(&sts["spec"]["template"]));
        let parallel = sts["spec"]["podManagementPolicy"] == "Parallel";
        let mine: BTreeMap<i64, Value> = owned_by(&pods, &sts)
            .into_iter()
            .filter_map(|p| {
                name_of(p)
                    .rsplit('-')
                    .next()?
                    .parse()
                    .ok()
                    .map(|i| (i, p.clone()))
            })
            .collect();
        for p in mine.iter().filter(|(i, _)| **i >= desired).map(|(_, p)| p) {
            let _ = s.delete(pod_res, &ns, name_of(p));
        }
        for i in 0..desired {
            match mine.get(&i) {
                None => {
                    let pod_name = format!("{name}-{i}");
                    let mut template = sts["spec"]["template"].clone();
                    let claims = sts["spec"]["volumeClaimTemplates"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    for c in &claims {
                        let claim = format!("{}-{pod_name}", name_of(c));
                        if s.get(pvc_res, &ns, &claim).is_err() {
                            let mut pvc = c.clone();
                            pvc["apiVersion"] = json!("v1");
                            pvc["kind"] = json!("PersistentVolumeClaim");
                            pvc["metadata"] = json!({"name": claim, "namespace": ns, "labels": sts["spec"]["selector"]["matchLabels"]});
                            pvc["status"] = json!({"phase": "Pending"});
                            create(s, pvc_res, &ns, pvc);
                        }
                        let vols = template["spec"]["volumes"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        let mut vols: Vec<Value> = vols
                            .into_iter()
                            .filter(|v| v["name"] != c["metadata"]["name"])
                            .collect();
                        vols.push(json!({"name": name_of(c), "persistentVolumeClaim": {"claimName": claim}}));
                        template["spec"]["volumes"] = json!(vols);
                    }
                    let mut pod = new_pod(
                        &template,
                        &ns,
                        &pod_name,
                        &sts,
                        &[
                            ("controller-revision-hash", hash.clone()),
                            ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                            ("apps.kubernetes.io/pod-index", i.to_string()),
                        ],
                    );
                    pod["spec"]["hostname"] = json!(pod_name);
                    if let Some(svc) = sts["spec"]["serviceName"].as_str() {
                        pod["spec"]["subdomain"] = json!(svc);
                    }
                    create(s, pod_res, &ns, pod);
                    if !parallel {
                        break;
                    }
                }
                Some(p) if !pod_ready(p) && !parallel => break,
                Some(_) => {}
            }
        }
        let all_ready = (0..desired).all(|i| mine.get(&i).is_some_and(pod_ready));
        if all_ready {
            // Rolling update from the highest ordinal, one pod at a time.
            if let Some((_, p)) = mine.iter().rev().find(|(i, p)| {
                **i < desired && p["metadata"]["labels"]["controller-revision-hash"] != json!(hash)
            }) {
                let _ = s.delete(pod_res, &ns, name_of(p));
            }
        }
        let pods_now = all(s, pod_res);
        let mine: Vec<&Value> = owned_by(&pods_now, &sts);
        let ready = mine.iter().filter(|p| pod_ready(p)).count();
        let updated = mine
            .iter()
            .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == json!(hash))
            .count();
        set_status(
            s,
            sts_res,
            &sts,
            json!({
                "replicas": mine.len(), "readyReplicas": ready, "availableReplicas": ready,
                "currentReplicas": updated, "updatedReplicas": updated,
                "currentRevision": hash, "updateRevision": hash,
                "observedGeneration": sts["metadata"]["generation"],
            }),
        );
    }
}

fn jobs(s: &mut Store) {
    let (job_res, pod_res) = (res("jobs"), res("pods"));
    let pods = all(s, pod_res);
    for job in all(s, job_res) {
        let ns = namespace_of(&job).to_string();
        let spec = &job["spec"];
        let finished = job["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        });
        let mine: Vec<&Value> = owned_by(&pods, &job);
        let succeeded = mine
            .iter()
            .filter(|p| p["status"]["phase"] == "Succeeded")
            .count() as i64;
        let failed_pods = mine
            .iter()
            .filter(|p| p["status"]["phase"] == "Failed")
            .count() as i64;
        let restarts: i64 = mine
            .iter()
            .flat_map(|p| {
                p["status"]["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|c| int(&c["restartCount"], 0))
            .sum();
        let failed = failed_pods + restarts;
        let active: Vec<&&Value> = mine.iter().filter(|p| !terminal(p)).collect();
        let uid = job["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut status = json!({
            "active": active.len(), "succeeded": succeeded, "failed": failed,
            "ready": active.iter().filter(|p| pod_ready(p)).count(),
            "uncountedTerminatedPods": {},
        });
        if job["status"]["startTime"].is_null() {
            status["startTime"] = json!(store::now());
        }
        if finished {
            for p in &active {
                let _ = s.delete(pod_res, &ns, name_of(p));
            }
            status["active"] = json!(0);
            set_status(s, job_res, &job, status);
            continue;
        }
        let completions = int(&spec["completions"], 1);
        let parallelism = int(&spec["parallelism"], 1);
        let backoff = int(&spec["backoffLimit"], 6);
        let started = job["status"]["startTime"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let over_deadline = spec["activeDeadlineSeconds"].as_i64().is_some_and(|d| {
            started.is_some_and(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds() > d
            })
        });
        if failed > backoff || over_deadline {
            let (reason, message) = if over_deadline {
                (
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            } else {
                (
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            };
            status["conditions"] = json!([
                condition("FailureTarget", true, reason, message),
                condition("Failed", true, reason, message)
            ]);
            for p in &active {
                let _ = s.delete(pod_res, &ns, name_of(p));
            }
            status["active"] = json!(0);
            store_event(s, &job, "Warning", reason, message);
        } else if succeeded >= completions {
            status["conditions"] = json!([
                condition(
                    "SuccessCriteriaMet",
                    true,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods"
                ),
                condition(
                    "Complete",
                    true,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods"
                ),
            ]);
            status["completionTime"] = json!(store::now());
            store_event(s, &job, "Normal", "Completed", "Job completed");
        } else {
            let want = parallelism.min(completions - succeeded) - active.len() as i64;
            for _ in 0..want.max(0) {
                let mut template = spec["template"].clone();
                template["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] = json!(uid);
                template["metadata"]["labels"]["batch.kubernetes.io/job-name"] =
                    json!(name_of(&job));
                template["metadata"]["labels"]["controller-uid"] = json!(uid);
                template["metadata"]["labels"]["job-name"] = json!(name_of(&job));
                let pod = new_pod(
                    &template,
                    &ns,
                    &format!("{}-{}", name_of(&job), suffix()),
                    &job,
                    &[],
                );
                create(s, pod_res, &ns, pod);
            }
        }
        set_status(s, job_res, &job, status);
    }
}

fn store_event(s: &mut Store, obj: &Value, kind: &str, reason: &str, message: &str) {
    let already = obj["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["reason"] == reason));
    if !already {
        s.event(obj, kind, reason, message, "job-controller");
    }
}

/// Whether `value` matches one field of a cron expression.
fn cron_field(field: &str, value: u32, min: u32, max: u32) -> bool {
    field.split(',').any(|part| {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().unwrap_or(1).max(1)),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().unwrap_or(min), b.parse().unwrap_or(max))
        } else {
            let v = range.parse().unwrap_or(u32::MAX);
            (v, if part.contains('/') { max } else { v })
        };
        value >= lo && value <= hi && (value - lo).is_multiple_of(step)
    })
}

/// Whether a five-field cron schedule (or @hourly, @daily, …) fires at minute `t`.
pub fn cron_matches(schedule: &str, t: chrono::DateTime<chrono::Utc>) -> bool {
    use chrono::{Datelike, Timelike};
    let expanded = match schedule.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let f: Vec<&str> = expanded.split_whitespace().collect();
    if f.len() != 5 {
        return false;
    }
    cron_field(f[0], t.minute(), 0, 59)
        && cron_field(f[1], t.hour(), 0, 23)
        && cron_field(f[2], t.day(), 1, 31)
        && cron_field(f[3], t.month(), 1, 12)
        && cron_field(f[4], t.weekday().num_days_from_sunday(), 0, 6)
}

fn cronjobs(s: &mut Store) {
    use chrono::Timelike;
    let (cj_res, job_res) = (res("cronjobs"), res("jobs"));
    let jobs = all(s, job_res);
    let now = chrono::Utc::now();
    let minute = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    for cj in all(s, cj_res) {
        let ns = namespace_of(&cj).to_string();
        let mine: Vec<&Value> = owned_by(&jobs, &cj);
        let finished = |j: &Value, t: &str| {
            j["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == t && c["status"] == "True"))
        };
        let active: Vec<&&Value> = mine
            .iter()
            .filter(|j| !finished(j, "Complete") && !finished(j, "Failed"))
            .collect();
        let last = cj["status"]["lastScheduleTime"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let created = cj["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let due = cron_matches(cj["spec"]["schedule"].as_str().unwrap_or_default(), minute)
            && last.is_none_or(|l| l < minute)
            && created.is_some_and(|c| c <= minute + chrono::Duration::seconds(59))
            && cj["spec"]["suspend"] != json!(true);
        let mut status = json!({});
        let forbidden = cj["spec"]["concurrencyPolicy"] == "Forbid" && !active.is_empty();
        if due && !forbidden {
            if cj["spec"]["concurrencyPolicy"] == "Replace" {
                for j in &active {
                    let _ = s.delete(job_res, &ns, name_of(j));
                }
            }
            let name = format!("{}-{}", name_of(&cj), minute.timestamp() / 60);
            let template = &cj["spec"]["jobTemplate"];
            let job = json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": ns, "labels": template["metadata"]["labels"],
                             "ownerReferences": owner_ref(&cj),
                             "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": minute.to_rfc3339()}},
                "spec": template["spec"],
            });
            create(s, job_res, &ns, job);
            status["lastScheduleTime"] = json!(minute.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            s.event(
                &cj,
                "Normal",
                "SuccessfulCreate",
                &format!("Created job {name}"),
                "cronjob-controller",
            );
        }
        // History limits: the oldest finished jobs go.
        for (kind, limit) in [
            (
                "Complete",
                int(&cj["spec"]["successfulJobsHistoryLimit"], 3),
            ),
            ("Failed", int(&cj["spec"]["failedJobsHistoryLimit"], 1)),
        ] {
            let mut done: Vec<&&Value> = mine.iter().filter(|j| finished(j, kind)).collect();
            done.sort_by_key(|j| {
                j["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
            let excess = done.len().saturating_sub(limit.max(0) as usize);
            for j in done.iter().take(excess) {
                let _ = s.delete(job_res, &ns, name_of(j));
            }
        }
        if let Some(t) = mine
            .iter()
            .filter(|j| finished(j, "Complete"))
            .filter_map(|j| j["status"]["completionTime"].as_str())
            .max()
        {
            status["lastSuccessfulTime"] = json!(t);
        }
        let jobs_now = all(s, job_res);
        let active: Vec<Value> = owned_by(&jobs_now, &cj)
            .into_iter()
            .filter(|j| !finished(j, "Complete") && !finished(j, "Failed"))
            .map(|j| json!({"apiVersion": "batch/v1", "kind": "Job", "name": name_of(j), "namespace": ns, "uid": j["metadata"]["uid"]}))
            .collect();
        status["active"] = if active.is_empty() {
            Value::Null
        } else {
            json!(active)
        };
        let mut full = cj.clone();
        let mut merged = cj["status"].clone();
        if !merged.is_object() {
            merged = json!({});
        }
        store::merge_patch(&mut merged, &status);
        full["status"] = merged;
        if full["status"] != cj["status"] {
            let _ = s.update(cj_res, &ns, name_of(&cj), full, true);
        }
    }
}

/// Requests of a pod (cpu in millicores, memory in bytes, GPUs), from requests or else limits.
fn requests(spec: &Value) -> (i64, i64, i64) {
    let mut out = (0, 0, 0);
    for c in spec["containers"].as_array().cloned().unwrap_or_default() {
        let pick = |k: &str| {
            let r = &c["resources"]["requests"][k];
            if r.is_null() {
                c["resources"]["limits"][k].clone()
            } else {
                r.clone()
            }
        };
        out.0 += quantity(&pick("cpu"), true);
        out.1 += quantity(&pick("memory"), false);
        out.2 += quantity(&pick("nvidia.com/gpu"), false);
    }
    out
}

/// A Kubernetes quantity: cpu in millicores when `milli`, else plain units (bytes, count).
pub fn quantity(v: &Value, milli: bool) -> i64 {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return 0,
    };
    let s = s.trim();
    let suffixes: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
        ("Pi", 1024f64.powi(5)),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (num, scale) = suffixes
        .iter()
        .find(|(suf, _)| s.ends_with(suf))
        .map(|(suf, sc)| (&s[..s.len() - suf.len()], *sc))
        .unwrap_or((s, 1.0));
    let n: f64 = num.parse().unwrap_or(0.0);
    let v = n * scale;
    if milli {
        (v * 1000.0).round() as i64
    } else {
        v.round() as i64
    }
}

fn schedule(s: &mut Store) {
    let (pod_res, node_res, pvc_res, pv_res) = (res("pods"), res("nodes"), res("pvc"), res("pv"));
    let nodes = all(s, node_res);
    let pods = all(s, pod_res);
    for pod in pods
        .iter()
        .filter(|p| p["spec"]["nodeName"].is_null() && !terminal(p))
    {
        let ns = namespace_of(pod).to_string();
        let spec = &pod["spec"];
        let (cpu, mem, gpu) = requests(spec);
        // Volumes: claims must be bound; local volumes pin the node.
        let mut unbound = false;
        let mut volume_terms: Vec<Value> = Vec::new();
        for v in spec["volumes"].as_array().cloned().unwrap_or_default() {
            if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
                match s.get(pvc_res, &ns, claim) {
                    Ok(pvc) if pvc["status"]["phase"] == "Bound" => {
                        if let Ok(pv) = s.get(
                            pv_res,
                            "",
                            pvc["spec"]["volumeName"].as_str().unwrap_or_default(),
                        ) {
                            if let Some(t) = pv["spec"]["nodeAffinity"]["required"]
                                ["nodeSelectorTerms"]
                                .as_array()
                            {
                                volume_terms.push(json!(t));
                            }
                        }
                    }
                    _ => unbound = true,
                }
            }
        }
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut fits = Vec::new();
        if unbound {
            reasons.insert(
                "pod has unbound immediate PersistentVolumeClaims".into(),
                nodes.len(),
            );
        } else {
            for n in &nodes {
                let name = name_of(n);
                let reason = if !node_ready(n) {
                    Some(
                        "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
                            .to_string(),
                    )
                } else if n["spec"]["unschedulable"] == json!(true) {
                    Some("node(s) were unschedulable".into())
                } else if let Some(t) = untolerated_taint(spec, n, false) {
                    Some(format!(
                        "node(s) had untolerated taint {{{}: {}}}",
                        t["key"].as_str().unwrap_or_default(),
                        t["value"].as_str().unwrap_or_default()
                    ))
                } else if !selector_matches(spec, n) {
                    Some("node(s) didn't match Pod's node affinity/selector".into())
                } else if volume_terms.iter().any(|terms| {
                    !terms.as_array().is_some_and(|ts| {
                        ts.iter().any(|t| {
                            Selector::from_label_selector(
                                &json!({"matchExpressions": t["matchExpressions"]}),
                            )
                            .matches(&n["metadata"]["labels"])
                        })
                    })
                }) {
                    Some("node(s) had volume node affinity conflict".into())
                } else {
                    let used = pods
                        .iter()
                        .filter(|p| p["spec"]["nodeName"] == json!(name) && !terminal(p))
                        .map(|p| requests(&p["spec"]))
                        .fold((0, 0, 0), |a, r| (a.0 + r.0, a.1 + r.1, a.2 + r.2));
                    let alloc = &n["status"]["allocatable"];
                    let have = (
                        quantity(&alloc["cpu"], true),
                        quantity(&alloc["memory"], false),
                        quantity(&alloc["nvidia.com/gpu"], false),
                    );
                    if gpu > 0 && used.2 + gpu > have.2 {
                        Some("Insufficient nvidia.com/gpu".into())
                    } else if cpu > 0 && used.0 + cpu > have.0 {
                        Some("Insufficient cpu".into())
                    } else if mem > 0 && used.1 + mem > have.1 {
                        Some("Insufficient memory".into())
                    } else {
                        None
                    }
                };
                match reason {
                    Some(r) => *reasons.entry(r).or_default() += 1,
                    None => {
                        let load = pods
                            .iter()
                            .filter(|p| p["spec"]["nodeName"] == json!(name))
                            .count();
                        fits.push((load, name.to_string()));
                    }
                }
            }
        }
        fits.sort();
        match fits.first() {
            Some((_, node)) => {
                let mut bound = pod.clone();
                bound["spec"]["nodeName"] = json!(node);
                if s.update(pod_res, &ns, name_of(pod), bound, false).is_ok() {
                    if let Ok(p) = s.get(pod_res, &ns, name_of(pod)) {
                        let conditions = json!([{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": store::now()}]);
                        let mut st = p["status"].clone();
                        st["conditions"] = conditions;
                        let mut full = p.clone();
                        full["status"] = st;
                        let _ = s.update(pod_res, &ns, name_of(pod), full, true);
                        s.event(
                            &p,
                            "Normal",
                            "Scheduled",
                            &format!("Successfully assigned {ns}/{} to {node}", name_of(pod)),
                            "default-scheduler",
                        );
                    }
                }
            }
            None => {
                let total = nodes.len();
                let mut parts: Vec<String> =
                    reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                parts.sort();
                let message = if total == 0 {
                    "no nodes available to schedule pods".to_string()
                } else {
                    format!(
                        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} No preemption victims found for incoming pod.",
                        parts.join(", ")
                    )
                };
                let already = pod["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "PodScheduled" && c["message"] == json!(message))
                });
                if !already {
                    let mut full = pod.clone();
                    full["status"]["phase"] = json!("Pending");
                    full["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message, "lastProbeTime": null, "lastTransitionTime": store::now()}]);
                    let _ = s.update(pod_res, &ns, name_of(pod), full, true);
                    s.event(
                        pod,
                        "Warning",
                        "FailedScheduling",
                        &message,
                        "default-scheduler",
                    );
                }
            }
        }
    }
}

fn pods_of_unready_nodes(s: &mut Store) {
    let pod_res = res("pods");
    let unready: BTreeSet<String> = all(s, res("nodes"))
        .iter()
        .filter(|n| !node_ready(n))
        .map(|n| name_of(n).to_string())
        .collect();
    for p in all(s, pod_res) {
        let on = p["spec"]["nodeName"].as_str().unwrap_or_default();
        if unready.contains(on) && pod_ready(&p) {
            let mut full = p.clone();
            if let Some(cs) = full["status"]["conditions"].as_array_mut() {
                for c in cs
                    .iter_mut()
                    .filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
                {
                    c["status"] = json!("False");
                    c["reason"] = json!("NodeNotReady");
                    c["lastTransitionTime"] = json!(store::now());
                }
            }
            let _ = s.update(pod_res, namespace_of(&p), name_of(&p), full, true);
        }
    }
}

fn services(s: &mut Store) {
    let svc_res = res("services");
    let cidr = s
        .get(res("configmaps"), "kube-system", "k3s-standin-cluster")
        .ok()
        .and_then(|c| c["data"]["service-cidr"].as_str().map(str::to_string))
        .unwrap_or_else(|| "10.43.0.0/16".into());
    let svcs = all(s, svc_res);
    let used: BTreeSet<String> = svcs
        .iter()
        .filter_map(|v| v["spec"]["clusterIP"].as_str().map(str::to_string))
        .collect();
    let mut n = 11;
    for svc in svcs {
        let t = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
        if !svc["spec"]["clusterIP"].is_null() || t == "ExternalName" {
            continue;
        }
        let ip = loop {
            let Some(ip) = crate::net::nth(&cidr, n) else {
                break None;
            };
            n += 1;
            if !used.contains(&ip.to_string()) {
                break Some(ip.to_string());
            }
        };
        if let Some(ip) = ip {
            let _ = s.merge_patch(
                svc_res,
                namespace_of(&svc),
                name_of(&svc),
                &json!({"spec": {"clusterIP": ip, "clusterIPs": [ip], "type": t}}),
                false,
            );
        }
    }
}

/// A container port by name or number, as a Service's targetPort names it.
fn resolve_port(pod: &Value, target: &Value, fallback: &Value) -> Option<i64> {
    match target {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => pod["spec"]["containers"].as_array()?.iter().find_map(|c| {
            c["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == json!(name))
                .and_then(|p| p["containerPort"].as_i64())
        }),
        _ => fallback.as_i64(),
    }
}

fn endpoints(s: &mut Store) {
    let (svc_res, ep_res, pod_res) = (res("services"), res("endpoints"), res("pods"));
    for svc in all(s, svc_res) {
        let Some(sel) = svc["spec"]["selector"]
            .as_object()
            .filter(|m| !m.is_empty())
            .cloned()
        else {
            continue;
        };
        let ns = namespace_of(&svc).to_string();
        let selector = Selector::from_label_selector(&json!({"matchLabels": sel}));
        let pods = s.list(pod_res, Some(&ns), &selector, &FieldSelector::default());
        let mut subsets = Vec::new();
        for port in svc["spec"]["ports"].as_array().cloned().unwrap_or_default() {
            let mut ready = Vec::new();
            let mut not_ready = Vec::new();
            let mut target = None;
            for p in pods
                .iter()
                .filter(|p| p["status"]["podIP"].is_string() && !terminal(p))
            {
                let Some(tp) = resolve_port(p, &port["targetPort"], &port["port"]) else {
                    continue;
                };
                target = Some(tp);
                let addr = json!({"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
                                  "targetRef": {"kind": "Pod", "name": name_of(p), "namespace": ns, "uid": p["metadata"]["uid"]}});
                if pod_ready(p) {
                    ready.push(addr)
                } else {
                    not_ready.push(addr)
                }
            }
            if ready.is_empty() && not_ready.is_empty() {
                continue;
            }
            let mut subset = json!({"ports": [{"name": port["name"].as_str().unwrap_or(""), "port": target, "protocol": port["protocol"].as_str().unwrap_or("TCP")}]});
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(not_ready);
            }
            subsets.push(subset);
        }
        let want = json!({"apiVersion": "v1", "kind": "Endpoints",
                          "metadata": {"name": name_of(&svc), "namespace": ns, "labels": svc["metadata"]["labels"]},
                          "subsets": subsets});
        match s.get(ep_res, &ns, name_of(&svc)) {
            Ok(existing) if existing["subsets"] == want["subsets"] => {}
            Ok(existing) => {
                let mut e = existing.clone();
                e["subsets"] = want["subsets"].clone();
                let _ = s.update(ep_res, &ns, name_of(&svc), e, false);
            }
            Err(_) => {
                let mut e = want;
                e["metadata"]["ownerReferences"] = owner_ref(&svc);
                create(s, ep_res, &ns, e);
            }
        }
    }
}

fn volumes(s: &mut Store) {
    let (pvc_res, pv_res) = (res("pvc"), res("pv"));
    for pv in all(s, pv_res) {
        if pv["status"]["phase"].is_null() {
            let mut full = pv.clone();
            full["status"] = json!({"phase": if pv["spec"]["claimRef"].is_null() { "Available" } else { "Bound" }});
            let _ = s.update(pv_res, "", name_of(&pv), full, true);
        }
    }
    for pvc in all(s, pvc_res) {
        if pvc["status"]["phase"] == "Bound" {
            continue;
        }
        let ns = namespace_of(&pvc).to_string();
        let class = pvc["spec"]["storageClassName"]
            .as_str()
            .unwrap_or("local-path")
            .to_string();
        let want = quantity(&pvc["spec"]["resources"]["requests"]["storage"], false);
        let pvs = all(s, pv_res);
        let found = pvs.iter().find(|pv| {
            let claim = &pv["spec"]["claimRef"];
            let free = claim.is_null()
                || (claim["name"] == json!(name_of(&pvc)) && claim["namespace"] == json!(ns));
            free && pv["spec"]["storageClassName"].as_str().unwrap_or("") == class
                && quantity(&pv["spec"]["capacity"]["storage"], false) >= want
                && pv["status"]["phase"] != "Released"
        });
        let pv_name = match found {
            Some(pv) => name_of(pv).to_string(),
            None if class == "local-path" => {
                let uid = pvc["metadata"]["uid"].as_str().unwrap_or_default();
                let name = format!("pvc-{uid}");
                let pv = json!({
                    "apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}},
                    "spec": {"capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]},
                             "accessModes": pvc["spec"]["accessModes"], "persistentVolumeReclaimPolicy": "Delete",
                             "storageClassName": "local-path",
                             "hostPath": {"path": format!("/var/lib/rancher/k3s/storage/{name}_{ns}_{}", name_of(&pvc)), "type": "DirectoryOrCreate"}},
                });
                create(s, pv_res, "", pv);
                name
            }
            None => continue,
        };
        let Ok(pv) = s.get(pv_res, "", &pv_name) else {
            continue;
        };
        let mut full_pv = pv.clone();
        full_pv["spec"]["claimRef"] = json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns, "name": name_of(&pvc), "uid": pvc["metadata"]["uid"]});
        let _ = s.update(pv_res, "", &pv_name, full_pv, false);
        if let Ok(pv) = s.get(pv_res, "", &pv_name) {
            let mut p = pv.clone();
            p["status"] = json!({"phase": "Bound"});
            let _ = s.update(pv_res, "", &pv_name, p, true);
        }
        let mut claim = pvc.clone();
        claim["spec"]["volumeName"] = json!(pv_name);
        let _ = s.update(pvc_res, &ns, name_of(&pvc), claim, false);
        if let Ok(c) = s.get(pvc_res, &ns, name_of(&pvc)) {
            let mut c2 = c.clone();
            c2["status"] = json!({"phase": "Bound", "accessModes": pvc["spec"]["accessModes"], "capacity": pv["spec"]["capacity"]});
            let _ = s.update(pvc_res, &ns, name_of(&pvc), c2, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse() {
        assert_eq!(quantity(&json!("500m"), true), 500);
        assert_eq!(quantity(&json!("2"), true), 2000);
        assert_eq!(quantity(&json!("128Mi"), false), 128 * 1024 * 1024);
        assert_eq!(quantity(&json!(1), false), 1);
    }

    #[test]
    fn cron_schedules_match_their_minutes() {
        use chrono::TimeZone;
        let t = chrono::Utc.with_ymd_and_hms(2025, 1, 6, 10, 30, 0).unwrap();
        assert!(cron_matches("*/5 * * * *", t));
        assert!(cron_matches("30 10 * * 1", t));
        assert!(!cron_matches("31 10 * * *", t));
        assert!(cron_matches(
            "@hourly",
            chrono::Utc.with_ymd_and_hms(2025, 1, 6, 10, 0, 0).unwrap()
        ));
    }

    #[test]
    fn tolerations_match_taints() {
        let taint = json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"});
        assert!(tolerates(
            &json!([{"key": "dedicated", "operator": "Equal", "value": "gpu"}]),
            &taint
        ));
        assert!(tolerates(&json!([{"operator": "Exists"}]), &taint));
        assert!(!tolerates(
            &json!([{"key": "dedicated", "value": "cpu"}]),
            &taint
        ));
        assert!(!tolerates(&Value::Null, &taint));
    }
}
