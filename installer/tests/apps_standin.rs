//! `ferry app deploy`, `status`, `history`, `rollback` and `remove` against a k3s STAND-IN
//! cluster on this machine: one node (network and mount namespaces, its own real containerd,
//! tests/k3s-standin/tests/support) with a real sshd inside it, reached by ferry over SSH as a
//! site's first server is. Pods run for real; probes are real HTTP requests.
//! Each node is in network and mount namespaces of its own: tests may run side by side.
#![allow(clippy::unwrap_used)]

#[path = "../../tests/k3s-standin/tests/support/mod.rs"]
mod support;

mod cli;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use ferry_tests::sshd::{self, Sshd, SshdOptions};
use serde_json::Value;

/// ferry, run inside the node's network namespace (the node's address is reachable there only),
/// with `env` added to its environment.
fn ferry(netns: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// app.yaml of version `version`: one web service answering `page` on 8080, its readiness
/// probe on `probe_path`.
fn app_yaml(image: &str, version: &str, page_env: &str, probe_path: &str) -> String {
    format!(
        "name: shop\nversion: {version}\ndescription: A test shop.\n\
         components:\n  - name: web\n    kind: service\n    image: \"{image}\"\n\
         \x20   command: [httpd, -f, -p, \"8080\", -h, /www]\n\
         \x20   ports:\n      - {{name: http, port: 8080}}\n\
         \x20   env:\n      PAGE: \"{page_env}\"\n\
         \x20   readiness:\n      http: {{path: {probe_path}, port: http}}\n      period: 1s\n"
    )
}

/// The IPs of the running pods of `component`, read on the node.
fn pod_ips(node: &support::Node, component: &str) -> Vec<String> {
    let out = node.sh(&format!(
        "{} kubectl get pods -A -l app.kubernetes.io/component={component} -o json",
        support::k3s_binary()
    ));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"]["phase"] == "Running")
        .filter_map(|p| p["status"]["podIP"].as_str().map(String::from))
        .collect()
}

/// Asks `http://IP:8080/` from inside `netns` every 250 ms until `stop`: (answered, failed,
/// longest run of failures in seconds).
fn poll_web(netns: &str, ips: &[String], stop: &std::sync::atomic::AtomicBool) -> (u32, u32, f64) {
    cli::poll(stop, Duration::from_millis(250), || {
        ips.iter().any(|ip| {
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{netns}"))
                .args(["--", "wget", "-q", "-T", "1", "-O", "/dev/null"])
                .arg(format!("http://{ip}:8080/"))
                .status()
                .is_ok_and(|s| s.success())
        })
    })
}

/// A busybox image `NAME:TAG` holding `files`, imported into the node's containerd and named
/// as ferry's images step names it (by tag and by digest: a pod naming `NAME:TAG@sha256:…`
/// resolves through the digest name only, cluster/images.rs); `NAME:TAG@DIGEST`.
fn import_busybox(
    node: &support::Node,
    endpoint: &str,
    name: &str,
    tag: &str,
    files: &[(&str, &[u8])],
) -> String {
    let archive = support::busybox_archive(&format!("{name}:{tag}"), files);
    let index: Value = {
        let mut t = tar::Archive::new(&archive[..]);
        let mut found = Value::Null;
        for e in t.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some("index.json") {
                found = serde_json::from_reader(&mut e).unwrap();
            }
        }
        found
    };
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let file = format!("/var/tmp/{}.tar", name.replace('/', "-"));
    node.write(&file, &archive);
    let sock = endpoint.trim_start_matches("unix://");
    let out = node.sh(&format!(
        "ctr -a {sock} -n k8s.io images import {file} >/dev/null && \
         ctr -a {sock} -n k8s.io images tag --force docker.io/{name}:{tag} docker.io/{name}@{digest}"
    ));
    assert!(out.status.success(), "{}", text(&out));
    format!("{name}:{tag}@{digest}")
}

