//! The agent's kubelet: runs the pods the scheduler bound to this node with the node's real
//! containerd (`ctr run`), each pod in its own network namespace on the node bridge `cni0`
//! with an address of the node's pod CIDR, and routes to the other nodes' pod CIDRs through
//! their addresses (flannel's host-gw scheme); mounts ConfigMap, Secret, emptyDir, hostPath and
//! persistent volumes; sets env, command and args; runs readiness and liveness probes (http,
//! tcp, exec) for real; restarts containers with back-off; never pulls (a missing image is
//! `ErrImagePull`/`ImagePullBackOff`, or `ErrImageNeverPull` under `imagePullPolicy: Never`,
//! and the attempt is logged as `pull attempted: NAME`); and posts pod status with
//! Kubernetes' fields.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::agent::AgentOptions;
use crate::client::Client;
use crate::images::{normalize, Runtime};
use crate::log;
use crate::store::{name_of, namespace_of, now};

/// The prefix of every container and network namespace the stand-in makes.
const PREFIX: &str = "k3s-standin-";

/// Starts the kubelet loop of this node.
pub fn start(opts: &AgentOptions, client: Client) {
    let Some(runtime) = opts.runtime.clone() else {
        return;
    };
    let kubelet = Kubelet {
        node: opts.node_name.clone(),
        node_ip: opts
            .node_ips
            .first()
            .copied()
            .unwrap_or(Ipv4Addr::LOCALHOST),
        client,
        runtime,
        pods: BTreeMap::new(),
        pod_cidr: None,
        routes: BTreeSet::new(),
    };
    tokio::spawn(kubelet.run());
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started: String,
    },
    Terminated {
        exit: i32,
        reason: String,
        started: String,
        finished: String,
    },
}

struct Probe {
    spec: Value,
    next: Instant,
    successes: i64,
    failures: i64,
    passing: bool,
}

struct Container {
    spec: Value,
    state: State,
    last_state: Option<State>,
    restarts: i64,
    id: Option<String>,
    backoff: Duration,
    not_before: Instant,
    ready: bool,
    started_at: Option<Instant>,
    readiness: Option<Probe>,
    liveness: Option<Probe>,
    pull_logged: Option<Instant>,
}

struct Pod {
    uid: String,
    ns: String,
    name: String,
    spec: Value,
    netns: Option<String>,
    ip: Option<Ipv4Addr>,
    dir: PathBuf,
    containers: Vec<Container>,
    start_time: String,
    last_status: Value,
}

struct Kubelet {
    node: String,
    node_ip: Ipv4Addr,
    client: Client,
    runtime: Runtime,
    pods: BTreeMap<String, Pod>,
    pod_cidr: Option<String>,
    routes: BTreeSet<String>,
}

