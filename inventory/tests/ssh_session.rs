//! SSH sessions against real OpenSSH servers: auth methods, host keys, timeouts, retries, sudo.
#![allow(clippy::unwrap_used)]

#[path = "ssh_common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use ferry_inventory::ssh::{shell_quote, Session, SshError};
use ferry_inventory::{Auth, Secret, Sudo};
use ferry_tests::sshd::{self, SilentPort, Sshd, SshdOptions};

#[tokio::test]
async fn logs_in_with_ed25519_rsa_ecdsa_and_passphrase_keys() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = &sshd::fixture().keys;
    for (path, pass) in [
        (&keys.ed25519, None),
        (&keys.rsa, None),
        (&keys.ecdsa, None),
        (&keys.ed25519_passphrase, Some(sshd::PASSPHRASE)),
    ] {
        let mut t = key_target("k", &s, sshd::KEY_USER);
        t.auth = Auth::Key {
            path: path.clone(),
            passphrase: pass.map(Secret::new),
        };
        let sess = Session::connect(&t, &options(dir.path()))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), s.log()));
        let who = sess.exec_ok("id -un", false).await.unwrap();
        assert_eq!(who.trim(), sshd::KEY_USER);
    }
}

#[tokio::test]
async fn refuses_a_wrong_passphrase_clearly() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut t = key_target("k", &s, sshd::KEY_USER);
    t.auth = Auth::Key {
        path: sshd::fixture().keys.ed25519_passphrase.clone(),
        passphrase: Some(Secret::new("not the phrase")),
    };
    let err = Session::connect(&t, &options(dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Key { .. }), "{err}");
    assert!(!err.to_string().contains("not the phrase"), "{err}");
}

#[tokio::test]
async fn logs_in_with_a_password() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let t = password_target("p", &s, sshd::PASSWORD);
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    assert_eq!(
        sess.exec_ok("id -un", false).await.unwrap().trim(),
        sshd::PASSWORD_USER
    );
}

#[tokio::test]
async fn answers_keyboard_interactive_when_password_auth_is_off() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start_with(SshdOptions {
        extra: "PasswordAuthentication no\n".into(),
        ..SshdOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let t = password_target("kbd", &s, sshd::PASSWORD);
    let sess = Session::connect(&t, &options(dir.path()))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(
        sess.exec_ok("id -un", false).await.unwrap().trim(),
        sshd::PASSWORD_USER
    );
    assert!(s.log().contains("keyboard-interactive"), "{}", s.log());
}

#[tokio::test]
async fn refuses_a_wrong_password_without_retrying_or_echoing_it() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let t = password_target("p", &s, "wrong-Password-42");
    let mut opts = options(dir.path());
    opts.attempts = 5;
    opts.backoff = Duration::from_secs(30);
    let start = Instant::now();
    let err = Session::connect(&t, &opts).await.unwrap_err();
    assert!(matches!(err, SshError::AuthRejected { .. }), "{err}");
    assert!(!err.is_transient());
    // No retry happened: a retry would have waited the 30 s backoff first.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let msg = err.to_string();
    assert!(
        msg.contains("p: authentication as ferrytest-pass rejected"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-Password-42"), "{msg}");
}

#[tokio::test]
async fn refuses_a_key_the_server_does_not_know() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut t = key_target("k", &s, sshd::KEY_USER);
    t.auth = Auth::Key {
        path: sshd::fixture().keys.unauthorized.clone(),
        passphrase: None,
    };
    let err = Session::connect(&t, &options(dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::AuthRejected { .. }), "{err}");
    assert!(err.to_string().contains("authorized_keys"), "{err}");
}

#[tokio::test]
async fn records_a_new_host_key_and_refuses_a_changed_one() {
    if !sshd::available() {
        return;
    }
    let mut s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let t = key_target("node1", &s, sshd::KEY_USER);
    Session::connect(&t, &opts).await.unwrap();
    let known = std::fs::read_to_string(dir.path().join("known_hosts")).unwrap();
    let entry = format!("[127.0.0.1]:{}", s.port);
    assert!(known.starts_with(&entry), "{known}");
    // Same key again: accepted, nothing appended.
    Session::connect(&t, &opts).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("known_hosts")).unwrap(),
        known
    );

    s.change_host_keys();
    let err = Session::connect(&t, &opts).await.unwrap_err();
    assert!(matches!(err, SshError::HostKey { .. }), "{err}");
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(msg.starts_with("node1: host key of "), "{msg}");
    assert!(msg.contains(&entry), "{msg}");
    assert_eq!(msg.matches("SHA256:").count(), 2, "{msg}");
    assert!(msg.contains("ssh-keygen -R"), "{msg}");
    // The new key was not recorded.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("known_hosts")).unwrap(),
        known
    );
}

