//! A site of hosts on one switch, each a real sshd in a network namespace of its own, and this
//! test process as the jump host on a link of its own to the switch (which [`Site::shape_jump_link`]
//! can slow down with `tc`, while the hosts' links stay fast).
//!
//! The hosts share this machine's file system, so each sshd also runs in a mount namespace where
//! [`sshd::KEY_USER`]'s home is a directory of its own ([`SiteHost::home`]): what one host's
//! login writes under `~` (ferry's agent, a relay store) is that host's alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sshd::{self, ScratchDir, Sshd, SshdOptions};

/// One host of the site.
#[derive(Debug)]
pub struct SiteHost {
    /// `h0`, `h1`, ...
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Its address on the site network (its sshd listens there on port 22).
    pub address: String,
    /// Its sshd.
    pub sshd: Sshd,
    home: ScratchDir,
}

impl SiteHost {
    /// The directory that is [`sshd::KEY_USER`]'s home on this host (seen from here).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The same directory as the host's login sees it.
    pub fn home_on_host(&self) -> String {
        format!("/home/{}", sshd::KEY_USER)
    }

    /// Kills every process of this host (its network namespace) whose command line has `word`
    /// as an argument, e.g. `agent`; returns how many.
    pub fn kill_processes_with_arg(&self, word: &str) -> usize {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut killed = 0;
        for pid in out.split_whitespace() {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            if cmdline
                .split(|b| *b == 0)
                .skip(1)
                .any(|a| a == word.as_bytes())
            {
                let ok = Command::new("kill")
                    .args(["-KILL", pid])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                killed += usize::from(ok);
            }
        }
        killed
    }
}

