//! Test nodes on this machine: each node is a network namespace (a veth link to a bridge in a
//! private "switch" namespace, its own address and default route) plus a mount namespace whose
//! /etc, /var/lib and /run are overlays on the real ones, so k3s's real paths
//! (/etc/rancher, /var/lib/rancher, /run/k3s) are used and the machine's own files are never
//! touched. A node may run its own real containerd (the harness's), inside its namespaces.
//! `FERRY_TEST_K3S=/path/to/k3s` runs a real k3s instead of the stand-in.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ferry_tests::docker::Containerd;
use ferry_tests::sshd::ScratchDir;
use serde_json::Value;

static LANS: AtomicU32 = AtomicU32::new(0);

/// The k3s binary under test: `FERRY_TEST_K3S` or the stand-in (from another crate's tests,
/// which include this module: target/debug/k3s-STAND-IN, built when missing).
pub fn k3s_binary() -> String {
    if let Ok(k) = std::env::var("FERRY_TEST_K3S") {
        return k;
    }
    if let Some(b) = option_env!("CARGO_BIN_EXE_k3s-STAND-IN") {
        return b.to_string();
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    // target/debug/deps/TEST-HASH -> target/debug/k3s-STAND-IN
    let standin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} has no target directory", exe.display()))
        .join("k3s-STAND-IN");
    if !standin.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "-p", "k3s-standin", "--bin", "k3s-STAND-IN"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "building the k3s stand-in failed");
    }
    standin.display().to_string()
}

