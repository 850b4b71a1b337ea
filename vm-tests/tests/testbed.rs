//! The testbed itself, independent of ferry: real VMs boot, talk to each other, keep their disks
//! across power loss, and every fault helper does what it says.
//!
//! Needs root, qemu-system-x86, qemu-utils, debootstrap, e2fsprogs, iproute2, openssh-client.
//! Without them each test prints one loud line and returns, unless CI=true (then it fails).

#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

use std::time::{Duration, Instant};

use vm_tests::{start_or_skip, Testbed, VmSpec, USERS};

fn spec() -> VmSpec {
    VmSpec::default()
}

/// Whether `from` can open a TCP connection to `to`'s sshd and read its banner.
fn reaches_ssh(bed: &Testbed, from: usize, to: usize) -> bool {
    let addr = bed.vm(to).address();
    let out = bed
        .vm(from)
        .ssh(&format!(
            "timeout 10 bash -c 'exec 3<>/dev/tcp/{addr}/22 && head -c 4 <&3'"
        ))
        .expect("ssh runs");
    out.stdout.starts_with("SSH-")
}

/// What makes a VM its own host, as seen from inside it.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    hostname: String,
    etc_hostname: String,
    machine_id: String,
    address: String,
    mac: String,
    host_key: String,
}

fn identity(vm: &vm_tests::Vm) -> Identity {
    let out = vm
        .ssh_ok(
            "hostname; cat /etc/hostname /etc/machine-id; \
             ip -4 -o addr show dev eth0 | awk '{print $4}'; cat /sys/class/net/eth0/address",
        )
        .expect("identity");
    let lines: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 5, "{out}");
    Identity {
        hostname: lines[0].clone(),
        etc_hostname: lines[1].clone(),
        machine_id: lines[2].clone(),
        address: lines[3].clone(),
        mac: lines[4].clone(),
        host_key: vm.host_key().expect("host key"),
    }
}

