//! Saved states of a booted VM (the template), taken once per base image and machine shape and
//! cached beside the base image. Testbeds restore their VMs from one instead of booting each
//! (a boot under TCG costs 20-26 CPU-seconds); each restored VM then gets its own identity.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::image::BaseImage;
use crate::net::Network;
use crate::testbed::{new_key, register_slot, slot_run_dir, unregister_slot};
use crate::vm::{hex, Identity, Vm, VmSpec};
use crate::{qmp, TestbedError};

/// Version of the qemu command line's device layout (see `Vm::qemu_command`): a saved state
/// only loads into the same devices, so a change there must bump this and so name new states.
pub(crate) const LAYOUT: u32 = 1;

/// A saved state: the template's disk (a qcow2 overlay on the base image, never written again;
/// restored VMs' overlays sit on it) and its RAM and device state (a qemu migration stream).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) disk: PathBuf,
    pub(crate) state: PathBuf,
}

impl Snapshot {
    /// The saved state for VMs of `spec` on `image`, taken first if there is none yet (a boot
    /// of one VM plus a few seconds). Concurrent callers wait for one to be taken.
    pub(crate) fn ensure(image: &BaseImage, spec: &VmSpec) -> Result<Snapshot, TestbedError> {
        let root = image.dir().join("snapshots");
        fs::create_dir_all(&root)
            .map_err(TestbedError::io(format!("creating {}", root.display())))?;
        let key = key(spec)?;
        let dir = root.join(&key);
        let snapshot = Snapshot {
            disk: dir.join("disk.qcow2"),
            state: dir.join("state"),
        };
        if snapshot.is_complete() {
            return Ok(snapshot);
        }
        let lock_path = root.join(format!("{key}.lock"));
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(TestbedError::io(format!("opening {}", lock_path.display())))?;
        let _lock =
            Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, e)| TestbedError::Io {
                what: format!("locking {}", lock_path.display()),
                source: e.into(),
            })?;
        if snapshot.is_complete() {
            return Ok(snapshot);
        }
        // A process killed while taking one leaves its work directory: start over.
        let work = root.join(format!("{key}.work"));
        let _ = fs::remove_dir_all(&work);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&work)
            .map_err(TestbedError::io(format!("creating {}", work.display())))?;
        eprintln!(
            "vm-tests: booting one VM to save the state later VMs start from, once for this image and machine shape ({})",
            dir.display()
        );
        let started = Instant::now();
        take(image, spec, &work)?;
        fs::rename(&work, &dir).map_err(TestbedError::io(format!(
            "renaming {} to {}",
            work.display(),
            dir.display()
        )))?;
        eprintln!(
            "vm-tests: saved state taken in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(snapshot)
    }

    fn is_complete(&self) -> bool {
        self.disk.is_file() && self.state.is_file()
    }

    /// qemu's `-incoming` argument that loads this state.
    pub(crate) fn incoming_uri(&self) -> Result<String, TestbedError> {
        shell_quoted(&self.state).map(|p| format!("exec:cat {p}"))
    }
}

/// Boots the template VM on a slot of its own, waits until its boot is over and its
/// `ferry-identity` waits on ttyS1, stops it and saves its state into `work` (`state`) next to
/// its disk (`disk.qcow2`).
fn take(image: &BaseImage, spec: &VmSpec, work: &Path) -> Result<(), TestbedError> {
    let net = Network::create(1)?;
    let slot = net.slot();
    register_slot(slot);
    let run_dir = slot_run_dir(&net);
    let result = run_dir.and_then(|run_dir| {
        let saved = take_on(image, spec, &net, &run_dir, work);
        let _ = fs::remove_dir_all(&run_dir);
        saved
    });
    unregister_slot(slot);
    drop(net);
    result
}

fn take_on(
    image: &BaseImage,
    spec: &VmSpec,
    net: &Network,
    run_dir: &Path,
    work: &Path,
) -> Result<(), TestbedError> {
    let (key, pubkey) = new_key(run_dir)?;
    let vm_dir = run_dir.join("template");
    fs::create_dir_all(&vm_dir)
        .map_err(TestbedError::io(format!("creating {}", vm_dir.display())))?;
    let template_spec = template_spec(spec);
    let id = Identity {
        // The image's own name and machine id: restored VMs replace both.
        name: "ferry-vm".into(),
        address: net.vm_address(0),
        tap: net.tap(0),
        mac: format!("52:54:00:cb:{:02x}:ff", net.slot()),
        machine_id: None,
    };
    let vm = Vm::new(id, vm_dir, &key, &pubkey, &template_spec, image);
    vm.create_overlay(None)?;
    let t0 = Instant::now();
    vm.spawn(None)?;
    vm.wait_for_ssh(t0)?;
    // Save a VM whose boot is over (no start job cut in half), whose identity agent is waiting
    // on its port, and whose disk holds everything written so far.
    vm.ssh_ok(
        "timeout 120 systemctl is-system-running --wait >/dev/null; \
         systemctl is-active --quiet ferry-identity.service || { echo 'ferry-identity is not running' >&2; exit 1; }; \
         sync",
    )?;
    // Saved while running: a state saved from a stopped VM would load as stopped. qemu stops
    // the guest itself for the last pass, so RAM and disk are saved at the same instant.
    save(&vm, &work.join("state"))?;
    let disk = work.join("disk.qcow2");
    fs::rename(vm.overlay(), &disk).map_err(TestbedError::io(format!(
        "moving the template's disk to {}",
        disk.display()
    )))
}

