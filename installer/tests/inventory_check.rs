//! `ferry inventory check` and `ferry inventory facts` through the real binary, against a mixed
//! set of real sshd hosts: password, key, sudo with a password, and a host behind a jump host.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ferry_tests::sshd::{self, Bastion, SilentPort, Sshd};

fn ferry(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .arg("--known-hosts")
        .arg(dir.join("known_hosts"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .env("HOME", dir)
        .env_remove("SSH_AUTH_SOCK");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running ferry")
}

fn host_entry(name: &str, address: &str, port: u16, user: &str, extra: &str) -> String {
    format!(
        "[[hosts]]\nname = \"{name}\"\naddress = \"{address}\"\nport = {port}\nuser = \"{user}\"\n{extra}\n"
    )
}

fn key_line() -> String {
    format!("key = \"{}\"\n", sshd::fixture().keys.ed25519.display())
}

/// The mixed site: password, key, sudo-with-password hosts on three sshds, plus (when network
/// namespaces work) a jump host and a host only it can reach.
struct Site {
    _servers: Vec<Sshd>,
    bastion: Option<Bastion>,
    toml: String,
}

fn mixed_site(with_bastion: bool) -> Site {
    let servers: Vec<Sshd> = (0..3).map(|_| Sshd::start()).collect();
    let mut toml = String::new();
    toml += &host_entry(
        "pw",
        "127.0.0.1",
        servers[0].port,
        sshd::PASSWORD_USER,
        "password_env = \"FERRYTEST_PW\"",
    );
    toml += &host_entry(
        "key",
        "127.0.0.1",
        servers[1].port,
        sshd::KEY_USER,
        &key_line(),
    );
    toml += &host_entry(
        "sudopw",
        "127.0.0.1",
        servers[2].port,
        sshd::SUDO_PASSWORD_USER,
        &format!(
            "{}sudo = \"password\"\nsudo_password_env = \"FERRYTEST_SUDO_PW\"",
            key_line()
        ),
    );
    let bastion = (with_bastion && sshd::netns_available()).then(|| Bastion::start(1));
    if let Some(b) = &bastion {
        toml += &host_entry(
            "jump",
            &b.bastion.address,
            b.bastion.port,
            sshd::KEY_USER,
            &key_line(),
        );
        toml += &host_entry(
            "inner",
            "127.0.0.1",
            b.inner[0].port,
            sshd::SUDO_USER,
            &format!("{}sudo = \"passwordless\"\nbastion = \"jump\"", key_line()),
        );
    }
    Site {
        _servers: servers,
        bastion,
        toml,
    }
}

const ENV: &[(&str, &str)] = &[
    ("FERRYTEST_PW", sshd::PASSWORD),
    ("FERRYTEST_SUDO_PW", sshd::PASSWORD),
];

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn check_passes_a_mixed_site_with_password_key_sudo_and_bastion() {
    if !sshd::available() {
        return;
    }
    let site = mixed_site(true);
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(&inv, &site.toml).unwrap();
    let out = ferry(
        dir.path(),
        &["inventory", "check", "-i", inv.to_str().unwrap(), "--json"],
        ENV,
    );
    let doc = json(&out);
    assert!(out.status.success(), "{doc:#}");
    assert_eq!(doc["ok"], true);
    let hosts = doc["hosts"].as_array().unwrap();
    let expected = if site.bastion.is_some() { 5 } else { 3 };
    assert_eq!(hosts.len(), expected);
    for h in hosts {
        assert_eq!(h["ok"], true, "{h:#}");
        assert!(
            h["clock_skew_seconds"].as_f64().unwrap().abs() < 2.0,
            "{h:#}"
        );
        assert!(!h["facts"]["kernel"].as_str().unwrap().is_empty(), "{h:#}");
        assert_eq!(h["facts_source"], "shell");
    }
    let by = |name: &str| hosts.iter().find(|h| h["host"] == name).unwrap();
    assert_eq!(by("sudopw")["sudo"], true);
    assert_eq!(by("pw")["sudo"], serde_json::Value::Null);
    if site.bastion.is_some() {
        assert_eq!(by("inner")["sudo"], true);
    }
    // Secrets stay out of logs (in the run's own directory inside --run-dir).
    for run in std::fs::read_dir(dir.path().join("run")).unwrap() {
        for entry in std::fs::read_dir(run.unwrap().path()).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(!text.contains(sshd::PASSWORD));
        }
    }
    // Host keys were recorded in ferry's own file.
    let known = std::fs::read_to_string(dir.path().join("known_hosts")).unwrap();
    assert_eq!(known.lines().count(), expected, "{known}");
}

#[test]
fn check_reports_each_failing_host_on_one_line_and_goes_on() {
    if !sshd::available() {
        return;
    }
    let site = mixed_site(false);
    let silent = SilentPort::start();
    let wrong = Sshd::start();
    let badsudo = Sshd::start();
    let mut toml = site.toml.clone();
    toml += &host_entry(
        "silent",
        "127.0.0.1",
        silent.port,
        sshd::KEY_USER,
        &key_line(),
    );
    toml += &host_entry(
        "wrongpw",
        "127.0.0.1",
        wrong.port,
        sshd::PASSWORD_USER,
        "password_env = \"FERRYTEST_WRONG\"",
    );
    toml += &host_entry(
        "badsudo",
        "127.0.0.1",
        badsudo.port,
        sshd::SUDO_PASSWORD_USER,
        &format!(
            "{}sudo = \"password\"\nsudo_password_env = \"FERRYTEST_WRONG\"",
            key_line()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(&inv, toml).unwrap();
    let mut env = ENV.to_vec();
    env.push(("FERRYTEST_WRONG", "not-the-password"));
    let start = Instant::now();
    let out = ferry(
        dir.path(),
        &[
            "inventory",
            "check",
            "-i",
            inv.to_str().unwrap(),
            "--timeout",
            "2",
            "--attempts",
            "1",
        ],
        &env,
    );
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("FAILED "))
        .collect();
    assert_eq!(failed.len(), 3, "{stdout}");
    assert!(
        failed
            .iter()
            .any(|l| l.starts_with("FAILED silent:") && l.contains("within 2s")),
        "{stdout}"
    );
    assert!(
        failed
            .iter()
            .any(|l| l.starts_with("FAILED wrongpw:") && l.contains("rejected")),
        "{stdout}"
    );
    assert!(
        failed
            .iter()
            .any(|l| l.starts_with("FAILED badsudo:") && l.contains("sudo rejected the password")),
        "{stdout}"
    );
    assert!(!stdout.contains("not-the-password"));
    assert!(stdout.contains("3 of 6 hosts passed"), "{stdout}");
    // The table lists every host.
    for name in ["pw", "key", "sudopw", "silent", "wrongpw", "badsudo"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name}: {stdout}"
        );
    }
    // The silent host did not hold the others up beyond its own timeout.
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn check_refuses_a_host_whose_key_changed() {
    if !sshd::available() {
        return;
    }
    let mut s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(
        &inv,
        host_entry("node1", "127.0.0.1", s.port, sshd::KEY_USER, &key_line()),
    )
    .unwrap();
    let args = ["inventory", "check", "-i", inv.to_str().unwrap()];
    let first = ferry(dir.path(), &args, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    s.change_host_keys();
    let out = ferry(dir.path(), &args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAILED node1:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("CHANGED") && line.contains("ssh-keygen -R"),
        "{line}"
    );
    assert_eq!(line.matches("SHA256:").count(), 2, "{line}");
}

#[test]
fn facts_prints_json_for_every_host() {
    if !sshd::available() {
        return;
    }
    let site = mixed_site(false);
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(&inv, &site.toml).unwrap();
    let out = ferry(
        dir.path(),
        &["inventory", "facts", "-i", inv.to_str().unwrap(), "--json"],
        ENV,
    );
    let doc = json(&out);
    assert!(out.status.success(), "{doc:#}");
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    for h in hosts {
        assert_eq!(h["error"], serde_json::Value::Null, "{h:#}");
        assert!(
            h["facts"]["memory"]["total_bytes"].as_u64().unwrap() > 0,
            "{h:#}"
        );
        assert!(
            !h["facts"]["hostname"].as_str().unwrap().is_empty(),
            "{h:#}"
        );
    }
}

#[test]
fn an_unreadable_inventory_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(&inv, "[[hosts]]\nname = \"a\"\nbogus = 1\n").unwrap();
    let out = ferry(
        dir.path(),
        &["inventory", "check", "-i", inv.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: reading inventory"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The SHA256 fingerprint of `sshd`'s ed25519 host key, as OpenSSH's ssh-keygen prints it.
fn openssh_fingerprint(s: &Sshd) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(s.dir().join("host_ed25519.pub"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn first_contact_prints_each_trusted_fingerprint_on_stderr_once() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(
        &inv,
        host_entry("node1", "127.0.0.1", s.port, sshd::KEY_USER, &key_line()),
    )
    .unwrap();
    let args = ["inventory", "check", "-i", inv.to_str().unwrap(), "--json"];
    let first = ferry(dir.path(), &args, &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let err = text(&first.stderr);
    let fp = openssh_fingerprint(&s);
    let line = err
        .lines()
        .find(|l| l.contains("first contact"))
        .unwrap_or_else(|| panic!("no first-contact line on stderr: {err}"));
    assert!(
        line.starts_with(&format!(
            "node1: first contact, trusting host key ED25519 {fp}"
        )),
        "{line}"
    );
    // stdout stays one JSON document.
    json(&first);
    let again = ferry(dir.path(), &args, &[]);
    assert!(
        !text(&again.stderr).contains("first contact"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn strict_host_keys_refuse_an_unknown_host_until_it_is_trusted() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(
        &inv,
        host_entry("node1", "127.0.0.1", s.port, sshd::KEY_USER, &key_line()),
    )
    .unwrap();
    let inv = inv.to_str().unwrap();
    let fp = openssh_fingerprint(&s);
    let check = ["inventory", "check", "-i", inv, "--strict-host-keys"];
    let out = ferry(dir.path(), &check, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAILED node1:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(&format!("ED25519 {fp}")), "{line}");
    assert!(line.contains("ferry inventory trust node1"), "{line}");
    assert!(!dir.path().join("known_hosts").exists());

    // A fingerprint that is not the host's records nothing.
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let out = ferry(
        dir.path(),
        &[
            "inventory",
            "trust",
            "node1",
            "-i",
            inv,
            "--fingerprint",
            wrong,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("nothing recorded"),
        "{}",
        text(&out.stdout)
    );
    assert!(!dir.path().join("known_hosts").exists());

    let out = ferry(
        dir.path(),
        &[
            "inventory",
            "trust",
            "node1",
            "-i",
            inv,
            "--fingerprint",
            &fp,
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with(&format!("node1: trusted ED25519 {fp}")),
        "{}",
        text(&out.stdout)
    );
    let out = ferry(dir.path(), &check, &[]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let out = ferry(dir.path(), &["inventory", "trust", "--all", "-i", inv], &[]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("node1: already trusted"),
        "{}",
        text(&out.stdout)
    );
    // An unknown name is one line naming the hosts there are.
    let out = ferry(dir.path(), &["inventory", "trust", "node9", "-i", inv], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("node9: no such host"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn trust_all_records_a_bastion_before_the_host_behind_it_under_a_scoped_name() {
    if !sshd::netns_available() {
        return;
    }
    let b = Bastion::start(1);
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    // The inner host first: trust must still do the bastion first.
    let toml = host_entry(
        "inner",
        "127.0.0.1",
        b.inner[0].port,
        sshd::KEY_USER,
        &format!("{}bastion = \"jump\"", key_line()),
    ) + &host_entry(
        "jump",
        &b.bastion.address,
        b.bastion.port,
        sshd::KEY_USER,
        &key_line(),
    );
    std::fs::write(&inv, toml).unwrap();
    let inv = inv.to_str().unwrap();
    // Alone, the inner host cannot be reached: its bastion is not trusted yet.
    let out = ferry(dir.path(), &["inventory", "trust", "inner", "-i", inv], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("ferry inventory trust jump"),
        "{}",
        text(&out.stdout)
    );
    let out = ferry(dir.path(), &["inventory", "trust", "--all", "-i", inv], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("jump: trusted ED25519"), "{stdout}");
    let jump_fp = openssh_fingerprint(&b.bastion);
    assert!(
        lines[1].starts_with(&format!(
            "inner: trusted ED25519 {}",
            openssh_fingerprint(&b.inner[0])
        )) && lines[1].contains(&format!("[127.0.0.1]:2200@{jump_fp}")),
        "{stdout}"
    );
    let out = ferry(
        dir.path(),
        &["inventory", "check", "-i", inv, "--strict-host-keys"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn an_answer_file_can_refuse_unknown_host_keys() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inventory.toml"),
        host_entry(
            "node1",
            "127.0.0.1",
            s.port,
            sshd::SUDO_USER,
            &format!(
                "{}sudo = \"passwordless\"\nroles = [\"server\"]",
                key_line()
            ),
        ),
    )
    .unwrap();
    let answers = dir.path().join("site.toml");
    std::fs::write(
        &answers,
        "inventory = \"inventory.toml\"\n[cluster]\nname = \"t\"\n[ssh]\nstrict-host-keys = true\n",
    )
    .unwrap();
    let answers = answers.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["validate", "--answers", answers])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json(&out)["ssh"]["strict_host_keys"], true);
    let out = ferry(dir.path(), &["plan", "--answers", answers], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("node1") && err.contains("strict host key checking refuses"),
        "{err}\n{}",
        text(&out.stdout)
    );
    assert!(!dir.path().join("known_hosts").exists());
}

#[test]
fn a_hung_host_is_named_with_its_command_at_the_command_timeout() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(
        &inv,
        host_entry("hang", "127.0.0.1", s.port, sshd::HANG_USER, &key_line()),
    )
    .unwrap();
    let start = Instant::now();
    let out = ferry(
        dir.path(),
        &[
            "inventory",
            "check",
            "-i",
            inv.to_str().unwrap(),
            "--command-timeout",
            "2",
        ],
        &[],
    );
    let took = start.elapsed();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAILED hang:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("did not finish within 2s"), "{line}");
    assert!(line.contains("--command-timeout"), "{line}");
    assert!(took < Duration::from_secs(sshd::HANG_SECS / 4), "{took:?}");
}

#[test]
fn unreachable_hosts_get_one_line_each_with_the_cause_once_and_the_log_dir_exists() {
    if !sshd::available() {
        return;
    }
    let silent = SilentPort::start();
    let refused = sshd::free_port();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(
        &inv,
        host_entry("refused", "127.0.0.1", refused, sshd::KEY_USER, &key_line())
            + &host_entry(
                "silent",
                "127.0.0.1",
                silent.port,
                sshd::KEY_USER,
                &key_line(),
            ),
    )
    .unwrap();
    // No --run-dir: the default one under HOME is what the summary names.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["inventory", "check", "-i", inv.to_str().unwrap()])
        .args(["--timeout", "1", "--attempts", "1"])
        .arg("--known-hosts")
        .arg(dir.path().join("known_hosts"))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let both = format!("{stdout}{stderr}");
    let failed: Vec<&str> = both.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(failed.len(), 2, "one line per unreachable host:\n{both}");
    let refused_line = failed
        .iter()
        .find(|l| l.starts_with("FAILED refused: "))
        .unwrap_or_else(|| panic!("{both}"));
    assert_eq!(
        refused_line.matches("refused:").count(),
        1,
        "{refused_line}"
    );
    assert_eq!(
        refused_line.matches("Connection refused").count(),
        1,
        "the cause once: {refused_line}"
    );
    assert!(refused_line.contains("check the address"), "{refused_line}");
    let silent_line = failed
        .iter()
        .find(|l| l.starts_with("FAILED silent: "))
        .unwrap_or_else(|| panic!("{both}"));
    assert!(silent_line.contains("within 1s"), "{silent_line}");
    let summary = stdout
        .lines()
        .find(|l| l.contains("logs in "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let logs = summary.rsplit("logs in ").next().unwrap().trim();
    assert!(
        std::path::Path::new(logs).is_dir(),
        "the summary names {logs}, which does not exist"
    );
}

#[test]
fn a_missing_inventory_file_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = ferry(
        dir.path(),
        &["inventory", "check", "-i", missing.to_str().unwrap()],
        &[],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(err.matches("reading inventory").count(), 1, "{err}");
}
