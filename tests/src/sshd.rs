//! Real OpenSSH servers on loopback ports, started and stopped by tests.
//!
//! Every server has its own host keys, config and authorized_keys in a private directory; the
//! system's sshd config is never touched. Test users (`ferrytest-*`) are created once per
//! machine (idempotent). [`Bastion`] puts an inner sshd in a network namespace that only the
//! bastion can reach. Everything started here is killed on drop, nothing else.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferry_inventory::{Auth, Sudo, Target};

/// The sshd binary the harness runs.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A user that logs in with any of the fixture's authorized keys; no sudo.
pub const KEY_USER: &str = "ferrytest-key";
/// A user that logs in with [`PASSWORD`] (password or keyboard-interactive).
pub const PASSWORD_USER: &str = "ferrytest-pass";
/// A user that logs in with a key and needs [`PASSWORD`] for sudo.
pub const SUDO_PASSWORD_USER: &str = "ferrytest-sudopw";
/// A user that logs in with a key and has passwordless sudo.
pub const SUDO_USER: &str = "ferrytest-sudo";
/// A user that logs in with a key and whose shell rc prints a banner on every command.
pub const BANNER_USER: &str = "ferrytest-banner";
/// A user like [`SUDO_PASSWORD_USER`] whose home holds one-letter files (`p`, `e`, `f`, `r`):
/// an unquoted glob such as `[ferry-sudo-prompt]` expands to one of them.
pub const GLOB_USER: &str = "ferrytest-glob";
/// A user like [`SUDO_PASSWORD_USER`] whose login shell is zsh (see [`zsh_available`]).
pub const ZSH_USER: &str = "ferrytest-zsh";
/// A user that logs in with a key and whose every command hangs: its `.bashrc` replaces the
/// shell with `sleep` (a host where every command waits on something that never comes).
pub const HANG_USER: &str = "ferrytest-hang";
/// The zsh binary [`ZSH_USER`] logs in with.
pub const ZSH: &str = "/usr/bin/zsh";
/// How long a [`HANG_USER`] command sleeps when nothing stops it.
pub const HANG_SECS: u64 = 300;
/// The password of [`PASSWORD_USER`] and the sudo password of [`SUDO_PASSWORD_USER`],
/// [`GLOB_USER`] and [`ZSH_USER`].
pub const PASSWORD: &str = "ferry-Test-pw-7";
/// The passphrase of [`ClientKeys::ed25519_passphrase`].
pub const PASSPHRASE: &str = "ferry-key-phrase";
/// What the banner user's shell prints before every command.
pub const BANNER_TEXT: &str = "*** Welcome to a ferry test host: authorized use only ***";

/// Returns true when real sshd tests can run. When they cannot: prints one loud line and
/// returns false if `CI` is unset, panics if `CI=true` (CI must really run them).
pub fn available() -> bool {
    let missing = if !Path::new(SSHD).exists() {
        Some(format!(
            "{SSHD} is missing (apt-get install openssh-server)"
        ))
    } else if !crate::is_root() {
        Some("tests with a real sshd need root (test users, sshd privilege separation)".into())
    } else {
        None
    };
    crate::require(missing)
}

/// Returns true when [`ZSH_USER`] can log in (zsh installed). Same loud-skip / CI-fail rule as
/// [`available`].
pub fn zsh_available() -> bool {
    available()
        && crate::require(
            (!Path::new(ZSH).exists()).then(|| format!("{ZSH} is missing (apt-get install zsh)")),
        )
}

/// Returns true when network namespaces can be made (root with CAP_SYS_ADMIN and `ip`).
/// Same loud-skip / CI-fail rule as [`available`].
pub fn netns_available() -> bool {
    if !available() {
        return false;
    }
    // Tests of one binary probe at the same time: each probe needs its own name.
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("ferrytest-probe-{}-{n}", std::process::id());
    let ok = run_ok(Command::new("ip").args(["netns", "add", &name]));
    if ok {
        run_ok(Command::new("ip").args(["netns", "del", &name]));
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but network namespaces cannot be created (ip netns add)");
    }
    eprintln!("!!!!! SKIPPED: cannot create network namespaces; this test did NOT run !!!!!");
    false
}

fn run_ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private directory under /tmp, removed on drop.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

