//! The software baseline on two real VMs: time sync (vm0 the source, vm1 a follower whose clock
//! was set 120 s off), the offline repository and packages built from real tiny .debs,
//! containerd, and the GPU driver path with a STAND-IN `.run` installer. Every resource is
//! applied, checked the way an operator would check it, shown to have no diff after, and
//! reverted to what was observed before. One testbed for all: booting VMs is the slow part.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ferry_bootos::baseline::{LocalDriver, LocalRepo};
use ferry_bootos::resources::containerd::{Containerd, CONFIG, HOSTS_DIR};
use ferry_bootos::resources::gpu::GpuDriver;
use ferry_bootos::resources::packages::{parse_present, OsRepo, Packages, RepoRef, SOURCE_LIST};
use ferry_bootos::resources::timesync::{
    parse_tracking, selected_source, TimeRole, TimeSync, CHECK_TIMEOUT_SECS, CHRONY_CONF,
    FERRY_CONF,
};
use ferry_bootos::{Host, Resource, ResourceError, SshHost};
use ferry_tests::standin::{self, DebFile};
use ferry_tests::{require, vmhost};
use vm_tests::{Vm, VmSpec};

/// Applies `r` on `host` after checking it has something to do, checks a second look finds
/// nothing left to do, and returns the state before (the undo data) and the apply's wall time.
async fn apply<R: Resource>(r: &R, host: &SshHost) -> (R::State, Duration) {
    let before = r.observe(host).await.unwrap();
    assert!(
        !r.diff(&before).is_empty(),
        "{}: nothing to do on {}",
        r.id(),
        host.name()
    );
    let started = Instant::now();
    if let Err(e) = r.apply(host, &before).await {
        panic!("{} on {}: {e}", r.id(), host.name());
    }
    let took = started.elapsed();
    let after = r.observe(host).await.unwrap();
    assert_eq!(
        r.diff(&after),
        vec![],
        "{}: a second plan on {} must show no changes",
        r.id(),
        host.name()
    );
    eprintln!(
        "apply {} on {}: {:.1} s",
        r.id(),
        host.name(),
        took.as_secs_f64()
    );
    (before, took)
}

fn sh(vm: &Vm, cmd: &str) -> String {
    vm.ssh_ok(cmd).unwrap().trim().to_string()
}

fn ok(vm: &Vm, cmd: &str) -> bool {
    vm.ssh(cmd).unwrap().success()
}

