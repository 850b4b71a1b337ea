//! The cluster phase on real VMs on a bridge with no route out (an air-gapped site): from bare
//! hosts to a Ready k3s cluster, resumed after ferry is killed, a second apply that changes
//! nothing, a 4th node added alone, a reset that leaves the hosts as before, and a powered-off
//! node rolling the run back. k3s is the k3s-STAND-IN (tests/k3s-standin) unless
//! `FERRY_TEST_K3S` names a real k3s binary. `FERRY_TEST_IMAGES=registry` runs them with the
//! images pulled from the site registry on the first server (`[cluster] images = "registry"`),
//! and the bare-VM scenario then checks that every node pulled from it and tried nothing else.
#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use vm_tests::{Testbed, Vm, VmSpec};

mod common;
use common::cluster::{
    self, answers, image_digest, inventory, inventory_with, pulls_from_registry, start_bed,
    start_bed_with, Image, K3S_VERSION,
};
use common::{expect_status, step, Site};

const APP: &str = "ferry-test/app:1";
const APP_FULL: &str = "docker.io/ferry-test/app:1";

/// A signed bundle `site.ferry` (key `vendor`) with k3s (the stand-in, and an air-gap archive
/// holding one image), the app image, and nothing else: the site's hosts get containerd from
/// their image (the baseline starts it).
fn build_bundle(dir: &Path, with_airgap: bool) -> PathBuf {
    build_bundle_with(dir, with_airgap, b"app\n")
}

/// [`build_bundle`] with `payload` as a file of the app image (the benchmark's is large).
fn build_bundle_with(dir: &Path, with_airgap: bool, payload: &[u8]) -> PathBuf {
    let out = if with_airgap {
        "site.ferry"
    } else {
        "noairgap.ferry"
    };
    let files: &[(&str, &[u8])] = &[("app-marker", payload)];
    cluster::build_bundle(
        dir,
        out,
        with_airgap,
        &[Image {
            reference: APP,
            archive: "app.tar",
            files,
        }],
    )
}

/// The app `web` 1.0.0: busybox httpd serving the app image's files on 8080 (its readiness
/// probe a real HTTP request for the image's marker file), licensed by module `vm-apps`.
/// Packed and signed with the vendor key, then added to `site.ferry`: the bundle is built
/// again with it (the image's digest is the one the first build recorded).
fn add_app(dir: &Path) {
    let digest = image_digest(&dir.join("site.ferry"), "ferry-test/app");
    fs::create_dir_all(dir.join("web")).unwrap();
    fs::write(
        dir.join("web/app.yaml"),
        format!(
            "name: web\nversion: 1.0.0\ndescription: A test page.\nlicense-feature: vm-apps\n\
             components:\n  - name: web\n    kind: service\n    image: \"{APP}@{digest}\"\n\
             \x20   command: [httpd, -f, -p, \"8080\", -h, /]\n\
             \x20   ports:\n      - {{name: http, port: 8080}}\n\
             \x20   readiness:\n      http: {{path: /app-marker, port: http}}\n      period: 1s\n"
        ),
    )
    .unwrap();
    common::ferry_in(dir, &["app", "pack", "web", "--sign-key", "vendor"]);
    cluster::add_packages(dir, &["web-1.0.0.fap"]);
}

/// The paths k3s uses on a host, as an operator would list them (path, type, and for files
/// the sha256), plus the units and the k8s.io images.
const K3S_TREE: &str = r#"
for p in /usr/local/bin/k3s /etc/rancher /var/lib/rancher /var/lib/kubelet /run/k3s \
         /etc/systemd/system/k3s.service /etc/systemd/system/k3s-agent.service \
         /var/lib/ferry/registry /etc/systemd/system/ferry-registry.service \
         /etc/ferry/registry-ca.pem /etc/containerd/certs.d; do
  [ -e "$p" ] || continue
  find "$p" -xdev \( -type d -printf '%p dir\n' \) -o \( -type f -printf '%p file ' -exec sh -c 'sha256sum < "$1" | cut -c1-16' _ {} \; \) -o -printf '%p other\n' 2>/dev/null
