//! `ferry install` in a real terminal: tmux runs the real binary against real OpenSSH servers,
//! keys are typed with `tmux send-keys` as an engineer types them, and each screen is read
//! back with `tmux capture-pane` and checked for what the engineer must see. The answer file
//! the wizard saves is what was typed, passes `ferry validate`, and `ferry plan --answers` on
//! it prints the plan the review screen showed.
//!
//! The install itself runs on test nodes (network, mount and hostname namespaces of their own
//! with a real sshd each, `tests/k3s-standin/tests/support`): the VM suite is too slow for
//! CI's budget. One host fails; the install screen shows why and what to do.
//!
//! Every tmux server runs on a socket of its own (`tmux -L`), at a fixed 120x40, and is killed
//! when its test ends, passed or failed. `FERRY_TMUX_TRACE=1` prints every screen waited for.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ferry_tests::sshd::{self, Sshd};

const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;

/// How long a screen may take to show what the test waits for (SSH checks and the plan run
/// against real servers on a loaded 2-core machine).
const PATIENCE: Duration = Duration::from_secs(90);

/// Whether tmux is here; the loud-skip / CI-fail rule of the other real-part tests.
fn tmux_available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    ferry_tests::require((!found).then(|| "tmux is missing (apt-get install tmux)".to_string()))
}

