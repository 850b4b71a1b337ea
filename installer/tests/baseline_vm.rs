//! `ferry plan`, `apply` and `rollback` of the host baseline on three real Debian VMs, checked
//! the way an operator would check them: over SSH on each host, before and after each command.
//! Also the helper behind benches/baseline/run.sh (`bench_baseline_apply`, ignored).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;
use vm_tests::{start_or_skip, Testbed, Vm, VmSpec};

mod common;
use common::{expect_status, step, Run, Site};

/// Each test boots its own 3 VMs: never two testbeds at once on a 2-core machine.
static ONE_BED: Mutex<()> = Mutex::new(());

/// The other cluster whose marker a host carries in the guard scenario.
const OTHER_CLUSTER: &str = "ferry-0ther0c1u5ter0000";

// ------------------------------------------------------------------------ what a host looks like

/// What an operator would look at on a host, by section (`sysctl`, `modules`, `etc`, ...).
type Observed = BTreeMap<String, String>;

/// Everything under /etc ferry could touch is in `etc` (path, mode, sha256) and `etc-mtime`;
/// the other sections are the running state those files do not show. /etc/machine-id's mtime
/// changes at each boot (the testbed gives the id on the kernel command line).
const OBSERVE: &str = r#"
s() { echo "@@@$1"; }
s hostname; hostname
s etc-hostname; cat /etc/hostname
s etc-hosts; cat /etc/hosts
s sysctl
for k in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables \
         fs.inotify.max_user_instances fs.inotify.max_user_watches vm.max_map_count; do
  echo "$k=$(sysctl -n $k 2>/dev/null || echo absent)"
done
s modules; lsmod | tail -n +2 | awk '{print $1}' | sort
s swap; swapon --noheadings --show=NAME
s chrony-sources; chronyc -n sources 2>&1 | awk '/^\^/ {print $2}' | sort
s containerd; echo "$(systemctl is-active containerd) $(systemctl is-enabled containerd)"
s default-route; ip route show default; ip -br link show type dummy | awk '{print $1}'
s marker; if [ -e /var/lib/ferry/cluster.json ]; then stat -c %Y /var/lib/ferry/cluster.json; cat /var/lib/ferry/cluster.json; else echo absent; fi
s var-lib-ferry; find /var/lib/ferry 2>/dev/null | sort
s packages; dpkg-query -W -f '${Package} ${Status}\n' 'ferry-standin-*' 2>/dev/null
s etc; find /etc -xdev -type f ! -path /etc/adjtime ! -path /etc/ld.so.cache -exec sha256sum {} + | sort -k2
find /etc -xdev \( -type f -o -type d \) -printf '%p mode %m\n' | sort
find /etc -xdev -type l -printf '%p -> %l\n' | sort
s etc-mtime; find /etc -xdev -type f ! -path /etc/adjtime ! -path /etc/ld.so.cache ! -path /etc/machine-id -printf '%p %T@\n' | sort
"#;

fn observe(vm: &Vm) -> Observed {
    let out = vm
        .ssh_ok(OBSERVE)
        .unwrap_or_else(|e| panic!("observing {} over SSH: {e}", vm.name()));
    let mut map = Observed::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("@@@") {
            current = Some(name.to_string());
            map.insert(name.to_string(), String::new());
        } else if let Some(name) = &current {
            let v = map.get_mut(name).unwrap();
            v.push_str(line);
            v.push('\n');
        }
    }
    map
}

fn observe_all(bed: &Testbed) -> Vec<Observed> {
    bed.vms().iter().map(observe).collect()
}

/// Modules a rollback may leave loaded, by design (bootos modules.rs: unloading is best
/// effort): stp and llc come with br_netfilter's bridge, dummy with the default-route fix's
/// interface. The modules the baseline itself loads (overlay, br_netfilter) are compared.
const LEFT_LOADED: [&str; 3] = ["stp", "llc", "dummy"];

/// Fails, listing each differing section line by line, unless `after` equals `before` outside
/// the sections in `skip`.
fn assert_same(host: &str, when: &str, before: &Observed, after: &Observed, skip: &[&str]) {
    let mut after = after.clone();
    if let (Some(b), Some(a)) = (before.get("modules"), after.get_mut("modules")) {
        let was: BTreeSet<&str> = b.lines().collect();
        let kept: Vec<&str> = a
            .lines()
            .filter(|m| was.contains(m) || !LEFT_LOADED.contains(m))
            .collect();
        *a = kept.iter().map(|m| format!("{m}\n")).collect();
    }
    let after = &after;
    let mut report = String::new();
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for key in keys {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let b = before.get(key).map(String::as_str).unwrap_or("<missing>");
        let a = after.get(key).map(String::as_str).unwrap_or("<missing>");
        if a == b {
            continue;
        }
        let bl: BTreeSet<&str> = b.lines().collect();
        let al: BTreeSet<&str> = a.lines().collect();
        report.push_str(&format!("  [{key}]\n"));
        for l in bl.difference(&al) {
            report.push_str(&format!("    before only: {l}\n"));
        }
        for l in al.difference(&bl) {
            report.push_str(&format!("    now only:    {l}\n"));
        }
        if bl == al {
            report.push_str(&format!("    order differs: before {b:?}, now {a:?}\n"));
        }
    }
    assert!(
        report.is_empty(),
        "{host}: {when}, the host is not as it was before:\n{report}"
    );
}

