//! The jump host side of ferry's VM suites: a private HOME with the testbed's inventory and
//! answer files, `ferry` commands run to their end (or killed mid-way) with their output
//! lines, and what `plan --json` and the apply summary say per host.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vm_tests::Testbed;

pub mod cluster;

/// Prints where a test is, with the seconds since `t0`: a slow run's log says which step
/// took the time.
pub fn step(name: &str, t0: Instant) {
    eprintln!("==== [{:6.1} s] {name}", t0.elapsed().as_secs_f64());
}

/// How long one `ferry` command may take on emulated VMs before the test gives up on it.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(900);

// ------------------------------------------------------------------------------ the jump host

/// A jump host's working directory: a private HOME (so `~/.ferry` is this test's own), the
/// testbed's inventory and the answer files.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new(bed: &Testbed) -> Site {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("home")).unwrap();
        fs::write(
            dir.path().join("inventory.toml"),
            ferry_tests::vmhost::inventory_toml(bed, 1),
        )
        .unwrap();
        Site { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// Writes answer file `name`: the default baseline with `baseline` lines added to
    /// `[baseline]` and `top` lines before the first table. Preflight minima are lowered to the
    /// testbed's VM size (1 vCPU, 1 GiB, 4 GiB disk); everything else is the defaults.
    pub fn answers(&self, name: &str, top: &str, baseline: &str) -> PathBuf {
        let text = format!(
            "inventory = \"inventory.toml\"\n{top}\n\n[cluster]\nname = \"vm-baseline\"\n\n\
             [baseline]\n{baseline}\n\n[preflight]\nmin-cpus = 1\nmin-memory-mib = 512\n\
             min-disk-gib = 1\n"
        );
        let path = self.path().join(name);
        fs::write(&path, text).unwrap();
        path
    }

    /// Writes `text` as the file `name` in the site's directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        fs::write(&path, text).unwrap();
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let bin = std::env::var_os("FERRY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferry")));
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(self.path())
            .env("HOME", self.home())
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `ferry ARGS` to its end (at most [`COMMAND_LIMIT`]).
    pub fn ferry(&self, args: &[&str]) -> Run {
        let running = self.start(args);
        running.finish(|_| {})
    }

    /// Starts `ferry ARGS`; its output lines arrive as they are printed.
    pub fn start(&self, args: &[&str]) -> Running {
        let started = Instant::now();
        let mut child = self
            .command(args)
            .spawn()
            .unwrap_or_else(|e| panic!("starting ferry {}: {e}", args.join(" ")));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let readers = vec![
            line_reader(out, false, tx.clone()),
            line_reader(err, true, tx),
        ];
        Running {
            args: args.join(" "),
            child,
            rx,
            readers,
            started,
        }
    }

    /// The cluster id a run recorded in its directory.
    pub fn run_cluster_id(&self, run_id: &str) -> String {
        let path = self
            .home()
            .join(".ferry/runs")
            .join(run_id)
            .join("cluster.json");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the run's cluster record {}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text).unwrap();
        v["id"].as_str().unwrap_or_default().to_string()
    }

    pub fn journal(&self, run_id: &str) -> PathBuf {
        self.home()
            .join(".ferry/runs")
            .join(run_id)
            .join("journal.jsonl")
    }
}

/// Runs `ferry ARGS` in `dir` (HOME `dir/home`, no signing key from the environment) and
/// fails the test unless it succeeds: for making a test's inputs (keys, bundles).
pub fn ferry_in(dir: &Path, args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir.join("home"))
        .env_remove("FERRY_SIGN_KEY")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ferry {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn line_reader(
    stream: impl Read + Send + 'static,
    stderr: bool,
    tx: mpsc::Sender<(bool, String)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send((stderr, line)).is_err() {
                break;
            }
        }
    })
}

/// A `ferry` command still running.
pub struct Running {
    args: String,
    child: Child,
    rx: mpsc::Receiver<(bool, String)>,
    readers: Vec<std::thread::JoinHandle<()>>,
    started: Instant,
}