async fn sh(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn probe_of(spec: &Value) -> Option<Probe> {
    spec.is_object().then(|| Probe {
        spec: spec.clone(),
        next: Instant::now()
            + Duration::from_secs(spec["initialDelaySeconds"].as_u64().unwrap_or(0)),
        successes: 0,
        failures: 0,
        passing: false,
    })
}

impl Kubelet {
    async fn run(mut self) {
        self.clean_leftovers().await;
        let (exits_tx, mut exits) = tokio::sync::mpsc::unbounded_channel::<(String, String, i32)>();
        let mut last_routes = Instant::now() - Duration::from_secs(60);
        let mut last_full_post = Instant::now();
        loop {
            if last_routes.elapsed() > Duration::from_secs(3) {
                self.network().await;
                last_routes = Instant::now();
            }
            // Status is posted again now and then, as the kubelet does, so a status the node
            // controller changed (node NotReady) is corrected once the node is back.
            if last_full_post.elapsed() > Duration::from_secs(10) {
                for p in self.pods.values_mut() {
                    p.last_status = Value::Null;
                }
                last_full_post = Instant::now();
            }
            self.sync(&exits_tx).await;
            // Exits wake the loop at once; otherwise it runs every second.
            tokio::select! {
                Some((uid, container, code)) = exits.recv() => self.exited(&uid, &container, code),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            while let Ok((uid, container, code)) = exits.try_recv() {
                self.exited(&uid, &container, code);
            }
        }
    }

    /// Containers and namespaces a previous run left (the stand-in does not adopt them).
    async fn clean_leftovers(&self) {
        let tasks = self
            .runtime
            .run(&["tasks", "ls", "-q"])
            .await
            .unwrap_or_default();
        for t in tasks.lines().filter(|t| t.starts_with(PREFIX)) {
            let _ = self
                .runtime
                .run(&["tasks", "kill", "-s", "SIGKILL", t])
                .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let containers = self
            .runtime
            .run(&["containers", "ls", "-q"])
            .await
            .unwrap_or_default();
        for c in containers.lines().filter(|c| c.starts_with(PREFIX)) {
            let _ = self.runtime.run(&["tasks", "delete", "-f", c]).await;
            let _ = self.runtime.run(&["containers", "rm", c]).await;
        }
        let netns = sh(&["ip", "netns", "list"]).await.unwrap_or_default();
        for n in netns
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(PREFIX))
        {
            let _ = sh(&["ip", "netns", "del", n]).await;
        }
    }

    /// The bridge with the node's pod CIDR gateway, and routes to the other nodes' pod CIDRs.
    async fn network(&mut self) {
        let Ok((200, body)) = self
            .client
            .request("GET", "/api/v1/nodes", None, Vec::new(), &[])
            .await
        else {
            return;
        };
        let nodes: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        for n in nodes["items"].as_array().cloned().unwrap_or_default() {
            let Some(cidr) = n["spec"]["podCIDR"].as_str() else {
                continue;
            };
            if name_of(&n) == self.node {
                if self.pod_cidr.is_none() {
                    let Some(gw) = crate::net::nth(cidr, 1) else {
                        continue;
                    };
                    let _ = sh(&["ip", "link", "add", "cni0", "type", "bridge"]).await;
                    let _ =
                        sh(&["ip", "addr", "replace", &format!("{gw}/24"), "dev", "cni0"]).await;
                    let _ = sh(&["ip", "link", "set", "cni0", "up"]).await;
                    let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
                    log::info(format!(
                        "pod network: bridge cni0 {gw}/24 for pod CIDR {cidr}"
                    ));
                    self.pod_cidr = Some(cidr.to_string());
                }
                continue;
            }
            let Some(ip) = n["status"]["addresses"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
                .and_then(|a| a["address"].as_str())
            else {
                continue;
            };
            let route = format!("{cidr} via {ip}");
            if !self.routes.contains(&route)
                && sh(&["ip", "route", "replace", cidr, "via", ip])
                    .await
                    .is_ok()
            {
                log::info(format!("pod network: route {route}"));
                self.routes.insert(route);
            }
        }
    }

    async fn sync(&mut self, exits: &tokio::sync::mpsc::UnboundedSender<(String, String, i32)>) {
        let path = format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{}", self.node);
        let Ok((200, body)) = self
            .client
            .request("GET", &path, None, Vec::new(), &[])
            .await
        else {
            return;
        };
        let list: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let wanted: BTreeMap<String, Value> = list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                p["metadata"]["uid"]
                    .as_str()
                    .map(|u| (u.to_string(), p.clone()))
            })
            .collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|u| !wanted.contains_key(*u))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(pod) = self.pods.remove(&uid) {
                self.teardown(pod).await;
            }
        }
        for (uid, p) in &wanted {
            if !self.pods.contains_key(uid) {
                if let Some(pod) = self.admit(p).await {
                    self.pods.insert(uid.clone(), pod);
                }
            }
        }
        let uids: Vec<String> = self.pods.keys().cloned().collect();
        for uid in uids {
            self.drive(&uid, exits).await;
            self.post_status(&uid).await;
        }
    }

    async fn admit(&mut self, p: &Value) -> Option<Pod> {
        let uid = p["metadata"]["uid"].as_str()?.to_string();
        let ns = namespace_of(p).to_string();
        let name = name_of(p).to_string();
        let spec = p["spec"].clone();
        let host_network = spec["hostNetwork"] == json!(true);
        let dir = PathBuf::from(format!("/var/lib/kubelet/pods/{uid}"));
        let _ = std::fs::create_dir_all(&dir);
        let (netns, ip) = if host_network {
            (None, Some(self.node_ip))
        } else {
            match self.pod_network(&uid).await {
                Ok((n, ip)) => (Some(n), Some(ip)),
                Err(e) => {
                    log::error(format!("pod {ns}/{name}: network: {e}"));
                    return None;
                }
            }
        };
        let containers = spec["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|c| Container {
                readiness: probe_of(&c["readinessProbe"]),
                liveness: probe_of(&c["livenessProbe"]),
                spec: c,
                state: State::Waiting {
                    reason: "ContainerCreating".into(),
                    message: String::new(),
                },
                last_state: None,
                restarts: 0,
                id: None,
                backoff: Duration::from_secs(10),
                not_before: Instant::now(),
                ready: false,
                started_at: None,
                pull_logged: None,
            })
            .collect();
        log::info(format!(
            "pod {ns}/{name} admitted (ip {})",
            ip.map(|i| i.to_string()).unwrap_or_default()
        ));
        Some(Pod {
            uid,
            ns,
            name,
            spec,
            netns,
            ip,
            dir,
            containers,
            start_time: now(),
            last_status: Value::Null,
        })
    }

    async fn pod_network(&self, uid: &str) -> Result<(String, Ipv4Addr), String> {
        let cidr = self
            .pod_cidr
            .clone()
            .ok_or("the node has no pod CIDR yet")?;
        let used: BTreeSet<Ipv4Addr> = self.pods.values().filter_map(|p| p.ip).collect();
        let ip = (2..255)
            .filter_map(|i| crate::net::nth(&cidr, i))
            .find(|ip| !used.contains(ip))
            .ok_or("the node's pod CIDR is full")?;
        let gw = crate::net::nth(&cidr, 1).ok_or("bad pod CIDR")?;
        let short = &uid.replace('-', "")[..8];
        let netns = format!("{PREFIX}{short}");
        let veth = format!("veth{short}");
        sh(&["ip", "netns", "add", &netns]).await?;
        sh(&[
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ])
        .await?;
        sh(&["ip", "link", "set", &veth, "master", "cni0", "up"]).await?;
        sh(&[
            "ip",
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ])
        .await?;
        sh(&["ip", "-n", &netns, "link", "set", "eth0", "up"]).await?;
        sh(&["ip", "-n", &netns, "link", "set", "lo", "up"]).await?;
        sh(&[
            "ip",
            "-n",
            &netns,
            "route",
            "add",
            "default",
            "via",
            &gw.to_string(),
        ])
        .await?;
        Ok((netns, ip))
    }

    async fn teardown(&self, pod: Pod) {
        for c in &pod.containers {
            if let Some(id) = &c.id {
                let _ = self
                    .runtime
                    .run(&["tasks", "kill", "-s", "SIGKILL", id])
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for c in &pod.containers {
            if let Some(id) = &c.id {
                let _ = self.runtime.run(&["tasks", "delete", "-f", id]).await;
                let _ = self.runtime.run(&["containers", "rm", id]).await;
            }
        }
        if let Some(n) = &pod.netns {
            let _ = sh(&["ip", "netns", "del", n]).await;
        }
        let _ = std::fs::remove_dir_all(&pod.dir);
        log::info(format!(
            "pod {}/{} deleted: its containers are stopped",
            pod.ns, pod.name
        ));
    }

    fn exited(&mut self, uid: &str, container: &str, code: i32) {
        let Some(pod) = self.pods.get_mut(uid) else {
            return;
        };
        let Some(c) = pod
            .containers
            .iter_mut()
            .find(|c| c.spec["name"] == json!(container))
        else {
            return;
        };
        let started = match &c.state {
            State::Running { started } => started.clone(),
            _ => now(),
        };
        c.state = State::Terminated {
            exit: code,
            reason: if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            started,
            finished: now(),
        };
        c.ready = false;
        // A container that ran ten minutes starts its back-off anew.
        if c.started_at
            .is_some_and(|s| s.elapsed() > Duration::from_secs(600))
        {
            c.backoff = Duration::from_secs(10);
        }
        log::info(format!(
            "pod {}/{}: container {container} exited with {code}",
            pod.ns, pod.name
        ));
    }

    async fn drive(
        &mut self,
        uid: &str,
        exits: &tokio::sync::mpsc::UnboundedSender<(String, String, i32)>,
    ) {
        let Some(mut pod) = self.pods.remove(uid) else {
            return;
        };
        let restart_policy = pod.spec["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string();
        for i in 0..pod.containers.len() {
            let state = pod.containers[i].state.clone();
            match state {
                State::Waiting { .. } => {
                    if Instant::now() >= pod.containers[i].not_before {
                        self.try_start(&mut pod, i, exits).await;
                    }
                }
                State::Running { .. } => self.probe(&mut pod, i).await,
                State::Terminated { exit, .. } => {
                    let restart = match restart_policy.as_str() {
                        "Never" => false,
                        "OnFailure" => exit != 0,
                        _ => true,
                    };
                    if restart {
                        let c = &mut pod.containers[i];
                        c.last_state = Some(c.state.clone());
                        c.restarts += 1;
                        let wait = c.backoff;
                        c.backoff = (c.backoff * 2).min(Duration::from_secs(300));
                        c.not_before = Instant::now() + wait;
                        c.state = State::Waiting {
                            reason: "CrashLoopBackOff".into(),
                            message: format!(
                                "back-off {}s restarting failed container={} pod={}_{}({})",
                                wait.as_secs(),
                                c.spec["name"].as_str().unwrap_or_default(),
                                pod.name,
                                pod.ns,
                                pod.uid
                            ),
                        };
                        c.id = None;
                    }
                }
            }
        }
        self.pods.insert(uid.to_string(), pod);
    }

    async fn try_start(
        &mut self,
        pod: &mut Pod,
        i: usize,
        exits: &tokio::sync::mpsc::UnboundedSender<(String, String, i32)>,
    ) {
        let spec = pod.containers[i].spec.clone();
        let image = spec["image"].as_str().unwrap_or_default().to_string();
        let cname = spec["name"].as_str().unwrap_or_default().to_string();
        if !self.runtime.has_image(&image).await {
            let c = &mut pod.containers[i];
            let never = spec["imagePullPolicy"] == "Never";
            if never {
                c.state = State::Waiting {
                    reason: "ErrImageNeverPull".into(),
                    message: format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    ),
                };
            } else {
                let first = c.pull_logged.is_none();
                if c.pull_logged.is_none_or(|t| t.elapsed() >= c.backoff) {
                    log::warn(format!(
                        "pull attempted: {image} (pod {}/{}; the k3s stand-in never pulls)",
                        pod.ns, pod.name
                    ));
                    c.pull_logged = Some(Instant::now());
                }
                c.state = State::Waiting {
                    reason: if first {
                        "ErrImagePull".into()
                    } else {
                        "ImagePullBackOff".into()
                    },
                    message: format!("Back-off pulling image \"{image}\""),
                };
                c.not_before = Instant::now() + Duration::from_secs(5);
            }
            return;
        }
        let env = match self.env(pod, &spec).await {
            Ok(e) => e,
            Err(e) => {
                pod.containers[i].state = State::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: e,
                };
                pod.containers[i].not_before = Instant::now() + Duration::from_secs(2);
                return;
            }
        };
        let mounts = match self.mounts(pod, &spec).await {
            Ok(m) => m,
            Err(e) => {
                pod.containers[i].state = State::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: e,
                };
                pod.containers[i].not_before = Instant::now() + Duration::from_secs(2);
                return;
            }
        };
        let restarts = pod.containers[i].restarts;
        let id = format!("{PREFIX}{}-{cname}-{restarts}", &pod.uid[..8]);
        let _ = self.runtime.run(&["containers", "rm", &id]).await;
        let mut cmd = self.runtime.ctr();
        cmd.args(["run", "--rm"]);
        match &pod.netns {
            Some(n) => {
                cmd.arg("--with-ns").arg(format!("network:/run/netns/{n}"));
            }
            None => {
                cmd.arg("--net-host");
            }
        }
        for (k, v) in &env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        for (src, dst, ro) in &mounts {
            cmd.arg("--mount").arg(format!(
                "type=bind,src={src},dst={dst},options=rbind:{}",
                if *ro { "ro" } else { "rw" }
            ));
        }
        if let Some(cwd) = spec["workingDir"].as_str() {
            cmd.arg("--cwd").arg(cwd);
        }
        cmd.arg(normalize(&image)).arg(&id);
        let argv: Vec<String> = spec["command"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(spec["args"].as_array().into_iter().flatten())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        cmd.args(&argv);
        let log_dir = PathBuf::from(format!(
            "/var/log/pods/{}_{}_{}/{cname}",
            pod.ns, pod.name, pod.uid
        ));
        let _ = std::fs::create_dir_all(&log_dir);
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{restarts}.log")));
        let (out, err) = match log_file.and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
            Err(_) => (Stdio::null(), Stdio::null()),
        };
        cmd.stdout(out).stderr(err).kill_on_drop(false);
        match cmd.spawn() {
            Ok(mut child) => {
                let c = &mut pod.containers[i];
                c.state = State::Running { started: now() };
                c.id = Some(id.clone());
                c.started_at = Some(Instant::now());
                c.readiness = probe_of(&spec["readinessProbe"]);
                c.liveness = probe_of(&spec["livenessProbe"]);
                let tx = exits.clone();
                let uid = pod.uid.clone();
                tokio::spawn(async move {
                    let code = child
                        .wait()
                        .await
                        .ok()
                        .and_then(|s| s.code())
                        .unwrap_or(137);
                    let _ = tx.send((uid, cname, code));
                });
                log::info(format!(
                    "pod {}/{}: started container {id}",
                    pod.ns, pod.name
                ));
            }
            Err(e) => {
                pod.containers[i].state = State::Waiting {
                    reason: "RunContainerError".into(),
                    message: e.to_string(),
                };
                pod.containers[i].not_before = Instant::now() + Duration::from_secs(5);
            }
        }
    }

    async fn get_object(&self, path: &str) -> Result<Value, String> {
        match self
            .client
            .request("GET", path, None, Vec::new(), &[])
            .await
        {
            Ok((200, b)) => serde_json::from_slice(&b).map_err(|e| e.to_string()),
            Ok((code, b)) => Err(format!("{code}: {}", String::from_utf8_lossy(&b))),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn env(&self, pod: &Pod, spec: &Value) -> Result<Vec<(String, String)>, String> {
        let mut env = vec![("HOSTNAME".to_string(), pod.name.clone())];
        for from in spec["envFrom"].as_array().cloned().unwrap_or_default() {
            let prefix = from["prefix"].as_str().unwrap_or_default().to_string();
            for (kind, key) in [("configmaps", "configMapRef"), ("secrets", "secretRef")] {
                if let Some(name) = from[key]["name"].as_str() {
                    let obj = self
                        .get_object(&format!("/api/v1/namespaces/{}/{kind}/{name}", pod.ns))
                        .await;
                    match obj {
                        Ok(o) => {
                            for (k, v) in data_of(&o) {
                                env.push((
                                    format!("{prefix}{k}"),
                                    String::from_utf8_lossy(&v).into_owned(),
                                ));
                            }
                        }
                        Err(_) if from[key]["optional"] == json!(true) => {}
                        Err(_) => {
                            return Err(format!("{} \"{name}\" not found", &kind[..kind.len() - 1]))
                        }
                    }
                }
            }
        }
        for e in spec["env"].as_array().cloned().unwrap_or_default() {
            let name = e["name"].as_str().unwrap_or_default().to_string();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else if let Some(field) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                match field {
                    "metadata.name" => pod.name.clone(),
                    "metadata.namespace" => pod.ns.clone(),
                    "metadata.uid" => pod.uid.clone(),
                    "spec.nodeName" => self.node.clone(),
                    "status.podIP" => pod.ip.map(|i| i.to_string()).unwrap_or_default(),
                    "status.hostIP" => self.node_ip.to_string(),
                    _ => String::new(),
                }
            } else {
                let mut found = String::new();
                for (kind, key) in [
                    ("configmaps", "configMapKeyRef"),
                    ("secrets", "secretKeyRef"),
                ] {
                    let r = &e["valueFrom"][key];
                    if let (Some(n), Some(k)) = (r["name"].as_str(), r["key"].as_str()) {
                        let o = self
                            .get_object(&format!("/api/v1/namespaces/{}/{kind}/{n}", pod.ns))
                            .await;
                        match o.ok().and_then(|o| data_of(&o).remove(k)) {
                            Some(v) => found = String::from_utf8_lossy(&v).into_owned(),
                            None if r["optional"] == json!(true) => {}
                            None => {
                                return Err(format!(
                                    "couldn't find key {k} in {} {}/{n}",
                                    &kind[..kind.len() - 1],
                                    pod.ns
                                ))
                            }
                        }
                    }
                }
                found
            };
            env.push((name, value));
        }
        Ok(env)
    }

    /// (host path, container path, read-only) of each volume mount, volumes prepared.
    async fn mounts(&self, pod: &Pod, spec: &Value) -> Result<Vec<(String, String, bool)>, String> {
        let volumes = pod.spec["volumes"].as_array().cloned().unwrap_or_default();
        let mut out = Vec::new();
        for m in spec["volumeMounts"].as_array().cloned().unwrap_or_default() {
            let vname = m["name"].as_str().unwrap_or_default();
            let v = volumes
                .iter()
                .find(|v| v["name"] == json!(vname))
                .ok_or_else(|| format!("volume {vname} is not declared in the pod"))?;
            let mut ro = m["readOnly"] == json!(true);
            let host: PathBuf = if !v["emptyDir"].is_null() {
                pod.dir.join("volumes/kubernetes.io~empty-dir").join(vname)
            } else if let Some(path) = v["hostPath"]["path"].as_str() {
                PathBuf::from(path)
            } else if !v["configMap"].is_null() || !v["secret"].is_null() {
                ro = true;
                let (kind, name, dirname) = if !v["configMap"].is_null() {
                    (
                        "configmaps",
                        v["configMap"]["name"].as_str().unwrap_or_default(),
                        "kubernetes.io~configmap",
                    )
                } else {
                    (
                        "secrets",
                        v["secret"]["secretName"].as_str().unwrap_or_default(),
                        "kubernetes.io~secret",
                    )
                };
                let src = if kind == "configmaps" {
                    &v["configMap"]
                } else {
                    &v["secret"]
                };
                let dir = pod.dir.join("volumes").join(dirname).join(vname);
                let obj = self
                    .get_object(&format!("/api/v1/namespaces/{}/{kind}/{name}", pod.ns))
                    .await
                    .map_err(|_| format!("{} \"{name}\" not found", &kind[..kind.len() - 1]))?;
                let data = data_of(&obj);
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                let items: Vec<(String, String)> = match src["items"].as_array() {
                    Some(items) => items
                        .iter()
                        .filter_map(|i| {
                            Some((
                                i["key"].as_str()?.to_string(),
                                i["path"].as_str()?.to_string(),
                            ))
                        })
                        .collect(),
                    None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
                };
                for (key, path) in items {
                    if let Some(bytes) = data.get(&key) {
                        let p = dir.join(&path);
                        if let Some(parent) = p.parent() {
                            let _ = std::fs::create_dir_all(parent);
                        }
                        std::fs::write(&p, bytes).map_err(|e| e.to_string())?;
                    }
                }
                dir
            } else if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
                let pvc = self
                    .get_object(&format!(
                        "/api/v1/namespaces/{}/persistentvolumeclaims/{claim}",
                        pod.ns
                    ))
                    .await?;
                let pv_name = pvc["spec"]["volumeName"]
                    .as_str()
                    .ok_or_else(|| format!("persistentvolumeclaim {claim} is not bound"))?;
                let pv = self
                    .get_object(&format!("/api/v1/persistentvolumes/{pv_name}"))
                    .await?;
                PathBuf::from(
                    pv["spec"]["hostPath"]["path"]
                        .as_str()
                        .or_else(|| pv["spec"]["local"]["path"].as_str())
                        .ok_or_else(|| {
                            format!("persistentvolume {pv_name} is neither hostPath nor local")
                        })?,
                )
            } else {
                return Err(format!("volume {vname}: only emptyDir, hostPath, configMap, secret and persistentVolumeClaim volumes are run by the k3s stand-in"));
            };
            let host = match m["subPath"].as_str() {
                Some(sub) if !sub.is_empty() => host.join(sub),
                _ => host,
            };
            if !host.exists() {
                std::fs::create_dir_all(&host).map_err(|e| format!("{}: {e}", host.display()))?;
            }
            let dst = m["mountPath"].as_str().unwrap_or_default().to_string();
            out.push((host.display().to_string(), dst, ro));
        }
        Ok(out)
    }

    async fn probe(&mut self, pod: &mut Pod, i: usize) {
        let ip = pod.ip.unwrap_or(self.node_ip);
        let id = pod.containers[i].id.clone().unwrap_or_default();
        let spec = pod.containers[i].spec.clone();
        for liveness in [false, true] {
            let slot = if liveness {
                &mut pod.containers[i].liveness
            } else {
                &mut pod.containers[i].readiness
            };
            let Some(p) = slot.as_mut() else { continue };
            if Instant::now() < p.next {
                continue;
            }
            let period = p.spec["periodSeconds"].as_u64().unwrap_or(10).max(1);
            p.next = Instant::now() + Duration::from_secs(period);
            let timeout =
                Duration::from_secs(p.spec["timeoutSeconds"].as_u64().unwrap_or(1).max(1));
            let result = run_probe(&self.runtime, &p.spec, &spec, ip, &id, timeout).await;
            match result {
                Ok(()) => {
                    p.successes += 1;
                    p.failures = 0;
                    if p.successes >= p.spec["successThreshold"].as_i64().unwrap_or(1) {
                        p.passing = true;
                    }
                }
                Err(why) => {
                    p.failures += 1;
                    p.successes = 0;
                    let kind = if liveness { "Liveness" } else { "Readiness" };
                    log::info(format!(
                        "pod {}/{}: {kind} probe failed: {why}",
                        pod.ns, pod.name
                    ));
                    if p.failures >= p.spec["failureThreshold"].as_i64().unwrap_or(3) {
                        p.passing = false;
                        if liveness {
                            log::info(format!(
                                "pod {}/{}: container {} failed liveness probe, will be restarted",
                                pod.ns, pod.name, spec["name"]
                            ));
                            let _ = self
                                .runtime
                                .run(&["tasks", "kill", "-s", "SIGKILL", &id])
                                .await;
                            p.failures = 0;
                        }
                    }
                }
            }
        }
        let c = &mut pod.containers[i];
        c.ready = matches!(c.state, State::Running { .. })
            && c.readiness.as_ref().is_none_or(|p| p.passing);
    }

    async fn post_status(&mut self, uid: &str) {
        let Some(pod) = self.pods.get_mut(uid) else {
            return;
        };
        let statuses: Vec<Value> = pod
            .containers
            .iter()
            .map(|c| {
                let mut s = json!({
                    "name": c.spec["name"], "image": c.spec["image"], "imageID": "",
                    "ready": c.ready, "restartCount": c.restarts,
                    "started": matches!(c.state, State::Running { .. }),
                    "state": state_json(&c.state),
                    "lastState": c.last_state.as_ref().map(state_json).unwrap_or_else(|| json!({})),
                });
                if let Some(id) = &c.id {
                    s["containerID"] = json!(format!("containerd://{id}"));
                }
                s
            })
            .collect();
        let all_ready = !pod.containers.is_empty() && pod.containers.iter().all(|c| c.ready);
        let restart_policy = pod.spec["restartPolicy"].as_str().unwrap_or("Always");
        let terminated: Vec<i32> = pod
            .containers
            .iter()
            .filter_map(|c| match c.state {
                State::Terminated { exit, .. } => Some(exit),
                _ => None,
            })
            .collect();
        let all_done = terminated.len() == pod.containers.len() && restart_policy != "Always";
        let phase = if all_done && terminated.iter().all(|e| *e == 0) {
            "Succeeded"
        } else if all_done {
            "Failed"
        } else if pod
            .containers
            .iter()
            .any(|c| matches!(c.state, State::Running { .. }) || c.restarts > 0)
        {
            "Running"
        } else {
            "Pending"
        };
        let cond = |t: &str, ok: bool, reason: Option<&str>| {
            let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": pod.start_time});
            if let (false, Some(r)) = (ok, reason) {
                c["reason"] = json!(r);
            }
            c
        };
        let mut status = json!({
            "phase": phase,
            "conditions": [
                cond("PodReadyToStartContainers", true, None),
                cond("Initialized", true, None),
                cond("Ready", all_ready, Some(if phase == "Succeeded" { "PodCompleted" } else { "ContainersNotReady" })),
                cond("ContainersReady", all_ready, Some(if phase == "Succeeded" { "PodCompleted" } else { "ContainersNotReady" })),
                cond("PodScheduled", true, None),
            ],
            "hostIP": self.node_ip.to_string(),
            "hostIPs": [{"ip": self.node_ip.to_string()}],
            "startTime": pod.start_time,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        });
        if let Some(ip) = pod.ip {
            status["podIP"] = json!(ip.to_string());
            status["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
        if status == pod.last_status {
            return;
        }
        let body = serde_json::to_vec(&json!({"status": status})).unwrap_or_default();
        let path = format!("/api/v1/namespaces/{}/pods/{}/status", pod.ns, pod.name);
        if let Ok((200, _)) = self
            .client
            .request(
                "PATCH",
                &path,
                Some("application/merge-patch+json"),
                body,
                &[],
            )
            .await
        {
            pod.last_status = status;
        }
    }
}

fn state_json(s: &State) -> Value {
    match s {
        State::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        }
        State::Running { started } => json!({"running": {"startedAt": started}}),
        State::Terminated {
            exit,
            reason,
            started,
            finished,
        } => {
            json!({"terminated": {"exitCode": exit, "reason": reason, "startedAt": started, "finishedAt": finished}})
        }
    }
}