/// Saves `vm`'s RAM and device state to `state` with qemu's migration to a file, then ends its
/// qemu (its disk is then closed and may be moved). A VM saved while running loads as running,
/// one saved while stopped (QMP `stop`) loads as stopped.
pub(crate) fn save(vm: &Vm, state: &Path) -> Result<(), TestbedError> {
    let socket = vm.qmp_socket();
    let name = vm.name().to_string();
    // The default bandwidth limit would make saving take seconds per 100 MiB.
    qmp::execute(
        &socket,
        &name,
        "migrate-set-parameters",
        json!({ "max-bandwidth": 8u64 << 30 }),
    )?;
    let part_path = state.with_extension("part");
    let part = shell_quoted(&part_path)?;
    let quoted = shell_quoted(state)?;
    qmp::execute(
        &socket,
        &name,
        "migrate",
        json!({ "uri": format!("exec:cat > {part} && mv {part} {quoted}") }),
    )?;
    let error = |message: String| TestbedError::State {
        vm: name.clone(),
        message,
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let info = qmp::execute(&socket, &name, "query-migrate", json!({}))?;
        match info.get("status").and_then(Value::as_str) {
            Some("completed") => break,
            Some("failed" | "cancelled") => {
                return Err(error(format!(
                    "saving its state failed: {}",
                    info.get("error-desc")
                        .and_then(Value::as_str)
                        .unwrap_or("qemu gave no reason")
                )))
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(error("saving its state took over 300 s".into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Completing the migration flushed and released the disk; quitting closes it for good.
    let _ = qmp::execute(&socket, &name, "quit", json!({}));
    vm.wait_for_exit(Duration::from_secs(30));
    vm.power_off()?;
    // `cat` may still be writing the last bytes when qemu reports completion: wait for the mv.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !state.is_file() {
        if Instant::now() > deadline {
            return Err(error(format!(
                "{} did not appear after the save",
                state.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// What the template boots with: the spec's machine (memory, CPUs, CPU model), the image's own
/// disk size and no extra disk (restored VMs get those afterwards, see `Vm::finish_restore`).
fn template_spec(spec: &VmSpec) -> VmSpec {
    VmSpec {
        disk_gib: 4,
        small_disk_mib: None,
        restore: false,
        ..spec.clone()
    }
}

/// Names a saved state by everything it must match to load: the device layout, the qemu that
/// saved it, and the machine (memory, CPUs, CPU model, extra kernel arguments). The base image
/// is the directory it is kept in.
fn key(spec: &VmSpec) -> Result<String, TestbedError> {
    Ok(key_with(spec, &qemu_version()?))
}

fn key_with(spec: &VmSpec, qemu_version: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("layout {LAYOUT}\n").as_bytes());
    h.update(qemu_version.as_bytes());
    h.update(
        format!(
            "\nmemory {} cpus {} cpu {} append {}\n",
            spec.memory_mib,
            spec.cpus,
            crate::vm::cpu_model(spec),
            std::env::var("FERRY_VM_APPEND").unwrap_or_default()
        )
        .as_bytes(),
    );
    hex(&h.finalize()[..8])
}

fn qemu_version() -> Result<String, TestbedError> {
    static VERSION: OnceLock<String> = OnceLock::new();
    if let Some(v) = VERSION.get() {
        return Ok(v.clone());
    }
    let out = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map_err(TestbedError::io("running qemu-system-x86_64 --version"))?;
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    Ok(VERSION.get_or_init(|| version).clone())
}

fn shell_quoted(path: &Path) -> Result<String, TestbedError> {
    let p = path.to_string_lossy();
    if p.contains('\'') {
        return Err(snapshot_error(format!(
            "{p} contains a single quote; set FERRY_VM_CACHE to a path without one"
        )));
    }
    Ok(format!("'{p}'"))
}

fn snapshot_error(message: String) -> TestbedError {
    TestbedError::State {
        vm: "ferry-vm (template)".into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_shape_and_qemu_name_the_saved_state_and_the_disks_do_not() {
        let base = VmSpec::default();
        let k = |spec: &VmSpec| key_with(spec, "QEMU emulator version 7.2.22");
        let bigger = VmSpec {
            memory_mib: 2048,
            ..base.clone()
        };
        let other_cpu = VmSpec {
            cpu: Some("max".into()),
            ..base.clone()
        };
        let disks = VmSpec {
            disk_gib: 8,
            small_disk_mib: Some(16),
            ..base.clone()
        };
        assert_ne!(k(&base), k(&bigger));
        assert_ne!(k(&base), k(&other_cpu));
        assert_ne!(k(&base), key_with(&base, "QEMU emulator version 8.2.0"));
        assert_eq!(
            k(&base),
            k(&disks),
            "disk sizes are applied after a restore"
        );
        assert_eq!(template_spec(&disks).disk_gib, 4);
        assert!(template_spec(&disks).small_disk_mib.is_none());
    }

    #[test]
    fn a_path_with_a_quote_is_refused_for_the_shell() {
        assert!(shell_quoted(Path::new("/tmp/it's")).is_err());
        assert_eq!(
            shell_quoted(Path::new("/tmp/a b")).expect("no quote in it"),
            "'/tmp/a b'"
        );
    }
}