/// Whether these tests can run here (root, iproute2, util-linux, containerd); prints the loud
/// SKIPPED line otherwise (and fails under CI=true).
pub fn available(with_containerd: bool) -> bool {
    let mut missing = None;
    for tool in ["/usr/sbin/ip", "/usr/bin/nsenter", "/usr/bin/unshare"] {
        if !Path::new(tool).exists() {
            missing = Some(format!(
                "{tool} is missing (apt-get install iproute2 util-linux)"
            ));
        }
    }
    if missing.is_none() && !ferry_tests::is_root() {
        missing = Some("the k3s stand-in's network-namespace tests need root".into());
    }
    if !ferry_tests::require(missing) {
        return false;
    }
    !with_containerd || ferry_tests::docker::containerd_available()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sh(script: &str) {
    run(Command::new("sh").args(["-ec", script]));
}

/// A bridge (in its own namespace) and the nodes on it.
pub struct Lan {
    pub id: String,
    switch: String,
    pub nodes: Vec<Node>,
    dir: ScratchDir,
}

/// One test node.
pub struct Node {
    pub name: String,
    pub netns: String,
    pub ip: String,
    dir: PathBuf,
    switch: String,
    host_veth: String,
    pub containerd: Option<Containerd>,
    k3s: Option<Child>,
    notify: Option<std::os::unix::net::UnixDatagram>,
    log: PathBuf,
}

impl Lan {
    /// `n` nodes at 10.77.0.11, .12, … (on to 10.77.1.0 and beyond past the 245th) on a bridge
    /// with no route out.
    pub fn new(n: usize) -> Lan {
        let seq = LANS.fetch_add(1, Ordering::SeqCst);
        let id = format!("k{}{seq}", std::process::id() % 100_000);
        let dir = ScratchDir::new(&format!("k3snodes-{id}"));
        let switch = format!("{id}sw");
        sh(&format!(
            "ip netns add {switch}; ip -n {switch} link set lo up; \
             ip -n {switch} link add br0 type bridge; ip -n {switch} link set br0 up"
        ));
        let mut lan = Lan {
            id: id.clone(),
            switch: switch.clone(),
            nodes: Vec::new(),
            dir,
        };
        for i in 0..n {
            let node = Node::new(&lan, i);
            lan.nodes.push(node);
        }
        lan
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut() {
            n.stop_k3s();
            n.containerd = None;
        }
        for n in &self.nodes {
            for ns in ["ns/mnt", "ns/uts"] {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(n.dir.join(ns))
                    .status();
            }
            let _ = Command::new("umount")
                .arg("-l")
                .arg(n.dir.join("ns"))
                .status();
            let _ = Command::new("ip").args(["netns", "del", &n.netns]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.switch])
            .status();
    }
}

impl Node {
    fn new(lan: &Lan, i: usize) -> Node {
        let name = format!("node{i}");
        let netns = format!("{}n{i}", lan.id);
        let ip = format!("10.77.{}.{}", (11 + i) / 256, (11 + i) % 256);
        let host_veth = format!("{}v{i}", lan.id);
        let peer = format!("{}p{i}", lan.id);
        let sw = &lan.switch;
        sh(&format!(
            "ip netns add {netns}; ip -n {netns} link set lo up; \
             ip link add {host_veth} type veth peer name {peer}; \
             ip link set {host_veth} netns {sw}; ip link set {peer} netns {netns}; \
             ip -n {netns} link set {peer} name eth0; \
             ip -n {sw} link set {host_veth} master br0 up; \
             ip -n {netns} addr add {ip}/16 dev eth0; ip -n {netns} link set eth0 up; \
             ip -n {netns} route add default via 10.77.0.1"
        ));
        let dir = lan.dir.path().join(&name);
        for d in [
            "etc-up",
            "etc-work",
            "varlib-up",
            "varlib-work",
            "run-up",
            "run-work",
            "ns",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap_or_else(|e| panic!("{e}"));
        }
        // A mount namespace kept alive by a bind mount of its nsfs file (the parent mount must
        // be private for that).
        let d = dir.display();
        sh(&format!(
            "mount --bind {d}/ns {d}/ns; mount --make-private {d}/ns; touch {d}/ns/mnt {d}/ns/uts; \
             unshare --mount={d}/ns/mnt --uts={d}/ns/uts --propagation private sh -ec '\
               mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/etc-up,workdir={d}/etc-work /etc; \
               mount -t overlay overlay -o lowerdir=/var/lib,upperdir={d}/varlib-up,workdir={d}/varlib-work /var/lib; \
               mount -t overlay overlay -o lowerdir=/run,upperdir={d}/run-up,workdir={d}/run-work /run; \
               echo {name} > /etc/hostname; hostname {name}'"
        ));
        Node {
            name,
            netns,
            ip,
            log: dir.join("k3s.log"),
            dir,
            switch: lan.switch.clone(),
            host_veth,
            containerd: None,
            k3s: None,
            notify: None,
        }
    }

    /// `nsenter` into this node's network and mount namespaces.
    pub fn wrapper(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            format!("--net=/run/netns/{}", self.netns),
            format!("--mount={}", self.dir.join("ns/mnt").display()),
            format!("--uts={}", self.dir.join("ns/uts").display()),
            "--".into(),
        ]
    }

    fn command(&self, program: &str) -> Command {
        let w = self.wrapper();
        let mut c = Command::new(&w[0]);
        c.args(&w[1..]).arg(program);
        c
    }

    /// Runs a shell script on the node; returns its output (not asserted).
    pub fn sh(&self, script: &str) -> Output {
        self.command("sh")
            .args(["-c", script])
            .output()
            .unwrap_or_else(|e| panic!("nsenter: {e}"))
    }

    /// Writes `content` to `path` as the node sees it.
    pub fn write(&self, path: &str, content: &[u8]) {
        let mut child = self
            .command("sh")
            .args([
                "-ec",
                &format!("mkdir -p \"$(dirname {path})\"; cat > {path}"),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("nsenter: {e}"));
        child.stdin.take().map(|mut s| s.write_all(content));
        assert!(
            child.wait().map(|s| s.success()).unwrap_or(false),
            "writing {path} on {}",
            self.name
        );
    }

    /// Makes the node a host ferry's baseline can set up without reaching past its namespaces:
    /// its own machine id (`id`), `names` for 127.0.1.1 in /etc/hosts (sudo looks its host's
    /// name up, and a node has no DNS to wait on), and `systemctl` (a script; no systemd runs
    /// on a node) first on sudo's path.
    pub fn prepare_for_ferry(&self, id: u64, names: &[&str], systemctl: &str) {
        self.write("/etc/ferry-test-bin/systemctl", systemctl.as_bytes());
        let out = self.sh(&format!(
            "printf '%032x\\n' {id} > /etc/machine-id && \
             printf '127.0.1.1 %s\\n' '{names}' >> /etc/hosts && \
             chmod 0755 /etc/ferry-test-bin/systemctl && \
             printf 'Defaults secure_path=\"/etc/ferry-test-bin:/usr/sbin:/usr/bin:/sbin:/bin\"\\n' \
               > /etc/sudoers.d/zz-ferry-test-bin && chmod 0440 /etc/sudoers.d/zz-ferry-test-bin",
            names = names.join(" ")
        ));
        assert!(
            out.status.success(),
            "preparing {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Copies a file of this machine to `path` on the node.
    pub fn copy_in(&self, from: &Path, path: &str) {
        self.write(
            path,
            &std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())),
        );
    }

    /// `path` on the node, if it exists.
    pub fn read(&self, path: &str) -> Option<String> {
        let out = self.command("cat").arg(path).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `stat -c FORMAT path` on the node.
    pub fn stat(&self, format: &str, path: &str) -> String {
        let out = self
            .command("stat")
            .args(["-c", format, path])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts a real containerd in this node's namespaces.
    pub fn start_containerd(&mut self) -> String {
        let c = Containerd::start_with(&self.wrapper());
        let sock = c.socket().display().to_string();
        self.containerd = Some(c);
        format!("unix://{sock}")
    }

    /// `ctr -n k8s.io ARGS` against this node's containerd.
    pub fn ctr(&self, args: &[&str]) -> Output {
        let c = self
            .containerd
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no containerd", self.name));
        self.command("ctr")
            .arg("--address")
            .arg(c.socket())
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ctr: {e}"))
    }

    /// Starts `k3s ARGS` on the node (as systemd would: NOTIFY_SOCKET set, output to a log).
    pub fn start_k3s(&mut self, args: &[&str], env: &[(&str, &str)]) {
        assert!(self.k3s.is_none(), "k3s already runs on {}", self.name);
        let sock_path = self.dir.join("notify.sock");
        let _ = std::fs::remove_file(&sock_path);
        let sock =
            std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap_or_else(|e| panic!("{e}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{e}"));
        let child = self
            .command(&k3s_binary())
            .args(args)
            .env("NOTIFY_SOCKET", &sock_path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting k3s: {e}"));
        self.k3s = Some(child);
        self.notify = Some(sock);
    }

    /// Waits for the service's `READY=1` (as systemd's Type=notify does).
    pub fn wait_notify_ready(&self, timeout: Duration) -> bool {
        let Some(sock) = &self.notify else {
            return false;
        };
        let _ = sock.set_read_timeout(Some(timeout));
        let mut buf = [0u8; 256];
        match sock.recv(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).contains("READY=1"),
            Err(_) => false,
        }
    }

    /// Stops k3s with SIGTERM (as `systemctl stop` does).
    pub fn stop_k3s(&mut self) {
        if let Some(mut c) = self.k3s.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether k3s exited, with its exit code.
    pub fn k3s_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(Ok(Some(status))) = self.k3s.as_mut().map(Child::try_wait) {
                self.k3s = None;
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What k3s logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.log_text().contains(needle))
    }

    /// `k3s kubectl ARGS` on the node, with `stdin`.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(&k3s_binary())
            .arg("kubectl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("kubectl: {e}"));
        if let Some(mut s) = child.stdin.take() {
            if let Some(text) = stdin {
                let _ = s.write_all(text.as_bytes());
            }
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("kubectl: {e}"))
    }

    /// `kubectl ARGS -o json`, asserted to succeed, parsed.
    pub fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.kubectl(&all, None);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("kubectl {args:?} JSON: {e}"))
    }

    /// The nodes the cluster lists (name → object), asked on this node.
    pub fn nodes(&self) -> Vec<Value> {
        let out = self.kubectl(&["get", "nodes", "-o", "json"], None);
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The Ready condition status of node `name` ("True", "Unknown", …), if listed.
    pub fn ready_status(&self, name: &str) -> Option<String> {
        self.nodes()
            .iter()
            .find(|n| n["metadata"]["name"] == name)
            .and_then(|n| {
                n["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == "Ready")
                    .and_then(|c| c["status"].as_str().map(str::to_string))
            })
    }

    /// Takes the node's link to the bridge down (a network partition) or up again.
    pub fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        sh(&format!(
            "ip -n {} link set {} {state}",
            self.switch, self.host_veth
        ));
    }
}

/// Polls `f` every 250 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An OCI image archive (what `ctr images import` and k3s's air-gap directory take) of one
/// image: static busybox plus `files`, named `reference`.
pub fn busybox_archive(reference: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let layer = ferry_tests::docker::busybox_rootfs(files);
    let digest = |b: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(b)));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
    }))
    .unwrap_or_default();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len()}],
    }))
    .unwrap_or_default();
    let full = if reference.contains('/') {
        format!("docker.io/{reference}")
    } else {
        format!("docker.io/library/{reference}")
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest), "size": manifest.len(),
            "annotations": {"io.containerd.image.name": full, "org.opencontainers.image.ref.name": reference.rsplit(':').next().unwrap_or("latest")},
        }],
    }))
    .unwrap_or_default();
    let mut t = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        t.append_data(&mut h, path, data)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for blob in [&config, &manifest, &layer] {
        add(&format!("blobs/sha256/{}", &digest(blob)[7..]), blob);
    }
    t.into_inner().unwrap_or_else(|e| panic!("{e}"))
}