/// The site.
#[derive(Debug)]
pub struct Site {
    /// The hosts.
    pub hosts: Vec<SiteHost>,
    /// The jump host's (this process's) address on the site network.
    pub jump_address: String,
    jump_if: String,
    switch: String,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_ok(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Site {
    /// `n` hosts (at most 200) on a fresh switch. Call [`sshd::netns_available`] first.
    pub fn start(n: usize) -> Self {
        assert!(n <= 200, "a site has at most 200 hosts");
        // The test users (each host's home is chowned to one) exist before the first host.
        sshd::fixture();
        let (switch, k) = (0..250u32)
            .find_map(|k| {
                let name = format!("ferrytest-rs{k}");
                run_ok(&["ip", "netns", "add", &name]).then_some((name, k))
            })
            .unwrap_or_else(|| panic!("no free ferrytest-rsN network namespace"));
        let sw = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", switch.as_str()];
            all.extend_from_slice(args);
            run(&all);
        };
        sw(&["ip", "link", "add", "br0", "type", "bridge"]);
        sw(&["ip", "link", "set", "br0", "up"]);
        // The jump host's link: this namespace's end carries its address.
        let jump_if = format!("frj{k}");
        let _ = run_ok(&["ip", "link", "del", &jump_if]);
        run(&[
            "ip",
            "link",
            "add",
            &jump_if,
            "type",
            "veth",
            "peer",
            "name",
            &format!("frj{k}s"),
        ]);
        run(&["ip", "link", "set", &format!("frj{k}s"), "netns", &switch]);
        sw(&[
            "ip",
            "link",
            "set",
            &format!("frj{k}s"),
            "master",
            "br0",
            "up",
        ]);
        let jump_address = format!("10.214.{k}.1");
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{jump_address}/24"),
            "dev",
            &jump_if,
        ]);
        run(&["ip", "link", "set", &jump_if, "up"]);
        let mut hosts = Vec::with_capacity(n);
        for i in 0..n {
            let netns = format!("ferrytest-rs{k}-h{i}");
            let _ = run_ok(&["ip", "netns", "del", &netns]);
            run(&["ip", "netns", "add", &netns]);
            let (inside, outside) = (format!("fr{k}h{i}"), format!("fr{k}s{i}"));
            run(&[
                "ip", "link", "add", &inside, "type", "veth", "peer", "name", &outside,
            ]);
            run(&["ip", "link", "set", &outside, "netns", &switch]);
            sw(&["ip", "link", "set", &outside, "master", "br0", "up"]);
            run(&["ip", "link", "set", &inside, "netns", &netns]);
            let address = format!("10.214.{k}.{}", 10 + i);
            let nsx = |args: &[&str]| {
                let mut all = vec!["ip", "netns", "exec", netns.as_str()];
                all.extend_from_slice(args);
                run(&all);
            };
            nsx(&["ip", "link", "set", "lo", "up"]);
            nsx(&["ip", "link", "set", &inside, "name", "eth0"]);
            nsx(&["ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"]);
            nsx(&["ip", "link", "set", "eth0", "up"]);
            let home = ScratchDir::new(&format!("site{k}-h{i}-home"));
            run(&[
                "chown",
                &format!("{0}:{0}", sshd::KEY_USER),
                &home.path().to_string_lossy(),
            ]);
            let script = format!(
                "mount --bind {} /home/{} && exec \"$@\"",
                home.path().display(),
                sshd::KEY_USER
            );
            let sshd = Sshd::start_with(SshdOptions {
                listen: address.clone(),
                port: 22,
                netns: Some(netns.clone()),
                wrapper: Some(vec![
                    "ip".into(),
                    "netns".into(),
                    "exec".into(),
                    netns.clone(),
                    "unshare".into(),
                    "--mount".into(),
                    "--propagation".into(),
                    "private".into(),
                    "sh".into(),
                    "-c".into(),
                    script,
                    "sh".into(),
                ]),
                ..SshdOptions::default()
            });
            hosts.push(SiteHost {
                name: format!("h{i}"),
                netns,
                address,
                sshd,
                home,
            });
        }
        let site = Self {
            hosts,
            jump_address,
            jump_if,
            switch,
        };
        site.wait_reachable();
        site
    }

    fn wait_reachable(&self) {
        let start = Instant::now();
        for h in &self.hosts {
            let addr = std::net::SocketAddr::new(
                h.address
                    .parse()
                    .unwrap_or_else(|e| panic!("{}: {e}", h.address)),
                22,
            );
            while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "{} ({}) not reachable from the jump host",
                    h.name,
                    h.address
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Shapes the jump host's link, both ways, to `rate` (tc's units: `100mbit`).
    pub fn shape_jump_link(&self, rate: &str) {
        let tbf = ["tbf", "rate", rate, "burst", "256kb", "latency", "100ms"];
        let mut here = vec![
            "tc",
            "qdisc",
            "replace",
            "dev",
            self.jump_if.as_str(),
            "root",
        ];
        here.extend_from_slice(&tbf);
        run(&here);
        let far = format!("{}s", self.jump_if);
        let mut there = vec![
            "ip",
            "netns",
            "exec",
            self.switch.as_str(),
            "tc",
            "qdisc",
            "replace",
            "dev",
            far.as_str(),
            "root",
        ];
        there.extend_from_slice(&tbf);
        run(&there);
    }

    /// Bytes this end of the jump host's link has sent so far.
    pub fn jump_link_tx_bytes(&self) -> u64 {
        (self.jump_link_tx_bytes_fn())()
    }

    /// [`Site::jump_link_tx_bytes`] as a function that outlives the borrow (for callbacks).
    pub fn jump_link_tx_bytes_fn(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let p = PathBuf::from(format!(
            "/sys/class/net/{}/statistics/tx_bytes",
            self.jump_if
        ));
        move || {
            std::fs::read_to_string(&p)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.sshd.kill();
            // Anything left in the namespace (an agent the test did not end).
            if let Ok(o) = Command::new("ip")
                .args(["netns", "pids", &h.netns])
                .output()
            {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = run_ok(&["kill", "-KILL", pid]);
                }
            }
            let _ = run_ok(&["ip", "netns", "del", &h.netns]);
        }
        // The switch's namespace takes the jump host's veth pair with it.
        let _ = run_ok(&["ip", "netns", "del", &self.switch]);
        let _ = run_ok(&["ip", "link", "del", &self.jump_if]);
    }
}
