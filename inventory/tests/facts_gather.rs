//! Facts as a specification: fixture trees under `tests/data/facts/` (a GPU host, a k3s
//! server with a ferry marker, a CentOS 7 kubeadm node, a host with no default route), each
//! beside its expected facts as `NAME.json`; then the shell fallback run for real with `sh`
//! against this machine, compared with `gather("/")`. `UPDATE_GOLDEN=1` rewrites the JSON
//! (refused under `CI=true`).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use ferry_tests::golden;

use std::path::{Path, PathBuf};

use ferry_inventory::facts::{self, ClusterKind, Facts};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/facts")
}

fn fixture(name: &str) -> Facts {
    facts::gather(&data().join(name))
}

#[test]
fn fixture_trees_give_their_golden_facts() {
    let fixtures = ["gpu-host", "k3s-server", "centos7", "no-route"];
    let mut golden = golden::Golden::new();
    for name in fixtures {
        // A missing tree would give empty facts and, when updating, an empty golden file.
        assert!(
            data().join(name).join("etc").is_dir(),
            "fixture {name} missing"
        );
        let json = serde_json::to_string_pretty(&fixture(name)).unwrap() + "\n";
        golden.check(&data().join(format!("{name}.json")), &json);
    }
    golden.finish(fixtures.len());
}

#[test]
fn finds_nvidia_gpus_and_driver_but_not_their_audio_function() {
    let f = fixture("gpu-host");
    let addrs: Vec<&str> = f.gpus.iter().map(|g| g.pci_address.as_str()).collect();
    assert_eq!(addrs, ["0000:3b:00.0", "0000:d8:00.0"]);
    assert_eq!(f.gpus[0].device_id, "0x20b5");
    assert_eq!(f.gpus[0].driver.as_deref(), Some("nvidia"));
    assert_eq!(f.nvidia_driver.as_deref(), Some("550.54.14"));
    assert_eq!(f.default_routes[0].gateway.as_deref(), Some("10.0.0.1"));
    assert_eq!(f.default_routes[1].family, "ipv6");
    assert_eq!(f.default_routes[1].gateway.as_deref(), Some("fe80::1"));
    assert_eq!(f.time.synchronized, Some(true));
    assert_eq!(f.time.timezone.as_deref(), Some("Europe/Berlin"));
}

#[test]
fn keeps_fingerprint_fields_plain() {
    let f = fixture("gpu-host");
    assert_eq!(
        f.machine_id.as_deref(),
        Some("0f3c9a2e6b1d4c8e9a7b5d3f1e2c4a6b")
    );
    assert_eq!(
        f.product_uuid.as_deref(),
        Some("4c4c4544-0042-3510-8052-b2c04f4e3432")
    );
    let disk = f.disks.iter().find(|d| d.name == "nvme0n1").unwrap();
    assert_eq!(disk.serial.as_deref(), Some("S64GNE0R812345"));
    assert!(f.disks.iter().all(|d| d.name != "loop0"));
    let eth0 = f.nics.iter().find(|n| n.name == "eth0").unwrap();
    assert_eq!(eth0.mac.as_deref(), Some("52:54:00:12:34:56"));
    assert!(eth0.physical);
    assert_eq!(
        eth0.addresses,
        ["10.0.0.21/24", "fe80::5054:ff:fe12:3456/64"]
    );
    assert!(!f.nics.iter().find(|n| n.name == "cni0").unwrap().physical);
}

#[test]
fn recognizes_a_k3s_server_and_ferry_cluster_without_keeping_the_token() {
    let f = fixture("k3s-server");
    let kinds: Vec<ClusterKind> = f.installations.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, [ClusterKind::Ferry, ClusterKind::K3sServer]);
    assert_eq!(f.installations[0].cluster_id.as_deref(), Some("c-5f2a9e"));
    assert_eq!(
        f.installations[1].cluster_id.as_deref(),
        Some("7f1c3e5a9b2d4f6e8a0c1b3d5f7e9a2c4b6d8f0e1a3c5b7d9f2e4a6c8b0d1f3e")
    );
    let json = serde_json::to_string(&f).unwrap();
    assert!(!json.contains("very-secret"));
    assert_eq!(f.swap[0].size_bytes, 8388604 * 1024);
    assert_eq!(f.time.sync_service.as_deref(), Some("chrony"));
    assert!(f.time.sync_running);
    assert_eq!(f.container_runtimes[0].name, "k3s-containerd");
    let root = f.filesystems.iter().find(|fs| fs.mount == "/").unwrap();
    assert_eq!(root.available_bytes, 1420000000 * 1024);
    assert!(f.filesystems.iter().all(|fs| fs.fstype != "tmpfs"));
}

#[test]
fn reads_a_centos7_kubeadm_node() {
    let f = fixture("centos7");
    assert_eq!(
        (f.os.id.as_str(), f.os.version_id.as_str()),
        ("centos", "7")
    );
    assert_eq!(f.os.id_like, ["rhel", "fedora"]);
    assert_eq!(f.kernel, "3.10.0-1160.el7.x86_64");
    assert_eq!(f.hostname, "legacy7.corp");
    assert_eq!(
        f.memory.available_bytes,
        5000000 * 1024,
        "MemFree when no MemAvailable"
    );
    assert_eq!(f.security.selinux.as_deref(), Some("enforcing"));
    let kubelet = &f.installations[0];
    assert_eq!(kubelet.kind, ClusterKind::Kubelet);
    assert_eq!(
        kubelet.server_url.as_deref(),
        Some("https://10.20.0.10:6443")
    );
    assert_eq!(kubelet.cluster_id.as_ref().map(String::len), Some(64));
    assert!(!serde_json::to_string(&f).unwrap().contains("U0VDUkVU"));
    assert_eq!(f.container_runtimes[0].name, "docker");
    assert_eq!(f.time.sync_service.as_deref(), Some("ntpd"));
    assert!(f.default_routes.is_empty());
}