static SCRATCH: AtomicU32 = AtomicU32::new(0);

impl ScratchDir {
    /// Creates `/tmp/ferrytest-<tag>-<pid>-<n>`, world-readable so test users can reach
    /// files the tests place there.
    pub fn new(tag: &str) -> Self {
        let n = SCRATCH.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("ferrytest-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o755));
        Self(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Client private keys the test users accept (except [`ClientKeys::unauthorized`]).
#[derive(Debug)]
pub struct ClientKeys {
    /// An ed25519 key without passphrase.
    pub ed25519: PathBuf,
    /// An RSA key without passphrase.
    pub rsa: PathBuf,
    /// An ECDSA (nistp256) key without passphrase.
    pub ecdsa: PathBuf,
    /// An ed25519 key protected by [`PASSPHRASE`].
    pub ed25519_passphrase: PathBuf,
    /// A valid key that no server accepts.
    pub unauthorized: PathBuf,
    /// authorized_keys content for every accepted key.
    pub authorized: String,
}

/// The fixture: test users exist, client keys are generated.
#[derive(Debug)]
pub struct Fixture {
    /// Client keys.
    pub keys: ClientKeys,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

/// Users and keys, created on first call (keys once per machine, in /tmp/ferrytest-keys, reused
/// by later test processes). Call [`available`] first.
pub fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        ensure_users();
        let dir = Path::new("/tmp/ferrytest-keys");
        let _guard = FileLock::take(Path::new("/tmp/ferrytest-keys.lock"));
        let _ = fs::create_dir_all(dir);
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
        let gen = |name: &str, ty: &[&str], pass: &str| -> PathBuf {
            let p = dir.join(name);
            let pubk = dir.join(format!("{name}.pub"));
            if p.exists() && pubk.exists() {
                return p;
            }
            let _ = fs::remove_file(&p);
            let _ = fs::remove_file(&pubk);
            run(Command::new("ssh-keygen")
                .args(ty)
                .args(["-q", "-N", pass, "-C", name, "-f"])
                .arg(&p));
            p
        };
        let ed25519 = gen("id_ed25519", &["-t", "ed25519"], "");
        let rsa = gen("id_rsa", &["-t", "rsa", "-b", "3072"], "");
        let ecdsa = gen("id_ecdsa", &["-t", "ecdsa", "-b", "256"], "");
        let ed25519_passphrase = gen("id_ed25519_pass", &["-t", "ed25519"], PASSPHRASE);
        let unauthorized = gen("id_unauthorized", &["-t", "ed25519"], "");
        let mut authorized = String::new();
        for k in [&ed25519, &rsa, &ecdsa, &ed25519_passphrase] {
            let pubk = fs::read_to_string(format!("{}.pub", k.display()))
                .unwrap_or_else(|e| panic!("reading public key of {}: {e}", k.display()));
            authorized.push_str(pubk.trim());
            authorized.push('\n');
        }
        Fixture {
            keys: ClientKeys {
                ed25519,
                rsa,
                ecdsa,
                ed25519_passphrase,
                unauthorized,
                authorized,
            },
        }
    })
}

/// Creates the `ferrytest-*` users and their sudoers drop-in; idempotent, safe to race with
/// other test processes (a lock file serializes them).
fn ensure_users() {
    let lock = Path::new("/tmp/ferrytest-users.lock");
    let _guard = FileLock::take(lock);
    for (user, shell) in [
        (KEY_USER, "/bin/bash"),
        (PASSWORD_USER, "/bin/bash"),
        (SUDO_PASSWORD_USER, "/bin/bash"),
        (SUDO_USER, "/bin/bash"),
        (BANNER_USER, "/bin/bash"),
        (GLOB_USER, "/bin/bash"),
        (ZSH_USER, ZSH),
        (HANG_USER, "/bin/bash"),
    ] {
        if !run_ok(Command::new("id").arg(user)) {
            run(Command::new("useradd").args(["-m", "-s", shell, user]));
        }
    }
    // Passwords: the password user logs in with it, the sudo user needs it for sudo.
    let mut child = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running chpasswd: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(
            stdin,
            "{PASSWORD_USER}:{PASSWORD}\n{SUDO_PASSWORD_USER}:{PASSWORD}\n\
             {GLOB_USER}:{PASSWORD}\n{ZSH_USER}:{PASSWORD}"
        );
    }
    let status = child.wait().map(|s| s.success()).unwrap_or(false);
    assert!(status, "chpasswd failed");
    let sudoers = format!(
        "{SUDO_PASSWORD_USER} ALL=(ALL) ALL\n{SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n\
         {GLOB_USER} ALL=(ALL) ALL\n{ZSH_USER} ALL=(ALL) ALL\n\
         Defaults:{SUDO_PASSWORD_USER} !lecture\nDefaults:{GLOB_USER} !lecture\n\
         Defaults:{ZSH_USER} !lecture\n"
    );
    let path = Path::new("/etc/sudoers.d/ferrytest");
    if fs::read_to_string(path).ok().as_deref() != Some(sudoers.as_str()) {
        fs::write(path, &sudoers).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o440));
    }
    let rc = format!("/home/{BANNER_USER}/.bashrc");
    let banner = format!("echo '{BANNER_TEXT}'\necho 'last login: never' >&2\n");
    if fs::read_to_string(&rc).ok().as_deref() != Some(banner.as_str()) {
        fs::write(&rc, banner).unwrap_or_else(|e| panic!("writing {rc}: {e}"));
    }
    for name in ["p", "e", "f", "r"] {
        let file = format!("/home/{GLOB_USER}/{name}");
        if !Path::new(&file).exists() {
            fs::write(&file, "").unwrap_or_else(|e| panic!("writing {file}: {e}"));
        }
    }
    // zsh reads .zshrc for interactive shells only; an empty one keeps its first-run wizard
    // away should anything start it interactively.
    let zshrc = format!("/home/{ZSH_USER}/.zshrc");
    if !Path::new(&zshrc).exists() {
        fs::write(&zshrc, "").unwrap_or_else(|e| panic!("writing {zshrc}: {e}"));
    }
    let rc = format!("/home/{HANG_USER}/.bashrc");
    let hang = format!("exec sleep {HANG_SECS}\n");
    if fs::read_to_string(&rc).ok().as_deref() != Some(hang.as_str()) {
        fs::write(&rc, hang).unwrap_or_else(|e| panic!("writing {rc}: {e}"));
    }
    let _ = fs::create_dir_all("/run/sshd");
}

