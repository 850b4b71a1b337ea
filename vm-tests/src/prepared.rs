//! Prepared testbeds: N VMs saved together, RAM and disks, after a preparation that many tests
//! start from (e.g. ferry's baseline applied to three hosts), so each of those tests restores them
//! in seconds instead of redoing minutes of emulated work. The preparation runs once per
//! [`Preparation`] (its name and inputs), the state is cached beside the boot template's.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::image::BaseImage;
use crate::net::{Network, PREPARED_SLOTS};
use crate::snapshot::{save, Snapshot, LAYOUT};
use crate::testbed::{check_count, install_signal_handler, new_key};
use crate::vm::{hex, VmSpec};
use crate::{qmp, Testbed, TestbedError};

/// A prepared state unused this long is removed when another of the same name is taken.
const KEEP_UNUSED: Duration = Duration::from_secs(2 * 3600);

/// What a prepared testbed starts from: a name (`[a-z0-9-]`, it names the cached state) and
/// every input the preparation depends on. Change an input (a new build of the program the
/// preparation runs, another answer file) and the next start prepares again.
///
/// ```no_run
/// use vm_tests::{Preparation, Testbed, VmSpec};
/// let prep = Preparation::new("baselined")
///     .input_file("target/debug/ferry")?
///     .input("answers v1");
/// let bed = Testbed::start_prepared(3, &VmSpec::default(), &prep, |bed, host_dir| {
///     // runs once per preparation: e.g. `ferry apply` of the baseline with HOME in host_dir
/// })?;
/// # Ok::<(), vm_tests::TestbedError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Preparation {
    name: String,
    inputs: Sha256,
}

impl Preparation {
    /// A preparation named `name`, with no inputs yet.
    pub fn new(name: &str) -> Preparation {
        Preparation {
            name: name.to_string(),
            inputs: Sha256::new(),
        }
    }

    /// Adds bytes the preparation depends on (an answer file, a version, a step list).
    pub fn input(mut self, bytes: impl AsRef<[u8]>) -> Preparation {
        let bytes = bytes.as_ref();
        self.inputs.update((bytes.len() as u64).to_le_bytes());
        self.inputs.update(bytes);
        self
    }

    /// Adds the contents of a file the preparation depends on (the binary it runs).
    pub fn input_file(self, path: impl AsRef<Path>) -> Result<Preparation, TestbedError> {
        let path = path.as_ref();
        let what = || {
            format!(
                "reading {} (an input of preparation {})",
                path.display(),
                self.name
            )
        };
        let mut file = File::open(path).map_err(TestbedError::io(what()))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(TestbedError::io(what()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(self.input(h.finalize()))
    }

    /// The preparation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names the saved state by everything it must match: the preparation, the number of VMs,
    /// the disk size and the device layout (the machine shape and the base image are in the
    /// directory of the boot template it sits in).
    fn key(&self, n: usize, spec: &VmSpec) -> String {
        let mut h = Sha256::new();
        h.update(
            format!(
                "prepared 1 layout {LAYOUT} vms {n} disk {} name {}\n",
                spec.disk_gib, self.name
            )
            .as_bytes(),
        );
        h.update(self.inputs.clone().finalize());
        hex(&h.finalize()[..8])
    }

    fn check_name(&self) -> Result<(), TestbedError> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(())
        } else {
            Err(TestbedError::State {
                vm: "-".into(),
                message: format!(
                    "preparation name {:?}: use 1 to 64 of a-z, 0-9 and -",
                    self.name
                ),
            })
        }
    }
}

impl Testbed {
    /// Starts `n` VMs as `prepare` left them on a testbed of its own: the first time (per
    /// [`Preparation`], machine shape and base image) it starts a testbed, runs `prepare` on it,
    /// then saves every VM's RAM and disk together; every later start restores them from there
    /// in seconds (each VM's clock set to now and its random generator reseeded), instead of
    /// redoing the preparation.
    ///
    /// The VMs keep everything the preparation gave them: names, addresses (a prepared state has
    /// a slot of its own, so its testbeds wait for each other), MACs, machine ids, host keys, the
    /// testbed key, running processes and open connections between them. `prepare` gets a
    /// directory for host-side files (e.g. a jump host's `~/.ferry`), later found in
    /// [`Testbed::prepared_dir`]. It must leave every VM running, with no hot-plugged disk.
    ///
    /// Where VMs are not restored (`FERRY_VM_RESTORE=0`, KVM) `prepare` runs on every start. A
    /// spec with `small_disk_mib` is refused: attach small disks after the start.
    pub fn start_prepared(
        n: usize,
        spec: &VmSpec,
        preparation: &Preparation,
        prepare: impl FnOnce(&Testbed, &Path),
    ) -> Result<Testbed, TestbedError> {
        check_count(n)?;
        preparation.check_name()?;
        if spec.small_disk_mib.is_some() {
            return Err(TestbedError::State {
                vm: "-".into(),
                message: "a prepared testbed cannot have small disks in its spec (they are not \
                          in its saved state): attach them after the start with \
                          Vm::attach_small_disk"
                    .into(),
            });
        }
        if !spec.restores() {
            let mut bed = Testbed::start(n, spec)?;
            let host = bed.dir().join("prepared");
            fs::create_dir_all(&host)
                .map_err(TestbedError::io(format!("creating {}", host.display())))?;
            prepare(&bed, &host);
            let started = bed.boot_time();
            bed.set_started(started, Some(host));
            return Ok(bed);
        }
        let image = BaseImage::ensure()?;
        install_signal_handler();
        let template = Snapshot::ensure(&image, spec)?;
        let state = PreparedState::ensure(&image, &template, n, spec, preparation, prepare)?;
        state.restore(n, spec, &image)
    }
}