/// The answer file, its `[apps]` table `apps`.
fn answers(apps: &str) -> String {
    format!("inventory = \"inventory.toml\"\n\n[cluster]\nname = \"site-a\"\n\n[apps]\n{apps}")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A site of one stand-in node, the first server, reached over SSH; the busybox image
/// `demo/shop:1` (a page in /www) in its containerd; a vendor key to sign packages with.
/// Fields drop in order: sshd, then the node, then the site's directory.
struct Site {
    _sshd: Sshd,
    lan: support::Lan,
    dir: tempfile::TempDir,
    /// The image, by tag and digest.
    image: String,
    /// The node's containerd.
    endpoint: String,
}

impl Site {
    /// The site with `apps` as the answer file's `[apps]` table; `None` where the stand-in
    /// cannot run (not root, tools missing).
    fn start(apps: &str) -> Option<Site> {
        if !support::available(true) || !sshd::available() {
            return None;
        }
        let fx = sshd::fixture();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();

        let mut lan = support::Lan::new(1);
        let endpoint = lan.nodes[0].start_containerd();
        let node = &mut lan.nodes[0];
        // The image: busybox with a page, imported into the node's containerd.
        let image = import_busybox(
            node,
            &endpoint,
            "demo/shop",
            "1",
            &[("www/index.html", b"shop\n")],
        );
        node.write(
            "/etc/rancher/k3s/config.yaml",
            format!("token: apps-token\ncontainer-runtime-endpoint: {endpoint}\n").as_bytes(),
        );
        node.start_k3s(&["server"], &[]);
        assert!(
            node.wait_notify_ready(Duration::from_secs(120)),
            "{}",
            node.log_text()
        );
        // `k3s` on the node's PATH for sudo, as install.sh puts it in /usr/local/bin.
        let k3s = support::k3s_binary();
        let out = node.sh(&format!(
            "mkdir -p /etc/ferry-test-bin && ln -sf {k3s} /etc/ferry-test-bin/k3s && \
             printf 'Defaults secure_path=\"/etc/ferry-test-bin:/usr/sbin:/usr/bin:/sbin:/bin\"\\n' \
               > /etc/sudoers.d/zz-ferry-test-k3s && chmod 0440 /etc/sudoers.d/zz-ferry-test-k3s"
        ));
        assert!(out.status.success(), "{}", text(&out));
        let sshd = Sshd::start_with(SshdOptions {
            listen: node.ip.clone(),
            netns: Some(node.netns.clone()),
            wrapper: Some(node.wrapper()),
            ..Default::default()
        });

        std::fs::write(
            p.join("inventory.toml"),
            format!(
                "[[hosts]]\nname = \"node0\"\naddress = \"{}\"\nport = {}\nuser = \"{}\"\nkey = \"{}\"\n\
                 sudo = \"passwordless\"\nroles = [\"server\"]\n",
                node.ip,
                sshd.port,
                sshd::SUDO_USER,
                fx.keys.ed25519.display()
            ),
        )
        .unwrap();
        std::fs::write(p.join("site.toml"), answers(apps)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["key", "generate", "-o", "vendor"])
            .current_dir(p)
            .output()
            .unwrap();
        ok(&out);
        Some(Site {
            _sshd: sshd,
            lan,
            dir,
            image,
            endpoint,
        })
    }

    /// `ferry ARGS` with the site's answer file, known hosts and run directory.
    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// [`Site::run`] with `env` added to ferry's environment.
    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&[
            "--answers",
            "site.toml",
            "--known-hosts",
            "known_hosts",
            "--run-dir",
            "runs",
        ]);
        ferry(&self.lan.nodes[0].netns, self.dir.path(), &all, env)
    }

    /// Packs `app_yaml` as NAME-VERSION.fap signed with the vendor key; its file name.
    fn pack(&self, dir: &str, app_yaml: &str) -> String {
        let d = self.dir.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("app.yaml"), app_yaml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["app", "pack"])
            .arg(&d)
            .args(["--sign-key", "vendor"])
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let said = ok(&out);
        said.lines()
            .find_map(|l| l.strip_prefix("wrote "))
            .and_then(|l| l.split(' ').next())
            .unwrap()
            .to_string()
    }

    /// Names the answer file's `[apps]` table `apps` from now on.
    fn set_apps(&self, apps: &str) {
        std::fs::write(self.dir.path().join("site.toml"), answers(apps)).unwrap();
    }
}