/// An exclusive lock on a file (flock through the `flock` utility is not assumed: a
/// create-exclusive spin lock is enough here).
struct FileLock(PathBuf);

impl FileLock {
    fn take(path: &Path) -> Self {
        let start = Instant::now();
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => return Self(path.to_path_buf()),
                Err(_) if start.elapsed() > Duration::from_secs(30) => {
                    // A crashed run left it behind.
                    let _ = fs::remove_file(path);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// How to start an sshd.
#[derive(Clone, Debug)]
pub struct SshdOptions {
    /// Address to listen on.
    pub listen: String,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// Network namespace to run in.
    pub netns: Option<String>,
    /// A command sshd runs under instead of `ip netns exec NETNS` (a test node's `nsenter`
    /// into its network and mount namespaces); `netns` still names the network namespace.
    pub wrapper: Option<Vec<String>>,
    /// A pre-authentication banner (sshd `Banner`).
    pub banner: bool,
    /// sshd `MaxStartups`.
    pub max_startups: String,
    /// Extra config lines.
    pub extra: String,
    /// Host key types (`ed25519`, `rsa`, `ecdsa`); by default all three. Hundreds of test hosts
    /// take ed25519 alone: an RSA key costs about a second to make.
    pub host_keys: Vec<&'static str>,
}

impl Default for SshdOptions {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1".into(),
            port: 0,
            netns: None,
            wrapper: None,
            banner: false,
            max_startups: "10:30:100".into(),
            extra: String::new(),
            host_keys: vec!["ed25519", "rsa", "ecdsa"],
        }
    }
}

/// One running sshd.
#[derive(Debug)]
pub struct Sshd {
    /// Address clients connect to.
    pub address: String,
    /// Port clients connect to.
    pub port: u16,
    opts: SshdOptions,
    dir: ScratchDir,
    child: Option<Child>,
}

impl Sshd {
    /// Starts an sshd on 127.0.0.1 and a free port. Call [`available`] first.
    pub fn start() -> Self {
        Self::start_with(SshdOptions::default())
    }

