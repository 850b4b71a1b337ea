//! Pods for real: workloads applied through `k3s kubectl` run as containers in each node's real
//! containerd (busybox images from the air-gap directory), on a pod network across nodes, with
//! probes, restarts, waiting reasons, scheduling constraints, controller status fields, and an
//! Ingress answered on the server's port 80.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{wait_for, Lan, Node};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn apply(n: &Node, manifest: &str) {
    let out = n.kubectl(
        &["apply", "--server-side", "--field-manager=ferry", "-f", "-"],
        Some(manifest),
    );
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn get(n: &Node, args: &[&str]) -> Value {
    n.kubectl_json(args)
}

fn pods_of(n: &Node, selector: &str) -> Vec<Value> {
    get(n, &["get", "pods", "-n", "apps", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn waiting_reason(p: &Value) -> String {
    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn http_via_ingress(client: &Node, host: &str, path: &str) -> String {
    // bash's /dev/tcp: a plain HTTP/1.0 client on every host.
    let out = client.sh(&format!(
        "timeout 5 bash -c 'exec 3<>/dev/tcp/10.77.0.11/80; \
         printf \"GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n\" >&3; cat <&3' 2>&1"
    ));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const WEB: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-VERSION, namespace: apps}
data: {index.html: "hello VERSION"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: ferry/busybox:1
          command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
          ports: [{name: http, containerPort: 8080}]
          env: [{name: GREETING, valueFrom: {configMapKeyRef: {name: web-VERSION, key: index.html}}}]
          volumeMounts: [{name: www, mountPath: /www}]
          readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
          livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
      volumes: [{name: www, configMap: {name: web-VERSION}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: apps}
spec:
  rules:
    - host: web.site.internal
      http:
        paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
"#;

const OTHERS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: apps}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      tolerations: [{key: dedicated, operator: Exists}]
      containers: [{name: agent, image: ferry/busybox:1, command: ["sleep", "3600"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: apps}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: once, image: ferry/busybox:1, command: ["sh", "-c", "echo done"]}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick, namespace: apps}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: tick, image: ferry/busybox:1, command: ["true"]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: apps}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
        - name: db
          image: ferry/busybox:1
          command: ["sh", "-c", "echo $HOSTNAME > /data/owner; sleep 3600"]
          volumeMounts: [{name: data, mountPath: /data}]
          readinessProbe: {exec: {command: ["cat", "/data/owner"]}, periodSeconds: 1}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec: {accessModes: [ReadWriteOnce], storageClassName: local-path, resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: crash, namespace: apps}
spec:
  selector: {matchLabels: {app: crash}}
  template:
    metadata: {labels: {app: crash}}
    spec:
      containers: [{name: crash, image: ferry/busybox:1, command: ["sh", "-c", "exit 3"]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: missing, namespace: apps}
spec:
  selector: {matchLabels: {app: missing}}
  template:
    metadata: {labels: {app: missing}}
    spec:
      containers: [{name: m, image: ferry/missing:1}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: never, namespace: apps}
spec:
  selector: {matchLabels: {app: never}}
  template:
    metadata: {labels: {app: never}}
    spec:
      containers: [{name: m, image: ferry/missing:1, imagePullPolicy: Never}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gpu, namespace: apps}
spec:
  selector: {matchLabels: {app: gpu}}
  template:
    metadata: {labels: {app: gpu}}
    spec:
      tolerations: [{key: dedicated, operator: Exists}]
      containers: [{name: g, image: ferry/busybox:1, command: ["sleep", "3600"], resources: {limits: {nvidia.com/gpu: 1}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: unhealthy, namespace: apps}
spec:
  selector: {matchLabels: {app: unhealthy}}
  template:
    metadata: {labels: {app: unhealthy}}
    spec:
      nodeSelector: {ferry.io/role: worker}
      tolerations: [{key: dedicated, value: gpu, effect: NoSchedule}]
      containers:
        - name: u
          image: ferry/busybox:1
          command: ["sleep", "3600"]
          livenessProbe: {exec: {command: ["cat", "/nonexistent"]}, periodSeconds: 1, failureThreshold: 2}
"#;

#[test]
fn workloads_run_as_real_containers_with_probes_restarts_and_kubernetes_status() {
    if !support::available(true) {
        return;
    }
    let mut lan = Lan::new(2);
    let archive = support::busybox_archive("ferry/busybox:1", &[]);
    let endpoints: Vec<String> = lan.nodes.iter_mut().map(|n| n.start_containerd()).collect();
    for n in &lan.nodes {
        n.write("/var/lib/rancher/k3s/agent/images/busybox.tar", &archive);
    }
    let server_cfg = format!(
        "token: pods-token\nkubelet-arg:\n  - node-status-update-frequency=2s\ncontainer-runtime-endpoint: {}\n",
        endpoints[0]
    );
    lan.nodes[0].write("/etc/rancher/k3s/config.yaml", server_cfg.as_bytes());
    lan.nodes[0].start_k3s(&["server"], &[]);
    assert!(
        lan.nodes[0].wait_notify_ready(SECS(120)),
        "{}",
        lan.nodes[0].log_text()
    );
    let agent_cfg = format!(
        "server: https://10.77.0.11:6443\ntoken: pods-token\nnode-label: [ferry.io/role=worker]\n\
         node-taint: [dedicated=gpu:NoSchedule]\ncontainer-runtime-endpoint: {}\n",
        endpoints[1]
    );
    lan.nodes[1].write("/etc/rancher/k3s/config.yaml", agent_cfg.as_bytes());
    lan.nodes[1].start_k3s(&["agent"], &[]);
    assert!(
        lan.nodes[1].wait_notify_ready(SECS(120)),
        "{}",
        lan.nodes[1].log_text()
    );
    let s = &lan.nodes[0];

    apply(s, &WEB.replace("VERSION", "v1"));
    apply(s, OTHERS);

    // The web deployment: two ready replicas (only on the server: the agent is tainted), its
    // status as Kubernetes reports it, and the page through the Ingress on port 80.
    assert!(
        wait_for(SECS(120), || get(
            s,
            &["get", "deploy", "web", "-n", "apps"]
        )["status"]["readyReplicas"]
            == 2),
        "web never became ready: {:#}\n{}",
        get(s, &["get", "pods", "-n", "apps", "-l", "app=web"]),
        s.log_text()
    );
    let d = get(s, &["get", "deploy", "web", "-n", "apps"]);
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    assert_eq!(d["status"]["updatedReplicas"], 2);
    assert_eq!(d["status"]["availableReplicas"], 2);
    let available = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap()
        .clone();
    assert_eq!(available["status"], "True");
    for p in pods_of(s, "app=web") {
        assert_eq!(
            p["spec"]["nodeName"], "node0",
            "no toleration for the agent's taint"
        );
        assert_eq!(p["status"]["phase"], "Running");
        assert!(p["status"]["podIP"].as_str().unwrap().starts_with("10.42."));
    }
    assert!(
        wait_for(SECS(30), || http_via_ingress(
            &lan.nodes[1],
            "web.site.internal",
            "/index.html"
        )
        .contains("hello v1")),
        "through the ingress: {:?}\nendpoints: {:#}\n{}",
        http_via_ingress(&lan.nodes[1], "web.site.internal", "/index.html"),
        get(s, &["get", "endpoints", "web", "-n", "apps"]),
        s.log_text()
    );
    assert!(
        http_via_ingress(&lan.nodes[1], "other.site.internal", "/").contains("404")
            || http_via_ingress(&lan.nodes[1], "other.site.internal", "/").is_empty()
    );

    // A rolling update to v2: a new ReplicaSet, the old one scaled to zero, v2 served.
    apply(s, &WEB.replace("VERSION", "v2"));
    assert!(
        wait_for(SECS(120), || {
            let d = get(s, &["get", "deploy", "web", "-n", "apps"]);
            d["metadata"]["generation"] == 2
                && d["status"]["observedGeneration"] == 2
                && d["status"]["updatedReplicas"] == 2
                && d["status"]["readyReplicas"] == 2
                && d["status"]["replicas"] == 2
        }),
        "rollout to v2 did not finish: {:#}",
        get(s, &["get", "deploy", "web", "-n", "apps"])["status"]
    );
    let sets = get(s, &["get", "rs", "-n", "apps", "-l", "app=web"]);
    let replicas: Vec<i64> = sets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["spec"]["replicas"].as_i64().unwrap())
        .collect();
    assert_eq!(
        replicas.iter().filter(|r| **r == 0).count(),
        1,
        "{replicas:?}"
    );
    assert!(wait_for(SECS(30), || http_via_ingress(
        &lan.nodes[1],
        "web.site.internal",
        "/index.html"
    )
    .contains("hello v2")));

    // DaemonSet on both nodes (it tolerates the taint); Job complete; StatefulSet in order with
    // bound volumes.
    assert!(
        wait_for(SECS(90), || get(s, &["get", "ds", "agent", "-n", "apps"])
            ["status"]["numberReady"]
            == 2),
        "{:#}",
        get(s, &["get", "ds", "agent", "-n", "apps"])["status"]
    );
    assert!(wait_for(SECS(90), || get(
        s,
        &["get", "job", "once", "-n", "apps"]
    )["status"]["succeeded"]
        == 1));
    let job = get(s, &["get", "job", "once", "-n", "apps"]);
    assert!(job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Complete" && c["status"] == "True"));
    assert!(
        wait_for(SECS(120), || get(s, &["get", "sts", "db", "-n", "apps"])
            ["status"]["readyReplicas"]
            == 2),
        "{:#}",
        get(s, &["get", "pods", "-n", "apps", "-l", "app=db"])
    );
    let pvcs = get(s, &["get", "pvc", "-n", "apps"]);
    assert!(
        pvcs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"]["phase"] == "Bound"),
        "{pvcs:#}"
    );

    // Failures with Kubernetes' reasons.
    assert!(
        wait_for(SECS(90), || pods_of(s, "app=crash").iter().any(
            |p| waiting_reason(p) == "CrashLoopBackOff"
                && p["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(0)
                    >= 1
        )),
        "{:#?}",
        pods_of(s, "app=crash")
    );
    assert!(wait_for(SECS(60), || pods_of(s, "app=missing").iter().any(
        |p| ["ErrImagePull", "ImagePullBackOff"].contains(&waiting_reason(p).as_str())
    )));
    assert!(s.log_text().contains("pull attempted: ferry/missing:1"));
    assert!(wait_for(SECS(60), || pods_of(s, "app=never")
        .iter()
        .any(|p| waiting_reason(p) == "ErrImageNeverPull")));
    assert!(
        wait_for(SECS(30), || pods_of(s, "app=gpu").iter().any(|p| p
            ["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with(
                "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
            ))),
        "{:#?}",
        pods_of(s, "app=gpu")
    );
    // The liveness probe fails: restarted on the agent (nodeSelector and toleration).
    assert!(
        wait_for(SECS(90), || pods_of(s, "app=unhealthy").iter().any(|p| p
            ["spec"]["nodeName"]
            == "node1"
            && p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0)
                >= 1)),
        "{:#?}",
        pods_of(s, "app=unhealthy")
    );

    // The CronJob made a job within a minute.
    let tick_jobs = || {
        get(s, &["get", "jobs", "-n", "apps"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["metadata"]["name"].as_str().unwrap().starts_with("tick-"))
            .count()
    };
    assert!(
        wait_for(SECS(75), || tick_jobs() > 0),
        "{:#}",
        get(s, &["get", "cronjob", "tick", "-n", "apps"])
    );

    // Deleting the namespace stops its containers.
    let out = s.kubectl(&["delete", "namespace", "apps", "--wait=false"], None);
    assert!(out.status.success());
    for n in &lan.nodes {
        assert!(
            wait_for(SECS(60), || !String::from_utf8_lossy(
                &n.ctr(&["tasks", "ls"]).stdout
            )
            .contains("RUNNING")),
            "{}: {}",
            n.name,
            String::from_utf8_lossy(&n.ctr(&["tasks", "ls"]).stdout)
        );
    }
}
