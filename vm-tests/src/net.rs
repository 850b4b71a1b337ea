//! The private network of one testbed: a bridge with an address on the host side, one tap per VM,
//! and no route out. Each testbed holds a slot N (a flock on /run/ferry-vm/slot-N) that owns the
//! names `fvbrN`, `fvNtI` and the subnet 10.203.N.0/24, so parallel tests and processes never share.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

use crate::TestbedError;

const SLOT_DIR: &str = "/run/ferry-vm";
const FIRST_SLOT: u8 = 1;
const LAST_SLOT: u8 = 200;
/// Slots of prepared testbeds (see `crate::prepared`): a prepared state keeps its VMs' addresses,
/// so it is always restored on the slot it was taken on, one of these, never handed out as a
/// free slot.
pub(crate) const PREPARED_SLOTS: std::ops::RangeInclusive<u8> = 201..=250;

/// Runs a machine command, returning its stdout or an error carrying its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, TestbedError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(TestbedError::io(format!("running {program}")))?;
    if !out.status.success() {
        return Err(TestbedError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One testbed's bridge and taps; removed on drop.
#[derive(Debug)]
pub(crate) struct Network {
    slot: u8,
    bridge: String,
    taps: Vec<String>,
    forward_rule: bool,
    slot_file: PathBuf,
    _lock: Flock<File>,
}

impl Network {
    /// Takes a free slot and creates its bridge (host address 10.203.N.1/24) and `n` taps.
    pub(crate) fn create(n: usize) -> Result<Network, TestbedError> {
        fs::create_dir_all(SLOT_DIR).map_err(TestbedError::io(format!("creating {SLOT_DIR}")))?;
        reap_abandoned_slots();
        let used = run("ip", &["-4", "-o", "addr", "show"])?;
        for slot in FIRST_SLOT..=LAST_SLOT {
            let prefix = format!("10.203.{slot}.");
            let bridge = bridge_name(slot);
            // A subnet someone else put on this machine is never ours to use.
            if used.lines().any(|l| {
                l.contains(&format!(" inet {prefix}")) && !l.contains(&format!(" {bridge} "))
            }) {
                continue;
            }
            let slot_file = Path::new(SLOT_DIR).join(format!("slot-{slot}"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&slot_file)
                .map_err(TestbedError::io(format!("opening {}", slot_file.display())))?;
            let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            return Network::on_locked_slot(slot, slot_file, lock, n);
        }
        Err(TestbedError::NoSlot(LAST_SLOT))
    }

    /// Takes slot `slot` (one of [`PREPARED_SLOTS`]), waiting while another testbed holds it,
    /// and creates its bridge and `n` taps.
    pub(crate) fn create_on(slot: u8, n: usize) -> Result<Network, TestbedError> {
        fs::create_dir_all(SLOT_DIR).map_err(TestbedError::io(format!("creating {SLOT_DIR}")))?;
        reap_abandoned_slots();
        let bridge = bridge_name(slot);
        let used = run("ip", &["-4", "-o", "addr", "show"])?;
        if used.lines().any(|l| {
            l.contains(&format!(" inet 10.203.{slot}.")) && !l.contains(&format!(" {bridge} "))
        }) {
            return Err(TestbedError::Unavailable(format!(
                "subnet 10.203.{slot}.0/24, which a prepared testbed needs, is in use on this machine by another interface"
            )));
        }
        let slot_file = Path::new(SLOT_DIR).join(format!("slot-{slot}"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&slot_file)
            .map_err(TestbedError::io(format!("opening {}", slot_file.display())))?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| TestbedError::Io {
                what: format!("locking {}", slot_file.display()),
                source: e.into(),
            })?;
        Network::on_locked_slot(slot, slot_file, lock, n)
    }

    fn on_locked_slot(
        slot: u8,
        slot_file: PathBuf,
        lock: Flock<File>,
        n: usize,
    ) -> Result<Network, TestbedError> {
        // The lock is free, so whatever still carries this slot's names was left by a
        // process that died without tearing down (SIGKILL): clean it first.
        cleanup_slot(slot);
        let mut net = Network {
            slot,
            bridge: bridge_name(slot),
            taps: Vec::new(),
            forward_rule: false,
            slot_file,
            _lock: lock,
        };
        net.setup(n)?;
        Ok(net)
    }

    fn setup(&mut self, n: usize) -> Result<(), TestbedError> {
        let br = self.bridge.clone();
        run("ip", &["link", "add", &br, "type", "bridge"]).map_err(|e| {
            TestbedError::Unavailable(format!(
                "cannot create a bridge (root and iproute2 needed): {e}"
            ))
        })?;
        let cidr = format!("{}/24", self.host_address());
        run("ip", &["addr", "add", &cidr, "dev", &br])?;
        run("ip", &["link", "set", &br, "up"])?;
        for i in 0..n {
            let tap = tap_name(self.slot, i);
            run("ip", &["tuntap", "add", "dev", &tap, "mode", "tap"])?;
            self.taps.push(tap.clone());
            run("ip", &["link", "set", &tap, "master", &br])?;
            run("ip", &["link", "set", &tap, "up"])?;
        }
        // With br_netfilter loaded, frames between bridge ports pass iptables FORWARD, whose
        // policy dockerd sets to DROP. Accept traffic that stays inside this bridge (only).
        if bridge_calls_iptables() && which("iptables").is_some() {
            let rule = forward_rule(&br);
            if run("iptables", &[&["-I"], &rule[..]].concat()).is_ok() {
                self.forward_rule = true;
            }
        }
        Ok(())
    }

    /// The slot number N (subnet 10.203.N.0/24).
    pub(crate) fn slot(&self) -> u8 {
        self.slot
    }

    /// The bridge name.
    pub(crate) fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The host's own address on the bridge.
    pub(crate) fn host_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 203, self.slot, 1)
    }

    /// The address of VM `i`.
    pub(crate) fn vm_address(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 203, self.slot, 10 + i as u8)
    }

    /// The tap of VM `i`.
    pub(crate) fn tap(&self, i: usize) -> String {
        tap_name(self.slot, i)
    }

    /// Records the run directory of this slot (its VMs' qemu pid files live below it) so a later
    /// owner of the slot, or the Ctrl-C handler, can kill them and remove it.
    pub(crate) fn record(&self, run_dir: &Path) -> Result<(), TestbedError> {
        let mut f = File::create(&self.slot_file).map_err(TestbedError::io(format!(
            "writing {}",
            self.slot_file.display()
        )))?;
        writeln!(f, "{}", run_dir.display()).map_err(TestbedError::io(format!(
            "writing {}",
            self.slot_file.display()
        )))
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for tap in &self.taps {
            let _ = run("ip", &["link", "del", tap]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
        if self.forward_rule {
            let _ = run(
                "iptables",
                &[&["-D"], &forward_rule(&self.bridge)[..]].concat(),
            );
        }
        let _ = fs::write(&self.slot_file, "");
    }
}

fn bridge_name(slot: u8) -> String {
    format!("fvbr{slot}")
}

fn tap_name(slot: u8, i: usize) -> String {
    format!("fv{slot}t{i}")
}

fn forward_rule(bridge: &str) -> [&str; 7] {
    ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]
}

fn bridge_calls_iptables() -> bool {
    fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .is_ok_and(|v| v.trim() == "1")
}

/// Cleans every slot whose owner died without tearing down (killed with SIGKILL): its lock is
/// free but its slot file still names a run directory.
fn reap_abandoned_slots() {
    for slot in (FIRST_SLOT..=LAST_SLOT).chain(PREPARED_SLOTS) {
        let path = Path::new(SLOT_DIR).join(format!("slot-{slot}"));
        if fs::metadata(&path).map(|m| m.len() == 0).unwrap_or(true) {
            continue;
        }
        let Ok(file) = OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            cleanup_slot(slot);
            let _ = fs::write(&path, "");
            drop(lock);
        }
    }
}