#[tokio::test]
async fn a_silent_host_fails_within_the_connect_timeout() {
    if !sshd::available() {
        return;
    }
    let silent = SilentPort::start();
    let dir = tempfile::tempdir().unwrap();
    let s = Sshd::start();
    let mut t = key_target("silent", &s, sshd::KEY_USER);
    t.port = silent.port;
    let mut opts = options(dir.path());
    opts.connect_timeout = Duration::from_secs(1);
    opts.attempts = 2;
    opts.backoff = Duration::from_millis(200);
    let start = Instant::now();
    let err = Session::connect(&t, &opts).await.unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, SshError::Timeout { .. }), "{err}");
    // Two attempts of 1 s plus one backoff, and not much more.
    assert!(took >= Duration::from_millis(2200), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn retries_a_refused_connection_until_sshd_comes_up() {
    if !sshd::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = sshd::free_port();
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        Sshd::start_with(SshdOptions {
            port,
            ..SshdOptions::default()
        })
    });
    let mut t = {
        let probe = Sshd::start();
        key_target("late", &probe, sshd::KEY_USER)
    };
    t.port = port;
    let mut opts = options(dir.path());
    opts.attempts = 6;
    opts.backoff = Duration::from_millis(200);
    let sess = Session::connect(&t, &opts).await;
    let s = starter.join().unwrap();
    let sess = sess.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    sess.exec_ok("true", false).await.unwrap();
}

#[tokio::test]
async fn runs_commands_as_root_with_a_sudo_password_on_stdin() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut t = key_target("sudopw", &s, sshd::SUDO_PASSWORD_USER);
    t.sudo = Sudo::Password(Secret::new(sshd::PASSWORD));
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    assert_eq!(sess.exec_ok("id -u", true).await.unwrap().trim(), "0");
    // Twice: cached sudo credentials must not make the password leak into the command.
    assert_eq!(sess.exec_ok("id -u", true).await.unwrap().trim(), "0");
    // The command's stdin is ours after sudo: the password never reaches it.
    let mut child = sess.spawn("cat", true).await.unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stdin = child.stdin().unwrap();
        stdin.write_all(b"payload\n").await.unwrap();
        child.close_stdin().await;
        let mut out = String::new();
        child.stdout().read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "payload\n");
    }
    assert!(child.wait().await.unwrap().success());
    // Nothing secret in the host log, but the commands are there.
    let log = host_log(dir.path(), "sudopw");
    assert!(log.contains("(as root) id -u"), "{log}");
    assert!(!log.contains(sshd::PASSWORD), "{log}");
}

#[tokio::test]
async fn a_wrong_sudo_password_is_a_clear_error() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut t = key_target("sudopw", &s, sshd::SUDO_PASSWORD_USER);
    t.sudo = Sudo::Password(Secret::new("not-the-sudo-pw"));
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    let err = sess.exec_ok("id -u", true).await.unwrap_err();
    assert!(matches!(err, SshError::SudoPasswordWrong { .. }), "{err}");
    assert!(
        err.to_string().contains("sudo rejected the password"),
        "{err}"
    );
    assert!(!err.to_string().contains("not-the-sudo-pw"));
    assert!(!host_log(dir.path(), "sudopw").contains("not-the-sudo-pw"));
    // The session stays usable.
    sess.exec_ok("true", false).await.unwrap();
}