done | sort
echo "@images"; ctr -n k8s.io images ls -q 2>/dev/null | sort
echo "@units"; for u in k3s k3s-agent ferry-registry; do echo "$u $(systemctl is-active $u 2>/dev/null)"; done
"#;

fn k3s_tree(vm: &Vm) -> String {
    vm.ssh_ok(K3S_TREE).unwrap()
}

/// When the unit last started (monotonic µs): unchanged means not restarted.
fn started_at(vm: &Vm, unit: &str) -> String {
    vm.ssh_ok(&format!(
        "systemctl show {unit} -p ActiveEnterTimestampMonotonic --value"
    ))
    .unwrap()
    .trim()
    .to_string()
}

/// Files under /etc/rancher and the binary, with their change times: unchanged means untouched.
fn file_times(vm: &Vm) -> String {
    vm.ssh_ok(
        "find /etc/rancher /usr/local/bin/k3s /etc/systemd/system/k3s*.service \
         -printf '%p %C@\\n' 2>/dev/null | sort",
    )
    .unwrap()
}

/// What `k3s kubectl get nodes` says on `server`: (name, Ready status).
fn nodes(server: &Vm) -> Vec<(String, String)> {
    let out = server.ssh_ok("k3s kubectl get nodes -o json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut n: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .map(|c| c["status"].as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            (n["metadata"]["name"].as_str().unwrap().to_string(), ready)
        })
        .collect();
    n.sort();
    n
}

fn all_ready(server: &Vm, names: &[&str]) {
    let got = nodes(server);
    let want: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.to_string(), "True".to_string()))
        .collect();
    assert_eq!(got, want, "the nodes as `k3s kubectl get nodes` sees them");
}

/// Nothing on any node tried to reach a registry: the stand-in logs every pull attempt.
fn no_pull_attempted(bed: &Testbed) {
    for vm in bed.vms() {
        let log = vm
            .ssh_ok("journalctl -u k3s -u k3s-agent --no-pager -o cat 2>/dev/null | grep -c 'pull attempted' || true")
            .unwrap();
        assert_eq!(log.trim(), "0", "{}: a pull was attempted", vm.name());
    }
}

/// The images came through the site registry on `first` (the bundle sent there once), each of
/// `nodes` pulling by the usual name; the mirror is the only place a node tries.
fn registry_served(first: &Vm, nodes: &[&Vm]) {
    let served = first
        .ssh_ok("journalctl -u ferry-registry --no-pager -o cat")
        .unwrap();
    for vm in nodes {
        assert!(
            served
                .lines()
                .any(|l| l.starts_with(&format!("served {APP_FULL} ("))
                    && l.ends_with(&format!(" to {}", vm.address()))),
            "{} did not pull {APP_FULL} from the registry on {}:\n{served}",
            vm.name(),
            first.name()
        );
        let hosts = vm
            .ssh_ok("cat /etc/containerd/certs.d/docker.io/hosts.toml")
            .unwrap();
        assert!(
            hosts.contains(&format!("server = \"https://{}:5000\"", first.address())),
            "{}: {hosts}",
            vm.name()
        );
        let registries = vm.ssh_ok("cat /etc/rancher/k3s/registries.yaml").unwrap();
        assert!(
            registries.contains(&format!("- \"https://{}:5000\"", first.address())),
            "{}: {registries}",
            vm.name()
        );
        // An image the bundle lacks: the mirror says no, and nothing else is tried (the site
        // has no route out; the pull fails at once rather than timing out elsewhere).
        let other = vm
            .ssh_ok(
                "timeout 60 ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d \
                 docker.io/library/busybox:1.36 >/dev/null 2>&1; echo rc=$?",
            )
            .unwrap();
        assert_eq!(
            other.trim(),
            "rc=1",
            "{}: a pull outside the bundle",
            vm.name()
        );
    }
    assert!(
        !served.contains("busybox"),
        "the registry served an image the bundle lacks:\n{served}"
    );
}