/// The data of a ConfigMap or Secret (Secret data base64-decoded), by key.
fn data_of(obj: &Value) -> BTreeMap<String, Vec<u8>> {
    use base64::Engine;
    let mut out = BTreeMap::new();
    let secret = obj["kind"] == "Secret";
    if let Some(m) = obj["data"].as_object() {
        for (k, v) in m {
            let s = v.as_str().unwrap_or_default();
            let bytes = if secret {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .unwrap_or_default()
            } else {
                s.as_bytes().to_vec()
            };
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(m) = obj["stringData"].as_object() {
        for (k, v) in m {
            out.insert(
                k.clone(),
                v.as_str().unwrap_or_default().as_bytes().to_vec(),
            );
        }
    }
    if let Some(m) = obj["binaryData"].as_object() {
        for (k, v) in m {
            out.insert(
                k.clone(),
                base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap_or_default())
                    .unwrap_or_default(),
            );
        }
    }
    out
}

fn port_of(port: &Value, container: &Value) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().map(|p| p as u16),
        Value::String(name) => container["ports"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == json!(name))
            .and_then(|p| p["containerPort"].as_u64())
            .map(|p| p as u16),
        _ => None,
    }
}

/// Runs one probe; `Err` carries the kubelet's wording of the failure.
async fn run_probe(
    runtime: &Runtime,
    probe: &Value,
    container: &Value,
    ip: Ipv4Addr,
    id: &str,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(cmd) = probe["exec"]["command"].as_array() {
        let argv: Vec<String> = cmd
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        let exec_id = format!("probe-{}", crate::pki::random_hex(4));
        let mut args: Vec<&str> = vec!["tasks", "exec", "--exec-id", &exec_id, id];
        args.extend(argv.iter().map(String::as_str));
        return match tokio::time::timeout(timeout.max(Duration::from_secs(5)), runtime.run(&args))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("command {argv:?} failed: {e}")),
            Err(_) => Err(format!("command {argv:?} timed out")),
        };
    }
    let (get, section) = if probe["httpGet"].is_object() {
        (true, &probe["httpGet"])
    } else if probe["tcpSocket"].is_object() {
        (false, &probe["tcpSocket"])
    } else {
        return Ok(());
    };
    let port = port_of(&section["port"], container).ok_or("probe port not found")?;
    let host = section["host"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| ip.to_string());
    let addr = format!("{host}:{port}");
    let attempt = async {
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("dial tcp {addr}: connect: {}", e.to_string().to_lowercase()))?;
        if !get {
            return Ok(());
        }
        let path = section["path"].as_str().unwrap_or("/");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.31\r\nConnection: close\r\n\r\n");
        conn.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1024];
        let n = conn.read(&mut buf).await.map_err(|e| e.to_string())?;
        let head = String::from_utf8_lossy(&buf[..n]);
        let code: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r.map_err(|e| if get { format!("Get \"http://{addr}{}\": {e}", section["path"].as_str().unwrap_or("/")) } else { e }),
        Err(_) => Err(format!("Get \"http://{addr}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")),
    }
}