#[tokio::test]
async fn passwordless_sudo_runs_as_root_and_missing_sudo_is_explained() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut t = key_target("sudo", &s, sshd::SUDO_USER);
    t.sudo = Sudo::Passwordless;
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    assert_eq!(sess.exec_ok("id -u", true).await.unwrap().trim(), "0");

    // A user whose sudo needs a password, declared passwordless.
    let mut t = key_target("nopw", &s, sshd::SUDO_PASSWORD_USER);
    t.sudo = Sudo::Passwordless;
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    let err = sess.exec_ok("id -u", true).await.unwrap_err();
    assert!(matches!(err, SshError::SudoRefused { .. }), "{err}");
    assert!(err.to_string().contains("password"), "{err}");
}

#[tokio::test]
async fn a_shell_banner_does_not_break_commands() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start_with(SshdOptions {
        banner: true,
        ..SshdOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let t = key_target("banner", &s, sshd::BANNER_USER);
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    let out = sess.exec_ok("echo ferry-marker", false).await.unwrap();
    assert!(
        out.contains(sshd::BANNER_TEXT),
        "the rc file should print: {out}"
    );
    assert!(out.trim_end().ends_with("ferry-marker"), "{out}");
}

#[tokio::test]
async fn a_failing_command_reports_status_and_stderr() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let t = key_target("k", &s, sshd::KEY_USER);
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    let err = sess
        .exec_ok("echo to-stderr >&2; exit 3", false)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("exit 3") && msg.contains("to-stderr"), "{msg}");
    let log = host_log(dir.path(), "k");
    assert!(log.contains("to-stderr") && log.contains("exit 3"), "{log}");
}

/// A NUL byte would end the command line where the shell reads it (or make sshd drop the
/// request): it is refused before anything is sent, naming the host, and the session stays up.
#[tokio::test]
async fn a_command_holding_a_nul_byte_is_refused_before_it_is_sent() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let t = key_target("k", &s, sshd::KEY_USER);
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    let marker = dir.path().join("ran");
    let cmd = format!(
        "touch {} && echo {}",
        shell_quote(&marker.display().to_string()),
        shell_quote("a\0b")
    );
    for as_root in [false, true] {
        let err = sess.exec_ok(&cmd, as_root).await.unwrap_err();
        assert!(matches!(err, SshError::NulInCommand { .. }), "{err}");
        assert!(err.to_string().starts_with("k: "), "{err}");
    }
    assert!(!marker.exists());
    assert_eq!(sess.exec_ok("echo ok", false).await.unwrap().trim(), "ok");
}

#[tokio::test]
async fn gives_up_on_a_frozen_host_within_the_keepalive_bound() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.keepalive_interval = Duration::from_secs(1);
    let sess = Session::connect(&key_target("k", &s, sshd::KEY_USER), &opts)
        .await
        .unwrap();
    sess.exec_ok("true", false).await.unwrap();
    s.freeze();
    let start = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(30), sess.exec_ok("true", false)).await;
    let took = start.elapsed();
    s.thaw();
    match r {
        Ok(Err(_)) => {}
        Ok(Ok(_)) => panic!("a frozen host answered"),
        Err(_) => panic!("still waiting on a frozen host after 30 s: keepalives do not work"),
    }
    // Three unanswered keepalives one second apart, plus scheduling slack.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(!sess.is_open());
}

