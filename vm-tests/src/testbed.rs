//! A testbed: N VMs on one private bridge, started together, torn down on drop, panic or Ctrl-C.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::image::{cache_dir, BaseImage};
use crate::net::{cleanup_slot, run, which, Network};
use crate::prepared::Preparation;
use crate::snapshot::Snapshot;
use crate::vm::{hex, Accel, Identity, Vm, VmSpec};
use crate::{in_ci, TestbedError};

/// Slots of the testbeds alive in this process, for the Ctrl-C/SIGTERM handler.
static LIVE: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

/// N real Debian VMs on a private bridge with no route out.
#[derive(Debug)]
pub struct Testbed {
    // Field order is drop order: VMs (qemu killed) before the network (taps, bridge).
    vms: Vec<Vm>,
    net: Network,
    dir: PathBuf,
    started: Duration,
    prepared: Option<PathBuf>,
}

impl Testbed {
    /// Boots `n` VMs (`vm0`..) from the base image (built first if needed) and returns when every
    /// one accepts an SSH login with the testbed key; on failure the error carries the serial
    /// console of the VM that did not come up, and everything started so far is torn down.
    pub fn start(n: usize, spec: &VmSpec) -> Result<Testbed, TestbedError> {
        check_count(n)?;
        let image = BaseImage::ensure()?;
        install_signal_handler();
        let snapshot = if spec.restores() {
            Some(Snapshot::ensure(&image, spec)?)
        } else {
            None
        };
        let t0 = Instant::now();
        let net = Network::create(n)?;
        Testbed::start_on(net, n, spec, &image, snapshot.as_ref(), None, t0)
    }

    /// Starts `n` VMs on `net`, restored from `snapshot` or booted, authorizing `key` (a new
    /// throwaway key when `None`).
    pub(crate) fn start_on(
        net: Network,
        n: usize,
        spec: &VmSpec,
        image: &BaseImage,
        snapshot: Option<&Snapshot>,
        key: Option<(PathBuf, String)>,
        t0: Instant,
    ) -> Result<Testbed, TestbedError> {
        let mut bed = Testbed::on(net)?;
        let slot = bed.net.slot();
        let (key, pubkey) = match key {
            Some(key) => key,
            None => new_key(&bed.dir)?,
        };
        for i in 0..n {
            let vm = bed.new_vm(i, Some(machine_id(slot, i)), &key, &pubkey, spec, image)?;
            vm.create_overlay(snapshot)?;
            vm.spawn(snapshot)?;
            bed.vms.push(vm);
        }
        if snapshot.is_some() {
            // All identities out first: the VMs apply them in parallel.
            let mut ports = Vec::with_capacity(n);
            for vm in &bed.vms {
                ports.push(vm.send_identity(t0)?);
            }
            for (vm, port) in bed.vms.iter().zip(ports) {
                vm.finish_restore(port, t0)?;
            }
        } else {
            for vm in &bed.vms {
                vm.wait_for_ssh(t0)?;
            }
        }
        bed.started = t0.elapsed();
        Ok(bed)
    }

    /// An empty testbed on `net`: its run directory made, its slot registered for the Ctrl-C
    /// handler.
    pub(crate) fn on(net: Network) -> Result<Testbed, TestbedError> {
        let slot = net.slot();
        let dir = slot_run_dir(&net)?;
        let bed = Testbed {
            vms: Vec::new(),
            net,
            dir,
            started: Duration::ZERO,
            prepared: None,
        };
        // Registered only once `bed` exists, so its Drop always unregisters the slot: the
        // handler must never clean a slot this process no longer owns.
        register_slot(slot);
        Ok(bed)
    }