/// One tmux server on a private socket with one session running one command, killed on drop.
struct Tmux {
    socket: String,
    /// The socket's file, removed with the server.
    socket_path: Option<std::path::PathBuf>,
    /// Where its config lives (no status line: the pane is the whole 120x40).
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts `command` (a shell command line) in `cwd` in a WIDTHxHEIGHT pane that stays open
    /// after the command ends, so its last words can be read, followed by
    /// `[exited STATUS]`.
    fn start(cwd: &Path, command: &str) -> Tmux {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("ferrytest-{}-{n}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("tmux.conf");
        std::fs::write(
            &conf,
            "set -g status off\nset -g history-limit 0\nset -g default-terminal screen\n",
        )
        .unwrap();
        let mut t = Tmux {
            socket,
            socket_path: None,
            _dir: dir,
        };
        let out = Command::new("tmux")
            .args(["-L", &t.socket, "-f"])
            .arg(&conf)
            .args(["new-session", "-d", "-s", "wizard", "-x"])
            .arg(WIDTH.to_string())
            .arg("-y")
            .arg(HEIGHT.to_string())
            .arg("-c")
            .arg(cwd)
            .arg(format!("{command}; echo \"[exited $?]\"; exec sleep 3600"))
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux: {}", show(&out));
        let out = t.tmux(&["display-message", "-p", "#{socket_path}"]);
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        t.socket_path = (!path.is_empty()).then(|| path.into());
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }

    /// Presses keys (tmux key names: `Enter`, `Tab`, `NPage`, `C-s`, `Space`...).
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let out = self.tmux(&["send-keys", "-t", "wizard", k]);
            assert!(out.status.success(), "send-keys {k}: {}", show(&out));
            // One key at a time, as typed: the wizard reads a burst fine, but a test that
            // fails should fail at the key that went wrong. Escape waits longer: Escape and
            // the next key read together are Alt and that key, as in any terminal.
            let pause = if *k == "Escape" { 400 } else { 30 };
            std::thread::sleep(Duration::from_millis(pause));
        }
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", "wizard", "-l", text]);
        assert!(out.status.success(), "send-keys -l: {}", show(&out));
        std::thread::sleep(Duration::from_millis(50));
    }

    /// The screen as text.
    fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-t", "wizard"]);
        assert!(out.status.success(), "capture-pane: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once `ready` holds for it; fails with the screen when it never does.
    /// The screen must also read the same a moment later: a capture can catch a frame half
    /// written, and what the test then reads must be the whole frame.
    fn wait(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ready(&s) && {
                std::thread::sleep(Duration::from_millis(60));
                self.screen() == s
            } {
                if std::env::var_os("FERRY_TMUX_TRACE").is_some() {
                    eprintln!("----- {what}\n{s}");
                }
                return s;
            }
            if s.contains("[exited ") {
                panic!("ferry install ended while waiting for {what}; the screen:\n{s}");
            }
            if start.elapsed() > PATIENCE {
                panic!("waited {PATIENCE:?} for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The screen once it shows every one of `texts`.
    fn wait_for(&self, texts: &[&str]) -> String {
        self.wait(&format!("{texts:?}"), |s| {
            texts.iter().all(|t| s.contains(t))
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A jump host's directory: a private HOME, the signed test bundle and its key.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/answers");
        for f in ["site.ferry", "vendor.pub"] {
            std::fs::copy(data.join(f), dir.path().join(f)).unwrap();
        }
        // The bundle with an AppPackage (`shop`) and k3s, and its key.
        let apps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/apps");
        std::fs::copy(apps.join("apps.ferry"), dir.path().join("apps.ferry")).unwrap();
        std::fs::copy(apps.join("vendor.pub"), dir.path().join("apps.pub")).unwrap();
        Site { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The flags every command of this site takes: its known hosts and run directory.
    const REACH: &'static str = "--known-hosts known_hosts --run-dir runs --attempts 1";

    /// `ferry install` (English) as a command line for tmux.
    fn wizard(&self) -> String {
        format!(
            "env -u LC_ALL -u SSH_AUTH_SOCK HOME={home} LANG=C.UTF-8 {bin} install --lang en {}",
            Self::REACH,
            home = self.path().join("home").display(),
            bin = env!("CARGO_BIN_EXE_ferry"),
        )
    }

    /// `ferry ARGS` run to its end.
    fn ferry(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path().join("home"))
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name))
            .unwrap_or_else(|e| panic!("reading {name}: {e}"))
    }
}

/// The body of the review screen (between its intro and the status line) as lines.
fn review_body(screen: &str) -> Vec<String> {
    let lines: Vec<&str> = screen.lines().collect();
    // Title, steps, two lines of intro; the problem line and the key hints at the bottom.
    let end = (HEIGHT as usize).saturating_sub(2).min(lines.len());
    lines[4.min(end)..end]
        .iter()
        .map(|l| l.trim_end().to_string())
        .collect()
}

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Adds a host on the Hosts screen: `a`, then its address, SSH port, user and key, and
/// passwordless sudo (the login fields of the host editor, in their order).
fn add_host(t: &Tmux, address: &str, port: u16, first: bool, key: &Path) {
    t.keys(&["a"]);
    // The editor opens on the address, being edited.
    t.type_text(address);
    t.keys(&["Enter", "Enter"]);
    t.keys(&["C-u"]);
    t.type_text(&port.to_string());
    t.keys(&["Enter"]);
    if first {
        // A new host logs in as root with ~/.ssh/id_ed25519 until told otherwise; the next
        // one copies the host before it.
        t.keys(&["Enter", "C-u"]);
        t.type_text(sshd::SUDO_USER);
        t.keys(&["Enter", "Enter", "C-u"]);
        t.type_text(&key.display().to_string());
        // Password env, password: skipped; sudo: none -> passwordless.
        t.keys(&["Enter", "Tab", "Tab", "Space"]);
    }
    t.keys(&["Escape"]);
}

#[test]
fn the_wizard_in_tmux_saves_what_was_typed_and_reviews_ferry_plans_text() {
    if !tmux_available() || !sshd::available() {
        return;
    }
    let key = sshd::fixture().keys.ed25519.clone();
    // Two real sshd on this machine: the plan, which changes nothing, may survey it.
    let hosts = [Sshd::start(), Sshd::start()];
    let site = Site::new();
    let t = Tmux::start(site.path(), &site.wizard());

    // Bundle: the answer file's place, the bundle and its key, verified with its BOM.
    let s = t.wait_for(&[
        "ferry install — Bundle  (step 1/",
        "Answer file",
        "Bundle file",
    ]);
    assert!(
        s.contains(&site.path().join("site.toml").display().to_string()),
        "{s}"
    );
    t.keys(&["Tab", "Enter"]);
    t.type_text("apps.ferry");
    t.keys(&["Enter", "Enter"]);
    t.type_text("apps.pub");
    t.keys(&["Enter", "Enter"]);
    let s = t.wait_for(&[
        "apps-site 1: signature and every blob check out: 3 items",
        "Bill of materials",
        "app-package",
        "v1.30.4+k3s1",
    ]);
    assert!(
        s.lines()
            .any(|l| l.contains("Bundle file") && l.contains("apps.ferry")),
        "{s}"
    );

    // Hosts: two real sshd hosts typed in; each is checked as soon as it is entered.
    t.keys(&["NPage"]);
    t.wait_for(&["No hosts yet: press a to add one"]);
    add_host(&t, "127.0.0.1", hosts[0].port, true, &key);
    add_host(&t, "127.0.0.1", hosts[1].port, false, &key);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap();
    // The OS column is as wide as the screen leaves it: its start is enough.
    let os: String = os.chars().take(12).collect();
    let s = t.wait(&format!("both hosts checked ok on {os}"), |s| {
        s.contains("2 hosts, 2 checked, 0 with problems") && s.matches(&os).count() >= 2
    });
    for (name, h) in ["node1", "node2"].iter().zip(&hosts) {
        let row = s
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{s}"));
        let words: Vec<&str> = row.split_whitespace().collect();
        let address = format!("127.0.0.1:{}", h.port);
        assert_eq!(words[..2], [*name, address.as_str()], "{s}");
        assert!(words.contains(&"ok"), "{row}");
    }

    // Roles: the first host serves, the second is an agent; it is made the time source.
    t.keys(&["NPage"]);
    t.wait_for(&["1 servers, 1 agents; time source: node1"]);
    t.keys(&["Down", "t"]);
    t.wait_for(&["1 servers, 1 agents; time source: node2"]);

    // Cluster: the name is required; the problem names it as `ferry validate` does.
    t.keys(&["NPage"]);
    let s = t.wait_for(&["Cluster name", "to fix: "]);
    assert!(
        s.contains("cluster.name: is empty; name the cluster"),
        "{s}"
    );
    t.keys(&["NPage"]);
    t.wait_for(&["fix this first: "]);
    t.keys(&["Enter"]);
    t.type_text("site-tmux");
    t.keys(&["Enter"]);
    // Focus is on the id; next, the distribution: k3s, which the bundle's app needs.
    t.keys(&["Tab", "Space"]);
    // Five down is the API's extra names.
    t.keys(&["Tab", "Tab", "Tab", "Tab", "Tab", "Enter"]);
    t.type_text("api.site.example, 10.0.0.100");
    t.keys(&["Enter"]);
    let s = t.wait_for(&["api.site.example, 10.0.0.100"]);
    assert!(s.contains("site-tmux"), "{s}");
    assert!(
        s.lines()
            .any(|l| l.starts_with("  Kubernetes") && l.ends_with(" k3s")),
        "{s}"
    );

    // Apps: the bundle's package with its parameters; the one without a default is required.
    t.keys(&["NPage"]);
    let s = t.wait_for(&["— Apps", "shop 1.2.0: The site's shop front."]);
    for row in [
        "replicas    integer  2            (default)          How many web servers run.",
        "admin-email string   (required)   (required)         Who gets the shop's alerts.",
    ] {
        assert!(s.contains(row), "{row:?} not on:\n{s}");
    }
    assert!(
        s.contains("app shop: parameter admin-email has no default"),
        "{s}"
    );
    // The [apps] keys, then the parameters: replicas typed wrong first, as validate says.
    t.keys(&["Tab", "Tab", "Enter"]);
    t.type_text("900");
    t.keys(&["Enter", "Tab", "Tab", "Enter"]);
    t.type_text("three");
    t.keys(&["Enter"]);
    t.wait_for(&["parameter replicas is of type integer, and \"three\""]);
    t.keys(&["Up", "Enter", "C-u"]);
    t.type_text("3");
    t.keys(&["Enter", "Tab", "Tab", "Enter"]);
    t.type_text("ops@site.example");
    t.keys(&["Enter"]);
    let s = t.wait_for(&["the answer file is valid"]);
    assert!(s.contains("ops@site.example"), "{s}");

    // License: the activation request exported from the real hosts' live checks (their
    // fingerprints read over SSH with their facts), its record kept where the field says.
    t.keys(&["NPage"]);
    t.wait_for(&["— License", "Press x to export"]);
    t.keys(&["Tab", "Enter"]);
    t.type_text("license-state");
    t.keys(&["Enter", "x"]);
    let s = t.wait_for(&["Request written to "]);
    let requests: Vec<_> = std::fs::read_dir(site.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("site-request-"))
        })
        .collect();
    assert_eq!(requests.len(), 1, "{requests:?}\n{s}");
    let req =
        ferry_license::ActivationRequest::parse(&std::fs::read(&requests[0]).unwrap()).unwrap();
    assert_eq!(
        req.fingerprint.hosts.len(),
        2,
        "both hosts are in the request"
    );
    assert!(site
        .path()
        .join("license-state")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some()));

    // On to Review, whatever screens lie between (each valid as it stands).
    let mut s = String::new();
    for _ in 0..4 {
        t.keys(&["NPage"]);
        s = t.screen();
        if s.contains("— Review") {
            break;
        }
    }
    // Review: the plan, made in the background from the saved file.
    let s = t.wait(&format!("the plan (last screen:\n{s})"), |s| {
        s.contains("— Review") && s.contains("plan: 2 hosts")
    });
    assert!(s.contains("exactly as `ferry plan` shows it"), "{s}");
    // The whole plan, page by page (Down scrolls one line; a page is the body's height).
    let page = review_body(&s).len();
    let mut shown = review_body(&s);
    for _ in 0..20 {
        if shown.iter().any(|l| l.starts_with("plan: 2 hosts")) {
            break;
        }
        let before = t.screen();
        t.keys(&vec!["Down"; page]);
        let next = t.wait("the next page", |s| s != before);
        shown.extend(review_body(&next));
    }
    let end = shown
        .iter()
        .position(|l| l.starts_with("plan: 2 hosts"))
        .unwrap_or_else(|| panic!("no summary line in:\n{}", shown.join("\n")));
    let shown = shown[..=end].join("\n");

    t.keys(&["C-s"]);
    t.wait_for(&["saved "]);
    t.keys(&["C-c"]);
    let s = t.wait("ferry install to end", |s| s.contains("[exited "));
    assert!(
        s.contains(
            "ferry install: left the wizard; `ferry install` reopens it where you were (review)\n[exited 0]"
        ),
        "{s}"
    );

    // The answer file is what was typed, and passes `ferry validate`.
    let answers: toml::Table = toml::from_str(&site.read("site.toml")).unwrap();
    let want: toml::Table = toml::from_str(
        r#"
        inventory = "inventory.toml"
        bundle = "apps.ferry"
        bundle-pubkey = "apps.pub"
        [cluster]
        name = "site-tmux"
        distribution = "k3s"
        tls-san = ["api.site.example", "10.0.0.100"]
        [baseline.time]
        source = "node2"
        [apps]
        timeout = 900
        [apps.values.shop]
        replicas = 3
        admin-email = "ops@site.example"
        [license]
        state-dir = "license-state"
        "#,
    )
    .unwrap();
    assert_eq!(answers, want, "{}", site.read("site.toml"));
    let inventory: toml::Table = toml::from_str(&site.read("inventory.toml")).unwrap();
    let inventory = &inventory["hosts"];
    let host = |i: usize, role: &str| {
        format!(
            "[[hosts]]\nname = \"node{}\"\naddress = \"{}\"\nport = {}\n\
             user = \"{}\"\nkey = \"{}\"\nsudo = \"passwordless\"\nroles = [\"{role}\"]\n",
            i + 1,
            "127.0.0.1",
            hosts[i].port,
            sshd::SUDO_USER,
            key.display()
        )
    };
    let want: toml::Table =
        toml::from_str(&format!("{}{}", host(0, "server"), host(1, "agent"))).unwrap();
    assert_eq!(inventory, &want["hosts"], "{}", site.read("inventory.toml"));
    let out = site.ferry(&["validate", "--answers", "site.toml"]);
    assert!(out.status.success(), "{}", show(&out));

    // `ferry plan --answers` on it prints what the review screen showed.
    let mut plan = vec!["plan", "--answers", "site.toml"];
    plan.extend(Site::REACH.split(' '));
    let out = site.ferry(&plan);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.contains("plan: 2 hosts"), "{}", show(&out));
    assert_eq!(
        squeeze(&shown),
        squeeze(&printed),
        "review screen:\n{shown}\nferry plan:\n{printed}"
    );
    // Lines that fit the screen are shown as printed, column for column.
    for line in printed
        .lines()
        .filter(|l| l.chars().count() <= WIDTH as usize)
    {
        assert!(
            shown.lines().any(|s| s == line.trim_end()),
            "{line:?} is not on the review screen:\n{shown}"
        );
    }
}