fn console_tail(vm: &vm_tests::Vm) -> String {
    let text = std::fs::read_to_string(vm.console_log()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// VMs restored from one saved state must be as distinct as booted ones: own address, MAC,
/// host name, machine id, host keys, SSH key, random state, and the right time.
#[test]
fn restored_vms_are_distinct_hosts_with_the_time_of_day() {
    let Some(bed) = start_or_skip(3, &spec()) else {
        return;
    };
    eprintln!("3 VMs ready in {:?}", bed.boot_time());
    if spec().restore {
        for vm in bed.vms() {
            assert!(vm.restored(), "{} was booted, not restored", vm.name());
        }
    }
    let ids: Vec<Identity> = bed.vms().iter().map(identity).collect();
    for (i, (vm, id)) in bed.vms().iter().zip(&ids).enumerate() {
        assert_eq!(id.hostname, format!("vm{i}"));
        assert_eq!(id.etc_hostname, id.hostname);
        assert_eq!(id.address, format!("{}/24", vm.address()));
        assert_eq!(id.machine_id.len(), 32, "{id:?}");
        // The name resolves to the host itself; the template's name is gone.
        let hosts = vm
            .ssh_ok("getent hosts $(hostname); cat /etc/hosts")
            .unwrap();
        assert!(hosts.starts_with("127.0.1.1"), "{hosts}");
        assert!(!hosts.contains("ferry-vm"), "{hosts}");
        // The clock is the host's: a saved state's clock is as old as the state.
        let before = now();
        let guest: f64 = vm.ssh_ok("date +%s.%N").unwrap().trim().parse().unwrap();
        let after = now();
        assert!(
            guest > before - 1.0 && guest < after + 1.0,
            "{}: clock {guest}, host between {before} and {after}",
            vm.name()
        );
        // chrony runs, and journald logs under the new machine id (journalctl shows only its
        // own machine's entries).
        vm.ssh_ok("systemctl is-active --quiet chrony && logger -t ferry-probe identity-check")
            .unwrap();
        let journal = vm
            .ssh_ok("sleep 1; journalctl -q -t ferry-probe --no-pager")
            .unwrap();
        assert!(
            journal.contains("identity-check"),
            "{}: {journal:?}",
            vm.name()
        );
    }
    for a in 0..ids.len() {
        for b in a + 1..ids.len() {
            assert_ne!(ids[a].machine_id, ids[b].machine_id);
            assert_ne!(ids[a].mac, ids[b].mac);
            assert_ne!(ids[a].host_key, ids[b].host_key);
        }
    }
    let random: Vec<String> = bed
        .vms()
        .iter()
        .map(|vm| vm.ssh_ok("head -c 16 /dev/urandom | od -An -tx1").unwrap())
        .collect();
    assert_ne!(random[0], random[1]);
    assert_ne!(random[1], random[2]);
    // Every VM reaches every other one at its new address (ARP with the new MACs).
    for from in 0..3 {
        for to in 0..3 {
            if from != to {
                assert!(
                    reaches_ssh(&bed, from, to),
                    "vm{from} cannot reach vm{to}:22"
                );
            }
        }
    }
}

#[test]
fn three_vms_start_reach_each_other_and_survive_a_power_cycle_and_a_reboot() {
    let Some(bed) = start_or_skip(3, &spec()) else {
        return;
    };
    eprintln!("3 VMs ready in {:?}", bed.boot_time());

    for (i, vm) in bed.vms().iter().enumerate() {
        let hostname = vm.ssh_ok("hostname").expect("hostname");
        assert_eq!(hostname.trim(), format!("vm{i}"));
        let addr = vm.ssh_ok("ip -4 -o addr show dev eth0").expect("ip addr");
        assert!(addr.contains(&format!("{}/24", vm.address())), "{addr}");
    }

    // Air-gapped by construction: no default route, and nothing beyond the bridge answers.
    let routes = bed.vm(0).ssh_ok("ip route").expect("ip route");
    assert!(
        !routes.contains("default"),
        "a VM has a route out: {routes}"
    );

    // Power loss with synced data: the VM boots from its own disk (also after a restore) and
    // is the same host: file, name, address, MAC, machine id, host key.
    let vm = bed.vm(1);
    let before = identity(vm);
    vm.ssh_ok("echo survived > /root/marker && sync")
        .expect("write");
    vm.power_off().expect("power off");
    assert!(!vm.is_powered_on());
    assert!(
        !vm.ssh_banner(Duration::from_secs(2)),
        "vm1 answers while off"
    );
    vm.power_on().expect("power on");
    assert!(!vm.restored(), "a power-on boots from the disk");
    assert_eq!(
        vm.ssh_ok("cat /root/marker").expect("read").trim(),
        "survived"
    );
    assert_eq!(identity(vm), before);
    assert!(reaches_ssh(&bed, 0, 1));

    // A reboot from inside boots the VM's own kernel command line, and it stays the same host.
    let vm = bed.vm(2);
    let before = identity(vm);
    let boot_id = vm.ssh_ok("cat /proc/sys/kernel/random/boot_id").unwrap();
    let _ = vm.ssh("systemctl reboot");
    let deadline = Instant::now() + Duration::from_secs(300);
    let rebooted = loop {
        assert!(
            Instant::now() < deadline,
            "vm2 did not come back within 300 s"
        );
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(out) = vm.ssh("cat /proc/sys/kernel/random/boot_id") {
            if out.success() && out.stdout != boot_id {
                break out;
            }
        }
    };
    assert_ne!(rebooted.stdout, boot_id);
    let cmdline = vm.ssh_ok("cat /proc/cmdline").unwrap();
    assert!(cmdline.contains("systemd.hostname=vm2"), "{cmdline}");
    assert_eq!(identity(vm), before);
    assert!(reaches_ssh(&bed, 0, 2));
}

#[test]
fn link_down_partitions_a_vm_and_link_up_heals_it() {
    let Some(bed) = start_or_skip(2, &spec()) else {
        return;
    };
    let vm = bed.vm(1);
    vm.link_down().expect("link down");
    assert!(
        !vm.ssh_banner(Duration::from_secs(3)),
        "reachable from the host while down"
    );
    assert!(!reaches_ssh(&bed, 0, 1), "reachable from vm0 while down");
    vm.link_up().expect("link up");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !vm.ssh_banner(Duration::from_secs(2)) {
        assert!(
            Instant::now() < deadline,
            "not reachable 30 s after link up"
        );
    }
    assert!(reaches_ssh(&bed, 0, 1));
    assert!(vm.ssh("true").unwrap().success());
}

/// The average round trip of 5 pings from the VM to the host, in milliseconds.
fn ping_rtt_ms(bed: &Testbed, vm: usize) -> f64 {
    let out = bed
        .vm(vm)
        .ssh_ok(&format!(
            "ping -q -n -c 5 -i 0.2 -W 5 {}",
            bed.host_address()
        ))
        .expect("ping");
    // "rtt min/avg/max/mdev = 0.321/0.402/0.5/0.1 ms"
    let stats = out.lines().find(|l| l.starts_with("rtt")).expect(&out);
    let values = stats.split(" = ").nth(1).expect(stats);
    values.split('/').nth(1).expect(stats).parse().expect(stats)
}

#[test]
fn netem_delays_the_link_and_clearing_it_restores_it() {
    let Some(bed) = start_or_skip(1, &spec()) else {
        return;
    };
    let vm = bed.vm(0);
    let before = ping_rtt_ms(&bed, 0);
    vm.netem("delay 300ms").expect("netem");
    eprintln!("netem applied on the {:?} side", vm.netem_side().unwrap());
    let delayed = ping_rtt_ms(&bed, 0);
    assert!(
        delayed >= 300.0,
        "rtt {delayed} ms with a 300 ms netem delay (before: {before} ms)"
    );
    vm.clear_netem().expect("clear netem");
    vm.clear_netem().expect("clearing twice is fine");
    assert_eq!(vm.netem_side(), None);
    let after = ping_rtt_ms(&bed, 0);
    assert!(after < 300.0, "rtt still {after} ms after clearing netem");
    vm.netem("delay 200ms loss 5%")
        .expect("the issue's example parameters are accepted");
    assert!(
        vm.ssh("true").unwrap().success(),
        "SSH still works over a lossy link"
    );
    assert!(
        vm.netem("no-such-parameter").is_err(),
        "bad netem parameters must fail"
    );
    vm.clear_netem().expect("clear netem");
}

#[test]
fn a_hot_plugged_small_disk_fills_up() {
    let Some(bed) = start_or_skip(1, &spec()) else {
        return;
    };
    let vm = bed.vm(0);
    let dev = vm.attach_small_disk(16).expect("attach");
    vm.ssh_ok(&format!(
        "mkfs.ext4 -q {dev} && mkdir -p /mnt/small && mount {dev} /mnt/small"
    ))
    .expect("mkfs and mount");
    let fill = vm
        .ssh("dd if=/dev/zero of=/mnt/small/fill bs=1M count=64")
        .expect("ssh");
    assert!(!fill.success(), "64 MiB fit on a 16 MiB disk");
    assert!(
        fill.stderr.contains("No space left on device"),
        "{}",
        fill.stderr
    );
    let avail = vm
        .ssh_ok("df --output=avail /mnt/small | tail -1")
        .expect("df");
    assert_eq!(avail.trim(), "0");
}

#[test]
fn a_small_disk_from_the_spec_is_there_at_boot() {
    let spec = VmSpec {
        small_disk_mib: Some(8),
        ..spec()
    };
    let Some(bed) = start_or_skip(1, &spec) else {
        return;
    };
    let size = bed
        .vm(0)
        .ssh_ok("blockdev --getsize64 /dev/disk/by-id/virtio-ferry-small0")
        .expect("small disk present");
    assert_eq!(size.trim(), (8u64 << 20).to_string());
}

#[test]
fn change_host_key_makes_clients_see_a_different_key() {
    let Some(bed) = start_or_skip(1, &spec()) else {
        return;
    };
    let vm = bed.vm(0);
    let before = vm.host_key().expect("key before");
    vm.change_host_key().expect("change");
    let after = vm.host_key().expect("key after");
    assert_ne!(before, after);
    // A client that remembered the old key refuses the host now.
    let known = bed.dir().join("known_hosts_old");
    std::fs::write(&known, format!("{} {before}\n", vm.address())).unwrap();
    let out = std::process::Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .arg("-i")
        .arg(vm.private_key())
        .arg(format!("root@{}", vm.address()))
        .arg("true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn set_clock_offset_moves_the_vm_clock() {
    let Some(bed) = start_or_skip(1, &spec()) else {
        return;
    };
    let vm = bed.vm(0);
    let offset: i64 = -3 * 24 * 3600;
    vm.set_clock_offset(offset).expect("set clock");
    let guest: i64 = vm.ssh_ok("date +%s").unwrap().trim().parse().unwrap();
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let seen = guest - host;
    assert!(
        (seen - offset).abs() < 30,
        "offset seen {seen}, wanted {offset}"
    );
}

#[test]
fn every_auth_path_of_the_image_works() {
    let Some(bed) = start_or_skip(1, &spec()) else {
        return;
    };
    let vm = bed.vm(0);
    for user in USERS {
        if user.key {
            let out = vm.ssh_as(&user, "id -un").unwrap();
            assert_eq!(
                out.stdout.trim(),
                user.name,
                "key login as {}: {}",
                user.name,
                out.stderr
            );
        } else {
            let out = vm.ssh_as(&user, "true").unwrap();
            assert!(!out.success(), "{} must not accept the key", user.name);
        }
        if let Some(password) = user.password {
            let out = vm.ssh_password(&user, "id -un").unwrap();
            assert_eq!(
                out.stdout.trim(),
                user.name,
                "password login as {}: {}",
                user.name,
                out.stderr
            );
            if user.sudo {
                let sudo = vm
                    .ssh_password(&user, &format!("echo {password} | sudo -S -p '' id -u"))
                    .unwrap();
                assert_eq!(
                    sudo.stdout.trim(),
                    "0",
                    "sudo with password: {}",
                    sudo.stderr
                );
                let no_pw = vm.ssh_password(&user, "sudo -n true").unwrap();
                assert!(!no_pw.success(), "sudo must ask for the password");
            }
        }
    }
    // A wrong password is refused.
    let mut wrong = USERS[2];
    wrong.password = Some("not-the-password");
    assert!(!vm.ssh_password(&wrong, "true").unwrap().success());
    // Root has no password login.
    assert!(vm.user("root").unwrap().password.is_none());
}

#[test]
fn dropping_a_testbed_removes_its_vms_and_links() {
    let Some(bed) = start_or_skip(1, &spec()) else {
        return;
    };
    let bridge = bed.bridge().to_string();
    let tap = bed.vm(0).tap().to_string();
    let pid = bed.vm(0).qemu_pid().expect("running");
    let dir = bed.dir().to_path_buf();
    drop(bed);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "qemu still runs"
    );
    for link in [&bridge, &tap] {
        let st = std::process::Command::new("ip")
            .args(["link", "show", link])
            .output()
            .unwrap();
        assert!(!st.status.success(), "{link} still exists");
    }
    assert!(!dir.exists(), "run directory left behind");
}

/// Not a test on its own: the child process of `a_testbed_whose_process_was_killed_is_reaped_by_the_next`.
#[test]
#[ignore = "helper, started by another test"]
fn helper_hold_a_testbed() {
    if std::env::var("FERRY_VM_HOLD_HELPER").is_err() {
        return;
    }
    let bed = Testbed::start(1, &spec()).expect("start");
    println!(
        "HELD {} {} {}",
        bed.vm(0).qemu_pid().unwrap(),
        bed.bridge(),
        bed.vm(0).tap()
    );
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn a_testbed_whose_process_was_killed_is_reaped_by_the_next() {
    use std::io::{BufRead, BufReader};
    // Probe the environment first, so a machine without VMs skips (or fails in CI) here.
    let Some(first) = start_or_skip(1, &spec()) else {
        return;
    };
    drop(first);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_hold_a_testbed",
            "--ignored",
            "--nocapture",
        ])
        .env("FERRY_VM_HOLD_HELPER", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let held = stdout
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("HELD "))
        .expect("the helper reports its testbed");
    let parts: Vec<&str> = held.split_whitespace().collect();
    let (qemu, bridge, tap) = (parts[1], parts[2], parts[3]);
    child.kill().unwrap(); // SIGKILL: no Drop, no signal handler
    child.wait().unwrap();
    // A killed process whose new parent has not reaped it yet is a zombie: dead.
    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
            st.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    };
    let link_exists = |name: &str| {
        std::process::Command::new("ip")
            .args(["link", "show", name])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(
        alive(qemu),
        "the killed test left its qemu running (as expected)"
    );
    assert!(link_exists(bridge) && link_exists(tap));

    let next = start_or_skip(1, &spec()).expect("a new testbed starts");
    assert!(!alive(qemu), "the leftover qemu {qemu} was not killed");
    // The freed slot may be the one the new testbed took: then its names are in use again.
    if next.bridge() != bridge {
        assert!(!link_exists(tap), "leftover tap {tap} still exists");
        assert!(
            !link_exists(bridge),
            "leftover bridge {bridge} still exists"
        );
    } else {
        assert_eq!(next.vm(0).tap(), tap);
        assert!(next.vm(0).ssh("true").unwrap().success());
    }
}

#[test]
fn the_root_file_system_fills_the_disk_size_of_the_spec() {
    let spec = VmSpec {
        disk_gib: 6,
        ..spec()
    };
    let Some(bed) = start_or_skip(1, &spec) else {
        return;
    };
    let kib: u64 = bed
        .vm(0)
        .ssh_ok("df --output=size -k / | tail -1")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        kib > 5 * 1024 * 1024,
        "root file system is {kib} KiB on a 6 GiB disk"
    );
}