    /// Starts an sshd with options.
    pub fn start_with(mut opts: SshdOptions) -> Self {
        let fx = fixture();
        let dir = ScratchDir::new("sshd");
        if opts.port == 0 {
            opts.port = free_port();
        }
        for ty in &opts.host_keys {
            run(Command::new("ssh-keygen")
                .args(["-q", "-N", "", "-t", ty, "-f"])
                .arg(dir.path().join(format!("host_{ty}"))));
        }
        fs::write(dir.path().join("authorized_keys"), &fx.keys.authorized)
            .unwrap_or_else(|e| panic!("writing authorized_keys: {e}"));
        fs::write(
            dir.path().join("banner"),
            "ferry test sshd: pre-auth banner\n",
        )
        .unwrap_or_else(|e| panic!("writing banner: {e}"));
        let d = dir.path().display();
        let host_keys: String = opts
            .host_keys
            .iter()
            .map(|ty| format!("HostKey {d}/host_{ty}\n"))
            .collect();
        // sshd takes the first value of a keyword: extra lines go first to override.
        let config = format!(
            "{extra}\nListenAddress {listen}:{port}\n{host_keys}\
             PidFile none\nAuthorizedKeysFile {d}/authorized_keys\nStrictModes no\n\
             UsePAM yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication yes\n\
             PubkeyAuthentication yes\nPermitRootLogin no\nAllowUsers ferrytest-*\n\
             AllowTcpForwarding yes\nMaxStartups {ms}\nMaxSessions 100\nPrintMotd no\n\
             Subsystem sftp internal-sftp\n\
             LogLevel VERBOSE\n{banner}\n",
            listen = opts.listen,
            port = opts.port,
            ms = opts.max_startups,
            banner = if opts.banner {
                format!("Banner {d}/banner\n")
            } else {
                String::new()
            },
            extra = opts.extra,
        );
        fs::write(dir.path().join("sshd_config"), config)
            .unwrap_or_else(|e| panic!("writing sshd_config: {e}"));
        let mut sshd = Self {
            address: opts.listen.clone(),
            port: opts.port,
            opts,
            dir,
            child: None,
        };
        sshd.spawn();
        sshd
    }