fn section<'a>(o: &'a Observed, key: &str) -> &'a str {
    o.get(key).map(String::as_str).unwrap_or("")
}

/// Makes the VMs look like freshly installed hosts the baseline has work on: a host name
/// that is not the inventory name, and a swap file in use and in fstab.
fn make_fresh(bed: &Testbed) {
    for (i, vm) in bed.vms().iter().enumerate() {
        vm.ssh_ok(&format!(
            "set -e; echo fresh-{i} > /etc/hostname; hostname fresh-{i}; \
             fallocate -l 32M /swapfile; chmod 600 /swapfile; mkswap -q /swapfile; \
             swapon /swapfile; echo '/swapfile none swap sw 0 0' >> /etc/fstab; sync"
        ))
        .unwrap_or_else(|e| panic!("preparing {}: {e}", vm.name()));
    }
}

fn sync_all(bed: &Testbed) {
    for vm in bed.vms() {
        vm.ssh_ok("sync").unwrap();
    }
}

/// What `ferry apply` must leave on each host, checked as an operator would.
fn assert_baseline(bed: &Testbed, cluster_id: &str, time_source: &Vm) {
    let source = time_source.address().to_string();
    for vm in bed.vms() {
        let name = vm.name();
        let o = observe(vm);
        assert_eq!(section(&o, "hostname").trim(), name, "{name}: `hostname`");
        assert_eq!(
            section(&o, "etc-hostname").trim(),
            name,
            "{name}: /etc/hostname"
        );
        // Each host maps itself, the servers (vm0: Site's inventory has one) and the time
        // source; agents do not list each other, so adding an agent changes no other host.
        for other in bed.vms() {
            let listed = section(&o, "etc-hosts").lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.first() == Some(&other.address().to_string().as_str())
                    && w.contains(&other.name())
            });
            let wanted =
                other.name() == name || other.name() == "vm0" || other.name() == time_source.name();
            assert_eq!(
                listed,
                wanted,
                "{name}: /etc/hosts maps {} to {}: {listed}, expected {wanted}:\n{}",
                other.address(),
                other.name(),
                section(&o, "etc-hosts")
            );
        }
        for (key, want) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.bridge.bridge-nf-call-iptables", "1"),
            ("vm.max_map_count", "262144"),
        ] {
            assert!(
                section(&o, "sysctl")
                    .lines()
                    .any(|l| l == format!("{key}={want}")),
                "{name}: sysctl {key} is not {want}:\n{}",
                section(&o, "sysctl")
            );
        }
        for module in ["overlay", "br_netfilter"] {
            assert!(
                section(&o, "modules").lines().any(|l| l == module),
                "{name}: module {module} is not loaded (lsmod)"
            );
        }
        assert!(
            section(&o, "swap").trim().is_empty(),
            "{name}: swap still on: {}",
            section(&o, "swap")
        );
        let fstab = vm.ssh_ok("cat /etc/fstab").unwrap();
        assert!(
            !fstab.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                !l.trim_start().starts_with('#') && w.get(2) == Some(&"swap")
            }),
            "{name}: /etc/fstab still turns swap on at boot:\n{fstab}"
        );
        if vm.address().to_string() != source {
            assert!(
                section(&o, "chrony-sources").lines().any(|l| l == source),
                "{name}: chrony does not follow {} ({source}); `chronyc sources` lists:\n{}",
                time_source.name(),
                section(&o, "chrony-sources")
            );
        }
        assert!(
            section(&o, "containerd").starts_with("active "),
            "{name}: containerd is not running: {}",
            section(&o, "containerd")
        );
        assert!(
            section(&o, "marker").contains(cluster_id),
            "{name}: /var/lib/ferry/cluster.json does not name cluster {cluster_id}:\n{}",
            section(&o, "marker")
        );
    }
}

/// The run's journal on the jump host (JSON lines, `begin` and `done` records) and on each host.
fn assert_journals(site: &Site, bed: &Testbed, run_id: &str) {
    let path = site.journal(run_id);
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the jump host's journal {}: {e}", path.display()));
    let mut kinds = BTreeSet::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("journal line is not JSON ({e}): {line}"));
        let kind = ["event", "kind", "type", "record"]
            .iter()
            .find_map(|k| v[*k].as_str())
            .unwrap_or_default()
            .to_string();
        kinds.insert(kind);
    }
    assert!(
        kinds.contains("begin") && kinds.contains("done"),
        "the journal {} has no begin/done records (kinds {kinds:?})",
        path.display()
    );
    for vm in bed.vms() {
        let out = vm
            .ssh(&format!(
                "stat -c '%a' /var/lib/ferry/journal /var/lib/ferry/journal/{run_id}.jsonl && \
                 wc -l < /var/lib/ferry/journal/{run_id}.jsonl"
            ))
            .unwrap();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert!(
            out.success() && lines.len() == 3,
            "{}: no journal /var/lib/ferry/journal/{run_id}.jsonl: {}{}",
            vm.name(),
            out.stdout,
            out.stderr
        );
        assert_eq!(
            (lines[0], lines[1]),
            ("700", "600"),
            "{}: the host's journal dir/file modes",
            vm.name()
        );
        assert!(
            lines[2].trim().parse::<u32>().unwrap_or(0) > 0,
            "{}: the host's journal is empty",
            vm.name()
        );
    }
}

