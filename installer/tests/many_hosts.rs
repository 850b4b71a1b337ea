//! Many hosts at once: `ferry plan` and `ferry apply` of a light baseline (hostname, /etc/hosts
//! block, sysctl, limits, the cluster marker) on test nodes, each a network, mount and hostname
//! namespace of its own on one bridge with its own address, real sshd and `/etc`, `/var/lib`
//! and `/run` overlays (`tests/k3s-standin/tests/support`), so every host has its own files
//! and this machine's are never touched. ferry runs in the first node's network, as on a jump
//! host of the site.
//!
//! The regular test takes 40 hosts: progress comes as a few lines per step, not one per host,
//! and every host ends with its change. `benches/scale/run.sh` runs the ignored
//! `scale_figures` with `FERRY_SCALE_HOSTS=500` for the figures in docs/performance.md.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use ferry_tests::sshd::{self, Sshd};

#[path = "../../tests/k3s-standin/tests/support/mod.rs"]
mod support;

/// A stand-in `systemctl` for the limits resource: `show` reports the manager's open-file
/// limit from ferry's drop-in, `daemon-reload` succeeds.
const SYSTEMCTL: &str = "#!/bin/sh\ncase \"$1\" in\n\
    show) n=$(sed -n 's/^DefaultLimitNOFILE=//p' /etc/systemd/system.conf.d/90-ferry.conf \
    2>/dev/null); n=${n:-524288}; echo DefaultLimitNOFILE=$n; echo DefaultLimitNOFILESoft=$n;;\n\
    esac\nexit 0\n";