/// A prepared state on disk: `vmI/state` and `vmI/disk.qcow2` per VM, the testbed key
/// (`id_ed25519`), the VMs' machine ids, the host-side directory `host/`, and `used`, touched at
/// every restore.
struct PreparedState {
    dir: PathBuf,
    slot: u8,
}

impl PreparedState {
    fn ensure(
        image: &BaseImage,
        template: &Snapshot,
        n: usize,
        spec: &VmSpec,
        preparation: &Preparation,
        prepare: impl FnOnce(&Testbed, &Path),
    ) -> Result<PreparedState, TestbedError> {
        let root = template
            .disk
            .parent()
            .map(|d| d.join("prepared"))
            .ok_or_else(|| {
                prepared_error(preparation, "the boot template has no directory".into())
            })?;
        fs::create_dir_all(&root)
            .map_err(TestbedError::io(format!("creating {}", root.display())))?;
        let key = preparation.key(n, spec);
        let entry = format!("{}-{key}", preparation.name);
        let state = PreparedState {
            dir: root.join(&entry),
            slot: slot_of(&key),
        };
        if state.is_complete() {
            return Ok(state);
        }
        let lock_path = root.join(format!("{entry}.lock"));
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
        if state.is_complete() {
            return Ok(state);
        }
        // A process killed while preparing leaves its work directory: start over.
        let work = root.join(format!("{entry}.work"));
        let _ = fs::remove_dir_all(&work);
        let _ = fs::remove_dir_all(&state.dir);
        fs::create_dir_all(work.join("host"))
            .map_err(TestbedError::io(format!("creating {}", work.display())))?;
        eprintln!(
            "vm-tests: preparing {n} VMs for {:?} once, then saving them ({})",
            preparation.name,
            state.dir.display()
        );
        let started = Instant::now();
        take(image, template, n, spec, state.slot, &work, prepare)?;
        fs::rename(&work, &state.dir).map_err(TestbedError::io(format!(
            "renaming {} to {}",
            work.display(),
            state.dir.display()
        )))?;
        eprintln!(
            "vm-tests: {:?} prepared and saved in {:.1} s",
            preparation.name,
            started.elapsed().as_secs_f64()
        );
        prune(&root, &preparation.name, &entry);
        Ok(state)
    }

    fn is_complete(&self) -> bool {
        self.dir.join("machine-ids").is_file()
    }

    fn vm_state(&self, i: usize) -> Snapshot {
        let dir = self.dir.join(format!("vm{i}"));
        Snapshot {
            disk: dir.join("disk.qcow2"),
            state: dir.join("state"),
        }
    }

    /// Starts the saved VMs on the state's slot: all loaded, then all let run, then each given
    /// this machine's clock and a random seed; returns once each accepts an SSH login.
    fn restore(&self, n: usize, spec: &VmSpec, image: &BaseImage) -> Result<Testbed, TestbedError> {
        let ids = fs::read_to_string(self.dir.join("machine-ids")).map_err(TestbedError::io(
            format!("reading {}", self.dir.join("machine-ids").display()),
        ))?;
        let ids: Vec<&str> = ids.lines().collect();
        let key = self.dir.join("id_ed25519");
        let pubkey = fs::read_to_string(self.dir.join("pubkey")).map_err(TestbedError::io(
            format!("reading {}", self.dir.join("pubkey").display()),
        ))?;
        let _ = fs::write(self.dir.join("used"), "");
        let net = Network::create_on(self.slot, n)?;
        let t0 = Instant::now();
        let mut bed = Testbed::on(net)?;
        for i in 0..n {
            let vm = bed.new_vm(
                i,
                ids.get(i).map(|s| s.to_string()),
                &key,
                pubkey.trim(),
                spec,
                image,
            )?;
            let saved = self.vm_state(i);
            vm.create_overlay(Some(&saved))?;
            vm.spawn(Some(&saved))?;
            bed.push_vm(vm);
        }
        // Saved together while stopped: let them run again as close together as they stopped.
        for vm in bed.vms() {
            vm.resume_loaded(t0)?;
        }
        let mut ports = Vec::with_capacity(n);
        for vm in bed.vms() {
            ports.push(vm.send_clock_and_seed(t0)?);
        }
        for (vm, port) in bed.vms().iter().zip(ports) {
            vm.finish_resume(port, t0)?;
        }
        bed.set_started(t0.elapsed(), Some(self.dir.join("host")));
        Ok(bed)
    }
}

