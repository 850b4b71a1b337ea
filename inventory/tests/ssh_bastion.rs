//! Jump hosts: an inner host reachable only through a bastion (a network namespace), many inner
//! hosts sharing ONE bastion connection, and a bastion failure named as such.
#![allow(clippy::unwrap_used)]

#[path = "ssh_common.rs"]
mod common;

use std::sync::Arc;

use common::*;
use ferry_inventory::ssh::{Pool, Session, SshError};
use ferry_inventory::{Auth, Sudo, Target};
use ferry_tests::sshd::{self, Bastion};

fn jump(b: &Bastion) -> Target {
    key_target("jump", &b.bastion, sshd::KEY_USER)
}

fn inner(b: &Bastion, i: usize) -> Target {
    let mut t = key_target(&format!("inner{i}"), &b.inner[i], sshd::SUDO_USER);
    t.sudo = Sudo::Passwordless;
    t.bastion = Some(Box::new(jump(b)));
    t
}

#[tokio::test]
async fn reaches_an_inner_host_only_through_its_bastion() {
    if !sshd::netns_available() {
        return;
    }
    let b = Bastion::start(1);
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let t = inner(&b, 0);
    let sess = Session::connect(&t, &opts)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", b.bastion.log(), b.inner[0].log()));
    assert_eq!(sess.exec_ok("id -u", true).await.unwrap().trim(), "0");
    // The inner sshd sees the connection coming from the namespace's own loopback, through the
    // bastion's forwarding.
    assert!(b.inner[0].log().contains("Accepted publickey"));
    assert!(b.bastion.log().contains("Accepted publickey"));

    // Without the bastion, the same address is not the inner host.
    let mut direct = t.clone();
    direct.bastion = None;
    let mut o = options(dir.path());
    o.attempts = 1;
    o.connect_timeout = std::time::Duration::from_secs(2);
    match Session::connect(&direct, &o).await {
        Err(_) => {}
        Ok(_) => panic!("the inner host answered without its bastion"),
    }
}

#[tokio::test]
async fn hosts_behind_one_bastion_share_one_connection_to_it() {
    if !sshd::netns_available() {
        return;
    }
    // More inner hosts than MaxStartups' first threshold (10) on the bastion.
    let n = 14;
    let b = Bastion::start(n);
    let dir = tempfile::tempdir().unwrap();
    let pool = Arc::new(Pool::new(options(dir.path())));
    let mut tasks = Vec::new();
    for i in 0..n {
        let t = inner(&b, i);
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let s = pool.session(&t).await?;
            s.exec_ok("hostname", false).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let r = task.await.unwrap();
        assert!(r.is_ok(), "inner{i}: {}", r.unwrap_err());
    }
    let accepted = b.bastion.log().matches("Accepted publickey").count();
    assert_eq!(accepted, 1, "{}", b.bastion.log());
    // The bastion plus every inner host.
    assert_eq!(pool.len().await, n + 1);
}

#[tokio::test]
async fn a_bastion_that_refuses_us_is_named_in_the_error() {
    if !sshd::netns_available() {
        return;
    }
    let b = Bastion::start(1);
    let dir = tempfile::tempdir().unwrap();
    let mut t = inner(&b, 0);
    if let Some(j) = t.bastion.as_mut() {
        j.auth = Auth::Key {
            path: sshd::fixture().keys.unauthorized.clone(),
            passphrase: None,
        };
    }
    let pool = Pool::new(options(dir.path()));
    let err = pool.session(&t).await.unwrap_err();
    assert!(matches!(err, SshError::Bastion { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("inner0: through jump host jump:"), "{msg}");
    assert!(msg.contains("rejected"), "{msg}");
}

/// Five logins to one sshd that accepts only three unauthenticated connections at once
/// (`MaxStartups 3`): unpaced, sshd drops some; paced to one handshake at a time (sshd learns
/// that a login finished a moment after we do, so pacing keeps a margin), all get in.
#[tokio::test]
async fn paces_handshakes_below_the_servers_max_startups() {
    if !sshd::available() {
        return;
    }
    let s = ferry_tests::sshd::Sshd::start_with(ferry_tests::sshd::SshdOptions {
        max_startups: "3".into(),
        ..Default::default()
    });
    let users = [
        sshd::KEY_USER,
        sshd::SUDO_USER,
        sshd::SUDO_PASSWORD_USER,
        sshd::BANNER_USER,
    ];
    let mut targets: Vec<Target> = users.iter().map(|u| key_target(u, &s, u)).collect();
    targets.push(password_target("pw", &s, sshd::PASSWORD));
    let run = |pace: usize| {
        let targets = targets.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let mut o = options(dir.path());
            o.attempts = 1;
            o.handshakes_per_sshd = pace;
            let pool = Arc::new(Pool::new(o));
            let tasks: Vec<_> = targets
                .into_iter()
                .map(|t| {
                    let pool = pool.clone();
                    tokio::spawn(async move { pool.session(&t).await.map(|_| ()) })
                })
                .collect();
            let mut failed = 0;
            for t in tasks {
                if t.await.unwrap().is_err() {
                    failed += 1;
                }
            }
            failed
        }
    };
    let paced = run(1).await;
    assert_eq!(paced, 0, "paced handshakes were dropped\n{}", s.log());
    // The same burst unpaced: the limit is real, so some are dropped (at least in some of a few
    // tries: the password login is slow enough to overlap the others).
    let mut dropped = 0;
    for _ in 0..3 {
        dropped += run(16).await;
    }
    assert!(
        dropped > 0,
        "MaxStartups 3 never dropped an unpaced burst of 5"
    );
}

#[tokio::test]
async fn the_same_inner_address_behind_two_bastions_is_two_hosts() {
    if !sshd::netns_available() {
        return;
    }
    // Two sites, each with its own host at 127.0.0.1:2200 behind its own bastion.
    let (b1, b2) = (Bastion::start(1), Bastion::start(1));
    let (i1, i2) = (inner(&b1, 0), inner(&b2, 0));
    assert_eq!((&i1.address, i1.port), (&i2.address, i2.port));
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let s1 = Session::connect(&i1, &opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Recorded by address alone, the second host would look like the first one's key CHANGED.
    let s2 = Session::connect(&i2, &opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(s1.host_key_fingerprint(), s2.host_key_fingerprint());
    let known = std::fs::read_to_string(dir.path().join("known_hosts")).unwrap();
    let names: Vec<&str> = known
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let jump1 = Session::connect(&jump(&b1), &opts).await.unwrap();
    let jump2 = Session::connect(&jump(&b2), &opts).await.unwrap();
    for j in [&jump1, &jump2] {
        let scoped = format!("[127.0.0.1]:2200@{}", j.host_key_fingerprint());
        assert!(
            names.contains(&scoped.as_str()),
            "{scoped} not in:\n{known}"
        );
    }
    assert!(!names.contains(&"[127.0.0.1]:2200"), "{known}");
    // Each is still checked: both connect again without a complaint.
    Session::connect(&i1, &opts).await.unwrap();
    Session::connect(&i2, &opts).await.unwrap();
}