/// 1 server + 2 agents from bare VMs, ferry killed during the agents and resumed, a second
/// apply with nothing to do, a 4th node added alone, a foreign host refused, then reset.
#[test]
fn bare_vms_become_a_ready_cluster_that_resumes_grows_alone_and_resets() {
    let Some((_guard, bed)) = start_bed(4) else {
        return;
    };
    let t0 = Instant::now();
    let site = Site::new(&bed);
    build_bundle(site.path(), true);
    add_app(site.path());
    // Three servers (embedded etcd: the first initializes it, the others join one at a time),
    // then a 4th host as agent.
    let inv3 = inventory_with(&site, &bed, "three.toml", 3, 3);
    let inv4 = inventory_with(&site, &bed, "four.toml", 4, 3);
    // The app needs a license, and the license the hosts' fingerprints: the first apply
    // deploys no app; from the second on, the license and the app are in.
    let licensed = "\n[license]\nfile = \"site.lic\"\nstate-dir = \"lic\"";
    let a3 = answers(
        &site,
        "site3.toml",
        &inv3,
        "site.ferry",
        "\n[apps]\ndeploy = []",
    );
    let a4 = answers(&site, "site4.toml", &inv4, "site.ferry", licensed);
    let (vm0, vm1, vm2, vm3) = (bed.vm(0), bed.vm(1), bed.vm(2), bed.vm(3));
    let before: Vec<String> = bed.vms().iter().map(k3s_tree).collect();

    step(
        "1. apply, killed as the second server has joined and the third is next",
        t0,
    );
    let running = site.start(&["apply", "--answers", &a3]);
    let killed = running.kill_at(|l| l.contains("vm1 k3s-server applied"));
    let killed_run = killed.run_id();
    let server_start = started_at(vm0, "k3s");
    let second_start = started_at(vm1, "k3s");
    assert!(
        !server_start.is_empty() && server_start != "0" && !second_start.is_empty(),
        "two servers should be running when ferry was killed\n{}",
        killed.show()
    );

    step(
        "2. the same apply resumes: the servers that joined are not redone, every node Ready",
        t0,
    );
    cluster::license_for(&site, &inv3, "vm-apps = true\n");
    answers(&site, "site3.toml", &inv3, "site.ferry", licensed);
    // The killed run's host locks are stale; naming its id breaks them (docs/host-init.md).
    let run = site.ferry(&["apply", "--answers", &a3, "--break-lock", &killed_run]);
    run.expect_ok("the resumed apply");
    // The license checked against the three hosts and on each of them; the app healthy.
    for want in [
        "license: lic-",
        "for VM Site: valid until 2099-12-31",
        "3 of 10 nodes",
        "modules vm-apps; installed on 3 hosts",
        "app web 1.0.0: deployed as revision 1, healthy",
    ] {
        assert!(run.stdout.contains(want), "no `{want}`\n{}", run.show());
    }
    for vm in [vm0, vm1, vm2] {
        let mode = vm
            .ssh_ok(
                "stat -c %a /var/lib/ferry/license/license.lic /var/lib/ferry/license/guard.json",
            )
            .unwrap();
        assert_eq!(mode.trim(), "600\n600", "{}: the license state", vm.name());
    }
    let status = site.ferry(&["app", "status", "web", "--json", "--answers", &a3]);
    status.expect_ok("app status");
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["healthy"], true, "{}", status.show());
    for vm in ["vm0", "vm1"] {
        assert!(
            !run.stdout.contains(&format!("{vm} k3s-server applied")),
            "{vm}'s k3s step was redone\n{}",
            run.show()
        );
    }
    assert_eq!(
        started_at(vm0, "k3s"),
        server_start,
        "the first server restarted"
    );
    assert_eq!(
        started_at(vm1, "k3s"),
        second_start,
        "the second server restarted"
    );
    all_ready(vm0, &["vm0", "vm1", "vm2"]);
    // One etcd cluster of three members: every server is an etcd and control-plane node,
    // the first initialized it and the others joined it by its address.
    let v: serde_json::Value =
        serde_json::from_str(&vm0.ssh_ok("k3s kubectl get nodes -o json").unwrap()).unwrap();
    for n in v["items"].as_array().unwrap() {
        let labels = &n["metadata"]["labels"];
        for role in ["etcd", "control-plane"] {
            assert_eq!(
                labels[format!("node-role.kubernetes.io/{role}")],
                "true",
                "{}: no {role} role: {labels}",
                n["metadata"]["name"]
            );
        }
    }
    assert!(vm0
        .ssh_ok("cat /etc/rancher/k3s/config.yaml")
        .unwrap()
        .contains("cluster-init: true"));
    for vm in [vm1, vm2] {
        let config = vm.ssh_ok("cat /etc/rancher/k3s/config.yaml").unwrap();
        assert!(
            config.contains(&format!("server: \"https://{}:6443\"", vm0.address())),
            "{}: does not join the first server:\n{config}",
            vm.name()
        );
    }
    assert!(
        run.stdout.contains("nodes Ready; kubeconfig"),
        "no cluster line\n{}",
        run.show()
    );
    let kc = site.home().join(".ferry/clusters/vm-cluster/kubeconfig");
    let meta = fs::metadata(&kc).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "kubeconfig mode");
    let text = fs::read_to_string(&kc).unwrap();
    assert!(
        text.contains(&format!("server: https://{}:6443", vm0.address())),
        "the kubeconfig does not point at the API address:\n{text}"
    );
    for vm in [vm0, vm1, vm2] {
        let images = vm.ssh_ok("ctr -n k8s.io images ls -q").unwrap();
        assert!(
            images.contains(APP_FULL),
            "{}: no {APP_FULL} in containerd:\n{images}",
            vm.name()
        );
        assert!(
            images.contains("docker.io/ferry-test/app@sha256:"),
            "{}: {APP_FULL} is not named by digest (pods naming tag@digest would pull):\n{images}",
            vm.name()
        );
        assert!(
            images.contains("ferry-test/pause:3"),
            "{}: the air-gap image is missing:\n{images}",
            vm.name()
        );
    }
    no_pull_attempted(&bed);
    if pulls_from_registry() {
        registry_served(vm0, &[vm0, vm1, vm2]);
    }

    step(
        "3. a second apply with the same answers changes nothing",
        t0,
    );
    let times: Vec<String> = [vm0, vm1, vm2].iter().map(|v| file_times(v)).collect();
    let run = site.ferry(&["apply", "--answers", &a3]);
    run.expect_ok("a second apply");
    for vm in [vm0, vm1, vm2] {
        run.expect_outcome(vm.name(), "no changes");
    }
    assert!(
        run.stdout
            .contains("app web 1.0.0: unchanged, revision 1 serving"),
        "the app was deployed again\n{}",
        run.show()
    );
    let again: Vec<String> = [vm0, vm1, vm2].iter().map(|v| file_times(v)).collect();
    assert_eq!(times, again, "files changed on a second apply");

    step("4. a 4th host added as agent: only it changes", t0);
    let starts: Vec<String> = [(vm0, "k3s"), (vm1, "k3s"), (vm2, "k3s")]
        .iter()
        .map(|(v, u)| started_at(v, u))
        .collect();
    let plan = site.ferry(&["plan", "--json", "--answers", &a4]);
    for vm in [vm0, vm1, vm2] {
        expect_status(&plan, vm.name(), "no-changes");
    }
    expect_status(&plan, vm3.name(), "ready");
    let run = site.ferry(&["apply", "--answers", &a4]);
    run.expect_ok("adding a 4th node");
    all_ready(vm0, &["vm0", "vm1", "vm2", "vm3"]);
    let after: Vec<String> = [vm0, vm1, vm2].iter().map(|v| file_times(v)).collect();
    assert_eq!(times, after, "adding vm3 changed files on the others");
    let starts_after: Vec<String> = [(vm0, "k3s"), (vm1, "k3s"), (vm2, "k3s")]
        .iter()
        .map(|(v, u)| started_at(v, u))
        .collect();
    assert_eq!(
        starts, starts_after,
        "adding vm3 restarted a service elsewhere"
    );

    step(
        "5. a wrong token hand-edited into vm3's config: apply's plan names the file, it puts \
         ferry's back and vm3 is Ready again",
        t0,
    );
    vm3.ssh_ok(
        "printf 'token: K10wrong::server:wrong\\n' >> /etc/rancher/k3s/config.yaml && \
         systemctl restart --no-block k3s-agent",
    )
    .unwrap();
    // The plan apply prints first: one row for the file, and no token in it.
    let run = site.ferry(&["apply", "--answers", &a4]);
    run.expect_ok("apply after the hand edit");
    let rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("/etc/rancher/k3s/config.yaml"))
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "one row for the edited config\n{}",
        run.show()
    );
    assert!(
        rows[0].starts_with("vm3") && rows[0].contains("differs") && rows[0].contains("ferry's"),
        "{}",
        rows[0]
    );
    assert!(!run.stdout.contains("K10wrong"), "the plan shows a token");
    all_ready(vm0, &["vm0", "vm1", "vm2", "vm3"]);
    let config = vm3.ssh_ok("cat /etc/rancher/k3s/config.yaml").unwrap();
    assert!(!config.contains("K10wrong"), "{config}");

    step(
        "6. reset leaves every host's k3s paths as before the first apply",
        t0,
    );
    let dry = site.ferry(&["reset", "--answers", &a4]);
    assert_eq!(
        dry.code,
        Some(2),
        "reset without --yes must change nothing\n{}",
        dry.show()
    );
    all_ready(vm0, &["vm0", "vm1", "vm2", "vm3"]);
    let run = site.ferry(&["reset", "--answers", &a4, "--yes"]);
    run.expect_ok("reset");
    for (vm, b) in bed.vms().iter().zip(&before) {
        assert_eq!(&k3s_tree(vm), b, "{}: k3s's paths after reset", vm.name());
    }
    step("done", t0);
}