/// Runs the preparation on a testbed on `slot` (its key kept in `work`), then stops every VM and
/// saves each one's state and disk into `work/vmI/`.
fn take(
    image: &BaseImage,
    template: &Snapshot,
    n: usize,
    spec: &VmSpec,
    slot: u8,
    work: &Path,
    prepare: impl FnOnce(&Testbed, &Path),
) -> Result<(), TestbedError> {
    let (key, pubkey) = new_key(work)?;
    fs::write(work.join("pubkey"), &pubkey)
        .map_err(TestbedError::io(format!("writing {}", work.display())))?;
    let net = Network::create_on(slot, n)?;
    let bed = Testbed::start_on(
        net,
        n,
        spec,
        image,
        Some(template),
        Some((key, pubkey)),
        Instant::now(),
    )?;
    prepare(&bed, &work.join("host"));
    for vm in bed.vms() {
        if vm.small_disks.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return Err(TestbedError::State {
                vm: vm.name().into(),
                message: "the preparation hot-plugged a disk: a saved state cannot hold it".into(),
            });
        }
        // Also proves every VM still runs.
        vm.ssh_ok("sync")?;
    }
    // All stopped first, so the saved VMs agree on what was said between them.
    for vm in bed.vms() {
        qmp::execute(&vm.qmp_socket(), vm.name(), "stop", json!({}))?;
    }
    let mut ids = String::new();
    for (i, vm) in bed.vms().iter().enumerate() {
        let dir = work.join(format!("vm{i}"));
        fs::create_dir_all(&dir)
            .map_err(TestbedError::io(format!("creating {}", dir.display())))?;
        save(vm, &dir.join("state"))?;
        fs::rename(vm.overlay(), dir.join("disk.qcow2")).map_err(TestbedError::io(format!(
            "moving {}'s disk to {}",
            vm.name(),
            dir.display()
        )))?;
        ids.push_str(vm.machine_id.as_deref().unwrap_or_default());
        ids.push('\n');
    }
    // Written last: its presence marks a complete state.
    fs::write(work.join("machine-ids"), ids)
        .map_err(TestbedError::io(format!("writing {}", work.display())))
}

/// The slot a prepared state lives on, from its key.
fn slot_of(key: &str) -> u8 {
    let (first, last) = (*PREPARED_SLOTS.start(), *PREPARED_SLOTS.end());
    let n = u64::from_str_radix(&key[..8.min(key.len())], 16).unwrap_or(0);
    first + (n % u64::from(last - first + 1)) as u8
}

/// Removes the other states of preparation `name` (older inputs) that no testbed restored for
/// [`KEEP_UNUSED`], and leftovers of preparations killed half-way.
fn prune(root: &Path, name: &str, keep: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&format!("{name}-")) else {
            continue;
        };
        // `name-KEY` and `name-KEY.work` only (16 hex digits): not another name with a dash.
        let key = rest.strip_suffix(".work").unwrap_or(rest);
        if file_name == keep || key.len() != 16 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let path = entry.path();
        let last_used = fs::metadata(path.join("used"))
            .or_else(|_| fs::metadata(&path))
            .and_then(|m| m.modified())
            .unwrap_or(now);
        if now.duration_since(last_used).unwrap_or_default() > KEEP_UNUSED {
            let _ = fs::remove_dir_all(&path);
            let _ = fs::remove_file(root.join(format!("{name}-{key}.lock")));
        }
    }
}

fn prepared_error(preparation: &Preparation, message: String) -> TestbedError {
    TestbedError::State {
        vm: format!("(preparation {})", preparation.name),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_name_the_state_and_keys_pick_a_prepared_slot() {
        let spec = VmSpec::default();
        let a = Preparation::new("baselined").input("answers 1");
        let b = Preparation::new("baselined").input("answers 2");
        assert_ne!(a.key(3, &spec), b.key(3, &spec));
        assert_ne!(a.key(3, &spec), a.key(4, &spec));
        assert_eq!(a.key(3, &spec), a.clone().key(3, &spec));
        // Inputs are length-prefixed: moving a byte from one input to the next is a change.
        let c = Preparation::new("x").input("ab").input("c");
        let d = Preparation::new("x").input("a").input("bc");
        assert_ne!(c.key(1, &spec), d.key(1, &spec));
        for k in ["0000000000000000", "ffffffffffffffff", "0123456789abcdef"] {
            assert!(PREPARED_SLOTS.contains(&slot_of(k)));
        }
        assert!(Preparation::new("Bad name").check_name().is_err());
        assert!(Preparation::new("cluster-3").check_name().is_ok());
    }
}