fn start_bed() -> Option<(std::sync::MutexGuard<'static, ()>, Testbed, f64)> {
    let guard = ONE_BED.lock().unwrap_or_else(|p| p.into_inner());
    let t0 = Instant::now();
    let bed = start_or_skip(3, &VmSpec::default())?;
    let boot = t0.elapsed().as_secs_f64();
    eprintln!("testbed of 3 VMs up in {boot:.1} s");
    Some((guard, bed, boot))
}

// ------------------------------------------------------------------------------------ tests

/// The whole happy path an operator walks: plan, apply, plan again, reboot, roll back.
#[test]
fn baseline_applies_converges_survives_a_reboot_and_rolls_back() {
    let Some((_guard, bed, _)) = start_bed() else {
        return;
    };
    let t0 = Instant::now();
    let site = Site::new(&bed);
    // The time source is the last host: with one apply slot (step 2), it must still go first,
    // or the followers' time check would wait for a source that is not serving yet.
    let answers = site.answers("site.toml", "", "\n[baseline.time]\nsource = \"vm2\"");
    let answers = answers.to_str().unwrap();
    make_fresh(&bed);
    let before = observe_all(&bed);

    step(
        "1. plan on fresh hosts shows changes for every host and touches nothing",
        t0,
    );
    let plan = site.ferry(&["plan", "--answers", answers]);
    plan.expect_ok("plan on 3 fresh hosts");
    for vm in bed.vms() {
        assert!(
            plan.stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(vm.name())
                    || l.trim_start().starts_with(&format!("| {}", vm.name()))),
            "the plan table has no row for {}\n{}",
            vm.name(),
            plan.show()
        );
    }
    let last = plan
        .stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.starts_with("plan: 3 hosts, 3 to change"),
        "the plan's last line should count 3 hosts to change, it is {last:?}"
    );
    let plan_json = site.ferry(&["plan", "--answers", answers, "--json"]);
    plan_json.expect_ok("plan --json on 3 fresh hosts");
    let plan_json_id = plan_json.json()["cluster_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        plan_json_id.starts_with("ferry-"),
        "cluster id {plan_json_id:?}"
    );
    for vm in bed.vms() {
        let p = expect_status(&plan_json, vm.name(), "ready");
        assert!(
            p.changes >= 5,
            "{}: only {} changes planned",
            vm.name(),
            p.changes
        );
    }
    for (vm, b) in bed.vms().iter().zip(&before) {
        assert_same(vm.name(), "after `ferry plan`", b, &observe(vm), &[]);
    }

    step(
        "2. apply sets the baseline on every host, one at a time, the time source first; a \
         second apply from another jump host meanwhile is refused by the hosts' locks",
        t0,
    );
    let other_jump_host = Site::new(&bed);
    let other_answers =
        other_jump_host.answers("site.toml", "", "\n[baseline.time]\nsource = \"vm2\"");
    let mut second: Option<Run> = None;
    let apply = site
        .start(&["apply", "--answers", answers, "--parallel", "1"])
        .finish(|line| {
            if second.is_none() && line.contains(" applied (") {
                second = Some(other_jump_host.ferry(&[
                    "apply",
                    "--answers",
                    other_answers.to_str().unwrap(),
                ]));
            }
        });
    apply.expect_ok("first apply");
    let run_id = apply.run_id();
    let second = second.unwrap_or_else(|| panic!("no `applied` line\n{}", apply.show()));
    second.expect_fail("a second apply while the first runs");
    for vm in bed.vms() {
        second.expect_outcome(vm.name(), "blocked");
        assert!(
            second.stdout.contains(&format!(
                "{} is locked by run {run_id} (apply) from jump host",
                vm.name()
            )),
            "the refusal should name the host, the run holding it and the jump host\n{}",
            second.show()
        );
    }
    assert!(
        second.stdout.contains(&format!("--break-lock {run_id}")),
        "{}",
        second.show()
    );
    for vm in bed.vms() {
        let lock = vm.ssh("test -e /var/lib/ferry/lock").unwrap();
        assert!(
            !lock.success(),
            "{}: the lock is still there after the apply",
            vm.name()
        );
    }
    // The cluster id is random (not derived from the name), made at this first apply, kept in
    // the run's directory and every marker.
    let cluster_id = site.run_cluster_id(&run_id);
    assert_ne!(
        cluster_id, plan_json_id,
        "a plan of unmarked hosts shows a new id, and the apply makes its own"
    );
    for vm in bed.vms() {
        apply.expect_outcome(vm.name(), "ok");
        assert!(
            apply
                .stdout
                .lines()
                .any(|l| l.starts_with(vm.name()) && l.contains("applied")),
            "no `{} <resource> applied` progress line\n{}",
            vm.name(),
            apply.show()
        );
    }
    eprintln!("first apply on 3 hosts: {:.1} s", apply.secs);
    assert_baseline(&bed, &cluster_id, bed.vm(2));
    let started: Vec<&str> = apply
        .stdout
        .lines()
        .filter(|l| l.contains(" applied ("))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        started.first(),
        Some(&"vm2"),
        "the time source vm2 did not go first with --parallel 1\n{}",
        apply.show()
    );
    assert_journals(&site, &bed, &run_id);

    step(
        "3. plan again: no changes; apply again: touches nothing",
        t0,
    );
    let again = site.ferry(&["plan", "--answers", answers, "--json"]);
    again.expect_ok("plan after apply");
    assert_eq!(
        again.json()["cluster_id"],
        cluster_id,
        "a later plan takes the id from the hosts' markers"
    );
    for vm in bed.vms() {
        let p = expect_status(&again, vm.name(), "no-changes");
        assert_eq!(p.changes, 0, "{}: changes planned after apply", vm.name());
    }
    let text = site.ferry(&["plan", "--answers", answers]);
    for vm in bed.vms() {
        assert!(
            text.stdout.contains(&format!("{}: no changes", vm.name())),
            "the plan does not say `{}: no changes`\n{}",
            vm.name(),
            text.show()
        );
    }
    let applied = observe_all(&bed);
    let second = site.ferry(&["apply", "--answers", answers]);
    second.expect_ok("second apply");
    for vm in bed.vms() {
        second.expect_outcome(vm.name(), "no changes");
    }
    for (vm, a) in bed.vms().iter().zip(&applied) {
        // etc-mtime is compared too: a rewrite with the same content is a change.
        assert_same(
            vm.name(),
            "after a second apply",
            a,
            &observe(vm),
            &["var-lib-ferry"],
        );
    }

    step("4. a reboot keeps every setting", t0);
    let vm1 = bed.vm(1);
    vm1.ssh_ok("sync").unwrap();
    vm1.power_off().unwrap();
    vm1.power_on().unwrap();
    let rebooted = observe(vm1);
    assert_same(
        "vm1",
        "after a reboot",
        &applied[1],
        &rebooted,
        &["var-lib-ferry", "chrony-sources"],
    );
    assert!(
        section(&rebooted, "chrony-sources")
            .lines()
            .any(|l| l == bed.vm(2).address().to_string()),
        "vm1: after a reboot chrony does not follow the time source vm2: {}",
        section(&rebooted, "chrony-sources")
    );
    let after_boot = site.ferry(&["plan", "--answers", answers, "--json"]);
    after_boot.expect_ok("plan after a reboot");
    expect_status(&after_boot, "vm1", "no-changes");

    step(
        "5. rollback, with the jump host's journal cut mid-line and an fstab line added on vm0 \
         since: every host back to its pre-run state, the added line kept",
        t0,
    );
    let journal = site.journal(&run_id);
    let text = fs::read(&journal).unwrap();
    let mut cut = text.len() / 3;
    while text[cut - 1] == b'\n' || text[cut] == b'\n' {
        cut += 1;
    }
    fs::write(&journal, &text[..cut]).unwrap();
    let vm0 = bed.vm(0);
    let added = "/dev/vdz /mnt/ferry-test ext4 noauto 0 0";
    vm0.ssh_ok(&format!("echo '{added}' >> /etc/fstab"))
        .unwrap();
    let rollback = site.ferry(&["rollback", "--run", &run_id, "--answers", answers]);
    rollback.expect_ok("rollback of the first run");
    let snapshot = format!("/etc/fstab.ferry-rollback-{run_id}");
    assert!(
        rollback.stdout.contains(&format!(
            "vm0: kept: swap: /etc/fstab: changed since run {run_id} wrote it"
        )) && rollback.stdout.contains(&snapshot),
        "the rollback report should say vm0's fstab was kept and where the old one is\n{}",
        rollback.show()
    );
    let fstab = vm0.ssh_ok("cat /etc/fstab").unwrap();
    assert!(
        fstab.contains(added),
        "vm0: the added fstab line is gone:\n{fstab}"
    );
    let old = vm0.ssh_ok(&format!("cat {snapshot}")).unwrap();
    assert!(
        old.lines().any(|l| l == "/swapfile none swap sw 0 0") && !old.contains(added),
        "vm0: {snapshot} should hold the fstab from before the run:\n{old}"
    );
    // The operator takes the old fstab back by hand; then every host is as before.
    vm0.ssh_ok(&format!("mv {snapshot} /etc/fstab")).unwrap();
    for (vm, b) in bed.vms().iter().zip(&before) {
        // The journal stays (it is the record of the run); restored files have new mtimes.
        assert_same(
            vm.name(),
            "after `ferry rollback`",
            b,
            &observe(vm),
            &["var-lib-ferry", "etc-mtime"],
        );
    }
    let twice = site.ferry(&["rollback", "--run", &run_id, "--answers", answers]);
    twice.expect_ok("a second rollback of the same run");
    let all = format!("{}{}", twice.stdout, twice.stderr);
    assert!(
        all.contains("nothing to roll back"),
        "a second rollback should say `nothing to roll back`\n{}",
        twice.show()
    );
    step("done", t0);
}