    fn spawn(&mut self) {
        let cfg = self.dir.path().join("sshd_config");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sshd.log"))
            .unwrap_or_else(|e| panic!("opening sshd.log: {e}"));
        let mut cmd = match (&self.opts.wrapper, &self.opts.netns) {
            (Some(w), _) => {
                let mut c = Command::new(&w[0]);
                c.args(&w[1..]).arg(SSHD);
                c
            }
            (None, Some(ns)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, SSHD]);
                c
            }
            (None, None) => Command::new(SSHD),
        };
        cmd.args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group: killing it takes the per-connection children too.
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting sshd: {e}"));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("sshd exited with {status}: {}", self.log());
                }
            }
            if self.banner_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("sshd did not come up within 10s: {}", self.log());
    }

    fn banner_ok(&self) -> bool {
        if let Some(ns) = &self.opts.netns {
            // Outside the namespace the port may be unreachable by design: ask from inside.
            return Command::new("ip")
                .args(["netns", "exec", ns, "ss", "-Hltn"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(":{} ", self.port)))
                .unwrap_or(false);
        }
        let Ok(addr) = format!("{}:{}", self.address, self.port).parse::<SocketAddr>() else {
            return false;
        };
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-2.0")
    }

    /// Kills this sshd and every session it is serving (sshd puts each connection in its own
    /// session, so the whole tree of descendants is collected first), as a crash or power loss
    /// would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let root = child.id();
            let mut tree = descendants(root);
            tree.push(root);
            for pid in tree {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.wait();
        }
    }

    /// Stops (SIGSTOP) this sshd and every session it serves: a host that hangs or vanishes
    /// from the network without closing anything. [`Sshd::thaw`] resumes it; drop kills it.
    pub fn freeze(&self) {
        self.signal_tree("-STOP");
    }

    /// Resumes a frozen sshd.
    pub fn thaw(&self) {
        self.signal_tree("-CONT");
    }

    fn signal_tree(&self, sig: &str) {
        if let Some(child) = &self.child {
            let root = child.id();
            let mut tree = descendants(root);
            tree.push(root);
            for pid in tree {
                let _ = Command::new("kill")
                    .args([sig, &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    /// Starts it again on the same address, port and host keys.
    pub fn restart(&mut self) {
        self.kill();
        // The port may linger briefly.
        std::thread::sleep(Duration::from_millis(100));
        self.spawn();
    }

    /// Replaces the host keys (as a reinstalled host would have) and restarts.
    pub fn change_host_keys(&mut self) {
        self.kill();
        for ty in self.opts.host_keys.clone() {
            let p = self.dir.path().join(format!("host_{ty}"));
            let _ = fs::remove_file(&p);
            let _ = fs::remove_file(p.with_extension("pub"));
            let _ = fs::remove_file(format!("{}.pub", p.display()));
            run(Command::new("ssh-keygen")
                .args(["-q", "-N", "", "-t", ty, "-f"])
                .arg(&p));
        }
        self.spawn();
    }

    /// The server's ed25519 host public key line (`ssh-ed25519 AAAA... comment`).
    pub fn host_key_ed25519(&self) -> String {
        fs::read_to_string(self.dir.path().join("host_ed25519.pub")).unwrap_or_default()
    }

    /// sshd's own log so far (for assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// A scratch directory next to the server's files.
    /// A ferry target named `name` for `user` on this sshd (see [`key_target`]).
    pub fn target(&self, name: &str, user: &str) -> Target {
        key_target(name, &self.address, self.port, user)
    }

    /// The scratch directory (config, keys, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every descendant of `root` (from /proc), deepest last.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == p && !out.contains(&pid) {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"))
}

/// A TCP port that accepts connections and never says a word: a host whose sshd hangs.
/// Closed on drop.
#[derive(Debug)]
pub struct SilentPort {
    /// The port on 127.0.0.1.
    pub port: u16,
    _listener: TcpListener,
}

impl SilentPort {
    /// Listens on a free port of 127.0.0.1 (the kernel completes handshakes; no one reads).
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("binding a silent port: {e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("silent port address: {e}"));
        Self {
            port,
            _listener: listener,
        }
    }
}

/// A site behind a jump host: a network namespace with a bastion sshd reachable from here
/// over a veth pair, and an inner sshd on the namespace's own loopback, which nothing outside
/// the namespace can reach except through the bastion.
#[derive(Debug)]
pub struct Bastion {
    /// The jump host (reachable at `bastion.address:bastion.port`).
    pub bastion: Sshd,
    /// The inner host; its address and port are only meaningful from the bastion.
    pub inner: Vec<Sshd>,
    netns: String,
}

impl Bastion {
    /// Creates the namespace and starts a bastion plus `inner` inner sshds. Call
    /// [`netns_available`] first.
    pub fn start(inner: usize) -> Self {
        let (netns, k) = (0..250u32)
            .find_map(|k| {
                let name = format!("ferrytest-site{k}");
                run_ok(Command::new("ip").args(["netns", "add", &name])).then_some((name, k))
            })
            .unwrap_or_else(|| panic!("no free ferrytest-siteN network namespace"));
        let host_if = format!("ftb{k}h");
        let ns_if = format!("ftb{k}n");
        let _ = run_ok(Command::new("ip").args(["link", "del", &host_if]));
        run(Command::new("ip").args([
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]));
        run(Command::new("ip").args(["link", "set", &ns_if, "netns", &netns]));
        let host_ip = format!("10.213.{k}.1");
        let ns_ip = format!("10.213.{k}.2");
        run(Command::new("ip").args(["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]));
        run(Command::new("ip").args(["link", "set", &host_if, "up"]));
        let nsx = |args: &[&str]| {
            run(Command::new("ip")
                .args(["netns", "exec", &netns])
                .args(args));
        };
        nsx(&["ip", "link", "set", "lo", "up"]);
        nsx(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if]);
        nsx(&["ip", "link", "set", &ns_if, "up"]);
        let bastion = Sshd::start_with(SshdOptions {
            listen: ns_ip.clone(),
            port: 22,
            netns: Some(netns.clone()),
            ..SshdOptions::default()
        });
        // Wait until the bastion is reachable from here (veth up).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if TcpStream::connect_timeout(
                &SocketAddr::from(([10, 213, k as u8, 2], 22)),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let inner = (0..inner)
            .map(|i| {
                Sshd::start_with(SshdOptions {
                    listen: "127.0.0.1".into(),
                    port: 2200 + i as u16,
                    netns: Some(netns.clone()),
                    ..SshdOptions::default()
                })
            })
            .collect();
        Self {
            bastion,
            inner,
            netns,
        }
    }

    /// The namespace's name.
    pub fn netns(&self) -> &str {
        &self.netns
    }
}

impl Drop for Bastion {
    fn drop(&mut self) {
        for s in &mut self.inner {
            s.kill();
        }
        self.bastion.kill();
        // Deleting the namespace deletes the veth pair with it.
        let _ = run_ok(Command::new("ip").args(["netns", "del", &self.netns]));
    }
}

/// Mounts a small tmpfs (for disk-full tests), world-writable; unmounted on drop.
#[derive(Debug)]
pub struct SmallDisk {
    dir: ScratchDir,
}

impl SmallDisk {
    /// A tmpfs of `kib` KiB. Needs root.
    pub fn mount(kib: u64) -> Self {
        let dir = ScratchDir::new("disk");
        run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=1777"),
                "tmpfs",
            ])
            .arg(dir.path()));
        Self { dir }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = run_ok(Command::new("umount").arg(self.dir.path()));
    }
}

/// A ferry target named `name`: `user` at `address:port`, logging in with the fixture's ed25519
/// key, no sudo, no jump host.
pub fn key_target(name: &str, address: &str, port: u16, user: &str) -> Target {
    Target {
        name: name.into(),
        address: address.into(),
        port,
        user: user.into(),
        auth: Auth::Key {
            path: fixture().keys.ed25519.clone(),
            passphrase: None,
        },
        sudo: Sudo::None,
        bastion: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn starts_a_real_sshd_that_speaks_ssh() {
        if !available() {
            return;
        }
        let s = Sshd::start();
        assert!(s.banner_ok(), "{}", s.log());
        assert!(s.host_key_ed25519().starts_with("ssh-ed25519 "));
    }

    /// The ed25519 host key (base64 part) that `ssh-keyscan` sees at `addr:port`, run inside
    /// `netns` when given; `None` when nothing answers as sshd.
    fn scanned_ed25519(netns: Option<&str>, addr: &str, port: u16) -> Option<String> {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "ssh-keyscan"]);
                c
            }
            None => Command::new("ssh-keyscan"),
        };
        let out = cmd
            .args(["-T", "2", "-t", "ed25519", "-p", &port.to_string(), addr])
            .output()
            .unwrap_or_else(|e| panic!("running ssh-keyscan: {e}"));
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.nth(1) == Some("ssh-ed25519"))
                .then(|| f.next().map(str::to_string))
                .flatten()
        })
    }

    #[test]
    fn inner_host_is_unreachable_except_through_the_bastion() {
        if !netns_available() {
            return;
        }
        let b = Bastion::start(1);
        let inner = &b.inner[0];
        let key = inner
            .host_key_ed25519()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        // Control: from inside the site (where the bastion is) the inner sshd answers with
        // its key, so the checks below can tell it apart.
        assert_eq!(
            scanned_ed25519(Some(b.netns()), &inner.address, inner.port).as_deref(),
            Some(key.as_str()),
            "{}",
            inner.log()
        );
        // From here, the site's only reachable address (the bastion's) refuses the inner port.
        let site = SocketAddr::new(b.bastion.address.parse().unwrap(), inner.port);
        let direct = TcpStream::connect_timeout(&site, Duration::from_secs(2));
        assert!(direct.is_err(), "{site} answered from outside the site");
        // And 127.0.0.1:PORT here is our own loopback: whatever may listen there is not the
        // inner host.
        assert_ne!(
            scanned_ed25519(None, &inner.address, inner.port).as_deref(),
            Some(key.as_str()),
            "the inner host is reachable from outside its namespace"
        );
        // The bastion itself is reachable from here and is an sshd.
        assert!(scanned_ed25519(None, &b.bastion.address, b.bastion.port).is_some());
    }
}