impl Running {
    /// Waits for the end, calling `on_line` with each stdout/stderr line as it comes.
    /// Kills ferry (SIGKILL: as a jump host losing power) at the first output line for which
    /// `at` is true, then collects what it printed. Panics when it ends first.
    pub fn kill_at(self, mut at: impl FnMut(&str) -> bool) -> Run {
        let pid = self.child.id();
        let mut killed = false;
        let run = self.finish(|line| {
            if !killed && at(line) {
                killed = true;
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
        assert!(
            killed,
            "ferry ended before the line to kill it at\n{}",
            run.show()
        );
        run
    }

    pub fn finish(mut self, mut on_line: impl FnMut(&str)) -> Run {
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let deadline = self.started + COMMAND_LIMIT;
        loop {
            match self.rx.recv_timeout(Duration::from_millis(200)) {
                Ok((is_err, line)) => {
                    on_line(&line);
                    let buf = if is_err { &mut stderr } else { &mut stdout };
                    buf.push_str(&line);
                    buf.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() > deadline {
                        let _ = self.child.kill();
                        let _ = self.child.wait();
                        panic!(
                            "`ferry {}` still running after {} s; killed. So far:\n--- stdout\n\
                             {stdout}--- stderr\n{stderr}",
                            self.args,
                            COMMAND_LIMIT.as_secs()
                        );
                    }
                }
            }
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let status = self.child.wait().unwrap();
        Run {
            args: self.args,
            code: status.code(),
            stdout,
            stderr,
            secs: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// A finished `ferry` command.
pub struct Run {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub secs: f64,
}

impl Run {
    pub fn show(&self) -> String {
        format!(
            "`ferry {}` exited {:?} after {:.1} s\n--- stdout\n{}--- stderr\n{}",
            self.args, self.code, self.secs, self.stdout, self.stderr
        )
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn expect_ok(&self, what: &str) -> &Run {
        assert!(self.ok(), "{what}: expected exit 0\n{}", self.show());
        self
    }

    pub fn expect_fail(&self, what: &str) -> &Run {
        assert!(
            !self.ok() && self.code.is_some(),
            "{what}: expected a non-zero exit\n{}",
            self.show()
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`ferry {}` printed no JSON document ({e})\n{}",
                self.args,
                self.show()
            )
        })
    }

    /// The run id printed as `run: YYYYMMDD-HHMMSS-xxxx`.
    pub fn run_id(&self) -> String {
        let found = self
            .stderr
            .lines()
            .chain(self.stdout.lines())
            .find_map(|l| l.trim().strip_prefix("run: ").map(str::trim));
        let id = found.unwrap_or_else(|| panic!("no `run: ID` line\n{}", self.show()));
        let id = id.split_whitespace().next().unwrap_or_default().to_string();
        let b = id.as_bytes();
        let well_formed = b.len() == 20
            && b[8] == b'-'
            && b[15] == b'-'
            && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
            && b[16..].iter().all(u8::is_ascii_hexdigit);
        assert!(
            well_formed,
            "run id {id:?} is not YYYYMMDD-HHMMSS-xxxx\n{}",
            self.show()
        );
        id
    }

    /// The host's row of the apply summary (the last line naming the host followed by an
    /// outcome), without the host name: `ok 14 3.2`, `rolled back 0 2.1 ...`.
    pub fn outcome(&self, host: &str) -> String {
        const OUTCOMES: [&str; 6] = ["ok", "no", "rolled", "failed", "blocked", "unreachable"];
        let row = self.stdout.lines().rev().find_map(|l| {
            let l = l.replace('|', " ");
            let mut words = l.split_whitespace();
            if words.next() != Some(host) {
                return None;
            }
            let rest: Vec<&str> = words.collect();
            let first = rest.first()?.to_ascii_lowercase();
            OUTCOMES.contains(&first.as_str()).then(|| rest.join(" "))
        });
        row.unwrap_or_else(|| panic!("no summary row for {host}\n{}", self.show()))
    }

    pub fn expect_outcome(&self, host: &str, want: &str) {
        let row = self.outcome(host);
        assert!(
            row.to_ascii_lowercase().starts_with(want),
            "{host}: the summary says {row:?}, expected {want:?}\n{}",
            self.show()
        );
    }
}

// ------------------------------------------------------------------------------- plan --json

/// One host of `ferry plan --json`.
pub struct PlannedHost {
    pub status: String,
    pub reasons: Vec<String>,
    pub changes: usize,
}

pub fn planned(plan: &Run, host: &str) -> PlannedHost {
    let doc = plan.json();
    let hosts = doc["hosts"].as_array().cloned().unwrap_or_default();
    let h = hosts
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("the plan has no entry for {host}\n{}", plan.show()));
    PlannedHost {
        status: h["status"].as_str().unwrap_or_default().to_string(),
        reasons: h["reasons"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        changes: h["changes"].as_array().map_or(0, Vec::len),
    }
}

pub fn expect_status(plan: &Run, host: &str, want: &str) -> PlannedHost {
    let p = planned(plan, host);
    assert_eq!(
        p.status,
        want,
        "{host}: the plan says {:?} (reasons {:?}), expected {want:?}\n{}",
        p.status,
        p.reasons,
        plan.show()
    );
    p
}
