//! One VM: its qemu process, overlay disk, tap, console log and QMP socket, the ways to reach it
//! (SSH with the testbed key or a password) and the faults that can be done to it.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::image::BaseImage;
use crate::net::run;
use crate::snapshot::Snapshot;
use crate::{qmp, TestbedError};

/// How qemu runs the guest CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: works everywhere, the default (nested KVM fails on these machines).
    Tcg,
    /// Hardware virtualisation; only use after [`crate::Testbed::probe_kvm`] said it works.
    Kvm,
}

/// What each VM of a testbed gets.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Size of the root disk in GiB (at least 4, the base image's size; a larger root file system
    /// is grown at boot, which costs seconds of boot time under emulation).
    pub disk_gib: u32,
    /// A second, small disk attached at boot (`/dev/disk/by-id/virtio-ferry-small0`), to fill up.
    pub small_disk_mib: Option<u32>,
    /// CPU acceleration.
    pub accel: Accel,
    /// How long to wait for a VM to answer SSH after qemu starts.
    pub boot_timeout: Duration,
    /// qemu `-cpu` model; `None`: x86-64-v2 without AVX under TCG, `max` under KVM
    /// (`FERRY_VM_CPU` sets it for `VmSpec::default()`).
    pub cpu: Option<String>,
    /// Start the VMs from the saved state of a booted VM (taken once per image and machine
    /// shape, cached beside the base image) instead of booting them: each is then given its own
    /// address, MAC, host name, machine id, host keys, SSH key and clock. Ignored under KVM.
    /// `FERRY_VM_RESTORE=0` turns it off for `VmSpec::default()`.
    pub restore: bool,
}

impl Default for VmSpec {
    /// 1 vCPU, 1 GiB, 4 GiB disk, TCG (or `FERRY_VM_ACCEL=kvm`), 300 s boot timeout (or
    /// `FERRY_VM_BOOT_TIMEOUT` seconds), restored from a saved state unless `FERRY_VM_RESTORE=0`:
    /// starts under software emulation on a busy 2-core machine.
    fn default() -> Self {
        let accel = match std::env::var("FERRY_VM_ACCEL").as_deref() {
            Ok("kvm") => Accel::Kvm,
            _ => Accel::Tcg,
        };
        let boot_timeout = std::env::var("FERRY_VM_BOOT_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(300));
        VmSpec {
            cpu: std::env::var("FERRY_VM_CPU").ok(),
            memory_mib: 1024,
            cpus: 1,
            disk_gib: 4,
            small_disk_mib: None,
            accel,
            boot_timeout,
            restore: !matches!(
                std::env::var("FERRY_VM_RESTORE").as_deref(),
                Ok("0" | "off" | "false" | "no")
            ),
        }
    }
}

impl VmSpec {
    /// Whether VMs of this spec start from a saved state.
    pub(crate) fn restores(&self) -> bool {
        self.restore && self.accel == Accel::Tcg
    }
}

/// A user account that exists in every VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: &'static str,
    /// Password, if the account has one (a test fixture, not a secret).
    pub password: Option<&'static str>,
    /// Whether the testbed's SSH key is authorized for it.
    pub key: bool,
    /// Whether it may use sudo (with its password).
    pub sudo: bool,
}

/// Every user in the image: root (key only), `ferrykey` (key only, no sudo), `ferrypass`
/// (password only, no sudo), `ferrysudo` (key or password, sudo asks for the password).
pub const USERS: [User; 4] = [
    User {
        name: "root",
        password: None,
        key: true,
        sudo: false,
    },
    User {
        name: "ferrykey",
        password: None,
        key: true,
        sudo: false,
    },
    User {
        name: "ferrypass",
        password: Some("ferrypass-secret"),
        key: false,
        sudo: false,
    },
    User {
        name: "ferrysudo",
        password: Some("ferrysudo-secret"),
        key: true,
        sudo: true,
    },
];

/// What a command run over SSH returned.
#[derive(Debug, Clone)]
pub struct SshOutput {
    /// Exit code of the remote command (255 when ssh itself failed), -1 if killed by a signal.
    pub code: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl SshOutput {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Standard output.
    pub fn stdout_str(&self) -> &str {
        &self.stdout
    }
}

/// Where a netem setting lives (see [`Vm::netem`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetemSide {
    /// On the VM's tap on the host: delays and drops traffic towards the VM.
    Host,
    /// On the VM's `eth0`: delays and drops traffic leaving the VM.
    Guest,
}