#[test]
fn deploys_upgrades_rolls_back_a_failed_probe_and_removes_an_app() {
    let Some(site) = Site::start("timeout = 90\n") else {
        return;
    };
    let run = |args: &[&str]| site.run(args);
    let fx_ok = ok;
    let pack = |version: &str, page: &str, probe: &str| {
        site.pack(
            &format!("shop-{version}"),
            &app_yaml(&site.image, version, page, probe),
        )
    };
    let v1 = pack("1.0.0", "one", "/");
    let v2 = pack("2.0.0", "two", "/");
    let v3 = pack("3.0.0", "three", "/missing");

    // v1: healthy, recorded as revision 1.
    let t = std::time::Instant::now();
    let out = fx_ok(&run(&["app", "deploy", "--pubkey", "vendor.pub", &v1]));
    eprintln!("deploy v1: {:.1}s: {out}", t.elapsed().as_secs_f64());
    println!(
        "BENCH apps deploy v1 (first install): {:.1} s wall; {}",
        t.elapsed().as_secs_f64(),
        cli::deploy_times(&out)
    );
    assert!(out.contains("shop 1.0.0: deployed as revision 1"), "{out}");
    let status: Value =
        serde_json::from_str(&fx_ok(&run(&["app", "status", "shop", "--json"]))).unwrap();
    assert_eq!(status["healthy"], true, "{status}");
    assert_eq!(status["components"][0]["component"], "web");

    // v2: healthy; history 1 superseded, 2 deployed.
    let t = std::time::Instant::now();
    let out = fx_ok(&run(&["app", "deploy", "--pubkey", "vendor.pub", &v2]));
    assert!(out.contains("shop 2.0.0: deployed as revision 2"), "{out}");
    println!(
        "BENCH apps upgrade v1->v2: {:.1} s wall; {}",
        t.elapsed().as_secs_f64(),
        cli::deploy_times(&out)
    );
    // v2's pods answer over HTTP, asked from the node as a client on the site's network would.
    let node = &site.lan.nodes[0];
    let ips = pod_ips(node, "web");
    assert!(!ips.is_empty(), "no running web pod of v2");
    let stop = std::sync::atomic::AtomicBool::new(false);

    // v3: its probe never passes: failed, v2 back, the component and the probe named; v2
    // answers all along (its pods go only once new ones are ready, and v3's never are).
    let t = std::time::Instant::now();
    let (o, (good, bad, worst)) = std::thread::scope(|s| {
        let poller = s.spawn(|| poll_web(&node.netns, &ips, &stop));
        let o = run(&[
            "app",
            "deploy",
            "--pubkey",
            "vendor.pub",
            "--wait-timeout",
            "20",
            &v3,
        ]);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (o, poller.join().unwrap())
    });
    eprintln!("deploy v3 (fails): {:.1}s", t.elapsed().as_secs_f64());
    println!(
        "BENCH apps failed upgrade v2->v3 (probe never passes, --wait-timeout 20): {:.1} s \
         until revision 2 is recorded back; v2 answered {good} of {} requests during it, \
         longest outage {worst:.1} s",
        t.elapsed().as_secs_f64(),
        good + bad
    );
    assert_eq!(
        bad, 0,
        "v2 stopped answering during the failed v3 ({worst:.1} s)"
    );
    assert!(good > 10, "too few requests to tell ({good})");
    assert!(!o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("shop 3.0.0: FAILED (revision 3): component web (Deployment web): "),
        "{}",
        text(&o)
    );
    assert!(out.contains("probe"), "{out}");
    assert!(out.contains("shop: revision 2 restored"), "{out}");
    let history: Value =
        serde_json::from_str(&fx_ok(&run(&["app", "history", "shop", "--json"]))).unwrap();
    let states: Vec<(u64, &str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["version"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (1, "1.0.0", "superseded"),
            (2, "2.0.0", "deployed"),
            (3, "3.0.0", "failed")
        ]
    );
    let status: Value =
        serde_json::from_str(&fx_ok(&run(&["app", "status", "shop", "--json"]))).unwrap();
    assert_eq!(status["version"], "2.0.0");
    assert_eq!(status["healthy"], true, "{status}");

    // Back to 1 by hand, then list and remove.
    let out = fx_ok(&run(&["app", "rollback", "shop", "--to", "1"]));
    assert!(out.contains("shop 1.0.0: deployed as revision 4"), "{out}");
    let list: Value = serde_json::from_str(&fx_ok(&run(&["app", "list", "--json"]))).unwrap();
    assert_eq!(list[0]["app"], "shop");
    assert_eq!(list[0]["revision"], 4);
    fx_ok(&run(&["app", "remove", "shop"]));
    // The namespace, and the history in it, go as Kubernetes deletes a namespace: soon.
    assert!(support::wait_for(Duration::from_secs(30), || {
        let list: Value = serde_json::from_str(&fx_ok(&run(&["app", "list", "--json"]))).unwrap();
        list == serde_json::json!([])
    }));
    drop(site);
}

/// app.yaml of `name`: a web service as [`app_yaml`]'s, and `train`, which needs a GPU.
fn gpu_app_yaml(image: &str, name: &str) -> String {
    format!(
        "name: {name}\nversion: 1.0.0\ndescription: A test lab with a GPU worker.\n\
         components:\n  - name: web\n    kind: service\n    image: \"{image}\"\n\
         \x20   command: [httpd, -f, -p, \"8080\", -h, /www]\n\
         \x20   ports:\n      - {{name: http, port: 8080}}\n\
         \x20   readiness:\n      http: {{path: /, port: http}}\n      period: 1s\n\
         \x20 - name: train\n    kind: service\n    image: \"{image}\"\n\
         \x20   command: [sleep, \"3600\"]\n\
         \x20   resources: {{nvidia.com/gpu: 1}}\n\
         \x20   nodes: {{gpu: true}}\n"
    )
}

