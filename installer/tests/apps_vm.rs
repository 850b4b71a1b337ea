//! Issue 13's apps on a real VM on a bridge with no route out (an air-gapped site): `ferry
//! apply` makes it a one-node k3s cluster, activates the license and deploys the sample MCD
//! platform from the bundle; then an upgrade, an upgrade whose readiness probe never passes
//! (rolled back while the console keeps answering), and a GPU component on a node without a
//! GPU under both `[apps] gpu-unavailable` policies. Pods run for real in the VM's containerd
//! (k3s is the k3s-STAND-IN of tests/k3s-standin unless `FERRY_TEST_K3S` names a real k3s);
//! the console is asked over HTTP from the jump host, through the node's ingress.
//!
//! One VM, one test, every step on the same cluster: a testbed costs minutes of emulation, and
//! this target runs beside the VM chain in CI (.config/nextest.toml).
//!
//! Refusals that need no cluster are not repeated here: a package signed by another key, a
//! parameter of the wrong type, packages depending on each other in a circle, a missing
//! dependency and a license lacking the package's feature (`app deploy` refuses them before
//! connecting: app_cli's `deploy_refuses_before_reaching_the_cluster_what_it_must_not_deploy`
//! and `a_package_needing_a_license_feature_goes_only_with_a_license_that_grants_it`), and a
//! package whose image is not in the bundle (`bundle build` refuses it:
//! `bundle_build_refuses_a_package_whose_image_is_not_in_the_bundle`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use vm_tests::Vm;

mod cli;
mod common;
use common::cluster::{self, answers, image_digest, start_bed, Image};
use common::{step, Run, Site};

const APP_IMAGE: &str = "demo/app:1.0";
const TOOL_IMAGE: &str = "demo/tool:1.0";
/// The console's host name: `console.${site.domain}` in the sample.
const CONSOLE: &str = "console.site.example";
/// What v1's console page says (the sample's own index.html), and v2's.
const V1_PAGE: &str = "Served by the web component of the sample MCD AppPackage.";
const V2_PAGE: &str = "Release 2.4.0 of the MCD console.";
const NO_GPU: &str = "Pending: no node has nvidia.com/gpu";