/// Failures: a package that cannot be installed, a host powered off mid-run, a host of
/// another cluster, cloned machine-ids.
/// With an agent, the bundle's OS package repository (needed by all 3 hosts) is relayed host
/// to host before the steps run, each host's `os-repo` step unpacks its relayed copy, the
/// packages install from it, and the relayed copies are gone from the stores afterwards.
#[test]
fn apply_with_an_agent_relays_the_os_repository_host_to_host() {
    if !ferry_tests::require(ferry_tests::standin::missing_tools()) {
        return;
    }
    let Some((_guard, bed, _)) = start_bed() else {
        return;
    };
    let site = Site::new(&bed);
    build_bundle(site.path());
    let answers = site.answers(
        "site.toml",
        "bundle = \"site.ferry\"\nbundle-pubkey = \"vendor.pub\"",
        "packages = [\"ferry-standin-hello\"]\ncontainer-runtime = false",
    );
    let apply = site.ferry(&[
        "apply",
        "--answers",
        answers.to_str().unwrap(),
        "--agent",
        "self",
        // The test bundle's repository is a few KiB: relayed even so, which by default
        // (256 MiB saved at least) goes to each host directly.
        "--relay-min-mib",
        "0",
    ]);
    apply.expect_ok("apply with an agent");
    let relay: Vec<&str> = apply
        .stderr
        .lines()
        .filter(|l| l.contains(" relay: "))
        .collect();
    eprintln!("{}", relay.join("\n"));
    assert!(
        relay
            .iter()
            .any(|l| l.contains("1 file(s)") && l.contains("to 3 hosts")),
        "no relay of the repository to 3 hosts:\n{}",
        apply.show()
    );
    assert!(
        relay
            .iter()
            .any(|l| l.contains("delivered to 3 of 3 hosts")),
        "{}",
        apply.show()
    );
    assert!(!apply.stderr.contains("warning: relay"), "{}", apply.show());
    for vm in bed.vms() {
        let out = vm
            .ssh_ok(
                "ls /var/lib/ferry/repo/*/Packages* >/dev/null && \
                 cat /usr/share/ferry-standin/hello && \
                 ls -A /var/cache/ferry/blobs 2>/dev/null | wc -l",
            )
            .unwrap_or_else(|e| panic!("{}: {e}", vm.name()));
        assert!(out.contains("STAND-IN package"), "{}: {out}", vm.name());
        assert_eq!(
            out.lines().last().map(str::trim),
            Some("0"),
            "{}: relayed copies left in the store",
            vm.name()
        );
    }
}