#[test]
fn a_gpu_component_without_a_gpu_node_fails_or_waits_as_the_answer_file_says() {
    let Some(site) = Site::start("timeout = 20\n") else {
        return;
    };
    let no_gpu = "component train (Deployment train): Pending: no node has nvidia.com/gpu";

    // fail (the default): refused when its time is up, the first install removed.
    let fap = site.pack("lab-fail", &gpu_app_yaml(&site.image, "lab-fail"));
    let t = std::time::Instant::now();
    let o = site.run(&["app", "deploy", "--pubkey", "vendor.pub", &fap]);
    eprintln!("deploy under fail: {:.1}s", t.elapsed().as_secs_f64());
    assert!(!o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let failed: Vec<&str> = out.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(
        failed,
        [format!(
            "lab-fail 1.0.0: FAILED (revision 1): {no_gpu} (not healthy after 20s)"
        )],
        "{}",
        text(&o)
    );
    assert!(
        out.contains("lab-fail: the failed first install was removed"),
        "{out}"
    );
    assert!(support::wait_for(Duration::from_secs(30), || {
        let list: Value = serde_json::from_str(&ok(&site.run(&["app", "list", "--json"]))).unwrap();
        list == serde_json::json!([])
    }));

    // allow: deployed once web is healthy; the summary and status warn about train.
    // Done once web is healthy: the time limit only has to leave room for a loaded machine.
    site.set_apps("timeout = 240\ngpu-unavailable = \"allow\"\n");
    let fap = site.pack("lab-allow", &gpu_app_yaml(&site.image, "lab-allow"));
    let t = std::time::Instant::now();
    let out = ok(&site.run(&["app", "deploy", "--pubkey", "vendor.pub", &fap]));
    eprintln!(
        "deploy under allow: {:.1}s: {out}",
        t.elapsed().as_secs_f64()
    );
    assert!(
        out.contains("lab-allow 1.0.0: deployed as revision 1"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "lab-allow: warning: {no_gpu}: waiting for a GPU node ([apps] gpu-unavailable = \"allow\")"
        )),
        "{out}"
    );
    let history: Value =
        serde_json::from_str(&ok(&site.run(&["app", "history", "lab-allow", "--json"]))).unwrap();
    assert_eq!(history[0]["status"], "deployed", "{history}");
    // The history keeps what the revision waits for, for whoever reads it months later.
    assert_eq!(
        history[0]["reason"],
        format!("waiting for a GPU node: {no_gpu}"),
        "{history}"
    );
    let status = ok(&site.run(&["app", "status", "lab-allow"]));
    assert!(
        status.contains("healthy but for components waiting for a GPU node"),
        "{status}"
    );
    assert!(
        status.contains(&format!("warning: {no_gpu}: waiting for a GPU node")),
        "{status}"
    );
    let status: Value =
        serde_json::from_str(&ok(&site.run(&["app", "status", "lab-allow", "--json"]))).unwrap();
    assert_eq!(status["healthy"], false, "{status}");
    assert_eq!(status["waiting_for_gpu"][0], no_gpu, "{status}");
    let train = status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == "train")
        .unwrap();
    assert_eq!(train["health"]["state"], "no-gpu", "{status}");
    drop(site);
}