/// `GET /` of the console as a browser on the site asks it: from the jump host to the node's
/// port 80 (the cluster's ingress), by the console's host name. The status code and body, or
/// `None` when nothing answered within `limit`.
fn console_page(node: Ipv4Addr, limit: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from((node, 80)), limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.set_write_timeout(Some(limit)).ok()?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {CONSOLE}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Whether the console answers 200 with a page saying `says`.
fn console_says(node: Ipv4Addr, says: &str) -> bool {
    // Generous: a guest starved by other VMs on the same two cores answers late, not never.
    matches!(console_page(node, Duration::from_secs(15)), Some((200, body)) if body.contains(says))
}

/// Waits (up to 3 minutes) until the console's page says `says`; panics with its last answer.
fn wait_for_page(node: Ipv4Addr, says: &str) {
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        if console_says(node, says) {
            return;
        }
        if Instant::now() > until {
            panic!(
                "the console at http://{node}/ (Host: {CONSOLE}) never said {says:?}; it \
                 answers {:?}",
                console_page(node, Duration::from_secs(15))
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The names of the `kind` objects in namespace mcd, as `k3s kubectl` on the node lists them.
fn names(vm: &Vm, kind: &str) -> Vec<String> {
    let out = vm
        .ssh_ok(&format!("k3s kubectl get {kind} -n mcd -o json"))
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut n: Vec<String> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["metadata"]["name"].as_str().map(String::from))
        .collect();
    n.sort();
    n
}

/// Waits (up to 2 minutes) until the `kind` objects of namespace mcd are as `want` says (a
/// deletion ferry asked for need not be over when it returns); their names.
fn names_once(vm: &Vm, kind: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let n = names(vm, kind);
        if want(&n) {
            return n;
        }
        assert!(Instant::now() < until, "{kind} in namespace mcd: {n:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Every component's health state in `ferry app status mcd --json`.
fn states(status: &Run) -> BTreeMap<String, String> {
    status.json()["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["component"].as_str().unwrap().to_string(),
                c["health"]["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The sample's components as they must be: every one healthy, but the GPU worker, which waits
/// for a GPU node (the cron job is healthy once applied: `app status` leaves it out).
fn expect_healthy(status: &Run) {
    let want: BTreeMap<String, String> = [
        ("api", "healthy"),
        ("db", "healthy"),
        ("inference", "no-gpu"),
        ("migrate", "healthy"),
        ("node-agent", "healthy"),
        ("web", "healthy"),
    ]
    .iter()
    .map(|(c, s)| (c.to_string(), s.to_string()))
    .collect();
    assert_eq!(states(status), want, "{}", status.show());
    assert_eq!(
        status.json()["waiting_for_gpu"][0],
        format!("component inference (Deployment inference): {NO_GPU}"),
        "{}",
        status.show()
    );
}

/// `ferry app history mcd --json` as (revision, version, status).
fn history(run: &Run) -> Vec<(u64, String, String)> {
    run.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["version"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn revisions(want: &[(u64, &str, &str)]) -> Vec<(u64, String, String)> {
    want.iter()
        .map(|(r, v, s)| (*r, v.to_string(), s.to_string()))
        .collect()
}

/// The one `error:` line of a refused command (nothing else on stderr but progress).
fn refusal(run: &Run) -> String {
    run.expect_fail("a refusal");
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "not one error line\n{}", run.show());
    assert!(!run.stderr.contains("panicked"), "{}", run.show());
    errors[0].to_string()
}

/// Packs app directory `dir` of the site (signed with the vendor key) as NAME-VERSION.fap.
fn pack(site: &Site, dir: &str, app_yaml: &str) {
    let d = site.path().join(dir);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("app.yaml"), app_yaml).unwrap();
    common::ferry_in(site.path(), &["app", "pack", dir, "--sign-key", "vendor"]);
}

/// CPU seconds qemu has used for `vm` so far (user and system).
fn qemu_cpu_secs(vm: &Vm) -> f64 {
    let Some(stat) = vm
        .qemu_pid()
        .and_then(|p| fs::read_to_string(format!("/proc/{p}/stat")).ok())
    else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // Fields 14 and 15 of stat(5), counted here from field 3 (after the command's name).
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// The sample MCD platform on a one-node cluster: deployed by `ferry apply` with the cluster,
/// every component healthy and the console answering the jump host; upgraded (what the new
/// version dropped is gone); an upgrade whose probe never passes rolled back, the console
/// answering all along; a GPU component left waiting under "allow" and refused under "fail".
#[test]
fn the_sample_mcd_platform_deploys_upgrades_and_rolls_back_a_failed_probe_on_a_vm() {
    let Some((_guard, bed)) = start_bed(1) else {
        return;
    };
    let t0 = Instant::now();
    let vm0 = bed.vm(0);
    let node = vm0.address();
    let site = Site::new(&bed);
    let p = site.path();

    step(
        "0. the bundle: k3s, the sample's images and the sample MCD platform v1",
        t0,
    );
    let app_files: &[(&str, &[u8])] = &[("app/hello.txt", b"app\n")];
    let tool_files: &[(&str, &[u8])] = &[("tool/hello.txt", b"tool\n")];
    cluster::build_bundle(
        p,
        "site.ferry",
        true,
        &[
            Image {
                reference: APP_IMAGE,
                archive: "app.tar",
                files: app_files,
            },
            Image {
                reference: TOOL_IMAGE,
                archive: "tool.tar",
                files: tool_files,
            },
        ],
    );
    let app = format!(
        "{APP_IMAGE}@{}",
        image_digest(&p.join("site.ferry"), "demo/app")
    );
    let tool = format!(
        "{TOOL_IMAGE}@{}",
        image_digest(&p.join("site.ferry"), "demo/tool")
    );
    // v1 is the sample as it is; v2 drops the nightly report and changes the console's page;
    // v3 is v2 with a readiness probe the console never passes.
    let v1 = cli::sample_mcd(&p.join("mcd-v1"), &app, &tool);
    assert!(v1.contains("\nversion: 2.3.0\n"), "{v1}");
    pack(&site, "mcd-v1", &v1);
    let (report, migrate) = (
        v1.find("  - name: report\n").unwrap(),
        v1.find("  - name: migrate\n").unwrap(),
    );
    let v2 = format!("{}{}", &v1[..report], &v1[migrate..])
        .replace("\nversion: 2.3.0\n", "\nversion: 2.4.0\n");
    // v2's files: the sample's, with v2's console page.
    cli::sample_mcd(&p.join("mcd-v2"), &app, &tool);
    fs::write(
        p.join("mcd-v2/files/index.html"),
        format!("<!doctype html>\n<title>MCD console</title>\n<h1>MCD platform</h1>\n<p>{V2_PAGE}</p>\n"),
    )
    .unwrap();
    pack(&site, "mcd-v2", &v2);
    let probe = "http: {path: /, port: http}";
    assert_eq!(v2.matches(probe).count(), 1, "the console's probe:\n{v2}");
    let v3 = v2
        .replace(probe, "http: {path: /not-there, port: http}")
        .replace("\nversion: 2.4.0\n", "\nversion: 2.5.0\n");
    // v3's files are v2's: only its probe differs (the console's ConfigMap stays as it is).
    fs::create_dir_all(p.join("mcd-v3")).unwrap();
    fs::rename(p.join("mcd-v2/files"), p.join("mcd-v3/files")).unwrap();
    pack(&site, "mcd-v3", &v3);
    // A GPU trainer alone: the "fail" policy's case, without the platform around it.
    pack(
        &site,
        "lab",
        &format!(
            "name: lab\nversion: 1.0.0\ndescription: A GPU trainer.\n\
             components:\n  - name: train\n    kind: service\n    image: \"{tool}\"\n\
             \x20   command: [sleep, \"3600\"]\n\
             \x20   resources: {{nvidia.com/gpu: 1}}\n\
             \x20   nodes: {{gpu: true}}\n"
        ),
    );
    cluster::add_packages(p, &["mcd-2.3.0.fap"]);
    cluster::license_for(&site, "inventory.toml", "mcd-platform = true\n");
    // The deploys return once healthy: the time limit only leaves room for a starved guest.
    let apps = |gpu: &str| {
        format!(
            "\n[apps]\ntimeout = 600\ngpu-unavailable = \"{gpu}\"\ndomain = \"site.example\"\n\n\
             [apps.values.mcd]\napi-token = \"vm-t0k3n\"\n\n\
             [license]\nfile = \"site.lic\"\nstate-dir = \"lic\""
        )
    };
    let a = answers(
        &site,
        "site.toml",
        "inventory.toml",
        "site.ferry",
        &apps("allow"),
    );
    let fail = answers(
        &site,
        "fail.toml",
        "inventory.toml",
        "site.ferry",
        &apps("fail"),
    );
    let ferry = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--answers", &a]);
        site.ferry(&all)
    };

    step(
        "1. apply: k3s, the license and the sample MCD platform v1, every component healthy",
        t0,
    );
    let cpu0 = qemu_cpu_secs(vm0);
    let run = site.ferry(&["apply", "--answers", &a]);
    run.expect_ok("apply with the sample platform");
    for want in [
        "license: lic-",
        "app mcd 2.3.0: deployed as revision 1, healthy (apply ",
        &format!(
            "app mcd: warning: component inference (Deployment inference): {NO_GPU}: waiting \
             for a GPU node ([apps] gpu-unavailable = \"allow\")"
        ),
    ] {
        assert!(run.stdout.contains(want), "no `{want}`\n{}", run.show());
    }
    let v1_bench = format!(
        "BENCH apps_vm apply (baseline, k3s, license, the sample platform v1; 1 VM): {:.1} s \
         wall; mcd v1 {}; qemu {:.0} CPU-s",
        run.secs,
        cli::deploy_times(&run.stdout),
        qemu_cpu_secs(vm0) - cpu0
    );
    println!("{v1_bench}");
    let status = ferry(&["app", "status", "mcd", "--json"]);
    status.expect_ok("app status");
    expect_healthy(&status);
    // The cron job is there, on its schedule (it runs later); the job has run once.
    let cron = vm0
        .ssh_ok("k3s kubectl get cronjob report -n mcd -o json")
        .unwrap();
    let cron: Value = serde_json::from_str(&cron).unwrap();
    assert_eq!(cron["spec"]["schedule"], "0 3 * * *", "{cron}");
    let v1_jobs = names(vm0, "jobs");
    assert!(
        v1_jobs.len() == 1 && v1_jobs[0].starts_with("migrate-"),
        "{v1_jobs:?}"
    );
    // The console from the jump host, through the node's ingress, by its host name.
    wait_for_page(node, V1_PAGE);
    let (code, page) = console_page(node, Duration::from_secs(15)).unwrap();
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<h1>MCD platform</h1>"), "{page}");

    step(
        "2. upgrade to v2: healthy, what v2 dropped is gone, history 1 and 2",
        t0,
    );
    let cpu0 = qemu_cpu_secs(vm0);
    let run = ferry(&["app", "deploy", "--pubkey", "vendor.pub", "mcd-2.4.0.fap"]);
    run.expect_ok("the upgrade to v2");
    assert!(
        run.stdout
            .contains("mcd 2.4.0: deployed as revision 2 (apply "),
        "{}",
        run.show()
    );
    println!(
        "BENCH apps_vm upgrade v1->v2: {:.1} s wall; {}; qemu {:.0} CPU-s",
        run.secs,
        cli::deploy_times(&run.stdout),
        qemu_cpu_secs(vm0) - cpu0
    );
    expect_healthy(&ferry(&["app", "status", "mcd", "--json"]));
    // The report's CronJob and ConfigMap, and v1's Job (a changed job is a new Job), are
    // gone: deleted as v2 became healthy.
    names_once(vm0, "cronjobs", |n| n.is_empty());
    let maps = names_once(vm0, "configmaps", |n| {
        !n.iter().any(|m| m.starts_with("report"))
    });
    assert!(maps.contains(&"web-files".to_string()), "{maps:?}");
    let v2_jobs = names_once(vm0, "jobs", |n| n.len() == 1 && n != v1_jobs);
    assert!(v2_jobs[0].starts_with("migrate-"), "{v2_jobs:?}");
    wait_for_page(node, V2_PAGE);
    assert_eq!(
        history(&ferry(&["app", "history", "mcd", "--json"])),
        revisions(&[(1, "2.3.0", "superseded"), (2, "2.4.0", "deployed")])
    );

    step(
        "3. v3's probe never passes: rolled back to v2, which answers all along",
        t0,
    );
    let cpu0 = qemu_cpu_secs(vm0);
    let stop = AtomicBool::new(false);
    let mut failed_at: Option<Instant> = None;
    let started = Instant::now();
    let (run, (good, bad, worst)) = std::thread::scope(|s| {
        let poller = s.spawn(|| {
            cli::poll(&stop, Duration::from_millis(500), || {
                console_says(node, V2_PAGE)
            })
        });
        let run = site
            .start(&[
                "app",
                "deploy",
                "--pubkey",
                "vendor.pub",
                "--wait-timeout",
                "60",
                "mcd-2.5.0.fap",
                "--answers",
                &a,
            ])
            .finish(|l| {
                if l.contains("mcd 2.5.0: failed: ") {
                    failed_at.get_or_insert_with(Instant::now);
                }
            });
        stop.store(true, Ordering::Relaxed);
        (run, poller.join().unwrap())
    });
    let ended = Instant::now();
    run.expect_fail("the upgrade to v3");
    let failed = run
        .stdout
        .lines()
        .find(|l| l.contains("FAILED"))
        .unwrap_or_else(|| panic!("no FAILED line\n{}", run.show()));
    assert!(
        failed.starts_with("mcd 2.5.0: FAILED (revision 3): component web (Deployment web): ")
            && failed.to_lowercase().contains("readiness probe"),
        "the report does not name the component and the probe: {failed}\n{}",
        run.show()
    );
    assert!(
        run.stdout.contains("mcd: revision 2 restored"),
        "{}",
        run.show()
    );
    let rollback_secs = failed_at.map_or(f64::NAN, |t| (ended - t).as_secs_f64());
    println!(
        "BENCH apps_vm failed upgrade v2->v3 (probe never passes, --wait-timeout 60): {:.1} s \
         wall, of which {rollback_secs:.1} s from ferry's verdict to revision 2 recorded back \
         and healthy; v2 answered {good} of {} requests from the jump host (every 0.5 s), \
         longest outage {worst:.1} s; qemu {:.0} CPU-s",
        (ended - started).as_secs_f64(),
        good + bad,
        qemu_cpu_secs(vm0) - cpu0
    );
    assert_eq!(
        bad, 0,
        "v2 stopped answering during the failed v3 (longest outage {worst:.1} s)"
    );
    assert!(
        good >= 10,
        "too few requests to tell ({good})\n{}",
        run.show()
    );
    assert!(
        console_says(node, V2_PAGE),
        "v2 does not answer after the rollback"
    );
    let status = ferry(&["app", "status", "mcd", "--json"]);
    assert_eq!(status.json()["version"], "2.4.0", "{}", status.show());
    expect_healthy(&status);
    let h = ferry(&["app", "history", "mcd", "--json"]);
    assert_eq!(
        history(&h),
        revisions(&[
            (1, "2.3.0", "superseded"),
            (2, "2.4.0", "deployed"),
            (3, "2.5.0", "failed")
        ])
    );
    let reason = h.json()[2]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.to_lowercase().contains("readiness probe"),
        "{reason}"
    );
    // What v3 added (its Job) went with it.
    names_once(vm0, "jobs", |n| n == v2_jobs);

    step(
        "4. a GPU component on a node without one: refused under \"fail\" (allowed in 1.)",
        t0,
    );
    let cpu0 = qemu_cpu_secs(vm0);
    let run = site.ferry(&[
        "app",
        "deploy",
        "--pubkey",
        "vendor.pub",
        "--wait-timeout",
        "40",
        "lab-1.0.0.fap",
        "--answers",
        &fail,
    ]);
    run.expect_fail("a GPU component under gpu-unavailable = \"fail\"");
    let failed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("FAILED"))
        .collect();
    assert_eq!(
        failed,
        [format!(
            "lab 1.0.0: FAILED (revision 1): component train (Deployment train): {NO_GPU} \
             (not healthy after 40s)"
        )],
        "{}",
        run.show()
    );
    assert!(
        run.stdout
            .contains("lab: the failed first install was removed"),
        "{}",
        run.show()
    );
    println!(
        "BENCH apps_vm GPU component refused under \"fail\" (--wait-timeout 40): {:.1} s wall; \
         qemu {:.0} CPU-s",
        run.secs,
        qemu_cpu_secs(vm0) - cpu0
    );

    step("5. refusals the cluster answers: one line each", t0);
    let err = refusal(&ferry(&["app", "rollback", "mcd", "--to", "9"]));
    assert_eq!(
        err,
        "error: mcd has no revision 9; see `ferry app history mcd`"
    );
    let err = refusal(&ferry(&["app", "status", "lab"]));
    assert_eq!(
        err,
        "error: lab is not deployed on this cluster; see `ferry app list`"
    );
    // The failed first install's namespace, and the revision record in it, go as Kubernetes
    // deletes a namespace: soon.
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let list = ferry(&["app", "list", "--json"]);
        let apps: Vec<String> = list
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["app"].as_str().unwrap_or_default().to_string())
            .collect();
        if apps == ["mcd"] {
            break;
        }
        assert!(Instant::now() < until, "{}", list.show());
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(console_says(node, V2_PAGE), "v2 stopped answering");
    println!(
        "BENCH apps_vm whole test: {:.1} s after the VM was up; qemu {:.0} CPU-s in all",
        t0.elapsed().as_secs_f64(),
        qemu_cpu_secs(vm0)
    );
    step("done", t0);
}