/// Bad inputs on real hosts: a host of another cluster is refused with one line and left
/// alone; a bundle without the air-gap archive and a version the bundle lacks are refused
/// before any host changes.
#[test]
fn foreign_hosts_and_bundles_without_k3s_are_refused_before_anything_changes() {
    // Two VMs (a server and the foreign host) are enough: this test runs beside the 3-4 VM
    // testbeds (.config/nextest.toml), not after them.
    let Some((_guard, bed)) = start_bed(2) else {
        return;
    };
    let t0 = Instant::now();
    let site = Site::new(&bed);
    build_bundle(site.path(), true);
    build_bundle(site.path(), false);
    let inv = inventory(&site, &bed, "inv.toml", 2);
    let before: Vec<String> = bed.vms().iter().map(k3s_tree).collect();

    step(
        "1. the bundle lacks the air-gap archive / the version asked for",
        t0,
    );
    let a = answers(&site, "noair.toml", &inv, "noairgap.ferry", "");
    let v = site.ferry(&["validate", "--answers", &a]);
    v.expect_fail("validate with a bundle without k3s");
    assert!(v.stderr.contains("has no k3s"), "{}", v.show());
    let a = answers(
        &site,
        "version.toml",
        &inv,
        "site.ferry",
        "version = \"v1.29.0+k3s1\"",
    );
    let v = site.ferry(&["plan", "--answers", &a]);
    v.expect_fail("plan with a version the bundle lacks");
    assert!(
        v.stderr.contains("k3s v1.29.0+k3s1 is not in bundle") && v.stderr.contains(K3S_VERSION),
        "{}",
        v.show()
    );

    step("2. a host already in another cluster is refused", t0);
    bed.vm(1)
        .ssh_ok(
            "mkdir -p /var/lib/rancher/k3s/server && echo 'K10deadbeef::server:other' > \
             /var/lib/rancher/k3s/server/token",
        )
        .unwrap();
    let a = answers(&site, "site.toml", &inv, "site.ferry", "");
    let plan = site.ferry(&["plan", "--json", "--answers", &a]);
    let p = expect_status(&plan, "vm1", "blocked");
    assert!(
        p.reasons.iter().any(|r| r.contains("k3s server")),
        "{:?}\n{}",
        p.reasons,
        plan.show()
    );
    bed.vm(1).ssh_ok("rm -rf /var/lib/rancher").unwrap();
    for (vm, b) in bed.vms().iter().zip(&before) {
        assert_eq!(&k3s_tree(vm), b, "{} changed", vm.name());
    }
    step("done", t0);
}