#[test]
fn failures_roll_back_the_failed_host_and_guards_refuse_foreign_hosts() {
    if !ferry_tests::require(ferry_tests::standin::missing_tools()) {
        return;
    }
    let Some((_guard, bed, _)) = start_bed() else {
        return;
    };
    let t0 = Instant::now();
    let site = Site::new(&bed);
    build_bundle(site.path());
    let bundle_top = "bundle = \"site.ferry\"\nbundle-pubkey = \"vendor.pub\"";
    let broken = site.answers(
        "broken.toml",
        bundle_top,
        "packages = [\"ferry-standin-hello\", \"ferry-standin-broken\"]",
    );
    let absent = site.answers(
        "absent.toml",
        bundle_top,
        "packages = [\"ferry-standin-absent\"]",
    );
    let answers = site.answers("site.toml", "", "");
    let answers = answers.to_str().unwrap();
    make_fresh(&bed);
    let before = observe_all(&bed);
    let no_journal = ["var-lib-ferry", "etc-mtime"];

    step(
        "6a. a package whose install fails mid-run: each host rolled back",
        t0,
    );
    let run = site.ferry(&["apply", "--answers", broken.to_str().unwrap()]);
    run.expect_fail("apply with a package that fails to install");
    for (vm, b) in bed.vms().iter().zip(&before) {
        run.expect_outcome(vm.name(), "rolled back");
        assert_same(
            vm.name(),
            "after a failed, rolled back apply",
            b,
            &observe(vm),
            &no_journal,
        );
    }

    step(
        "6b. a package missing from the bundle's repo: refused or rolled back",
        t0,
    );
    let run = site.ferry(&["apply", "--answers", absent.to_str().unwrap()]);
    run.expect_fail("apply with a package missing from the bundle");
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("ferry-standin-absent"),
        "the failure does not name the missing package\n{}",
        run.show()
    );
    for (vm, b) in bed.vms().iter().zip(&before) {
        let row = run.outcome(vm.name()).to_ascii_lowercase();
        assert!(
            row.starts_with("blocked") || row.starts_with("rolled back"),
            "{}: the summary says {row:?}, expected blocked or rolled back\n{}",
            vm.name(),
            run.show()
        );
        assert_same(
            vm.name(),
            "after an apply missing a package",
            b,
            &observe(vm),
            &no_journal,
        );
    }

    step(
        "6c. packages: rollback removes what the run installed; a package installed by hand \
         since stays; one with only its configuration left before gets that back",
        t0,
    );
    let pkgs = site.answers(
        "pkgs.toml",
        bundle_top,
        "packages = [\"ferry-standin-hello\", \"ferry-standin-conf\"]",
    );
    let vm0 = bed.vm(0);
    let conf_deb = fs::read(site.path().join("debs/ferry-standin-conf_1.0_all.deb")).unwrap();
    vm0.ssh_ok(&format!(
        "set -e; echo {} | base64 -d > /root/conf.deb; dpkg -i /root/conf.deb; rm /root/conf.deb; \
         echo 'local = edit' >> /etc/ferry-standin-conf.conf; dpkg --remove ferry-standin-conf",
        base64_of(&conf_deb)
    ))
    .unwrap();
    let rc_before = observe(vm0);
    let run = site.ferry(&["apply", "--answers", pkgs.to_str().unwrap()]);
    run.expect_ok("apply with packages");
    let run_id = run.run_id();
    vm0.ssh_ok(
        "dpkg -i /var/lib/ferry/repo/*/ferry-standin-extra_1.0_all.deb >/dev/null && \
         dpkg-query -W -f '${Status}' ferry-standin-hello",
    )
    .unwrap();
    let rollback = site.ferry(&["rollback", "--run", &run_id, "--answers", answers]);
    rollback.expect_ok("rollback of the packages run");
    let status = |p: &str| {
        vm0.ssh(&format!("dpkg-query -W -f '${{Status}}' {p} 2>/dev/null"))
            .unwrap()
            .stdout
    };
    assert_eq!(
        status("ferry-standin-extra"),
        "install ok installed",
        "vm0: a package installed by hand after the run was removed by its rollback"
    );
    assert!(
        !status("ferry-standin-hello").contains("installed"),
        "vm0: the run's package is still there: {}",
        status("ferry-standin-hello")
    );
    assert_eq!(
        status("ferry-standin-conf"),
        "deinstall ok config-files",
        "vm0: a package that had only its configuration left before should be back to that"
    );
    let conf = vm0.ssh_ok("cat /etc/ferry-standin-conf.conf").unwrap();
    assert!(
        conf.contains("local = edit"),
        "vm0: its edited configuration is gone: {conf}"
    );
    vm0.ssh_ok("dpkg --purge ferry-standin-extra >/dev/null")
        .unwrap();
    assert_same(
        "vm0",
        "after the packages rollback",
        &rc_before,
        &observe(vm0),
        &no_journal,
    );
    vm0.ssh_ok("dpkg --purge ferry-standin-conf >/dev/null")
        .unwrap();
    for (vm, b) in bed.vms().iter().zip(&before).skip(1) {
        assert_same(
            vm.name(),
            "after the packages rollback",
            b,
            &observe(vm),
            &no_journal,
        );
    }

    step(
        "6d. vm2 powered off mid-apply: vm0 and vm1 done; vm2 rolled back later from a new \
         jump host (the first one's journal lost) once its stale lock is broken",
        t0,
    );
    sync_all(&bed);
    let vm2 = bed.vm(2);
    let running = site.start(&["apply", "--answers", answers]);
    let mut killed = false;
    let run = running.finish(|line| {
        let mut w = line.split_whitespace();
        if !killed && w.next() == Some("vm2") && line.contains("applied") {
            vm2.power_off().unwrap();
            killed = true;
        }
    });
    assert!(
        killed,
        "never saw a `vm2 ... applied` line to power vm2 off on\n{}",
        run.show()
    );
    run.expect_fail("apply with vm2 powered off mid-run");
    run.expect_outcome("vm0", "ok");
    run.expect_outcome("vm1", "ok");
    let row = run.outcome("vm2").to_ascii_lowercase();
    assert!(
        row.starts_with("failed") || row.starts_with("unreachable"),
        "vm2 was powered off mid-run but the summary says {row:?}\n{}",
        run.show()
    );
    let run_id = run.run_id();
    vm2.power_on().unwrap();
    // The jump host is lost: a new one, with the same answer file, has no copy of the run.
    let new_jump_host = Site::new(&bed);
    let new_answers = new_jump_host.answers("site.toml", "", "");
    let rollback_args = [
        "rollback",
        "--run",
        &run_id,
        "--answers",
        new_answers.to_str().unwrap(),
        "--host",
        "vm2",
    ];
    let refused = new_jump_host.ferry(&rollback_args);
    refused.expect_fail("rollback of vm2 while the dead run's lock is there");
    assert!(
        refused
            .stdout
            .contains(&format!("vm2 is locked by run {run_id} (apply)"))
            && refused.stdout.contains("the lock is stale")
            && refused.stdout.contains(&format!("--break-lock {run_id}")),
        "the refusal should name the dead run, say the lock is stale and how to break it\n{}",
        refused.show()
    );
    let mut args = rollback_args.to_vec();
    args.extend(["--break-lock", &run_id]);
    let rollback = new_jump_host.ferry(&args);
    rollback.expect_ok("rollback of vm2 after its power loss, from the hosts' journals");
    // The testbed names a VM on its kernel command line at each boot: the running host name
    // after a power cycle is the testbed's, so only /etc/hostname is compared.
    let mut skip = no_journal.to_vec();
    skip.push("hostname");
    assert_same(
        "vm2",
        "after power loss and `ferry rollback --host vm2`",
        &before[2],
        &observe(vm2),
        &skip,
    );
    for vm in &bed.vms()[..2] {
        let o = observe(vm);
        assert!(
            section(&o, "marker").contains("ferry-"),
            "{}: `rollback --host vm2` touched {} (its marker is gone)",
            vm.name(),
            vm.name()
        );
    }

    step(
        "7. a host of another cluster is refused until --force names it",
        t0,
    );
    vm2.ssh_ok(&format!(
        "mkdir -p /var/lib/ferry && printf '{{\"cluster_id\":\"{OTHER_CLUSTER}\"}}\\n' > /var/lib/ferry/cluster.json"
    ))
    .unwrap();
    let foreign = observe(vm2);
    let plan = site.ferry(&["plan", "--answers", answers, "--json"]);
    plan.expect_fail("plan with a host of another cluster");
    let p = expect_status(&plan, "vm2", "blocked");
    let why = p.reasons.join(" ");
    assert!(
        why.contains(OTHER_CLUSTER) && why.contains("--force vm2"),
        "vm2's blocked reason should name cluster {OTHER_CLUSTER} and `--force vm2`: {why:?}"
    );
    expect_status(&plan, "vm0", "no-changes");
    expect_status(&plan, "vm1", "no-changes");
    let apply = site.ferry(&["apply", "--answers", answers]);
    apply.expect_fail("apply with a host of another cluster");
    apply.expect_outcome("vm2", "blocked");
    apply.expect_outcome("vm0", "no changes");
    apply.expect_outcome("vm1", "no changes");
    assert_same(
        "vm2",
        "after an apply that must not touch it",
        &foreign,
        &observe(vm2),
        &[],
    );
    let forced = site.ferry(&["apply", "--answers", answers, "--force", "vm2"]);
    forced.expect_ok("apply --force vm2");
    forced.expect_outcome("vm2", "ok");
    let o = observe(vm2);
    assert!(
        !section(&o, "marker").contains(OTHER_CLUSTER),
        "vm2: after --force it still carries the other cluster's marker"
    );

    step(
        "8. cloned machine-ids block both hosts until one is fixed",
        t0,
    );
    let id = bed.vm(0).ssh_ok("cat /etc/machine-id").unwrap();
    // A bind mount over the file: the clone is undone by unmounting, whatever systemd put there.
    bed.vm(1)
        .ssh_ok(&format!(
            "echo {} > /run/ferry-cloned-id && mount --bind /run/ferry-cloned-id /etc/machine-id",
            id.trim()
        ))
        .unwrap();
    let plan = site.ferry(&["plan", "--answers", answers, "--json"]);
    let restore = bed.vm(1).ssh("umount /etc/machine-id").unwrap();
    plan.expect_fail("plan with two hosts sharing a machine-id");
    for host in ["vm0", "vm1"] {
        let p = expect_status(&plan, host, "blocked");
        let why = p.reasons.join(" ");
        assert!(
            why.contains("machine-id") && why.contains("systemd-machine-id-setup"),
            "{host}: the blocked reason should name the machine-id and the fix: {why:?}"
        );
    }
    expect_status(&plan, "vm2", "no-changes");
    assert!(
        restore.success(),
        "restoring vm1's machine-id: {}",
        restore.stderr
    );
    let plan = site.ferry(&["plan", "--answers", answers, "--json"]);
    plan.expect_ok("plan after the machine-id is unique again");
    step("done", t0);
}