    /// VM number `i` of this testbed (not started): `vmI` at the slot's address `i`.
    pub(crate) fn new_vm(
        &self,
        i: usize,
        machine_id: Option<String>,
        key: &Path,
        pubkey: &str,
        spec: &VmSpec,
        image: &BaseImage,
    ) -> Result<Vm, TestbedError> {
        let slot = self.net.slot();
        let name = format!("vm{i}");
        let vm_dir = self.dir.join(&name);
        fs::create_dir_all(&vm_dir)
            .map_err(TestbedError::io(format!("creating {}", vm_dir.display())))?;
        let id = Identity {
            address: self.net.vm_address(i),
            tap: self.net.tap(i),
            mac: format!("52:54:00:cb:{slot:02x}:{i:02x}"),
            machine_id,
            name,
        };
        Ok(Vm::new(id, vm_dir, key, pubkey, spec, image))
    }

    pub(crate) fn push_vm(&mut self, vm: Vm) {
        self.vms.push(vm);
    }

    pub(crate) fn set_started(&mut self, started: Duration, prepared: Option<PathBuf>) {
        self.started = started;
        self.prepared = prepared;
    }

    /// Boots one VM with KVM and reports whether it reached SSH within `timeout`, trying the
    /// CPU models `max` (all the host offers) and plain `qemu64`. Nested KVM on the machines
    /// measured so far aborts (`max`: MSR 0x10a) or stalls; this finds out honestly. Returns the
    /// model that worked.
    pub fn probe_kvm(timeout: Duration) -> Result<Option<String>, TestbedError> {
        if fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_err()
        {
            return Ok(None);
        }
        for cpu in ["max", "qemu64"] {
            let spec = VmSpec {
                accel: Accel::Kvm,
                boot_timeout: timeout,
                cpu: Some(cpu.to_string()),
                restore: false,
                ..VmSpec::default()
            };
            match Testbed::start(1, &spec) {
                Ok(_) => return Ok(Some(cpu.to_string())),
                Err(TestbedError::Boot { cause, .. }) => {
                    eprintln!("vm-tests: KVM with -cpu {cpu} failed: {cause}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The VMs, in order `vm0`, `vm1`, ...
    pub fn vms(&self) -> &[Vm] {
        &self.vms
    }

    /// VM number `i`. Panics if there is no such VM (a test bug).
    pub fn vm(&self, i: usize) -> &Vm {
        &self.vms[i]
    }

    /// The host's own address on the bridge (VMs reach the host here, nothing beyond it).
    pub fn host_address(&self) -> Ipv4Addr {
        self.net.host_address()
    }

    /// The bridge the VMs are on.
    pub fn bridge(&self) -> &str {
        self.net.bridge()
    }

    /// How long `start` took from the first qemu to the last SSH login (the saved state, when
    /// one had to be taken first, is not counted).
    pub fn boot_time(&self) -> Duration {
        self.started
    }

    /// The testbed's run directory (overlays, console logs, the throwaway key).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// For a testbed from [`Testbed::start_prepared`]: the directory where its preparation left
    /// files for the host side (e.g. a jump host's `~/.ferry`), kept with the saved state.
    /// Shared by every testbed restored from that state: copy from it, never write to it.
    pub fn prepared_dir(&self) -> Option<&Path> {
        self.prepared.as_deref()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for vm in &self.vms {
            let _ = vm.power_off();
        }
        self.vms.clear();
        let _ = fs::remove_dir_all(&self.dir);
        unregister_slot(self.net.slot());
        // `net` drops next: taps, bridge, firewall rule.
    }
}

/// Starts a testbed for a test. If this machine cannot run VMs at all, prints one loud line and
/// returns `None` — unless `CI=true`, where that panics so a green CI run means the VMs ran.
/// Any other failure (a VM that does not boot) panics with the console log.
pub fn start_or_skip(n: usize, spec: &VmSpec) -> Option<Testbed> {
    match Testbed::start(n, spec) {
        Ok(bed) => Some(bed),
        Err(e @ TestbedError::Unavailable(_)) if !in_ci() => {
            eprintln!("!!!!! vm-tests SKIPPED: {e} (with CI=true this fails) !!!!!");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Like [`start_or_skip`] for [`Testbed::start_prepared`].
pub fn start_prepared_or_skip(
    n: usize,
    spec: &VmSpec,
    preparation: &Preparation,
    prepare: impl FnOnce(&Testbed, &Path),
) -> Option<Testbed> {
    match Testbed::start_prepared(n, spec, preparation, prepare) {
        Ok(bed) => Some(bed),
        Err(e @ TestbedError::Unavailable(_)) if !in_ci() => {
            eprintln!("!!!!! vm-tests SKIPPED: {e} (with CI=true this fails) !!!!!");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

pub(crate) fn check_count(n: usize) -> Result<(), TestbedError> {
    if n == 0 || n > 50 {
        return Err(TestbedError::State {
            vm: "-".into(),
            message: format!("a testbed has 1 to 50 VMs, not {n}"),
        });
    }
    Ok(())
}

/// Checks that this machine can run a testbed at all.
pub(crate) fn preflight() -> Result<(), TestbedError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(TestbedError::Unavailable(
            "not root (bridges, taps and debootstrap need root)".into(),
        ));
    }
    let tools = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
        ("debootstrap", "debootstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("ip", "iproute2"),
        ("tc", "iproute2"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("ssh-keyscan", "openssh-client"),
    ];
    let missing: Vec<String> = tools
        .iter()
        .filter(|(tool, _)| which(tool).is_none())
        .map(|(tool, pkg)| format!("{tool} (Debian package {pkg})"))
        .collect();
    if !missing.is_empty() {
        return Err(TestbedError::Unavailable(format!(
            "missing {}",
            missing.join(", ")
        )));
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(TestbedError::Unavailable(
            "/dev/net/tun is missing (taps cannot be created)".into(),
        ));
    }
    Ok(())
}

pub(crate) fn install_signal_handler() {
    HANDLER.call_once(|| {
        // Another handler may exist in this process; then teardown on drop is all we get.
        let _ = ctrlc::set_handler(|| {
            let slots = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
            for slot in slots {
                cleanup_slot(slot);
            }
            eprintln!("vm-tests: interrupted; VMs, taps and bridges of this process removed");
            std::process::exit(130);
        });
    });
}

/// Marks `slot` as owned by this process, for the Ctrl-C/SIGTERM handler.
pub(crate) fn register_slot(slot: u8) {
    if let Ok(mut live) = LIVE.lock() {
        live.push(slot);
    }
}

/// The slot is torn down (or about to be) by its owner: the handler must leave it alone.
pub(crate) fn unregister_slot(slot: u8) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|s| *s != slot);
    }
}

/// The run directory of a slot (VM directories with pid files below it), emptied and recorded
/// in the slot file so that a later owner of the slot can clean up after a killed process.
pub(crate) fn slot_run_dir(net: &Network) -> Result<PathBuf, TestbedError> {
    let dir = cache_dir().join("run").join(format!("slot-{}", net.slot()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(TestbedError::io(format!("creating {}", dir.display())))?;
    net.record(&dir)?;
    Ok(dir)
}

/// A throwaway ed25519 key pair in `dir`: the private key's path and the public key in base64
/// (as the image's ferry-seed and ferry-identity take it).
pub(crate) fn new_key(dir: &Path) -> Result<(PathBuf, String), TestbedError> {
    let key = dir.join("id_ed25519");
    let key_arg = key.to_string_lossy().into_owned();
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "ferry-testbed",
            "-f",
            &key_arg,
        ],
    )?;
    let pubkey = fs::read_to_string(key.with_extension("pub"))
        .map_err(TestbedError::io("reading the testbed public key"))?;
    Ok((key, base64(pubkey.trim().as_bytes())))
}

pub(crate) fn machine_id(slot: u8, i: usize) -> String {
    let mut h = Sha256::new();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.update(format!("{}:{now}:{slot}:{i}", std::process::id()).as_bytes());
    hex(&h.finalize()[..16])
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b"ssh-ed25519 A"), "c3NoLWVkMjU1MTkgQQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
