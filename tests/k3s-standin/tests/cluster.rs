//! The k3s contract ferry's cluster phase relies on, checked on nodes made of network and
//! mount namespaces on this machine (see `support`): servers and agents registering over veth
//! links, tokens and node passwords, NotReady on a partition, the kubeconfig, `k3s kubectl`,
//! objects kept across restarts, air-gap images imported into a real containerd.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{wait_for, Lan, Node};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn server_config(extra: &str) -> String {
    format!(
        "token: s3cret-token\ncluster-init: true\nwrite-kubeconfig-mode: \"0644\"\n\
         kubelet-arg:\n  - node-status-update-frequency=1s\n\
         kube-controller-manager-arg:\n  - node-monitor-grace-period=6s\n{extra}"
    )
}

fn start_server(node: &mut Node, config: &str) {
    node.write("/etc/rancher/k3s/config.yaml", config.as_bytes());
    node.start_k3s(&["server"], &[]);
    assert!(
        node.wait_notify_ready(SECS(120)),
        "the server never told systemd READY=1:\n{}",
        node.log_text()
    );
}

fn ready(n: &Node, name: &str) -> bool {
    n.ready_status(name).as_deref() == Some("True")
}

#[test]
fn nodes_register_over_the_network_and_turn_not_ready_when_partitioned() {
    if !support::available(true) {
        return;
    }
    let mut lan = Lan::new(3);
    let archive = support::busybox_archive("ferry/airgap:1", &[("/etc/airgap", b"1")]);
    let endpoints: Vec<String> = lan.nodes.iter_mut().map(|n| n.start_containerd()).collect();
    // Air-gap archives in all three forms k3s takes, on the server; a plain one on an agent.
    let server = &lan.nodes[0];
    server.write("/var/lib/rancher/k3s/agent/images/airgap.tar", &archive);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &support::busybox_archive("ferry/gz:1", &[])).unwrap();
    server.write(
        "/var/lib/rancher/k3s/agent/images/gz.tar.gz",
        &gz.finish().unwrap(),
    );
    let zst = zstd::encode_all(&support::busybox_archive("ferry/zst:1", &[])[..], 3).unwrap();
    server.write("/var/lib/rancher/k3s/agent/images/zst.tar.zst", &zst);
    lan.nodes[1].write("/var/lib/rancher/k3s/agent/images/airgap.tar", &archive);
    server.write(
        "/etc/rancher/k3s/registries.yaml",
        b"mirrors:\n  docker.io:\n    endpoint:\n      - https://10.77.0.11:5000\n",
    );

    let config = server_config(&format!(
        "tls-san:\n  - api.site.internal\nnode-label:\n  - ferry.io/site=a\n\
         container-runtime-endpoint: {}\n",
        endpoints[0]
    ));
    start_server(&mut lan.nodes[0], &config);
    let server = &lan.nodes[0];

    // Token files in k3s's format: K10 + sha256 of the CA file + ::server: + password.
    let ca = server
        .read("/var/lib/rancher/k3s/server/tls/server-ca.crt")
        .expect("server-ca.crt");
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(ca.as_bytes()))
    };
    let token = server
        .read("/var/lib/rancher/k3s/server/token")
        .expect("token")
        .trim()
        .to_string();
    assert_eq!(token, format!("K10{hash}::server:s3cret-token"));
    assert_eq!(
        server
            .read("/var/lib/rancher/k3s/server/node-token")
            .unwrap()
            .trim(),
        token
    );
    assert_eq!(
        server.stat("%a", "/var/lib/rancher/k3s/server/token"),
        "600"
    );
    // The kubeconfig: the local API address, mode from write-kubeconfig-mode.
    let kubeconfig = server.read("/etc/rancher/k3s/k3s.yaml").expect("k3s.yaml");
    assert!(
        kubeconfig.contains("server: https://127.0.0.1:6443"),
        "{kubeconfig}"
    );
    assert_eq!(server.stat("%a", "/etc/rancher/k3s/k3s.yaml"), "644");

    for (i, endpoint) in endpoints.iter().enumerate().skip(1) {
        let agent_config = format!(
            "node-label:\n  - ferry.io/role=worker\nnode-taint:\n  - dedicated=gpu:NoSchedule\n\
             kubelet-arg:\n  - node-status-update-frequency=1s\ncontainer-runtime-endpoint: {endpoint}\n"
        );
        let node = &mut lan.nodes[i];
        node.write("/etc/rancher/k3s/config.yaml", agent_config.as_bytes());
        node.write(
            "/etc/systemd/system/k3s-agent.service.env",
            format!("K3S_URL=https://10.77.0.11:6443\nK3S_TOKEN={token}\n").as_bytes(),
        );
        node.start_k3s(
            &["agent"],
            &[
                ("K3S_URL", "https://10.77.0.11:6443"),
                ("K3S_TOKEN", &token),
            ],
        );
    }
    for i in 1..3 {
        assert!(
            lan.nodes[i].wait_notify_ready(SECS(120)),
            "agent {i} never told systemd READY=1:\n{}",
            lan.nodes[i].log_text()
        );
    }
    let server = &lan.nodes[0];
    assert!(
        wait_for(SECS(60), || ["node0", "node1", "node2"]
            .iter()
            .all(|n| ready(server, n))),
        "not all nodes Ready: {:#?}",
        server.nodes()
    );

    let nodes = server.nodes();
    let by_name = |name: &str| -> Value {
        nodes
            .iter()
            .find(|n| n["metadata"]["name"] == name)
            .cloned()
            .unwrap()
    };
    let s = by_name("node0");
    let labels = &s["metadata"]["labels"];
    for role in ["control-plane", "master", "etcd"] {
        assert_eq!(
            labels[format!("node-role.kubernetes.io/{role}")],
            "true",
            "{labels}"
        );
    }
    assert_eq!(labels["ferry.io/site"], "a");
    let a = by_name("node1");
    assert_eq!(a["metadata"]["labels"]["ferry.io/role"], "worker");
    assert!(a["metadata"]["labels"]["node-role.kubernetes.io/control-plane"].is_null());
    assert_eq!(a["spec"]["taints"][0]["key"], "dedicated");
    assert_eq!(a["spec"]["taints"][0]["effect"], "NoSchedule");
    for (name, ip) in [
        ("node0", "10.77.0.11"),
        ("node1", "10.77.0.12"),
        ("node2", "10.77.0.13"),
    ] {
        let n = by_name(name);
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.31.4+k3s1");
        let internal: Vec<&Value> = n["status"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"] == "InternalIP")
            .collect();
        assert_eq!(
            internal[0]["address"], ip,
            "{name}: the address of the default route's interface"
        );
        for res in ["cpu", "memory", "pods"] {
            assert!(
                n["status"]["capacity"][res].is_string()
                    && n["status"]["allocatable"][res].is_string(),
                "{name}: {res}"
            );
        }
        assert!(
            n["status"]["capacity"]["nvidia.com/gpu"].is_null(),
            "no GPU here, none advertised"
        );
        assert!(n["spec"]["podCIDR"]
            .as_str()
            .is_some_and(|c| c.starts_with("10.42.")));
    }
    // Node passwords: made at first start, hashed on the server per node name.
    for node in &lan.nodes {
        assert_eq!(
            node.stat("%a", "/etc/rancher/node/password"),
            "600",
            "{}",
            node.name
        );
    }
    let secrets = server.kubectl_json(&["get", "secrets", "-n", "kube-system"]);
    let names: Vec<&str> = secrets["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .collect();
    for n in ["node0", "node1", "node2"] {
        assert!(
            names.contains(&format!("{n}.node-password.k3s").as_str()),
            "{names:?}"
        );
    }

    // Air-gap images went into each node's containerd, namespace k8s.io; nothing was pulled.
    let images = String::from_utf8_lossy(&server.ctr(&["images", "ls", "-q"]).stdout).into_owned();
    for image in [
        "docker.io/ferry/airgap:1",
        "docker.io/ferry/gz:1",
        "docker.io/ferry/zst:1",
    ] {
        assert!(
            images.lines().any(|l| l == image),
            "{image} not in {images}"
        );
    }
    let agent_images =
        String::from_utf8_lossy(&lan.nodes[1].ctr(&["images", "ls", "-q"]).stdout).into_owned();
    assert!(
        agent_images.contains("docker.io/ferry/airgap:1"),
        "{agent_images}"
    );
    assert!(server
        .log_text()
        .contains("Imported images from /var/lib/rancher/k3s/agent/images/airgap.tar"));
    assert!(server
        .log_text()
        .contains("Using private registry config file at /etc/rancher/k3s/registries.yaml"));
    assert!(!server.log_text().contains("pull attempted"));

    // A partition: node2's link goes down; within the grace period (6s) plus one monitor pass
    // it is NotReady (Ready=Unknown) and tainted unreachable, while node1 stays Ready.
    lan.nodes[2].set_link(false);
    let server = &lan.nodes[0];
    let started = std::time::Instant::now();
    assert!(
        wait_for(SECS(30), || server.ready_status("node2").as_deref()
            == Some("Unknown")),
        "node2 stayed {:?} after its link went down",
        server.ready_status("node2")
    );
    let took = started.elapsed();
    assert!(
        took >= SECS(3),
        "NotReady after {took:?}: before the grace period could pass"
    );
    assert!(ready(server, "node1"), "node1 must stay Ready");
    let n2 = server.kubectl_json(&["get", "node", "node2"]);
    assert!(
        n2["spec"]["taints"]
            .to_string()
            .contains("node.kubernetes.io/unreachable"),
        "{}",
        n2["spec"]
    );
    let ready_cond = n2["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready_cond["reason"], "NodeStatusUnknown");
    assert!(ready_cond["lastHeartbeatTime"].is_string());
    // The link back: Ready again, taint gone.
    lan.nodes[2].set_link(true);
    let server = &lan.nodes[0];
    assert!(
        wait_for(SECS(30), || ready(server, "node2")),
        "node2 did not come back"
    );
    assert!(wait_for(SECS(10), || !server
        .kubectl_json(&["get", "node", "node2"])["spec"]
        .to_string()
        .contains("unreachable")));
}

#[test]
fn a_wrong_token_never_registers_and_a_reused_name_is_refused_until_deleted() {
    if !support::available(false) {
        return;
    }
    let mut lan = Lan::new(3);
    start_server(&mut lan.nodes[0], &server_config(""));
    let token = lan.nodes[0]
        .read("/var/lib/rancher/k3s/server/token")
        .unwrap()
        .trim()
        .to_string();

    // node1 comes with a wrong password in a full token, node2 with a token of another CA.
    let wrong = token.replace("s3cret-token", "not-the-token");
    lan.nodes[1].start_k3s(
        &[
            "agent",
            "--server",
            "https://10.77.0.11:6443",
            "--token",
            &wrong,
        ],
        &[],
    );
    let other_ca = format!("K10{}::server:s3cret-token", "0".repeat(64));
    lan.nodes[2].start_k3s(
        &["agent", "-s", "https://10.77.0.11:6443", "-t", &other_ca],
        &[],
    );
    assert!(
        lan.nodes[1].wait_log("401 Unauthorized", SECS(60)),
        "{}",
        lan.nodes[1].log_text()
    );
    assert!(
        lan.nodes[2].wait_log(
            "token CA hash does not match the Cluster CA certificate hash",
            SECS(60)
        ),
        "{}",
        lan.nodes[2].log_text()
    );
    std::thread::sleep(SECS(3));
    let names: Vec<String> = lan.nodes[0]
        .nodes()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["node0"], "agents with a bad token must stay absent");
    assert!(!lan.nodes[1].wait_notify_ready(SECS(1)));

    // node1 with the right token under the name "web-1".
    lan.nodes[1].stop_k3s();
    lan.nodes[1].start_k3s(
        &[
            "agent",
            "--server",
            "https://10.77.0.11:6443",
            "--token",
            &token,
            "--node-name",
            "web-1",
        ],
        &[],
    );
    assert!(
        lan.nodes[1].wait_notify_ready(SECS(60)),
        "{}",
        lan.nodes[1].log_text()
    );
    // node2 is a new machine that takes the same name: its own password is refused.
    lan.nodes[2].stop_k3s();
    lan.nodes[2].start_k3s(
        &[
            "agent",
            "--server",
            "https://10.77.0.11:6443",
            "--token",
            &token,
            "--node-name",
            "web-1",
        ],
        &[],
    );
    assert!(
        lan.nodes[2].wait_log(
            "Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not match server node-passwd entry, try enabling a unique node name with the --with-node-id flag",
            SECS(60)
        ),
        "{}",
        lan.nodes[2].log_text()
    );
    let web1 = lan.nodes[0].kubectl_json(&["get", "node", "web-1"]);
    assert_eq!(
        web1["status"]["addresses"][0]["address"], "10.77.0.12",
        "the first machine keeps the name"
    );
    // The old node deleted (its password goes with it): the new machine registers.
    lan.nodes[1].stop_k3s();
    let out = lan.nodes[0].kubectl(&["delete", "node", "web-1"], None);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "node \"web-1\" deleted"
    );
    assert!(
        lan.nodes[2].wait_notify_ready(SECS(60)),
        "{}",
        lan.nodes[2].log_text()
    );
    let web1 = lan.nodes[0].kubectl_json(&["get", "node", "web-1"]);
    assert_eq!(web1["status"]["addresses"][0]["address"], "10.77.0.13");
}