/// Kills the qemu processes of `slot`, removes its run directory, links and firewall rule. Only
/// touches processes whose command line carries this slot's tap names, links with its names, and
/// a run directory named for it.
pub(crate) fn cleanup_slot(slot: u8) {
    let slot_file = Path::new(SLOT_DIR).join(format!("slot-{slot}"));
    let marker = format!("ifname=fv{slot}t");
    let run_dir = fs::read_to_string(&slot_file)
        .ok()
        .map(|t| PathBuf::from(t.trim()))
        .filter(|d| d.file_name().is_some_and(|n| *n == *format!("slot-{slot}")));
    if let Some(run_dir) = run_dir {
        let pid_files = fs::read_dir(&run_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("qemu.pid"));
        for pid_file in pid_files {
            let Some(pid) = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            else {
                continue;
            };
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&marker) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = fs::remove_dir_all(&run_dir);
    }
    let bridge = bridge_name(slot);
    if let Ok(links) = run("ip", &["-o", "link", "show"]) {
        let prefix = format!("fv{slot}t");
        for link in links.lines().filter_map(|l| l.split(": ").nth(1)) {
            let name = link.split('@').next().unwrap_or(link);
            if name == bridge || name.starts_with(&prefix) {
                let _ = run("ip", &["link", "del", name]);
            }
        }
    }
    while run("iptables", &[&["-D"], &forward_rule(&bridge)[..]].concat()).is_ok() {}
}

/// The full path of `program` if it is on PATH.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