/// The machine's own value of a kernel-wide setting, so that the nodes (which share this
/// machine's kernel outside their network namespace) are not asked to change it.
fn sysctl_now(key: &str) -> String {
    let out = Command::new("sysctl").args(["-n", key]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `n` nodes with an sshd each, and the answer file and inventory naming them `h0`..: `h0` the
/// server, the others agents. Fields drop in order: the servers, then the nodes.
struct Site {
    _servers: Vec<Sshd>,
    lan: support::Lan,
    dir: tempfile::TempDir,
}

impl Site {
    fn start(n: usize) -> Option<Site> {
        if !sshd::available() || !support::available(false) {
            return None;
        }
        let t = Instant::now();
        let lan = support::Lan::new(n);
        // Prepared and started a few at a time: an sshd waits to be ready on its own.
        let mut servers: Vec<Option<Sshd>> = (0..n).map(|_| None).collect();
        std::thread::scope(|scope| {
            for (chunk, slots) in lan.nodes.chunks(8).zip(servers.chunks_mut(8)) {
                scope.spawn(move || {
                    for (node, slot) in chunk.iter().zip(slots) {
                        let i: usize = node.name.trim_start_matches("node").parse().unwrap();
                        let host = format!("h{i}");
                        node.prepare_for_ferry(
                            0xfe77_0000 + i as u64,
                            &[&node.name, &host],
                            SYSTEMCTL,
                        );
                        *slot = Some(Sshd::start_with(sshd::SshdOptions {
                            listen: node.ip.clone(),
                            netns: Some(node.netns.clone()),
                            wrapper: Some(node.wrapper()),
                            host_keys: vec!["ed25519"],
                            ..Default::default()
                        }));
                    }
                });
            }
        });
        let servers: Vec<Sshd> = servers.into_iter().map(Option::unwrap).collect();
        eprintln!("{n} hosts up in {:.1}s", t.elapsed().as_secs_f64());
        let dir = tempfile::tempdir().unwrap();
        let key = sshd::fixture().keys.ed25519.clone();
        let inventory: String = (0..n)
            .map(|i| {
                format!(
                    "[[hosts]]\nname = \"h{i}\"\naddress = \"{}\"\nport = {}\nuser = \"{}\"\n\
                     key = \"{}\"\nsudo = \"passwordless\"\nroles = [\"{}\"]\n\n",
                    lan.nodes[i].ip,
                    servers[i].port,
                    sshd::SUDO_USER,
                    key.display(),
                    if i == 0 { "server" } else { "agent" }
                )
            })
            .collect();
        std::fs::write(dir.path().join("inventory.toml"), inventory).unwrap();
        // The baseline minus what would reach past a node's namespaces (swap, kernel modules,
        // the time service, packages), kernel-wide settings at this machine's own values.
        std::fs::write(
            dir.path().join("site.toml"),
            format!(
                "inventory = \"inventory.toml\"\n\n[cluster]\nname = \"many\"\n\n\
                 [baseline]\nmodules = []\nswap-off = false\ncontainer-runtime = false\n\
                 gpu = \"skip\"\n\n[baseline.sysctl]\n\"vm.max_map_count\" = {}\n\
                 \"fs.inotify.max_user_instances\" = {}\n\"fs.inotify.max_user_watches\" = {}\n\n\
                 [baseline.time]\nenabled = false\n\n\
                 [preflight]\nmin-cpus = 1\nmin-memory-mib = 512\nmin-disk-gib = 1\n",
                sysctl_now("vm.max_map_count"),
                sysctl_now("fs.inotify.max_user_instances"),
                sysctl_now("fs.inotify.max_user_watches"),
            ),
        )
        .unwrap();
        Some(Site {
            _servers: servers,
            lan,
            dir,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `ferry ARGS` in the first node's network with this machine's common default of
    /// 1024 open files (ferry raises its own limit: a socket and a log per host), under
    /// `/usr/bin/time` for its peak memory.
    fn ferry(&self, args: &str) -> Run {
        let bin = std::env::var("FERRY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ferry").into());
        let rss = self.path().join("rss");
        let t = Instant::now();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -Sn {nofile}; exec nsenter --net=/run/netns/{ns} -- \
                 /usr/bin/time -f '%M %U %S' -o {rss} {bin} {args} --run-dir runs --attempts 2",
                nofile = NOFILE,
                ns = self.lan.nodes[0].netns,
                rss = rss.display(),
            ))
            .current_dir(self.path())
            .env("HOME", self.path().join("home"))
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .unwrap();
        let seconds = t.elapsed().as_secs_f64();
        // "KIB USER SYS" on the last line (time prints a note first when the command fails).
        let time = std::fs::read_to_string(&rss).unwrap_or_default();
        let f: Vec<f64> = time
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        Run {
            out,
            seconds,
            rss_mib: f.first().copied().unwrap_or(0.0) / 1024.0,
            cpu: f.get(1..3).map_or(0.0, |c| c.iter().sum()),
        }
    }

    fn runs(&self) -> PathBuf {
        self.path().join("runs")
    }
}

/// The open-file limit ferry starts with in these tests.
const NOFILE: u32 = 1024;

struct Run {
    out: Output,
    seconds: f64,
    rss_mib: f64,
    /// ferry's own CPU seconds (user and system): the jump host's share of the work.
    cpu: f64,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn ok(&self) -> &Self {
        assert!(
            self.out.status.success(),
            "ferry failed ({}):\n{}\n{}",
            self.out.status,
            self.stdout(),
            self.stderr()
        );
        assert!(!self.stderr().contains("panicked"), "{}", self.stderr());
        self
    }
}

/// Lines that speak of one host and one step (`h7 sysctl applied`, `h7 surveyed`): what a
/// summarized run must not print. The first host key trusted on first contact is shown in
/// full (the others are counted).
fn per_host_lines(text: &str, n: usize) -> Vec<String> {
    text.lines()
        .filter(|l| !l.contains(": first contact, trusting host key "))
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or_default();
            let host = first.trim_end_matches(':');
            host.strip_prefix('h')
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i < n)
        })
        .map(str::to_string)
        .collect()
}

