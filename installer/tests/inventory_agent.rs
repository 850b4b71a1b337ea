//! The agent over SSH through the real binary: `ferry inventory facts --agent self` pushes
//! ferry to the host, runs `ferry agent` there (as root through sudo when configured), gathers
//! facts over the protocol and removes the binary; where it cannot run (a noexec home), the
//! reason is said and facts come from the shell fallback.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use ferry_tests::sshd::{self, Sshd};

fn ferry(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .arg("--known-hosts")
        .arg(dir.join("known_hosts"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .env("HOME", dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running ferry")
}

fn entry(name: &str, s: &Sshd, user: &str, extra: &str) -> String {
    format!(
        "[[hosts]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nport = {}\nuser = \"{user}\"\nkey = \"{}\"\n{extra}\n",
        s.port,
        sshd::fixture().keys.ed25519.display()
    )
}

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
fn facts_come_from_the_pushed_agent_which_is_removed_after() {
    if !sshd::available() {
        return;
    }
    let a = Sshd::start();
    let b = Sshd::start();
    let toml = entry("plain", &a, sshd::KEY_USER, "")
        + &entry(
            "root",
            &b,
            sshd::SUDO_PASSWORD_USER,
            "sudo = \"password\"\nsudo_password_env = \"FERRYTEST_SUDO_PW\"",
        );
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(&inv, toml).unwrap();
    let out = ferry(
        dir.path(),
        &[
            "inventory",
            "facts",
            "-i",
            inv.to_str().unwrap(),
            "--json",
            "--agent",
            "self",
        ],
        &[("FERRYTEST_SUDO_PW", sshd::PASSWORD)],
    );
    let doc = json(&out);
    assert!(out.status.success(), "{doc:#}");
    for h in doc["hosts"].as_array().unwrap() {
        assert_eq!(h["source"], "agent", "{h:#}");
        assert!(!h["facts"]["kernel"].as_str().unwrap().is_empty(), "{h:#}");
    }
    for user in [sshd::KEY_USER, sshd::SUDO_PASSWORD_USER] {
        let left = Path::new("/home").join(user).join(".ferry");
        assert!(!left.exists(), "{} left behind", left.display());
    }
}

/// A tmpfs mounted noexec over a directory, unmounted on drop.
struct NoExec(std::path::PathBuf);

impl Drop for NoExec {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn an_agent_that_cannot_run_is_explained_and_shell_facts_are_used() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    // The banner user's ~/.ferry is a noexec mount: the upload works, running it does not.
    let home_ferry = Path::new("/home").join(sshd::BANNER_USER).join(".ferry");
    std::fs::create_dir_all(&home_ferry).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "noexec,size=256m,mode=0777", "tmpfs"])
        .arg(&home_ferry)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mounting a noexec tmpfs");
    let _guard = NoExec(home_ferry.clone());
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.toml");
    std::fs::write(&inv, entry("noexec", &s, sshd::BANNER_USER, "")).unwrap();
    let out = ferry(
        dir.path(),
        &[
            "inventory",
            "check",
            "-i",
            inv.to_str().unwrap(),
            "--json",
            "--agent",
            "self",
        ],
        &[],
    );
    let doc = json(&out);
    assert!(out.status.success(), "{doc:#}");
    let h = &doc["hosts"][0];
    assert_eq!(h["facts_source"], "shell", "{h:#}");
    let note = h["agent_note"].as_str().unwrap_or_default();
    assert!(note.contains("noexec"), "{h:#}");
    assert!(!h["facts"]["kernel"].as_str().unwrap().is_empty(), "{h:#}");
}