#[test]
fn a_host_without_a_default_route_has_none() {
    let f = fixture("no-route");
    assert!(f.default_routes.is_empty());
    assert_eq!(f.installations[0].kind, ClusterKind::K3sAgent);
    assert_eq!(
        f.installations[0].server_url.as_deref(),
        Some("https://10.0.0.11:6443")
    );
    assert!(!serde_json::to_string(&f).unwrap().contains("very-secret"));
}

#[test]
fn an_empty_root_gives_empty_facts_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = facts::gather(dir.path());
    assert_eq!(f, Facts::default());
}

#[test]
fn the_shell_fallback_agrees_with_the_agent_on_this_host() {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(facts::shell_script())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.trim_end().ends_with("@@ferry-end"));
    let shell = facts::parse_shell_output(&text);
    let live = facts::gather(Path::new("/"));
    assert!(!live.hostname.is_empty() && live.cpu.logical > 0 && live.memory.total_bytes > 0);
    assert_eq!(shell.hostname, live.hostname);
    assert_eq!(shell.os, live.os);
    assert_eq!(shell.kernel, live.kernel);
    assert_eq!(shell.arch, live.arch);
    assert_eq!(shell.cpu, live.cpu);
    assert_eq!(shell.memory.total_bytes, live.memory.total_bytes);
    assert_eq!(shell.machine_id, live.machine_id);
    assert_eq!(shell.product_uuid, live.product_uuid);
    assert_eq!(shell.disks, live.disks);
    assert_eq!(shell.default_routes, live.default_routes);
    assert_eq!(shell.gpus, live.gpus);
    assert_eq!(shell.security, live.security);
    assert_eq!(shell.container_runtimes, live.container_runtimes);
    assert_eq!(shell.installations, live.installations);
    let names = |f: &Facts| {
        f.nics
            .iter()
            .map(|n| (n.name.clone(), n.mac.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&shell), names(&live));
    let mounts = |f: &Facts| {
        f.filesystems
            .iter()
            .map(|m| m.mount.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(mounts(&shell), mounts(&live));
    assert!(shell.time.unix_seconds.abs_diff(live.time.unix_seconds) < 60);
}

#[test]
fn the_shell_fallback_sends_only_the_public_part_of_cluster_secrets() {
    // Run the real script with the cluster paths moved under fixture trees, then put the paths
    // back: what crosses the wire must hold the CA hashes and no token or key.
    for (fixture, kind) in [
        ("k3s-server", ClusterKind::K3sServer),
        ("no-route", ClusterKind::K3sAgent),
        ("centos7", ClusterKind::Kubelet),
    ] {
        let root = data().join(fixture);
        let prefix = root.display().to_string();
        let mut script = facts::shell_script().to_string();
        for p in [
            "/var/lib/rancher/",
            "/etc/rancher/",
            "/etc/systemd/system/k3s-agent",
            "/etc/kubernetes/",
            "/var/lib/ferry/",
        ] {
            script = script.replace(p, &format!("{prefix}{p}"));
        }
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap().replace(&prefix, "");
        assert!(!text.contains("very-secret"), "{fixture}: k3s secret sent");
        assert!(!text.contains("U0VDUkVU"), "{fixture}: client key sent");
        let shell = facts::parse_shell_output(&text);
        let direct = fixture_installations(fixture);
        assert!(
            shell.installations.iter().any(|i| i.kind == kind),
            "{fixture}"
        );
        assert_eq!(shell.installations, direct, "{fixture}");
    }
}

fn fixture_installations(name: &str) -> Vec<facts::Installation> {
    fixture(name).installations
}

#[test]
fn huge_figures_from_the_shell_fallback_saturate_instead_of_overflowing() {
    // A hostile or broken host may print any number; sizes are multiplied into bytes.
    let max = u64::MAX;
    let output = format!(
        "@@ferry-file /proc/meminfo\nMemTotal: {max} kB\nMemFree: {max} kB\n\
         @@ferry-file /proc/swaps\nFilename Type Size Used Priority\n/swap file {max} {max} -2\n\
         @@ferry-file /sys/block/sda/size\n{max}\n\
         @@ferry-file /proc/mounts\n/dev/sda1 / ext4 rw 0 0\n\
         @@ferry-cmd df\nFilesystem 1024-blocks Used Available Capacity Mounted on\n\
         /dev/sda1 {max} 1 {max} 1% /\n"
    );
    let f = facts::parse_shell_output(&output);
    assert_eq!(f.memory.total_bytes, u64::MAX);
    assert_eq!(f.memory.available_bytes, u64::MAX);
    assert_eq!(f.swap[0].size_bytes, u64::MAX);
    assert_eq!(f.swap[0].used_bytes, u64::MAX);
    assert_eq!(f.disks[0].size_bytes, u64::MAX);
    assert_eq!(f.filesystems[0].total_bytes, u64::MAX);
    assert_eq!(f.filesystems[0].available_bytes, u64::MAX);
}