/// Checks every host got the light baseline: the hosts block, the hostname, the marker.
fn every_host_changed(site: &Site) {
    for (i, node) in site.lan.nodes.iter().enumerate() {
        let hosts = node.read("/etc/hosts").unwrap_or_default();
        assert!(
            hosts.contains(&format!("{}\th{i}\n", node.ip)) && hosts.contains("10.77.0.11\th0\n"),
            "h{i}'s /etc/hosts:\n{hosts}"
        );
        let marker = node.read("/var/lib/ferry/cluster.json").unwrap_or_default();
        assert!(marker.contains("\"many\""), "h{i}'s marker: {marker}");
        assert_eq!(
            String::from_utf8_lossy(&node.sh("hostname").stdout).trim(),
            format!("h{i}")
        );
    }
}

#[test]
fn forty_hosts_are_planned_and_applied_with_progress_per_step() {
    const N: usize = 40;
    let Some(site) = Site::start(N) else {
        return;
    };
    // The first command to meet the hosts trusts their keys: the first in full, then a count,
    // never a line per host.
    let check = site.ferry("inventory check -i inventory.toml");
    let keys = check.stderr();
    assert_eq!(
        keys.matches(": first contact, trusting host key ").count(),
        1,
        "{keys}"
    );
    assert!(
        keys.contains(&format!("{N} host keys trusted on first contact")),
        "{keys}"
    );
    assert!(
        check.stdout().contains(&format!("{N} of {N} hosts passed")),
        "{}\n{keys}",
        check.stdout()
    );
    let plan = site.ferry("plan --answers site.toml");
    let plan = plan.ok();
    // The survey's progress: a few lines for all, none per host.
    let progress = plan.stderr();
    assert!(
        progress.contains(&format!("facts {N}/{N} done")),
        "{progress}"
    );
    assert!(per_host_lines(&progress, N).is_empty(), "{progress}");
    // The plan: a row per change for all hosts, none per host.
    assert!(
        plan.stdout()
            .contains(&format!("plan: {N} hosts, {N} to change")),
        "{}",
        plan.stdout()
    );
    assert!(
        per_host_lines(&plan.stdout(), N).is_empty(),
        "{}",
        plan.stdout()
    );

    let apply = site.ferry("apply --answers site.toml");
    let apply = apply.ok();
    let out = apply.stdout();
    for step in [
        "hostname",
        "hosts-file",
        "sysctl",
        "limits",
        "cluster-marker",
    ] {
        assert!(
            out.contains(&format!("apply {step} {N}/{N} done")),
            "no summary of {step}:\n{out}"
        );
    }
    // Per step: a line when it starts, now and then, and when it ends; the plan's table and
    // the closing summary say what changed where.
    assert!(
        per_host_lines(&apply.stderr(), N).is_empty() && per_host_lines(&out, N).is_empty(),
        "{out}\n{}",
        apply.stderr()
    );
    // Five steps: a line each when it ends, and a few shared ones while they run.
    let steps = out.lines().filter(|l| l.starts_with("apply ")).count();
    assert!((5..=15).contains(&steps), "{steps} lines of steps:\n{out}");
    assert!(
        out.contains(&format!("hosts: {N} in all, {N} ok;")),
        "{out}"
    );
    every_host_changed(&site);
    // Every host's detail is kept: its log in the run directory.
    let run = std::fs::read_dir(site.runs())
        .unwrap()
        .flatten()
        .find(|e| e.path().join("journal.jsonl").is_file())
        .unwrap()
        .path();
    for i in 0..N {
        assert!(
            run.join(format!("h{i}.log")).is_file(),
            "no log of h{i} in {}",
            run.display()
        );
    }

    // A second plan finds nothing to do on any host, and --json names every one. This jump
    // host's record of the run is moved away first: the cluster id comes from the markers
    // the survey read on the hosts (the answer file gives none).
    std::fs::rename(site.runs(), site.path().join("runs-before")).unwrap();
    let again = site.ferry("plan --answers site.toml --json");
    let doc: serde_json::Value = serde_json::from_str(&again.ok().stdout()).unwrap();
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), N);
    for h in hosts {
        assert_eq!(h["status"], "no-changes", "{h}");
    }
    let marker: serde_json::Value = serde_json::from_str(
        &site.lan.nodes[0]
            .read("/var/lib/ferry/cluster.json")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["cluster_id"], marker["cluster_id"], "{doc}");

    // One host marked for another cluster of the same name: ferry cannot tell which one this
    // install is for, and says so before anything changes.
    site.lan.nodes[7].write(
        "/var/lib/ferry/cluster.json",
        b"{\"cluster_id\":\"ferry-other\",\"cluster_name\":\"many\"}\n",
    );
    let two = site.ferry("plan --answers site.toml");
    assert!(!two.out.status.success(), "{}", two.stdout());
    let err = two.stderr();
    assert!(
        err.contains("markers of 2 different clusters named \"many\"")
            && err.contains("ferry-other (h7)")
            && err.contains("set cluster.id in the answer file"),
        "{err}"
    );
}