#[tokio::test]
async fn agent_and_facts_output_stays_out_of_a_private_host_log() {
    if !sshd::available() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncReadExt;
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let sess = Session::connect(
        &key_target("agenthost", &s, sshd::KEY_USER),
        &options(dir.path()),
    )
    .await
    .unwrap();
    // A stand-in agent that answers with something secret: start_agent runs it exactly like
    // the real one (pushed, `--version` checked, then `agent` on an unlogged channel).
    let secret = "ferry-secret-machine-id-7f3a9c";
    let script = dir.path().join("fake-agent");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version) echo ferry-test;; agent) echo {secret};; esac\n"
        ),
    )
    .unwrap();
    let bin = ferry_inventory::remote::AgentBinary::at(&script)
        .await
        .unwrap();
    let mut agent = ferry_inventory::remote::start_agent(&sess, &bin, false)
        .await
        .unwrap();
    let mut out = String::new();
    agent
        .child()
        .stdout()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert_eq!(out.trim(), secret);
    agent.finish(&sess).await.unwrap();
    // The shell facts fallback reads /etc/machine-id (same machine: sshd runs here).
    let facts = ferry_inventory::remote::shell_facts(&sess, false)
        .await
        .unwrap();
    let machine_id = facts.machine_id.clone().unwrap_or_default();

    let log = host_log(dir.path(), "agenthost");
    assert!(log.contains(" agent"), "the command is logged: {log}");
    assert!(log.contains("bytes, not logged"), "{log}");
    assert!(
        !log.contains(secret),
        "agent stdout leaked into the log: {log}"
    );
    if !machine_id.is_empty() {
        assert!(!log.contains(&machine_id), "machine-id leaked: {log}");
    }
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("run")), 0o700);
    assert_eq!(mode(&log_path(dir.path(), "agenthost")), 0o600);
}

#[tokio::test]
async fn facts_gathered_after_a_script_are_the_facts_alone_and_the_script_keeps_its_lines() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let sess = Session::connect(
        &key_target("facts", &s, sshd::KEY_USER),
        &options(dir.path()),
    )
    .await
    .unwrap();
    let alone = ferry_inventory::remote::shell_facts(&sess, false)
        .await
        .unwrap();
    let before = "echo \"uid=$(id -u)\"; echo 'second line'";
    let (facts, printed) = ferry_inventory::remote::shell_facts_after(&sess, false, before)
        .await
        .unwrap();
    let uid = nix::unistd::User::from_name(sshd::KEY_USER)
        .unwrap()
        .unwrap()
        .uid;
    assert_eq!(printed, format!("uid={uid}\nsecond line\n"));
    assert!(
        !facts.hostname.is_empty() && !facts.os.id.is_empty(),
        "{facts:?}"
    );
    assert_eq!(
        (
            &facts.hostname,
            &facts.os,
            &facts.machine_id,
            &facts.nics,
            &facts.cpu
        ),
        (
            &alone.hostname,
            &alone.os,
            &alone.machine_id,
            &alone.nics,
            &alone.cpu
        )
    );
    // A script that prints nothing leaves the facts as they are.
    let (quiet, printed) = ferry_inventory::remote::shell_facts_after(&sess, false, "true")
        .await
        .unwrap();
    assert_eq!((printed.as_str(), &quiet.hostname), ("", &alone.hostname));
}

#[tokio::test]
async fn exec_refuses_output_beyond_its_limit_instead_of_buffering_it() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let sess = Session::connect(&key_target("big", &s, sshd::KEY_USER), &options(dir.path()))
        .await
        .unwrap();
    let err = sess.exec("head -c 10M /dev/zero", false).await.unwrap_err();
    assert!(
        matches!(err, SshError::OutputTooLarge { limit, .. } if limit == ferry_inventory::ssh::EXEC_OUTPUT_LIMIT),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("big") && text.contains("head -c 10M /dev/zero"),
        "{text}"
    );
    // Endless output is stopped too, and the session stays usable.
    let err = sess.exec("yes", false).await.unwrap_err();
    assert!(matches!(err, SshError::OutputTooLarge { .. }), "{err}");
    assert_eq!(sess.exec_ok("echo ok", false).await.unwrap().trim(), "ok");
    // Exactly at the limit is fine.
    let n = ferry_inventory::ssh::EXEC_OUTPUT_LIMIT;
    let out = sess
        .exec(&format!("head -c {n} /dev/zero"), false)
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), n);
}