/// A prepared testbed: the preparation runs once, then its VMs are saved together; the next
/// start restores them as the preparation left them (files, a running service, the same boot,
/// still reaching each other), with the time of day and a random state of their own, and a
/// restored VM powered off boots from its own disk as the same host.
#[test]
fn a_prepared_testbed_starts_where_its_preparation_left_off() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use vm_tests::{start_prepared_or_skip, Preparation};
    // A new state for every run of this test, so the preparation really runs here.
    let nonce = format!("{}-{}", std::process::id(), now());
    let prep = Preparation::new("vm-tests-suite").input(&nonce);
    let runs = AtomicU32::new(0);
    let prepare = |bed: &Testbed, host: &std::path::Path| {
        runs.fetch_add(1, Ordering::SeqCst);
        for vm in bed.vms() {
            vm.ssh_ok(&format!(
                "echo {nonce}-{name} > /root/prepared && \
                 systemd-run --unit=prepared-sleep sleep infinity >/dev/null && \
                 cat /proc/sys/kernel/random/boot_id > /root/prepared-boot",
                name = vm.name()
            ))
            .unwrap();
        }
        std::fs::write(host.join("note"), &nonce).unwrap();
    };
    // FERRY_VM_RESTORE=0 (or KVM): nothing is saved, every start prepares.
    let saved = spec().restore && spec().accel == vm_tests::Accel::Tcg;
    let Some(first) = start_prepared_or_skip(2, &spec(), &prep, prepare) else {
        return;
    };
    let check = |bed: &Testbed| {
        assert_eq!(
            std::fs::read_to_string(bed.prepared_dir().unwrap().join("note")).unwrap(),
            nonce
        );
        for vm in bed.vms() {
            let out = vm
                .ssh(
                    "cat /root/prepared; systemctl is-active prepared-sleep; \
                     [ \"$(cat /root/prepared-boot)\" = \"$(cat /proc/sys/kernel/random/boot_id)\" ] && \
                     echo same-boot",
                )
                .unwrap()
                .stdout;
            assert_eq!(
                out,
                format!("{nonce}-{}\nactive\nsame-boot\n", vm.name()),
                "{}: not as the preparation left it; its console:\n{}",
                vm.name(),
                console_tail(vm)
            );
            let clock: f64 = vm.ssh_ok("date +%s.%N").unwrap().trim().parse().unwrap();
            assert!(
                (clock - now()).abs() < 5.0,
                "{}: clock {clock} is not the time of day {}",
                vm.name(),
                now()
            );
        }
        assert!(reaches_ssh(bed, 0, 1));
        bed.vm(0)
            .ssh_ok("head -c 16 /dev/urandom | od -An -tx1")
            .unwrap()
    };
    let random_first = check(&first);
    let ids: Vec<Identity> = first.vms().iter().map(identity).collect();
    drop(first);

    let second =
        start_prepared_or_skip(2, &spec(), &prep, prepare).expect("a prepared testbed starts");
    eprintln!(
        "2 prepared VMs restored and ready in {:?}",
        second.boot_time()
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        if saved { 1 } else { 2 },
        "how often the preparation ran"
    );
    let random_second = check(&second);
    assert_ne!(
        random_first, random_second,
        "two restores of one prepared state share their random state"
    );
    let again: Vec<Identity> = second.vms().iter().map(identity).collect();
    if saved {
        assert_eq!(ids, again, "a prepared VM keeps its identity");
    }

    // Power loss: the VM boots from its own disk and is the same host.
    let vm = second.vm(1);
    vm.power_off().unwrap();
    vm.power_on().unwrap();
    assert_eq!(identity(vm), again[1]);
    assert_eq!(
        vm.ssh_ok("cat /root/prepared").unwrap().trim(),
        format!("{nonce}-vm1")
    );
}
