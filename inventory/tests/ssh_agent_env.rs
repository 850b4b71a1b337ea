//! A running ssh-agent in the environment must not change how ferry logs in: ferry offers only
//! the key the inventory names. Its own test binary, because it sets SSH_AUTH_SOCK for the
//! whole process (no other test runs beside it).
#![allow(clippy::unwrap_used)]

#[path = "ssh_common.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ferry_inventory::ssh::Session;
use ferry_tests::sshd::{self, Sshd};

/// Kills the agent on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ignores_an_ssh_agent_full_of_other_keys() {
    if !sshd::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let agent = Agent(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting ssh-agent (openssh-client): {e}")),
    );
    let start = Instant::now();
    while !sock.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Seven keys the server does not know: more than sshd's MaxAuthTries (6), so a client
    // that offered the agent's keys first would be cut off before reaching the right one.
    for i in 0..7 {
        let key = dir.path().join(format!("other{i}"));
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-keygen");
        let ok = Command::new("ssh-add")
            .arg("-q")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &sock)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-add {}", key.display());
    }
    let listed = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        7,
        "the agent holds the seven keys"
    );
    // The only test in this binary: no other thread reads the environment meanwhile.
    std::env::set_var("SSH_AUTH_SOCK", &sock);

    let s = Sshd::start();
    // Control: OpenSSH's own client, allowed to use the agent, is cut off by MaxAuthTries
    // before it reaches the right key, so this setup does catch a client that asks the agent.
    let key = sshd::fixture().keys.ed25519.clone();
    let control = Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=no"])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "PreferredAuthentications=publickey",
            "-F",
            "/dev/null",
        ])
        .arg("-i")
        .arg(&key)
        .args(["-p", &s.port.to_string()])
        .arg(format!("{}@{}", sshd::KEY_USER, s.address))
        .arg("true")
        .env("SSH_AUTH_SOCK", &sock)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&control.stderr);
    assert!(
        !control.status.success() && said.contains("Too many authentication failures"),
        "an agent-first client was not cut off: {said}\n{}",
        s.log()
    );
    // sshd logs the control's cut-off a moment after the client has gone: wait for that line,
    // or it could land after `before` and be taken for ours.
    let waited = std::time::Instant::now();
    while !s.log().contains("maximum authentication attempts")
        && waited.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let before = s.log().len();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for t in [
        key_target("k", &s, sshd::KEY_USER),
        password_target("p", &s, sshd::PASSWORD),
    ] {
        rt.block_on(async {
            let sess = Session::connect(&t, &options(dir.path()))
                .await
                .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
            sess.exec_ok("true", false).await.unwrap();
        });
    }
    let log = s.log()[before..].to_string();
    assert!(!log.contains("Failed publickey"), "{log}");
    assert!(!log.contains("maximum authentication attempts"), "{log}");
    drop(agent);
}