/// A node powered off while the agents join: with `rollback = "run"` every host ends as before;
/// with `"never"`, once the power is back the next apply completes.
#[test]
fn a_node_powered_off_mid_run_rolls_the_run_back_or_resumes_after() {
    let Some((_guard, bed)) = start_bed(3) else {
        return;
    };
    let t0 = Instant::now();
    let site = Site::new(&bed);
    build_bundle(site.path(), true);
    let inv = inventory(&site, &bed, "inv.toml", 3);
    let before: Vec<String> = bed.vms().iter().map(k3s_tree).collect();
    let (vm0, vm2) = (bed.vm(0), bed.vm(2));

    step(
        "1. rollback = \"run\": vm2 powered off during the agents phase",
        t0,
    );
    let a = answers(&site, "run.toml", &inv, "site.ferry", "rollback = \"run\"");
    // A powered-off host answers nothing: a short command deadline ends its wait.
    let running = site.start(&["apply", "--answers", &a, "--command-timeout", "120"]);
    let mut off = false;
    let run = running.finish(|l| {
        if !off && l.contains("vm0 k3s-server applied") {
            off = true;
            vm2.power_off().unwrap();
        }
    });
    run.expect_fail("an apply that lost a host");
    let lost_run = run.run_id();
    assert!(off, "the server never came up\n{}", run.show());
    run.expect_outcome("vm0", "rolled back");
    run.expect_outcome("vm1", "rolled back");
    for (i, b) in before.iter().enumerate().take(2) {
        assert_eq!(&k3s_tree(bed.vm(i)), b, "vm{i} after the run rolled back");
    }

    step(
        "2. rollback = \"never\": power back, the next apply completes",
        t0,
    );
    vm2.power_on().unwrap();
    let a = answers(
        &site,
        "never.toml",
        &inv,
        "site.ferry",
        "rollback = \"never\"",
    );
    // vm2's lock of the run it lost power in is stale: naming the run breaks it.
    let run = site.ferry(&["apply", "--answers", &a, "--break-lock", &lost_run]);
    run.expect_ok("apply after the power came back");
    all_ready(vm0, &["vm0", "vm1", "vm2"]);
    // vm0 was rolled back: its image (or the bundle, for the registry) and k3s went again,
    // reported as bytes that moved.
    let image_step = if pulls_from_registry() {
        "vm0 registry sent "
    } else {
        "vm0 images sent "
    };
    for line in [image_step, "vm0 k3s-server sent "] {
        assert!(
            run.stderr.lines().any(|l| l.starts_with(line)),
            "no `{line}…` progress line\n{}",
            run.show()
        );
    }
    step("done", t0);
}