// ------------------------------------------------------------------ the install, on real hosts

#[path = "../../tests/k3s-standin/tests/support/mod.rs"]
mod support;

/// A stand-in for `systemctl` on a test node (no systemd runs there): `show` reports the
/// manager's open-file limit from ferry's drop-in, `daemon-reload` succeeds, or with `broken`
/// fails as a host without a running systemd does, while ferry's drop-in is in place (so
/// the rollback, which removes it, works).
fn systemctl(broken: bool) -> String {
    let reload = if broken {
        "[ -f /etc/systemd/system.conf.d/90-ferry.conf ] && \
         { echo 'Failed to connect to bus: No such file or directory' >&2; exit 1; }; exit 0"
    } else {
        "exit 0"
    };
    format!(
        "#!/bin/sh\ncase \"$1\" in\n\
         show) n=$(sed -n 's/^DefaultLimitNOFILE=//p' /etc/systemd/system.conf.d/90-ferry.conf \
         2>/dev/null); n=${{n:-524288}}; echo DefaultLimitNOFILE=$n; echo DefaultLimitNOFILESoft=$n;;\n\
         daemon-reload) {reload};;\nesac\nexit 0\n"
    )
}

/// The machine's own value of a kernel setting the baseline sets, so that the nodes (which
/// share this machine's kernel outside their network namespace) are not asked to change it.
fn sysctl_now(key: &str) -> String {
    let out = Command::new("sysctl").args(["-n", key]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Two test nodes (network, mount and hostname namespaces of their own on a private bridge,
/// `/etc`, `/var/lib` and `/run` overlays; this machine's kernel), each with a real sshd, its
/// own machine id and a stand-in `systemctl`; with `broken`, the second one's service manager
/// refuses to reload. Fields drop in order: the servers, then the nodes.
struct Nodes {
    servers: Vec<Sshd>,
    lan: support::Lan,
}

impl Nodes {
    /// The nodes, or `None` (after the loud line) where they cannot run.
    fn start(broken: bool) -> Option<Nodes> {
        if !tmux_available() || !sshd::available() || !support::available(false) {
            return None;
        }
        let lan = support::Lan::new(2);
        let mut servers = Vec::new();
        for (i, node) in lan.nodes.iter().enumerate() {
            let (short, web) = (format!("node{}", i + 1), format!("web{}", i + 1));
            node.prepare_for_ferry(
                0xfe77_0000 + i as u64,
                &[&node.name, &short, &web],
                &systemctl(broken && i == 1),
            );
            servers.push(Sshd::start_with(sshd::SshdOptions {
                listen: node.ip.clone(),
                netns: Some(node.netns.clone()),
                wrapper: Some(node.wrapper()),
                ..Default::default()
            }));
        }
        Some(Nodes { servers, lan })
    }

    /// Where ferry runs: the first node's network, which reaches both.
    fn netns(&self) -> &str {
        &self.lan.nodes[0].netns
    }

    fn ip(&self, i: usize) -> String {
        self.lan.nodes[i].ip.clone()
    }

    fn port(&self, i: usize) -> u16 {
        self.servers[i].port
    }
}

#[test]
fn the_install_screen_runs_the_engine_on_real_hosts_and_names_a_failed_hosts_reason() {
    let Some(nodes) = Nodes::start(true) else {
        return;
    };
    let key = sshd::fixture().keys.ed25519.clone();
    let inventory: String = (0..2)
        .map(|i| {
            format!(
                "[[hosts]]\nname = \"web{}\"\naddress = \"{}\"\nport = {}\nuser = \"{}\"\n\
                 key = \"{}\"\nsudo = \"passwordless\"\nroles = [\"{}\"]\n\n",
                i + 1,
                nodes.ip(i),
                nodes.port(i),
                sshd::SUDO_USER,
                key.display(),
                if i == 0 { "server" } else { "agent" }
            )
        })
        .collect();
    let site = Site::new();
    std::fs::write(site.path().join("inventory.toml"), inventory).unwrap();
    // The baseline minus what would reach past a node's namespaces (swap, kernel modules,
    // the time service, packages), kernel-wide settings at this machine's own values.
    std::fs::write(
        site.path().join("site.toml"),
        format!(
            "inventory = \"inventory.toml\"\n\n[cluster]\nname = \"site-run\"\n\n\
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

    // `ferry install --answers` on a terminal opens on the plan; it runs where the nodes are.
    let t = Tmux::start(
        site.path(),
        &format!(
            "nsenter --net=/run/netns/{} -- {} --answers site.toml",
            nodes.netns(),
            site.wizard()
        ),
    );
    let s = t.wait_for(&["— Review", "plan: 2 hosts, 2 to change"]);
    assert!(s.contains("web1"), "{s}");
    assert!(s.contains("limits"), "{s}");

    // Enter installs: hosts x phases fill in from the engine's events.
    t.keys(&["Enter"]);
    let s = t.wait("the install to end", |s| {
        s.contains("— Install") && s.contains("2 of 2 hosts finished")
    });
    let row = |s: &str, host: &str| {
        s.lines()
            .find(|l| l.starts_with(host))
            .unwrap_or_else(|| panic!("no row for {host}:\n{s}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let header = row(&s, "HOST");
    assert_eq!(header[..3], ["HOST", "SURVEY", "BASELINE"], "{s}");
    assert_eq!(row(&s, "web1")[1..], ["ok", "ok"], "{s}");
    // web2 failed at its limits and was rolled back: the cell counts what was undone.
    let web2 = row(&s, "web2");
    assert_eq!(web2[1], "ok", "{s}");
    assert_eq!(web2[2], "undo", "{s}");
    // The selected host's log; web2's failure with its reason and what to do.
    assert!(s.contains("Log of web1"), "{s}");
    t.keys(&["Down"]);
    let s = t.wait_for(&["Log of web2"]);
    assert!(
        s.contains("Why: limits: ") && s.contains("Failed to connect to bus"),
        "{s}"
    );
    assert!(
        s.contains("What to do: its changes were rolled back; read its log"),
        "{s}"
    );
    assert!(s.contains("limits FAILED: "), "{s}");
    assert!(s.contains("hostname reverted"), "{s}");

    // The engine changed web1 and left web2 as it was.
    assert_eq!(nodes.lan.nodes[0].sh("hostname").stdout, b"web1\n");
    assert_eq!(nodes.lan.nodes[1].sh("hostname").stdout, b"node1\n");

    // PgDn: the results; leaving says how it went, and exits 1 for the failed host.
    t.keys(&["NPage"]);
    let s = t.wait_for(&["— Done", "1 of 2 hosts ok"]);
    let read = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let runs = site.path().join("runs");
    for want in [
        "web1 ok".to_string(),
        "web2 rolled back (why: limits: web2: `systemctl daemon-reload` failed".to_string(),
        "kubeconfig: none: this answer file installs no Kubernetes".to_string(),
        format!("Journal and logs: {}/", runs.display()),
        format!(
            "Next site: ferry install --answers {} --yes",
            site.path().join("site.toml").display()
        ),
    ] {
        assert!(read.contains(&want), "{want:?} not on:\n{s}");
    }
    t.keys(&["C-q"]);
    let s = t.wait("ferry install to end", |s| s.contains("[exited "));
    assert!(s.contains("ferry install: 1 of 2 hosts ok (run "), "{s}");
    assert!(s.contains("[exited 1]"), "{s}");
}