/// One VM of a testbed.
#[derive(Debug)]
pub struct Vm {
    pub(crate) name: String,
    pub(crate) address: Ipv4Addr,
    pub(crate) tap: String,
    pub(crate) dir: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) pubkey: String,
    /// `None` for the template of a saved state: it keeps the image's, and no restored VM's
    /// /proc/cmdline (the template's) may carry an id systemd would bring back on a re-exec.
    pub(crate) machine_id: Option<String>,
    pub(crate) spec: VmSpec,
    pub(crate) image: BaseImage,
    pub(crate) mac: String,
    pub(crate) process: Mutex<Option<Child>>,
    pub(crate) small_disks: AtomicU32,
    pub(crate) netem_side: Mutex<Option<NetemSide>>,
    pub(crate) restored: AtomicBool,
}

/// Who a VM is on the testbed's network.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) name: String,
    pub(crate) address: Ipv4Addr,
    pub(crate) tap: String,
    pub(crate) mac: String,
    pub(crate) machine_id: Option<String>,
}

const SSH_PORT: u16 = 22;

/// x86-64-v2 (SSE4.2, POPCNT, CMPXCHG16B) without AVX: under TCG `-cpu max` makes glibc pick AVX2
/// string functions that qemu emulates slowly; measured ~25% more CPU per boot with `max`.
/// With AES-NI and PCLMULQDQ, as every server a site has: qemu runs each AES round as one
/// helper call, so the guest's sshd and TLS decrypt AES-GCM natively instead of in emulated
/// table code (a 2-VM cluster install 135 s -> 98 s, docs/perf-vm.md). `FERRY_VM_CPU` overrides it.
const DEFAULT_CPU: &str = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16,+aes,+pclmulqdq";

impl Vm {
    /// A VM that is not started yet; `dir` is its run directory (overlay, sockets, logs), `key`
    /// the testbed's private key and `pubkey` its public half in base64.
    pub(crate) fn new(
        id: Identity,
        dir: PathBuf,
        key: &Path,
        pubkey: &str,
        spec: &VmSpec,
        image: &BaseImage,
    ) -> Vm {
        Vm {
            name: id.name,
            address: id.address,
            tap: id.tap,
            dir,
            key: key.to_path_buf(),
            pubkey: pubkey.to_string(),
            machine_id: id.machine_id,
            spec: spec.clone(),
            image: image.clone(),
            mac: id.mac,
            process: Mutex::new(None),
            small_disks: AtomicU32::new(0),
            netem_side: Mutex::new(None),
            restored: AtomicBool::new(false),
        }
    }

    /// Host name (`vm0`, `vm1`, ...), also its static host name inside.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Static address on the testbed bridge.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// SSH port (22).
    pub fn ssh_port(&self) -> u16 {
        SSH_PORT
    }

    /// `address:22`.
    pub fn ssh_addr(&self) -> SocketAddr {
        SocketAddr::from((self.address, SSH_PORT))
    }

    /// The testbed's private key (OpenSSH format, ed25519), authorized for root, ferrykey and
    /// ferrysudo.
    pub fn private_key(&self) -> &Path {
        &self.key
    }