#[tokio::test]
async fn a_hung_command_is_stopped_at_its_deadline_with_host_command_and_what_to_look_at() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.command_timeout = Duration::from_secs(2);
    let sess = Session::connect(&key_target("hung", &s, sshd::KEY_USER), &opts)
        .await
        .unwrap();
    assert_eq!(sess.deadline(), Duration::from_secs(2));
    let start = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        sess.exec_ok("sleep 6017; echo never", false),
    )
    .await
    .expect("still waiting on a hung command after 60 s: it has no deadline");
    let took = start.elapsed();
    let err = r.unwrap_err();
    assert!(
        matches!(
            err,
            SshError::CommandTimeout {
                secs: 2,
                silent: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("hung: `sleep 6017; echo never` did not finish within 2s"),
        "{msg}"
    );
    assert!(msg.contains("ps -ef --forest"), "{msg}");
    assert!(
        msg.contains(&log_path(dir.path(), "hung").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("--command-timeout"), "{msg}");
    assert!(!err.is_transient());
    let log = host_log(dir.path(), "hung");
    assert!(log.contains("not finished within 2s"), "{log}");
    // The session stays usable, and a step known to be long asks for a longer deadline.
    let out = sess
        .with_deadline(Duration::from_secs(30))
        .exec_ok("sleep 3; echo slow-but-fine", false)
        .await
        .unwrap();
    assert_eq!(out.trim(), "slow-but-fine");
    // sshd was asked to stop it: nothing of it is left on the host.
    let left = std::process::Command::new("pgrep")
        .args(["-u", sshd::KEY_USER, "-f", "sleep 6017"])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "the hung command still runs: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[tokio::test]
async fn a_hung_command_as_root_through_sudo_is_stopped_too() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.command_timeout = Duration::from_secs(2);
    let mut t = key_target("sudohung", &s, sshd::SUDO_PASSWORD_USER);
    t.sudo = Sudo::Password(Secret::new(sshd::PASSWORD));
    let sess = Session::connect(&t, &opts).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(60), sess.exec("sleep 6018", true))
        .await
        .expect("no deadline as root");
    let err = r.unwrap_err();
    assert!(matches!(err, SshError::CommandTimeout { .. }), "{err}");
    assert!(
        err.to_string().starts_with("sudohung: `sleep 6018`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_streaming_command_runs_while_bytes_move_and_stops_when_silent() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.command_timeout = Duration::from_secs(2);
    let sess = Session::connect(&key_target("stream", &s, sshd::KEY_USER), &opts)
        .await
        .unwrap();
    // cat reads what we send, then the command goes silent.
    let mut child = sess
        .spawn("cat >/dev/null; sleep 6019", false)
        .await
        .unwrap();
    let start = Instant::now();
    // Twice the deadline of steady writes: bytes move, so it is not stopped.
    while start.elapsed() < Duration::from_secs(4) {
        child.write_stdin(b"tick\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let err = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("a silent streaming command was never stopped")
        .unwrap_err();
    assert!(
        matches!(err, SshError::CommandTimeout { silent: true, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("printed nothing and read nothing for 2s"),
        "{err}"
    );
}

#[tokio::test]
async fn sudo_asks_for_its_password_when_the_home_holds_a_file_named_like_the_prompt() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut t = key_target("glob", &s, sshd::GLOB_USER);
    t.sudo = Sudo::Password(Secret::new(sshd::PASSWORD));
    assert!(std::path::Path::new(&format!("/home/{}/p", sshd::GLOB_USER)).exists());
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    // Before the prompt was quoted, the shell replaced it with `p`: ferry never saw the
    // prompt, never sent the password, and waited forever.
    let id = tokio::time::timeout(Duration::from_secs(60), sess.exec_ok("id -u", true))
        .await
        .expect("sudo never got its password");
    assert_eq!(id.unwrap().trim(), "0");
}

#[tokio::test]
async fn commands_sudo_and_uploads_work_with_zsh_as_the_login_shell() {
    if !sshd::zsh_available() {
        return;
    }
    use ferry_inventory::transfer::{upload, LocalFile, TransferEvent, UploadOptions};
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut t = key_target("zsh", &s, sshd::ZSH_USER);
    t.sudo = Sudo::Password(Secret::new(sshd::PASSWORD));
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    let shell = sess
        .exec_ok("getent passwd $(id -un)", false)
        .await
        .unwrap();
    assert!(shell.trim().ends_with(sshd::ZSH), "{shell}");
    // POSIX constructs zsh reads differently: word splitting and a glob matching nothing.
    let out = sess
        .exec_ok(
            "v='a b'; for w in $v; do echo \"[$w]\"; done; echo /nonexistent-*",
            false,
        )
        .await
        .unwrap();
    assert_eq!(out, "[a]\n[b]\n/nonexistent-*\n");
    let id = tokio::time::timeout(Duration::from_secs(60), sess.exec_ok("id -u", true))
        .await
        .expect("sudo hung under zsh");
    assert_eq!(id.unwrap().trim(), "0");
    let src = dir.path().join("payload");
    std::fs::write(&src, b"zsh payload\n").unwrap();
    let file = LocalFile::open(&src).await.unwrap();
    let quiet = |_: TransferEvent| {};
    let dest = format!("/tmp/ferrytest-zsh-{}", std::process::id());
    for as_root in [false, true] {
        let _ = std::fs::remove_file(&dest);
        let opts = UploadOptions {
            as_root,
            mode: 0o640,
            staged: None,
        };
        upload(&sess, &file, &dest, &opts, &quiet)
            .await
            .unwrap_or_else(|e| panic!("as_root={as_root}: {e}"));
        assert_eq!(std::fs::read(&dest).unwrap(), b"zsh payload\n");
    }
    let _ = std::fs::remove_file(&dest);
}

#[tokio::test]
async fn announces_each_newly_trusted_key_with_its_fingerprint() {
    if !sshd::available() {
        return;
    }
    use ferry_inventory::ssh::{KeyNotice, NewHostKey};
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<NewHostKey>::new()));
    let mut opts = options(dir.path());
    let sink = seen.clone();
    opts.on_new_host_key = KeyNotice::new(move |k| sink.lock().unwrap().push(k.clone()));
    let t = key_target("node1", &s, sshd::KEY_USER);
    let sess = Session::connect(&t, &opts).await.unwrap();
    Session::connect(&t, &opts).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "announced once, at first contact: {seen:?}");
    // The fingerprint is the one OpenSSH computes from the server's key file.
    let pubfile = s.dir().join("host_ed25519.pub");
    let lf = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&pubfile)
        .output()
        .unwrap();
    let openssh = String::from_utf8_lossy(&lf.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(sess.host_key_fingerprint(), openssh);
    assert_eq!(seen[0].key, format!("ED25519 {openssh}"));
    assert_eq!(seen[0].host, "node1");
    let msg = seen[0].message();
    assert!(
        msg.starts_with("node1: first contact, trusting host key ED25519 SHA256:"),
        "{msg}"
    );
    assert!(msg.contains(&format!("[127.0.0.1]:{}", s.port)), "{msg}");
}

#[tokio::test]
async fn strict_host_keys_refuse_an_unknown_host_and_record_nothing() {
    if !sshd::available() {
        return;
    }
    use ferry_inventory::ssh::HostKeyPolicy;
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.host_keys = HostKeyPolicy::Strict;
    let t = key_target("node1", &s, sshd::KEY_USER);
    let err = Session::connect(&t, &opts).await.unwrap_err();
    assert!(matches!(err, SshError::UnknownHostKey { .. }), "{err}");
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(msg.contains("ED25519 SHA256:"), "{msg}");
    assert!(msg.contains("ferry inventory trust node1"), "{msg}");
    assert!(!dir.path().join("known_hosts").exists());
    // What ssh-keyscan -H writes (hashed names) is read: strict checking then lets it in.
    let scan = std::process::Command::new("ssh-keyscan")
        .args(["-H", "-p", &s.port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&scan.stdout).contains("|1|"));
    std::fs::write(dir.path().join("known_hosts"), &scan.stdout).unwrap();
    let sess = Session::connect(&t, &opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sess.exec_ok("true", false).await.unwrap();
}