/// The memory of every process in another network namespace than this test's, but ferry's
/// (the nodes' sshd, their sessions and commands), in MiB of PSS: what the simulated site
/// costs this machine.
fn site_pss_mib() -> f64 {
    let ours = std::fs::read_link("/proc/self/ns/net").ok();
    let mut kib = 0u64;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let p = e.path();
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if std::fs::read_link(p.join("ns/net")).ok() == ours {
            continue;
        }
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if matches!(comm.trim(), "ferry" | "time") {
            continue;
        }
        let rollup = std::fs::read_to_string(p.join("smaps_rollup")).unwrap_or_default();
        kib += rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    kib as f64 / 1024.0
}

/// The figures of `benches/scale/run.sh`: `FERRY_SCALE_HOSTS` hosts (default 500), plan,
/// apply and a second plan, each timed, with ferry's peak RSS and CPU time and the memory of
/// the simulated site (see [`site_pss_mib`]) idle and at its highest; one `SCALE` line on
/// stdout.
#[test]
#[ignore = "a benchmark: run by benches/scale/run.sh"]
fn scale_figures() {
    let n: usize = std::env::var("FERRY_SCALE_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    // The site's memory, sampled every 2 s while ferry runs (the sessions live only then).
    let high = std::sync::Arc::new(std::sync::Mutex::new(0.0f64));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (high, stop) = (high.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now = site_pss_mib();
                let mut h = high.lock().unwrap();
                *h = h.max(now);
                drop(h);
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
        })
    };
    let t = Instant::now();
    let Some(site) = Site::start(n) else {
        return;
    };
    let setup = t.elapsed().as_secs_f64();
    let idle = site_pss_mib();
    let plan = site.ferry("plan --answers site.toml");
    plan.ok();
    let apply = site.ferry("apply --answers site.toml");
    apply.ok();
    let again = site.ferry("plan --answers site.toml");
    again.ok();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    every_host_changed(&site);
    eprintln!("--- plan's output:\n{}\n{}", plan.stdout(), plan.stderr());
    eprintln!(
        "--- apply's output:\n{}\n{}",
        apply.stdout(),
        apply.stderr()
    );
    let lines = apply.stdout().lines().count() + apply.stderr().lines().count();
    let peak = *high.lock().unwrap();
    println!(
        "SCALE hosts={n} setup_s={setup:.1} plan_s={:.1} plan_cpu_s={:.1} plan_rss_mib={:.1} \
         apply_s={:.1} apply_cpu_s={:.1} apply_rss_mib={:.1} replan_s={:.1} replan_cpu_s={:.1} \
         replan_rss_mib={:.1} apply_output_lines={lines} site_idle_pss_mib={idle:.0} \
         site_peak_pss_mib={peak:.0}",
        plan.seconds,
        plan.cpu,
        plan.rss_mib,
        apply.seconds,
        apply.cpu,
        apply.rss_mib,
        again.seconds,
        again.cpu,
        again.rss_mib
    );
}