#[test]
fn kubectl_applies_gets_and_deletes_with_kubernetes_shapes_and_objects_survive_a_restart() {
    if !support::available(false) {
        return;
    }
    let mut lan = Lan::new(1);
    // A drop-in adds a label to the file's list; an unknown key is skipped with k3s's warning.
    lan.nodes[0].write(
        "/etc/rancher/k3s/config.yaml.d/50-site.yaml",
        b"node-label+:\n  - ferry.io/dropin=yes\nno-such-key: 1\n",
    );
    start_server(
        &mut lan.nodes[0],
        &server_config("node-label:\n  - ferry.io/base=yes\n"),
    );
    let n = &lan.nodes[0];
    assert!(n
        .log_text()
        .contains("Unknown flag --no-such-key found in config.yaml, skipping"));
    let me = n.kubectl_json(&["get", "node", "node0"]);
    assert_eq!(me["metadata"]["labels"]["ferry.io/base"], "yes");
    assert_eq!(me["metadata"]["labels"]["ferry.io/dropin"], "yes");

    let v = n.kubectl_json(&["version"]);
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.31.4+k3s1");
    assert_eq!(v["clientVersion"]["minor"], "31");
    let ready = n.kubectl(&["get", "--raw", "/readyz"], None);
    assert!(ready.status.success());
    assert_eq!(String::from_utf8_lossy(&ready.stdout), "ok");

    let manifest = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
data:
  index.html: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: ferry/web:1
"#;
    let out = n.kubectl(
        &["apply", "--server-side", "--field-manager=ferry", "-f", "-"],
        Some(manifest),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "namespace/shop serverside-applied\nconfigmap/web-config serverside-applied\ndeployment.apps/web serverside-applied\n"
    );
    let d1 = n.kubectl_json(&["get", "deployment", "web", "-n", "shop"]);
    assert_eq!(d1["kind"], "Deployment");
    assert_eq!(d1["apiVersion"], "apps/v1");
    assert_eq!(d1["metadata"]["generation"], 1);
    assert_eq!(d1["metadata"]["managedFields"][0]["manager"], "ferry");
    // The same apply changes nothing; a spec change bumps the generation, keeps the identity.
    n.kubectl(
        &["apply", "--server-side", "--field-manager=ferry", "-f", "-"],
        Some(manifest),
    );
    let same = n.kubectl_json(&["get", "deployment", "web", "-n", "shop"]);
    assert_eq!(
        same["metadata"]["resourceVersion"],
        d1["metadata"]["resourceVersion"]
    );
    let changed = manifest.replace("replicas: 2", "replicas: 3");
    assert!(n
        .kubectl(
            &["apply", "--server-side", "--field-manager=ferry", "-f", "-"],
            Some(&changed)
        )
        .status
        .success());
    let d2 = n.kubectl_json(&["get", "deployments.apps", "web", "-n", "shop"]);
    assert_eq!(d2["metadata"]["generation"], 2);
    // Several kinds in one list, each item with its kind (ferry reads an app's workloads so).
    let both = n.kubectl_json(&["get", "deployment,configmap", "-n", "shop"]);
    let kinds: Vec<&str> = both["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"Deployment") && kinds.contains(&"ConfigMap"),
        "{both}"
    );
    assert_eq!(d2["spec"]["replicas"], 3);
    for k in ["uid", "creationTimestamp"] {
        assert_eq!(d2["metadata"][k], d1["metadata"][k], "{k} kept");
    }
    assert_ne!(
        d2["metadata"]["resourceVersion"],
        d1["metadata"]["resourceVersion"]
    );
    // Another manager changing ferry's field conflicts, unless it forces.
    let other = manifest.replace("replicas: 2", "replicas: 5");
    let out = n.kubectl(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        Some(&other),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("conflict with \"ferry\": .spec.replicas"),
        "{err}"
    );
    let out = n.kubectl(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&other),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // JSON List input works too.
    let list = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds","namespace":"shop"},"stringData":{"k":"v"}}]}"#;
    let out = n.kubectl(
        &["apply", "--server-side", "--field-manager=ferry", "-f", "-"],
        Some(list),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let all = n.kubectl_json(&["get", "configmaps", "-A", "-l", "nosuch!=x"]);
    assert_eq!(all["kind"], "List");
    assert!(all["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["metadata"]["name"] == "web-config" && c["kind"] == "ConfigMap"));
    let selected = n.kubectl_json(&["get", "deploy", "-n", "shop", "-l", "app=web"]);
    assert_eq!(selected["items"].as_array().unwrap().len(), 1);
    let none = n.kubectl_json(&["get", "deploy", "-n", "shop", "-l", "app=api"]);
    assert_eq!(none["items"], serde_json::json!([]));
    for kind in [
        "pods",
        "daemonsets",
        "statefulsets",
        "jobs",
        "cronjobs",
        "services",
        "ingresses",
        "persistentvolumes",
        "persistentvolumeclaims",
        "events",
        "namespaces",
    ] {
        let l = n.kubectl_json(&["get", kind, "-A"]);
        assert_eq!(l["kind"], "List", "{kind}");
    }

    // kubectl's errors and exit codes.
    let out = n.kubectl(
        &["get", "deployment", "nosuch", "-n", "shop", "-o", "json"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (NotFound): deployments.apps \"nosuch\" not found"
    );
    let out = n.kubectl(&["create", "namespace", "shop"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (AlreadyExists): namespaces \"shop\" already exists"
    );
    let out = n.kubectl(&["create", "namespace", "tools"], None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/tools created"
    );
    let out = n.kubectl(&["get", "widgets"], None);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: the server doesn't have a resource type \"widgets\""
    );
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: nowhere\n";
    let out = n.kubectl(
        &["apply", "--server-side", "--field-manager=ferry", "-f", "-"],
        Some(bad),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (NotFound): namespaces \"nowhere\" not found"
    );

    // Objects survive a restart of the server.
    lan.nodes[0].stop_k3s();
    lan.nodes[0].start_k3s(&["server"], &[]);
    assert!(
        lan.nodes[0].wait_notify_ready(SECS(120)),
        "{}",
        lan.nodes[0].log_text()
    );
    let n = &lan.nodes[0];
    let d3 = n.kubectl_json(&["get", "deployment", "web", "-n", "shop"]);
    assert_eq!(d3["metadata"]["uid"], d1["metadata"]["uid"]);
    assert_eq!(d3["spec"]["replicas"], 5);
    assert_eq!(
        n.read("/var/lib/rancher/k3s/server/token")
            .unwrap()
            .trim()
            .rsplit(':')
            .next(),
        Some("s3cret-token")
    );

    // Deleting: the namespace takes its objects along; --ignore-not-found is quiet.
    let out = n.kubectl(&["delete", "namespace", "shop", "--wait=false"], None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace \"shop\" deleted"
    );
    let out = n.kubectl(&["get", "deployment", "web", "-n", "shop"], None);
    assert_eq!(out.status.code(), Some(1));
    let out = n.kubectl(
        &[
            "delete",
            "deployment",
            "web",
            "-n",
            "shop",
            "--ignore-not-found",
        ],
        None,
    );
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
    let out = n.kubectl(&["delete", "deployment", "web", "-n", "shop"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (NotFound): deployments.apps \"web\" not found"
    );
}

#[test]
fn a_second_server_joins_and_serves_the_api() {
    if !support::available(false) {
        return;
    }
    let mut lan = Lan::new(2);
    start_server(&mut lan.nodes[0], &server_config(""));
    let token = lan.nodes[0]
        .read("/var/lib/rancher/k3s/server/token")
        .unwrap()
        .trim()
        .to_string();
    let join = format!(
        "server: https://10.77.0.11:6443\ntoken: {token}\nwrite-kubeconfig-mode: \"0600\"\n"
    );
    start_server(&mut lan.nodes[1], &join);
    let second = &lan.nodes[1];
    assert_eq!(
        second.read("/var/lib/rancher/k3s/server/tls/server-ca.crt"),
        lan.nodes[0].read("/var/lib/rancher/k3s/server/tls/server-ca.crt"),
        "one cluster CA"
    );
    assert!(
        wait_for(SECS(30), || ready(second, "node0")
            && ready(second, "node1")),
        "{:#?}",
        second.nodes()
    );
    let n1 = second.kubectl_json(&["get", "node", "node1"]);
    for role in ["control-plane", "master", "etcd"] {
        assert_eq!(
            n1["metadata"]["labels"][format!("node-role.kubernetes.io/{role}")],
            "true"
        );
    }
    assert_eq!(second.stat("%a", "/etc/rancher/k3s/k3s.yaml"), "600");
    let out = second.kubectl(&["create", "namespace", "from-second"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lan.nodes[0].kubectl_json(&["get", "namespace", "from-second"]);
}

#[test]
fn k3s_flags_and_version_are_read_as_k3s_reads_them() {
    let bin = support::k3s_binary();
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("k3s version v1.31.4+k3s1"), "{text}");
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("go version go")),
        "{text}"
    );
    let out = std::process::Command::new(&bin)
        .args(["server", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("flag provided but not defined: -no-such-flag"));
    let out = std::process::Command::new(&bin)
        .args([
            "agent",
            "--server",
            "http://10.77.0.11:6443",
            "--token",
            "x",
        ])
        .env("K3S_CONFIG_FILE", "/nonexistent/config.yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only https:// URLs are supported"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