/// `wget -q -O - URL` from inside `netns`, with `header` when given; its output.
fn fetch(netns: &str, url: &str, header: Option<&str>) -> Option<String> {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{netns}"))
        .args(["--", "wget", "-q", "-T", "3", "-O", "-"]);
    if let Some(h) = header {
        c.args(["--header", h]);
    }
    let out = c.arg(url).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The sample MCD platform the example bundle carries (examples/mcd), with its two images
/// made of busybox here (the demo's own images hold no programs: they only need the Rust
/// toolchain), packed, signed and deployed: every component of every kind runs for real in
/// the node's containerd, the web console answers through the ingress at its host name, the
/// API serves the status rendered with the site's values, the secret token comes from the
/// variable the answer file names and is never printed, and the GPU component waits for a
/// GPU node as the site allows.
#[test]
fn the_sample_mcd_platform_runs_every_component_for_real() {
    let Some(site) = Site::start(
        "timeout = 180\ngpu-unavailable = \"allow\"\ndomain = \"site.example\"\n\n\
         [apps.values.mcd]\napi-token = { env = \"FERRY_TEST_MCD_TOKEN\" }\n\n\
         [license]\nfile = \"site.lic\"\nstate-dir = \"state\"\n",
    ) else {
        return;
    };
    // The platform needs license feature mcd-platform: a license that grants it (deploy
    // checks it offline, with the activation record; apply would activate it on the hosts).
    cli::license(site.dir.path(), "mcd-platform = true\n");
    let node = &site.lan.nodes[0];
    let app = import_busybox(
        node,
        &site.endpoint,
        "demo/app",
        "1.0",
        &[("app/hello.txt", b"app\n")],
    );
    let tool = import_busybox(
        node,
        &site.endpoint,
        "demo/tool",
        "1.0",
        &[("tool/hello.txt", b"tool\n")],
    );
    let yaml = cli::sample_mcd(&site.dir.path().join("mcd"), &app, &tool);
    let fap = site.pack("mcd", &yaml);
    assert_eq!(fap, "mcd-2.3.0.fap");

    let token = "t0k3n-from-the-environment";
    let env = [("FERRY_TEST_MCD_TOKEN", token)];
    let t = std::time::Instant::now();
    let o = site.run_env(&["app", "deploy", "--pubkey", "vendor.pub", &fap], &env);
    let out = ok(&o);
    eprintln!("deploy mcd: {:.1}s: {out}", t.elapsed().as_secs_f64());
    println!(
        "BENCH apps deploy of the sample MCD platform (7 components): {:.1} s wall; {}",
        t.elapsed().as_secs_f64(),
        cli::deploy_times(&out)
    );
    assert!(out.contains("mcd 2.3.0: deployed as revision 1"), "{out}");
    assert!(
        out.contains(
            "component inference (Deployment inference): Pending: no node has nvidia.com/gpu"
        ),
        "{out}"
    );
    assert!(
        !text(&o).contains(token),
        "the token was printed: {}",
        text(&o)
    );

    // Every component's state as `ferry app status` prints it.
    let status = site.run_env(&["app", "status", "mcd"], &env);
    let said = String::from_utf8_lossy(&status.stdout).into_owned();
    let state = |component: &str| -> String {
        said.lines()
            .find(|l| l.split_whitespace().next() == Some(component))
            .unwrap_or_else(|| panic!("no line for {component}:\n{said}"))
            .to_string()
    };
    for (component, kind) in [
        ("web", "Deployment"),
        ("api", "Deployment"),
        ("db", "StatefulSet"),
        ("node-agent", "DaemonSet"),
        ("migrate", "Job"),
    ] {
        let line = state(component);
        assert!(
            line.contains(kind) && line.trim_end().ends_with("healthy"),
            "{line}\n{said}"
        );
    }
    assert!(
        state("inference").contains("no node has nvidia.com/gpu"),
        "{said}"
    );
    // The cron job is there, on its schedule (it is healthy once applied: it runs later).
    let cron = node.sh(&format!(
        "{} kubectl get cronjob report -n mcd -o json",
        support::k3s_binary()
    ));
    let cron: Value = serde_json::from_slice(&cron.stdout).unwrap_or(Value::Null);
    assert_eq!(cron["spec"]["schedule"], "0 3 * * *", "{cron}");

    // The console through the ingress, by its host name, as a browser on the site asks it.
    let url = format!("http://{}/", node.ip);
    let page = fetch(&node.netns, &url, Some("Host: console.site.example"))
        .unwrap_or_else(|| panic!("the ingress did not answer for console.site.example"));
    assert!(page.contains("<h1>MCD platform</h1>"), "{page}");
    // The API's status, rendered from the template with the site's values.
    let api = pod_ips(node, "api").pop().expect("no running api pod");
    let status = fetch(&node.netns, &format!("http://{api}:9000/status.json"), None).unwrap();
    assert_eq!(
        status.trim(),
        r#"{"app": "mcd", "version": "2.3.0", "site": "site.example"}"#
    );
    // The database answers on its port (nc echoing), with its local volume mounted.
    let db = pod_ips(node, "db").pop().expect("no running db pod");
    let echoed = node.sh(&format!("echo ping | busybox nc -w 2 {db} 5432"));
    assert_eq!(
        String::from_utf8_lossy(&echoed.stdout).trim(),
        "ping",
        "{}",
        text(&echoed)
    );

    // The history keeps the values with the secret, and never shows it.
    let history = ok(&site.run_env(&["app", "history", "mcd", "--json"], &env));
    assert!(!history.contains(token), "{history}");
    drop(site);
}