    /// The users of the VM.
    pub fn users(&self) -> &'static [User] {
        &USERS
    }

    /// The user named `name`, if the image has one.
    pub fn user(&self, name: &str) -> Option<&'static User> {
        USERS.iter().find(|u| u.name == name)
    }

    /// The serial console log (appended across power cycles).
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// The qcow2 overlay holding everything this VM wrote.
    pub fn overlay(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }

    /// The host-side tap device of this VM.
    pub fn tap(&self) -> &str {
        &self.tap
    }

    pub(crate) fn qmp_socket(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    fn identity_socket(&self) -> PathBuf {
        self.dir.join("identity.sock")
    }

    /// Whether the VM's current run started from a saved state rather than a boot (a VM powered
    /// off and on again boots from its disk: then `false`).
    pub fn restored(&self) -> bool {
        self.restored.load(Ordering::SeqCst)
    }

    pub(crate) fn pid_file(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }

    /// The pid of the running qemu, if any.
    pub fn qemu_pid(&self) -> Option<u32> {
        let guard = self.process.lock().ok()?;
        guard.as_ref().map(Child::id)
    }

    /// Resident memory of the qemu process in KiB, if it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.qemu_pid()?;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// CPU time (user + system) the qemu process has used so far, if it runs: the cost of the VM
    /// independent of how busy the machine is.
    pub fn qemu_cpu_time(&self) -> Option<Duration> {
        let pid = self.qemu_pid()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // USER_HZ is 100 on Linux.
        Some(Duration::from_millis(ticks * 10))
    }

    /// Creates the VM's overlay on the base image, or on a saved state's disk (then at that
    /// disk's size and without the spec's small disk: a saved state loads only into the devices
    /// it was taken with; [`Vm::finish_restore`] grows the disk and hot-plugs the small one).
    pub(crate) fn create_overlay(&self, on: Option<&Snapshot>) -> Result<(), TestbedError> {
        let overlay = self.overlay().to_string_lossy().into_owned();
        if let Some(snapshot) = on {
            let backing = snapshot.disk.to_string_lossy().into_owned();
            run(
                "qemu-img",
                &[
                    "create", "-q", "-f", "qcow2", "-b", &backing, "-F", "qcow2", &overlay,
                ],
            )?;
            return Ok(());
        }
        let size = format!("{}G", self.spec.disk_gib.max(4));
        let backing = self.image.disk.to_string_lossy().into_owned();
        run(
            "qemu-img",
            &[
                "create", "-q", "-f", "qcow2", "-b", &backing, "-F", "raw", &overlay, &size,
            ],
        )?;
        if let Some(mib) = self.spec.small_disk_mib {
            self.new_small_disk_file(0, mib)?;
            self.small_disks.store(1, Ordering::SeqCst);
        }
        Ok(())
    }

    fn small_disk_path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("small{n}.raw"))
    }

    fn new_small_disk_file(&self, n: u32, mib: u32) -> Result<(), TestbedError> {
        let path = self.small_disk_path(n);
        let f = File::create(&path)
            .map_err(TestbedError::io(format!("creating {}", path.display())))?;
        f.set_len(u64::from(mib) << 20)
            .map_err(TestbedError::io(format!("sizing {}", path.display())))
    }

    /// The `ip=` argument that configures `eth0` (systemd-network-generator reads it at boot; a
    /// restored VM gets the same string over its identity port).
    pub(crate) fn ip_argument(&self) -> String {
        format!(
            "{addr}:::255.255.255.0:{name}:eth0:off",
            addr = self.address,
            name = self.name
        )
    }

    fn kernel_command_line(&self) -> String {
        let mut extra = std::env::var("FERRY_VM_APPEND").unwrap_or_default();
        if self.spec.disk_gib > 4 {
            extra.push_str(" ferry.grow");
        }
        if let Some(id) = &self.machine_id {
            extra.push_str(&format!(" systemd.machine_id={id}"));
        }
        format!(
            "root=/dev/vda rw console=ttyS0 net.ifnames=0 ip={ip} systemd.hostname={name} \
             ferry.key={key} modprobe.blacklist=kvm,kvm_amd,kvm_intel {extra}",
            ip = self.ip_argument(),
            name = self.name,
            key = self.pubkey,
        )
    }

    /// The qemu command line; with `incoming`, qemu loads that saved state instead of booting.
    /// A saved state only loads into the same devices: anything added here changes
    /// [`crate::snapshot::LAYOUT`].
    fn qemu_command(&self, incoming: Option<&Snapshot>) -> Result<Command, TestbedError> {
        let mut cmd = Command::new("qemu-system-x86_64");
        let accel = match self.spec.accel {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        };
        let cpu = cpu_model(&self.spec);
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        cmd.args(["-name", &format!("guest={},debug-threads=off", self.name)])
            .args(["-machine", &format!("pc,accel={accel}")])
            .args(["-cpu", &cpu])
            .args(["-smp", &self.spec.cpus.to_string()])
            .args(["-m", &self.spec.memory_mib.to_string()])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-vga",
                "none",
            ])
            .args(["-kernel", &path(self.image.kernel.clone())])
            .args(["-initrd", &path(self.image.initrd.clone())])
            .args(["-append", &self.kernel_command_line()])
            .args([
                "-drive",
                &format!(
                    "file={},if=none,id=root,format=qcow2,cache=writeback",
                    path(self.overlay())
                ),
            ])
            .args(["-device", "virtio-blk-pci,drive=root,serial=ferry-root"]);
        for n in 0..self.small_disks.load(Ordering::SeqCst) {
            cmd.args([
                "-drive",
                &format!(
                    "file={},if=none,id=small{n},format=raw",
                    path(self.small_disk_path(n))
                ),
            ])
            .args([
                "-device",
                &format!("virtio-blk-pci,drive=small{n},serial=ferry-small{n}"),
            ]);
        }
        cmd.args([
            "-netdev",
            &format!("tap,id=net0,ifname={},script=no,downscript=no", self.tap),
        ])
        .args([
            "-device",
            &format!("virtio-net-pci,netdev=net0,mac={}", self.mac),
        ])
        .args(["-device", "virtio-rng-pci"])
        .args([
            "-chardev",
            &format!(
                "file,id=console,path={},append=on",
                path(self.console_log())
            ),
        ])
        .args(["-serial", "chardev:console"])
        // ttyS1: where a restored VM gets its identity (ferry-identity in the image).
        .args([
            "-chardev",
            &format!(
                "socket,id=identity,path={},server=on,wait=off",
                path(self.identity_socket())
            ),
        ])
        .args(["-device", "isa-serial,chardev=identity"])
        .args([
            "-qmp",
            &format!("unix:{},server=on,wait=off", path(self.qmp_socket())),
        ])
        .args(["-pidfile", &path(self.pid_file())]);
        if let Some(snapshot) = incoming {
            cmd.args(["-incoming", &snapshot.incoming_uri()?]);
        }
        Ok(cmd)
    }

    /// Starts qemu (the overlay, and so the disk contents, are kept across power cycles): a cold
    /// boot, or with `incoming` a restore of that saved state.
    pub(crate) fn spawn(&self, incoming: Option<&Snapshot>) -> Result<(), TestbedError> {
        let mut guard = self.lock_process()?;
        if let Some(child) = guard.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                return Err(self.state_error("is already powered on"));
            }
        }
        let log_path = self.dir.join("qemu.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(TestbedError::io(format!("opening {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(TestbedError::io("duplicating a log handle"))?;
        let _ = fs::remove_file(self.qmp_socket());
        let _ = fs::remove_file(self.identity_socket());
        let child = self
            .qemu_command(incoming)?
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(TestbedError::io("starting qemu-system-x86_64"))?;
        *guard = Some(child);
        self.restored.store(incoming.is_some(), Ordering::SeqCst);
        Ok(())
    }

    fn lock_process(&self) -> Result<std::sync::MutexGuard<'_, Option<Child>>, TestbedError> {
        self.process
            .lock()
            .map_err(|_| self.state_error("a thread panicked while holding this VM's process"))
    }

    fn state_error(&self, message: &str) -> TestbedError {
        TestbedError::State {
            vm: self.name.clone(),
            message: message.to_string(),
        }
    }

    /// Waits until the VM answers SSH (banner, then a key login running `true`).
    pub(crate) fn wait_for_ssh(&self, started: Instant) -> Result<(), TestbedError> {
        let deadline = started + self.spec.boot_timeout;
        loop {
            if let Some(status) = self.exited()? {
                return Err(self.boot_error(format!(
                    "qemu exited with {status} (qemu's own output: {})",
                    tail(&self.dir.join("qemu.log"), 5)
                )));
            }
            // With a broken KVM qemu stays alive but stops the guest: give up at once.
            let qemu_log = tail(&self.dir.join("qemu.log"), 5);
            if qemu_log.contains("internal error") {
                return Err(self.boot_error(format!("qemu stopped the guest: {qemu_log}")));
            }
            if self.ssh_banner(Duration::from_secs(2)) {
                let out = self.ssh_with(&["-o", "ConnectTimeout=10"], "root", "true")?;
                if out.success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(self.boot_error(format!(
                    "no SSH login within {} s",
                    self.spec.boot_timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn exited(&self) -> Result<Option<std::process::ExitStatus>, TestbedError> {
        let mut guard = self.lock_process()?;
        match guard.as_mut() {
            None => Err(self.state_error("is powered off")),
            Some(child) => child
                .try_wait()
                .map_err(TestbedError::io("checking on qemu")),
        }
    }

    fn boot_error(&self, cause: String) -> TestbedError {
        TestbedError::Boot {
            vm: self.name.clone(),
            cause,
            console: self.console_log(),
            console_tail: tail(&self.console_log(), 30),
        }
    }

    /// Connects to a restored VM's identity port and sends it who it is: name, `ip=` argument,
    /// MAC, machine id, the testbed's public key, a random seed from this machine, and this
    /// machine's clock (read last, just before sending). The VM's `ferry-identity` applies it
    /// and answers on the same connection, read by [`Vm::finish_restore`].
    pub(crate) fn send_identity(&self, started: Instant) -> Result<UnixStream, TestbedError> {
        self.send_identity_line(started, true)
    }

    /// Like [`Vm::send_identity`] for a VM restored from a prepared testbed's saved state
    /// (`crate::prepared`): it keeps the identity it was prepared with, so only this machine's
    /// clock and a random seed are sent. The VM must run (see [`Vm::resume_loaded`]).
    pub(crate) fn send_clock_and_seed(&self, started: Instant) -> Result<UnixStream, TestbedError> {
        self.send_identity_line(started, false)
    }

    fn send_identity_line(&self, started: Instant, full: bool) -> Result<UnixStream, TestbedError> {
        let deadline = started + self.spec.boot_timeout;
        // Bytes sent while qemu still loads the state would land in the serial port before its
        // saved state overwrites it, and be lost: send only once the guest runs.
        self.wait_until_running(deadline)?;
        let socket = self.identity_socket();
        let mut stream = loop {
            match UnixStream::connect(&socket) {
                Ok(s) => break s,
                Err(e) => {
                    if let Some(status) = self.exited()? {
                        return Err(self.restore_error(format!("qemu exited with {status}")));
                    }
                    if Instant::now() > deadline {
                        return Err(self.restore_error(format!(
                            "cannot connect to {}: {e}",
                            socket.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let mut seed = [0u8; 32];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(TestbedError::io("reading /dev/urandom"))?;
        let mut line = if full {
            let machine_id = self
                .machine_id
                .as_deref()
                .ok_or_else(|| self.state_error("has no machine id to be given"))?;
            format!(
                "ferry-identity 1 name={} ip={} mac={} machine-id={machine_id} key={} seed={}",
                self.name,
                self.ip_argument(),
                self.mac,
                self.pubkey,
                hex(&seed),
            )
        } else {
            format!("ferry-identity 1 seed={}", hex(&seed))
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| self.state_error("this machine's clock is before 1970"))?;
        line.push_str(&format!(
            " time={}.{:09}\n",
            now.as_secs(),
            now.subsec_nanos()
        ));
        stream
            .write_all(line.as_bytes())
            .map_err(TestbedError::io(format!(
                "sending {} its identity",
                self.name
            )))?;
        Ok(stream)
    }

    /// Waits until qemu has loaded the saved state and runs the guest.
    fn wait_until_running(&self, deadline: Instant) -> Result<(), TestbedError> {
        loop {
            let status = qmp::execute(&self.qmp_socket(), &self.name, "query-status", json!({}));
            match status {
                Ok(s) if s.get("status").and_then(|v| v.as_str()) == Some("running") => {
                    return Ok(())
                }
                Ok(s) if s.get("status").and_then(|v| v.as_str()) == Some("inmigrate") => {}
                Ok(s) => {
                    return Err(self.restore_error(format!(
                        "qemu is {} after loading the saved state, not running",
                        s.get("status").and_then(|v| v.as_str()).unwrap_or("?")
                    )))
                }
                // The socket is not there yet while qemu starts.
                Err(_) => {}
            }
            if let Some(status) = self.exited()? {
                return Err(self.restore_error(format!(
                    "qemu exited with {status} (qemu's own output: {})",
                    tail(&self.dir.join("qemu.log"), 5)
                )));
            }
            if Instant::now() > deadline {
                return Err(self.restore_error(format!(
                    "qemu did not load the saved state within {} s",
                    self.spec.boot_timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// For VMs saved while stopped (a prepared testbed's, saved together): waits until qemu has
    /// loaded the state (the guest is then paused) and lets the guest run.
    pub(crate) fn resume_loaded(&self, started: Instant) -> Result<(), TestbedError> {
        let deadline = started + self.spec.boot_timeout;
        loop {
            let status = qmp::execute(&self.qmp_socket(), &self.name, "query-status", json!({}));
            match status {
                Ok(s) if s.get("status").and_then(|v| v.as_str()) == Some("running") => {
                    return Ok(())
                }
                Ok(s) if s.get("status").and_then(|v| v.as_str()) == Some("paused") => {
                    qmp::execute(&self.qmp_socket(), &self.name, "cont", json!({}))?;
                    return Ok(());
                }
                Ok(s) if s.get("status").and_then(|v| v.as_str()) == Some("inmigrate") => {}
                Ok(s) => {
                    return Err(self.restore_error(format!(
                        "qemu is {} after loading the saved state, not paused",
                        s.get("status").and_then(|v| v.as_str()).unwrap_or("?")
                    )))
                }
                // The socket is not there yet while qemu starts.
                Err(_) => {}
            }
            if let Some(status) = self.exited()? {
                return Err(self.restore_error(format!(
                    "qemu exited with {status} (qemu's own output: {})",
                    tail(&self.dir.join("qemu.log"), 5)
                )));
            }
            if Instant::now() > deadline {
                return Err(self.restore_error(format!(
                    "qemu did not load the saved state within {} s",
                    self.spec.boot_timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Completes the restore of a prepared testbed's VM: reads its `ferry-identity` answer to
    /// [`Vm::send_clock_and_seed`] and waits for an SSH login.
    pub(crate) fn finish_resume(
        &self,
        identity: UnixStream,
        started: Instant,
    ) -> Result<(), TestbedError> {
        self.read_identity_answer(identity, started)?;
        self.wait_for_ssh(started)
    }

    /// Completes a restore: reads the answer of the VM's `ferry-identity` from `identity` (the
    /// connection [`Vm::send_identity`] returned), waits for an SSH login as after a boot, then
    /// does what a cold boot does from the spec: grows the root disk and file system to
    /// `disk_gib`, attaches the small disk.
    pub(crate) fn finish_restore(
        &self,
        identity: UnixStream,
        started: Instant,
    ) -> Result<(), TestbedError> {
        self.read_identity_answer(identity, started)?;
        self.wait_for_ssh(started)?;
        if self.spec.disk_gib > 4 {
            let bytes = u64::from(self.spec.disk_gib) << 30;
            qmp::execute(
                &self.qmp_socket(),
                &self.name,
                "block_resize",
                json!({ "device": "root", "size": bytes }),
            )?;
            self.ssh_ok(&format!(
                "for i in $(seq 300); do [ $(( $(cat /sys/block/vda/size) * 512 )) -ge {bytes} ] && break; sleep 0.1; done; \
                 [ $(( $(cat /sys/block/vda/size) * 512 )) -ge {bytes} ] || {{ echo 'vda did not grow' >&2; exit 1; }}; \
                 resize2fs /dev/vda >/dev/null 2>/run/ferry-grow.err || {{ cat /run/ferry-grow.err >&2; exit 1; }}"
            ))?;
        }
        if let Some(mib) = self.spec.small_disk_mib {
            self.attach_small_disk(mib)?;
        }
        Ok(())
    }

    /// Reads `ferry-identity`'s answer on the identity port: `done NAME` (NAME must be this
    /// VM's) or `failed: WHAT`.
    fn read_identity_answer(
        &self,
        identity: UnixStream,
        started: Instant,
    ) -> Result<(), TestbedError> {
        let deadline = started + self.spec.boot_timeout;
        identity
            .set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(TestbedError::io("setting a read timeout"))?;
        let mut reader = BufReader::new(identity);
        let mut line = Vec::new();
        loop {
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return Err(self.restore_error("qemu closed the identity port".into())),
                Ok(_) if line.ends_with(b"\n") => {
                    let text = String::from_utf8_lossy(&line).trim().to_string();
                    line.clear();
                    if let Some(name) = text.strip_prefix("ferry-identity done ") {
                        if name != self.name {
                            return Err(self.restore_error(format!(
                                "the VM answered as {name:?}, not {}",
                                self.name
                            )));
                        }
                        break;
                    }
                    if let Some(why) = text.strip_prefix("ferry-identity failed: ") {
                        return Err(self.restore_error(format!("ferry-identity failed: {why}")));
                    }
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(self.restore_error(format!("reading the identity port: {e}"))),
            }
            if let Some(status) = self.exited()? {
                return Err(self.restore_error(format!(
                    "qemu exited with {status} (qemu's own output: {})",
                    tail(&self.dir.join("qemu.log"), 5)
                )));
            }
            if Instant::now() > deadline {
                return Err(self.restore_error(format!(
                    "no answer on the identity port within {} s",
                    self.spec.boot_timeout.as_secs()
                )));
            }
        }
        Ok(())
    }

    fn restore_error(&self, cause: String) -> TestbedError {
        self.boot_error(format!("restoring from the saved state: {cause}"))
    }

    /// Whether an SSH banner arrives on port 22 within `timeout`.
    pub fn ssh_banner(&self, timeout: Duration) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.ssh_addr(), timeout) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(timeout));
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
    }

    fn ssh_base(&self, user: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-p", &SSH_PORT.to_string()])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "LogLevel=ERROR"])
            .args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6"])
            .arg("-l")
            .arg(user)
            .stdin(Stdio::null());
        cmd
    }

    fn ssh_with(
        &self,
        extra: &[&str],
        user: &str,
        command: &str,
    ) -> Result<SshOutput, TestbedError> {
        retrying_slow_banners(|| {
            let mut cmd = self.ssh_base(user);
            cmd.args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
                .arg(&self.key)
                .args(extra)
                .arg(self.address.to_string())
                .arg("--")
                .arg(command);
            cmd
        })
    }

    /// Runs `command` as root over SSH with the testbed key.
    pub fn ssh(&self, command: &str) -> Result<SshOutput, TestbedError> {
        self.ssh_with(&["-o", "ConnectTimeout=10"], "root", command)
    }

    /// Runs `command` as root and fails unless it exits 0; returns its stdout.
    pub fn ssh_ok(&self, command: &str) -> Result<String, TestbedError> {
        let out = self.ssh(command)?;
        if !out.success() {
            return Err(TestbedError::Command {
                command: format!("ssh root@{} {command}", self.name),
                stderr: format!("exit {}: {}", out.code, out.stderr.trim()),
            });
        }
        Ok(out.stdout)
    }

    /// Runs `command` as `user` with the testbed key.
    pub fn ssh_as(&self, user: &User, command: &str) -> Result<SshOutput, TestbedError> {
        self.ssh_with(&["-o", "ConnectTimeout=10"], user.name, command)
    }

    /// Runs `command` as `user`, logging in with its password (keys disabled), through OpenSSH's
    /// askpass so no terminal is needed.
    pub fn ssh_password(&self, user: &User, command: &str) -> Result<SshOutput, TestbedError> {
        let password = user
            .password
            .ok_or_else(|| self.state_error(&format!("user {} has no password", user.name)))?;
        let askpass = self.dir.join("askpass.sh");
        if !askpass.exists() {
            fs::write(
                &askpass,
                "#!/bin/sh\nprintf '%s\\n' \"$FERRY_VM_PASSWORD\"\n",
            )
            .map_err(TestbedError::io("writing askpass.sh"))?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&askpass, fs::Permissions::from_mode(0o700))
                .map_err(TestbedError::io("making askpass.sh executable"))?;
        }
        retrying_slow_banners(|| {
            let mut cmd = self.ssh_base(user.name);
            cmd.args(["-o", "ConnectTimeout=10", "-o", "PubkeyAuthentication=no"])
                .args([
                    "-o",
                    "PreferredAuthentications=password,keyboard-interactive",
                ])
                .args(["-o", "NumberOfPasswordPrompts=1"])
                .env("SSH_ASKPASS", &askpass)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0")
                .env("FERRY_VM_PASSWORD", password)
                .arg(self.address.to_string())
                .arg("--")
                .arg(command);
            cmd
        })
    }

    /// The host key the VM's sshd presents now (`ssh-ed25519 AAAA...`), read with ssh-keyscan.
    pub fn host_key(&self) -> Result<String, TestbedError> {
        let addr = self.address.to_string();
        let out = run("ssh-keyscan", &["-T", "10", "-t", "ed25519", &addr])?;
        out.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                let _host = w.next()?;
                let kind = w.next()?;
                let key = w.next()?;
                Some(format!("{kind} {key}"))
            })
            .ok_or_else(|| self.state_error("ssh-keyscan returned no ed25519 host key"))
    }

    /// A known_hosts line for this VM (`10.203.N.M ssh-ed25519 AAAA...`).
    pub fn known_hosts_line(&self) -> Result<String, TestbedError> {
        Ok(format!("{} {}", self.address, self.host_key()?))
    }

    /// Whether qemu is running.
    pub fn is_powered_on(&self) -> bool {
        matches!(self.exited(), Ok(None))
    }

    // ---------------------------------------------------------------------------------- faults

    /// Power loss: kills qemu at once (SIGKILL); whatever the guest had not synced is lost.
    pub fn power_off(&self) -> Result<(), TestbedError> {
        let mut guard = self.lock_process()?;
        if let Some(mut child) = guard.take() {
            let _ = child.kill();
            child
                .wait()
                .map_err(TestbedError::io("waiting for qemu to exit"))?;
        }
        let _ = fs::remove_file(self.pid_file());
        Ok(())
    }

    /// Waits up to `timeout` for qemu to exit on its own; whether it did.
    pub(crate) fn wait_for_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.exited() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) if Instant::now() > deadline => return false,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Powers the VM back on from the same overlay and waits until it answers SSH.
    pub fn power_on(&self) -> Result<(), TestbedError> {
        let started = Instant::now();
        self.spawn(None)?;
        self.wait_for_ssh(started)
    }

    /// Network partition: takes the VM's tap down, so nothing reaches it or leaves it.
    pub fn link_down(&self) -> Result<(), TestbedError> {
        run("ip", &["link", "set", &self.tap, "down"]).map(drop)
    }

    /// Ends a partition: the tap comes back up.
    pub fn link_up(&self) -> Result<(), TestbedError> {
        run("ip", &["link", "set", &self.tap, "up"]).map(drop)
    }

    /// A bad link: `tc netem` with `params`, e.g. `"delay 200ms loss 5%"`; replaces any earlier
    /// setting. Applied on the host side of the link (the tap, so traffic towards the VM) when
    /// the machine's kernel has netem; otherwise (kernels built without `CONFIG_NET_SCH_NETEM`)
    /// inside the VM on `eth0` (traffic leaving the VM), set over SSH. Either way every round
    /// trip through the VM's link crosses it once. For total loss use [`Vm::link_down`]: a
    /// guest-side `loss 100%` could not be cleared over SSH.
    pub fn netem(&self, params: &str) -> Result<(), TestbedError> {
        let mut args = vec!["qdisc", "replace", "dev", &self.tap, "root", "netem"];
        args.extend(params.split_whitespace());
        match run("tc", &args) {
            Ok(_) => self.set_netem_side(NetemSide::Host),
            Err(TestbedError::Command { stderr, .. })
                if stderr.contains("qdisc kind is unknown") =>
            {
                let out = self.ssh(&format!("tc qdisc replace dev eth0 root netem {params}"))?;
                if !out.success() {
                    return Err(TestbedError::Command {
                        command: format!(
                            "(in {}) tc qdisc replace dev eth0 root netem {params}",
                            self.name
                        ),
                        stderr: out.stderr.trim().to_string(),
                    });
                }
                self.set_netem_side(NetemSide::Guest)
            }
            Err(e) => Err(e),
        }
    }

    /// Where [`Vm::netem`] applied the last setting, if it did.
    pub fn netem_side(&self) -> Option<NetemSide> {
        self.netem_side.lock().ok().and_then(|g| *g)
    }

    fn set_netem_side(&self, side: NetemSide) -> Result<(), TestbedError> {
        let mut g = self
            .netem_side
            .lock()
            .map_err(|_| self.state_error("a thread panicked while setting netem"))?;
        *g = Some(side);
        Ok(())
    }

    /// Removes the netem setting, if any.
    pub fn clear_netem(&self) -> Result<(), TestbedError> {
        match self.netem_side() {
            None => Ok(()),
            Some(NetemSide::Host) => {
                let shown = run("tc", &["qdisc", "show", "dev", &self.tap])?;
                if shown.contains("netem") {
                    run("tc", &["qdisc", "del", "dev", &self.tap, "root"])?;
                }
                Ok(())
            }
            Some(NetemSide::Guest) => self
                .ssh_ok(
                    "tc qdisc show dev eth0 | grep -q netem && tc qdisc del dev eth0 root; true",
                )
                .map(drop),
        }?;
        let mut g = self
            .netem_side
            .lock()
            .map_err(|_| self.state_error("a thread panicked while clearing netem"))?;
        *g = None;
        Ok(())
    }

    /// Hot-plugs a new empty disk of `mib` MiB (virtio, over QMP) and returns its stable path in
    /// the guest (`/dev/disk/by-id/virtio-ferry-smallN`) once the guest sees it. Make a file system
    /// on it and fill it to test "disk full".
    pub fn attach_small_disk(&self, mib: u32) -> Result<String, TestbedError> {
        let n = self.small_disks.fetch_add(1, Ordering::SeqCst);
        self.new_small_disk_file(n, mib)?;
        let node = format!("small{n}");
        let socket = self.qmp_socket();
        qmp::execute(
            &socket,
            &self.name,
            "blockdev-add",
            json!({
                "driver": "raw",
                "node-name": node,
                "file": { "driver": "file", "filename": self.small_disk_path(n) },
            }),
        )?;
        qmp::execute(
            &socket,
            &self.name,
            "device_add",
            json!({
                "driver": "virtio-blk-pci",
                "drive": node,
                "id": format!("{node}dev"),
                "serial": format!("ferry-{node}"),
            }),
        )?;
        let path = format!("/dev/disk/by-id/virtio-ferry-{node}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.ssh(&format!("test -b {path}"))?.success() {
                return Ok(path);
            }
            if Instant::now() > deadline {
                return Err(self.state_error(&format!(
                    "hot-plugged disk {node} did not appear as {path} within 60 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Gives the VM new SSH host keys (as a reinstalled or impersonated host would have) and
    /// restarts sshd. Clients that remembered the old key must now refuse it.
    pub fn change_host_key(&self) -> Result<(), TestbedError> {
        self.ssh_ok("/usr/local/sbin/ferry-hostkeys && systemctl restart ssh")
            .map(drop)
    }

    /// Sets the VM's clock `secs` seconds away from the true time (negative: in the past),
    /// stopping chrony first so it stays off.
    pub fn set_clock_offset(&self, secs: i64) -> Result<(), TestbedError> {
        self.ssh_ok(&format!(
            "systemctl stop chrony && date -s @$(( $(date +%s) + ({secs}) )) >/dev/null"
        ))
        .map(drop)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.power_off();
    }
}

/// Runs the ssh command `build` makes, again (up to three times) when the VM accepted the TCP
/// connection but sent no banner within ConnectTimeout. That happens when emulated guests are
/// starved by a loaded host (CI runs three k3s servers beside other tests); the remote command
/// never started, so running it again is safe. A VM that is down or partitioned fails at connect,
/// which is not retried, so fault tests still see their failure at once.
fn retrying_slow_banners(build: impl Fn() -> Command) -> Result<SshOutput, TestbedError> {
    let mut attempt = 1;
    loop {
        let out = output(build())?;
        if out.code != 255 || !out.stderr.contains("during banner exchange") || attempt == 3 {
            return Ok(out);
        }
        attempt += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn output(mut cmd: Command) -> Result<SshOutput, TestbedError> {
    let out = cmd
        .output()
        .map_err(TestbedError::io("running ssh (openssh-client)"))?;
    Ok(SshOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The last `lines` lines of a file (reads at most its last 64 KiB).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The qemu `-cpu` model of `spec`.
pub(crate) fn cpu_model(spec: &VmSpec) -> String {
    // Under KVM the guest can only have what the host CPU offers: `max` is exactly that.
    spec.cpu.clone().unwrap_or_else(|| match spec.accel {
        Accel::Tcg => DEFAULT_CPU.into(),
        Accel::Kvm => "max".into(),
    })
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