/// The benchmark behind benches/cluster/run.sh (ignored by default): a 3-VM install's wall
/// time by phase (from the `HOST STEP applied (S s)` lines), and the images phase against
/// `ctr images import` of the same image archive run on the node itself. Prints `BENCH` lines.
#[test]
#[ignore = "benchmark: run through benches/cluster/run.sh"]
fn bench_cluster_install() {
    // FERRY_BENCH_VMS=1 measures one host alone (its images step has the emulated cores to
    // itself, as the reference has).
    let vms: usize = std::env::var("FERRY_BENCH_VMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    // FERRY_BENCH_VM_CPUS=2: each VM with two virtual CPUs (a site's servers have many cores;
    // with one, the guest's sshd and ctr take turns on it).
    let spec = VmSpec {
        cpus: std::env::var("FERRY_BENCH_VM_CPUS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
        ..VmSpec::default()
    };
    let Some((_guard, bed)) = start_bed_with(vms, &spec) else {
        return;
    };
    println!("BENCH vm_cpus={}", spec.cpus);
    let site = Site::new(&bed);
    // 64 MiB that do not compress: the images step is measured on bytes, not on round trips.
    let payload: Vec<u8> = {
        use sha2::{Digest as _, Sha256};
        let mut out = Vec::with_capacity(64 << 20);
        let mut block = Sha256::digest(b"ferry cluster bench").to_vec();
        while out.len() < 64 << 20 {
            block = Sha256::digest(&block).to_vec();
            out.extend_from_slice(&block);
        }
        out
    };
    build_bundle_with(site.path(), true, &payload);
    let inv = inventory(&site, &bed, "inv.toml", vms);
    // FERRY_TEST_IMAGES=import|registry: how the images reach the nodes.
    let a = answers(&site, "site.toml", &inv, "site.ferry", "");
    let t = Instant::now();
    let run = site.ferry(&["apply", "--answers", &a]);
    run.expect_ok("the benchmark install");
    let total = t.elapsed().as_secs_f64();
    let mut by_step: std::collections::BTreeMap<String, f64> = Default::default();
    for l in run.stdout.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() == 4 && w[2] == "applied" {
            let s: f64 = w[3]
                .trim_matches(|c| c == '(' || c == ')' || c == 's')
                .parse()
                .unwrap_or(0.0);
            let e = by_step.entry(w[1].to_string()).or_default();
            *e = e.max(s);
        }
    }
    println!("BENCH install vms={vms} total_s={total:.1}");
    for (s, secs) in &by_step {
        println!("BENCH step {s} slowest_host_s={secs:.1}");
    }
    // The same image, imported by ctr on the node from a local file (the reference).
    let vm = bed.vm(1.min(vms - 1));
    let archive = site.path().join("app.tar");
    let size = fs::metadata(&archive).unwrap().len();
    let out = Command::new("scp")
        .args([
            "-q",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-i",
            vm.private_key().to_str().unwrap(),
            "-P",
            &vm.ssh_port().to_string(),
            archive.to_str().unwrap(),
            &format!("root@{}:/tmp/app.tar", vm.address()),
        ])
        .status()
        .unwrap();
    assert!(out.success());
    let timed = vm
        .ssh_ok(
            "ctr -n bench images rm docker.io/ferry-test/app:1 >/dev/null 2>&1; \
             s=$(date +%s.%N); ctr -n bench images import /tmp/app.tar >/dev/null; \
             e=$(date +%s.%N); awk \"BEGIN {print $e - $s}\"",
        )
        .unwrap();
    let ctr_s: f64 = timed.trim().parse().unwrap_or(f64::NAN);
    // Where the rest of the step's time goes: the same archive streamed from the jump host by
    // OpenSSH into `ctr import -` (the bound for any streaming path), one SSH command, one ctr
    // start listing the images.
    let ssh_stream = |cipher: &str, command: &str| {
        let t = Instant::now();
        let ok = Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-c",
                cipher,
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-i",
                vm.private_key().to_str().unwrap(),
                "-p",
                &vm.ssh_port().to_string(),
                &format!("root@{}", vm.address()),
                command,
            ])
            .stdin(fs::File::open(&archive).unwrap())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "{command}");
        t.elapsed().as_secs_f64()
    };
    vm.ssh_ok("ctr -n bench images rm docker.io/ferry-test/app:1 >/dev/null 2>&1; true")
        .unwrap();
    let (g128, g256) = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com");
    let streamed_s = ssh_stream(g256, "ctr -n bench images import -");
    let cat256_s = ssh_stream(g256, "cat >/dev/null");
    let cat128_s = ssh_stream(g128, "cat >/dev/null");
    let catcc_s = ssh_stream("chacha20-poly1305@openssh.com", "cat >/dev/null");
    let true_s = ssh_stream(g128, "true");
    let ls_s = ssh_stream(g128, "ctr -n k8s.io images ls >/dev/null");
    println!(
        "BENCH images_parts openssh_stream_import_s={streamed_s:.2} cat_aes256gcm_s={cat256_s:.2} \
         cat_aes128gcm_s={cat128_s:.2} cat_chacha20_s={catcc_s:.2} ssh_true_s={true_s:.2} \
         ssh_ctr_ls_s={ls_s:.2}"
    );
    let images_s = by_step.get("images").copied().unwrap_or(f64::NAN);
    // Two or more nodes may pull through the site registry on the first server.
    let via = if by_step.contains_key("registry") {
        "registry"
    } else {
        "import"
    };
    println!(
        "BENCH images via={via} ferry_s={images_s:.2} ctr_local_s={ctr_s:.2} bytes={size} ratio={:.2}",
        ctr_s / images_s
    );
    if via == "registry" {
        let step = by_step.get("registry").copied().unwrap_or(f64::NAN);
        // The registry step (ferry's binary, the bundle and the certificate sent to the first
        // server, the unit started) runs before any node pulls: the whole cost of the path.
        println!(
            "BENCH registry step_s={step:.2} with_images_ratio={:.2}",
            ctr_s / (step + images_s)
        );
    }
}