/// benches/baseline/run.sh: boots `FERRY_BENCH_VMS` fresh VMs (default 3) outside the timing,
/// then times `ferry apply` of the default baseline (no bundle) and prints one line.
#[test]
#[ignore = "benchmark: run by benches/baseline/run.sh"]
fn bench_baseline_apply() {
    let n: usize = std::env::var("FERRY_BENCH_VMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let _guard = ONE_BED.lock().unwrap_or_else(|p| p.into_inner());
    let t0 = Instant::now();
    let Some(bed) = start_or_skip(n, &VmSpec::default()) else {
        return;
    };
    let boot = t0.elapsed().as_secs_f64();
    let site = Site::new(&bed);
    let answers = site.answers("site.toml", "", "");
    let answers = answers.to_str().unwrap();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1 = load.split_whitespace().next().unwrap_or("?").to_string();
    let qemu_cpu = || -> f64 {
        bed.vms()
            .iter()
            .filter_map(Vm::qemu_cpu_time)
            .map(|d| d.as_secs_f64())
            .sum()
    };
    let cpu_before = qemu_cpu();
    let apply = site.ferry(&["apply", "--answers", answers]);
    let apply_cpu = qemu_cpu() - cpu_before;
    apply.expect_ok("benchmark apply");
    // Each host's own time and change count, from its summary row (`ok CHANGES SECONDS`).
    let mut per_host = Vec::new();
    for vm in bed.vms() {
        apply.expect_outcome(vm.name(), "ok");
        let row = apply.outcome(vm.name());
        let w: Vec<&str> = row.split_whitespace().collect();
        per_host.push(format!(
            "{}:{}s/{}ch",
            vm.name(),
            w.get(2).unwrap_or(&"?"),
            w.get(1).unwrap_or(&"?")
        ));
    }
    let plan = site.ferry(&["plan", "--answers", answers, "--json"]);
    plan.expect_ok("plan after the benchmark apply");
    for vm in bed.vms() {
        expect_status(&plan, vm.name(), "no-changes");
    }
    println!(
        "BENCH vms={n} apply_s={:.1} plan_after_s={:.1} boot_s={boot:.1} load1_before={load1} \
         apply_qemu_cpu_s={apply_cpu:.1} hosts={}",
        apply.secs,
        plan.secs,
        per_host.join(",")
    );
}

// ------------------------------------------------------------------------ the stand-in bundle

/// A signed bundle `site.ferry` (key `vendor`) whose `debian-12` deb repository holds two
/// STAND-IN packages built here: `ferry-standin-hello` (installs one file) and
/// `ferry-standin-broken` (its postinst fails, as a real package's can, after dpkg unpacked it).
fn build_bundle(dir: &Path) {
    use ferry_tests::standin::{deb, flat_repo, DebFile};
    let debs = dir.join("debs");
    fs::create_dir_all(&debs).unwrap();
    let file = DebFile {
        path: "/usr/share/ferry-standin/hello",
        content: "STAND-IN package built by ferry's VM tests\n",
        mode: 0o644,
    };
    deb(&debs, "ferry-standin-hello", "1.0", &[], &[file]);
    let extra = DebFile {
        path: "/usr/share/ferry-standin/extra",
        content: "STAND-IN package built by ferry's VM tests\n",
        mode: 0o644,
    };
    deb(&debs, "ferry-standin-extra", "1.0", &[], &[extra]);
    special_deb(dir, &debs, "ferry-standin-broken", None);
    special_deb(
        dir,
        &debs,
        "ferry-standin-conf",
        Some(("/etc/ferry-standin-conf.conf", "setting = 1\n")),
    );
    flat_repo(&debs);
    fs::write(
        dir.join("bundle.toml"),
        "[bundle]\nname = \"vm-baseline\"\nversion = \"1.0.0\"\n\n[[os_packages]]\n\
         name = \"debian-base\"\nformat = \"deb\"\ndistro = \"debian-12\"\narch = \"amd64\"\n\
         path = \"debs\"\n",
    )
    .unwrap();
    let ferry = |args: &[&str]| common::ferry_in(dir, args);
    ferry(&["key", "generate", "-o", "vendor"]);
    ferry(&[
        "bundle",
        "build",
        "bundle.toml",
        "-o",
        "site.ferry",
        "--sign-key",
        "vendor",
    ]);
}

fn base64_of(bytes: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

/// Packages standin::deb cannot make: `ferry-standin-broken`, whose postinst fails (as a real
/// package's can, after dpkg unpacked it), and `ferry-standin-conf`, with a configuration
/// file (dpkg keeps it when the package is removed, not purged).
fn special_deb(dir: &Path, debs: &Path, name: &str, conffile: Option<(&str, &str)>) {
    use std::os::unix::fs::PermissionsExt as _;
    let root = dir.join(format!("build-{name}"));
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    fs::create_dir_all(root.join("usr/share/ferry-standin")).unwrap();
    fs::write(
        root.join("usr/share/ferry-standin").join(name),
        "STAND-IN package built by ferry's VM tests\n",
    )
    .unwrap();
    fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: ferry tests \
             <tests@ferry.invalid>\nDescription: STAND-IN package built by ferry's VM tests\n"
        ),
    )
    .unwrap();
    match conffile {
        None => {
            let script = root.join("DEBIAN/postinst");
            fs::write(
                &script,
                format!("#!/bin/sh\necho '{name}: failing on purpose (test)' >&2\nexit 1\n"),
            )
            .unwrap();
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Some((path, content)) => {
            let p = root.join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, content).unwrap();
            fs::write(root.join("DEBIAN/conffiles"), format!("{path}\n")).unwrap();
        }
    }
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&root)
        .arg(debs.join(format!("{name}_1.0_all.deb")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpkg-deb --build {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