fn packages(vm: &Vm) -> BTreeSet<String> {
    parse_present(&sh(
        vm,
        "dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n'",
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn software_baseline_applies_checks_and_reverts_on_real_vms() {
    if !require(standin::missing_tools()) {
        return;
    }
    let Some(bed) = vm_tests::start_or_skip(2, &VmSpec::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (vm0, vm1) = (bed.vm(0), bed.vm(1));
    let h0 = SshHost::new(vmhost::session(vm0, dir.path()).await);
    let h1 = SshHost::new(vmhost::session(vm1, dir.path()).await);
    let mut timings = Vec::new();

    timings.extend(time_sync_brings_a_far_off_follower_to_the_source(vm0, vm1, &h0, &h1).await);
    timings.extend(packages_come_from_the_bundle_and_go_on_revert(vm1, &h1, dir.path()).await);
    timings.push(containerd_runs_and_is_put_back(vm0, &h0).await);
    timings.push(gpu_driver_installs_verifies_and_uninstalls(vm0, &h0, dir.path()).await);

    eprintln!("apply wall times on the VMs:");
    for (what, t) in timings {
        eprintln!("  {what:<24} {:>6.1} s", t.as_secs_f64());
    }
}

async fn time_sync_brings_a_far_off_follower_to_the_source(
    vm0: &Vm,
    vm1: &Vm,
    h0: &SshHost,
    h1: &SshHost,
) -> Vec<(String, Duration)> {
    vm1.set_clock_offset(120).unwrap();
    // vm1's clock read between two readings of vm0's: their midpoint cancels the SSH round trips.
    let skew = |a: &Vm, b: &Vm| {
        let t = |vm: &Vm| sh(vm, "date +%s.%N").parse::<f64>().unwrap();
        let (a1, b1, a2) = (t(a), t(b), t(a));
        (b1 - (a1 + a2) / 2.0).abs()
    };
    assert!(skew(vm0, vm1) > 100.0, "vm1's clock was not set off");

    let source = TimeSync {
        role: TimeRole::Source {
            allow: vec![vm1.address().to_string()],
            upstream: vec![],
        },
        max_skew_ms: 500,
        check_timeout_secs: CHECK_TIMEOUT_SECS,
    };
    let follower = TimeSync {
        role: TimeRole::Follower {
            source: vm0.address().to_string(),
        },
        max_skew_ms: 500,
        check_timeout_secs: CHECK_TIMEOUT_SECS,
    };
    let (before0, t0) = apply(&source, h0).await;
    let (before1, t1) = apply(&follower, h1).await;

    // What an operator checks: chrony on vm1 follows vm0 and is within the limit.
    let sources = sh(vm1, "chronyc -n sources");
    assert_eq!(
        selected_source(&sources).as_deref(),
        Some(vm0.address().to_string().as_str()),
        "{sources}"
    );
    let tracking = parse_tracking(&sh(vm1, "chronyc -n tracking")).unwrap();
    assert!(
        tracking.offset_ms.abs() < 500.0,
        "offset {} ms",
        tracking.offset_ms
    );
    let after = skew(vm0, vm1);
    // chronyc's figure above is the precise one; this independent reading over SSH only has to
    // show the 120 s are gone (SSH start-up times under load differ by tenths of a second).
    assert!(after < 2.0, "vm1 is still {after:.1} s away from vm0");
    eprintln!(
        "time: vm1 offset after sync {:.3} ms (chronyc), {after:.2} s by date over SSH",
        tracking.offset_ms
    );
    // The distro's pool is commented out on both: no host waits for internet time.
    for vm in [vm0, vm1] {
        assert!(!ok(vm, &format!("grep -q '^pool' {CHRONY_CONF}")));
    }

    follower.revert(h1, &before1).await.unwrap();
    source.revert(h0, &before0).await.unwrap();
    // Twice is fine (a rollback retried after a failure).
    follower.revert(h1, &before1).await.unwrap();
    for (r, h, before) in [(&follower, h1, &before1), (&source, h0, &before0)] {
        assert_eq!(&r.observe(h).await.unwrap(), before, "{} revert", h.name());
    }
    assert!(!ok(vm1, &format!("test -e {FERRY_CONF}")));
    assert!(ok(vm1, &format!("grep -q '^pool' {CHRONY_CONF}")));

    // A source that does not serve (vm0 is back to the distro's chrony, which answers no
    // clients): the follower's check fails with what is wrong and what to look at.
    let impatient = TimeSync {
        check_timeout_secs: 12,
        ..follower.clone()
    };
    let observed = impatient.observe(h1).await.unwrap();
    match impatient.apply(h1, &observed).await {
        Err(ResourceError::Check(why)) => {
            assert!(
                why.contains(&format!(
                    "time did not follow {} within 12 s",
                    vm0.address()
                )),
                "{why}"
            );
            assert!(why.contains("UDP port 123"), "{why}");
            eprintln!("time: the check's refusal: {why}");
        }
        r => panic!("expected a failed check, got {r:?}"),
    }
    impatient.revert(h1, &observed).await.unwrap();
    assert_eq!(impatient.observe(h1).await.unwrap(), observed);
    vec![
        ("timesync (source)".into(), t0),
        ("timesync (follower)".into(), t1),
    ]
}

async fn packages_come_from_the_bundle_and_go_on_revert(
    vm: &Vm,
    h: &SshHost,
    dir: &std::path::Path,
) -> Vec<(String, Duration)> {
    let repo_dir = dir.join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    standin::deb(
        &repo_dir,
        "ferry-test-lib",
        "1.0",
        &[],
        &[DebFile {
            path: "/usr/share/ferry-test-lib/greeting",
            content: "hello from the bundle\n",
            mode: 0o644,
        }],
    );
    standin::deb(
        &repo_dir,
        "ferry-test-tool",
        "1.0",
        &["ferry-test-lib"],
        &[DebFile {
            path: "/usr/bin/ferry-test-tool",
            content: "#!/bin/sh\ncat /usr/share/ferry-test-lib/greeting\n",
            mode: 0o755,
        }],
    );
    standin::flat_repo(&repo_dir);
    let local = LocalRepo {
        dir: repo_dir,
        digest: format!("sha256:{}", "0f".repeat(32)),
        distro: "debian-12".into(),
        format: "deb".into(),
        packed: None,
    };
    let repo = OsRepo {
        repo: local.clone(),
    };
    let r = RepoRef::of(&local);
    let before_all = packages(vm);
    assert!(!before_all.contains("ferry-test-tool"));

    let (repo_before, t_repo) = apply(&repo, h).await;
    assert!(ok(vm, &format!("test -f {}/Packages", r.dir())));

    // A package the repository lacks: one clear line, nothing installed.
    let wrong = Packages {
        packages: vec!["ferry-test-tool".into(), "ferry-no-such-package".into()],
        repo: Some(r.clone()),
    };
    let observed = wrong.observe(h).await.unwrap();
    match wrong.apply(h, &observed).await {
        Err(ResourceError::Refused(line)) => assert_eq!(
            line,
            "package ferry-no-such-package is not in the bundle's repository (debian-12): add \
             it to bundle.toml's [[os_packages]] and rebuild"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        packages(vm),
        before_all,
        "the refused install changed packages"
    );
    wrong.revert(h, &observed).await.unwrap();
    assert_eq!(
        packages(vm),
        before_all,
        "reverting a refused install changed packages"
    );

    let pkgs = Packages {
        packages: vec!["ferry-test-tool".into()],
        repo: Some(r.clone()),
    };
    let (pkgs_before, t_pkgs) = apply(&pkgs, h).await;
    assert_eq!(sh(vm, "ferry-test-tool"), "hello from the bundle");
    assert!(ok(vm, "dpkg -s ferry-test-lib >/dev/null"), "dependency");

    pkgs.revert(h, &pkgs_before).await.unwrap();
    repo.revert(h, &repo_before).await.unwrap();
    assert!(!ok(vm, "dpkg -s ferry-test-tool >/dev/null 2>&1"));
    assert!(!ok(vm, "dpkg -s ferry-test-lib >/dev/null 2>&1"));
    assert_eq!(packages(vm), before_all);
    assert!(!ok(vm, &format!("test -e {SOURCE_LIST}")));
    assert!(!ok(vm, &format!("test -e {}", r.dir())));
    let lists = sh(vm, "ls /var/lib/apt/lists/");
    assert!(
        !lists.contains("ferry"),
        "apt's copy of the index is left: {lists}"
    );
    vec![("os-repo".into(), t_repo), ("packages".into(), t_pkgs)]
}

async fn containerd_runs_and_is_put_back(vm: &Vm, h: &SshHost) -> (String, Duration) {
    let state = |vm: &Vm| {
        (
            sh(vm, "systemctl is-enabled containerd || true"),
            sh(vm, "systemctl is-active containerd || true"),
        )
    };
    let was = state(vm);
    assert_eq!(was, ("disabled".into(), "inactive".into()));
    let config_before = sh(vm, &format!("cat {CONFIG} 2>/dev/null || echo absent"));
    let c = Containerd {
        package: "containerd".into(),
        repo: None,
    };
    let (before, took) = apply(&c, h).await;
    assert_eq!(state(vm), ("enabled".into(), "active".into()));
    assert!(sh(vm, "ctr version").contains("Server:"));
    assert!(ok(vm, "test -S /run/containerd/containerd.sock"));
    // The CRI plugin reads registry hosts from HOSTS_DIR (what the kubelet's pulls go
    // through): containerd's own view of the file, and the config the running plugin logged
    // when it started (the VMs have no crictl).
    let dump = sh(vm, "containerd config dump");
    assert!(
        dump.contains(&format!("config_path = \"{HOSTS_DIR}\"")),
        "containerd config dump: {dump}"
    );
    let started = sh(
        vm,
        "journalctl -u containerd -b --no-pager -o cat | grep -o 'Registry:{ConfigPath:[^ ]*' | tail -1",
    );
    assert_eq!(started, format!("Registry:{{ConfigPath:{HOSTS_DIR}"));

    c.revert(h, &before).await.unwrap();
    assert_eq!(state(vm), was);
    assert_eq!(
        sh(vm, &format!("cat {CONFIG} 2>/dev/null || echo absent")),
        config_before
    );
    ("containerd".into(), took)
}

async fn gpu_driver_installs_verifies_and_uninstalls(
    vm: &Vm,
    h: &SshHost,
    dir: &std::path::Path,
) -> (String, Duration) {
    let standin = standin::nvidia_driver(dir, "550.90.07");
    let kernel = sh(vm, "uname -r");
    let driver = |kernels: Vec<String>| GpuDriver {
        driver: LocalDriver {
            file: standin.file.clone(),
            sha256: standin.sha256.clone(),
            version: standin.version.clone(),
            kernels,
        },
    };
    assert!(!ok(vm, "command -v nvidia-smi"));

    // Built for another kernel: refused before anything is sent.
    let other = driver(vec!["5.15.0-105-generic".into()]);
    let observed = other.observe(h).await.unwrap();
    match other.apply(h, &observed).await {
        Err(ResourceError::Refused(why)) => {
            assert!(why.contains(&format!("this host runs {kernel}")), "{why}")
        }
        r => panic!("expected a refusal, got {r:?}"),
    }
    assert!(!ok(vm, "command -v nvidia-smi"));

    // A package that is not the version it claims: the check after the install catches it,
    // and revert after that failed apply takes the install away.
    let mut mislabelled = driver(vec![kernel.clone()]);
    mislabelled.driver.version = "550.90.08".into();
    let observed = mislabelled.observe(h).await.unwrap();
    match mislabelled.apply(h, &observed).await {
        Err(ResourceError::Check(why)) => assert!(
            why.contains("after installing NVIDIA driver 550.90.08, nvidia-smi reports 550.90.07"),
            "{why}"
        ),
        r => panic!("expected a failed check, got {r:?}"),
    }
    mislabelled.revert(h, &observed).await.unwrap();
    assert!(!ok(vm, "command -v nvidia-smi"));
    assert!(!ok(vm, "command -v nvidia-installer"));

    let g = driver(vec![kernel]);
    let (before, took) = apply(&g, h).await;
    assert_eq!(
        sh(
            vm,
            "nvidia-smi --query-gpu=driver_version --format=csv,noheader"
        ),
        "550.90.07"
    );
    g.revert(h, &before).await.unwrap();
    g.revert(h, &before).await.unwrap();
    assert!(!ok(vm, "command -v nvidia-smi"));
    assert!(!ok(vm, "command -v nvidia-installer"));
    assert!(!ok(vm, &format!("test -e {}", g.remote_dir())));
    ("gpu-driver (stand-in)".into(), took)
}
