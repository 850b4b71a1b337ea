//! `Host::send_tree` over a real sshd: a directory tree arrives whole (nested directories,
//! modes, symlinks kept as links, names past tar's 100-byte field), packed by ferry itself, so
//! a jump host without a `tar` of its own sends it too. One test in its own binary: it empties
//! PATH for this process.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use ferry_bootos::host::{Host, HostError, SshHost};
use ferry_inventory::ssh::{Session, SessionOptions};
use ferry_tests::sshd::{self, Sshd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_a_tree_whole_from_a_jump_host_without_tar() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let local = tempfile::tempdir().unwrap();
    let target = s.target("tree", sshd::KEY_USER);
    let mut opts = SessionOptions::new(local.path().join("known_hosts"));
    opts.connect_timeout = Duration::from_secs(10);
    let h = SshHost::new(Arc::new(Session::connect(&target, &opts).await.unwrap()));

    let tree = local.path().join("repo");
    let long = "d".repeat(60);
    let deep = tree.join("pool/main").join(&long).join(&long);
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(tree.join("Release"), "Origin: ferry\n").unwrap();
    std::fs::write(deep.join("a_1.0_amd64.deb"), vec![7u8; 300_000]).unwrap();
    let script = tree.join("pool/run.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("Release", tree.join("InRelease")).unwrap();

    // The jump host has no tar: nothing of this process may find one.
    let path = std::env::var_os("PATH");
    // This binary holds this one test: no other thread reads PATH meanwhile.
    std::env::set_var("PATH", local.path().join("no-such-bin"));
    let root = h.run_ok("mktemp -d /tmp/ferry-tree.XXXXXX").await.unwrap();
    let dest = format!("{}/repo.partial", root.trim());
    let sent = h.send_tree(&tree, &dest).await;
    if let Some(p) = path {
        std::env::set_var("PATH", p);
    }
    sent.unwrap();

    let listing = h
        .run_ok(&format!(
            "cd {dest} && find . -printf '%y %m %s %p %l\\n' | sort"
        ))
        .await
        .unwrap();
    let mut want = vec![
        "d 755 .".to_string(),
        "d 755 ./pool".into(),
        "d 755 ./pool/main".into(),
        format!("d 755 ./pool/main/{long}"),
        format!("d 755 ./pool/main/{long}/{long}"),
        format!("f 644 300000 ./pool/main/{long}/{long}/a_1.0_amd64.deb"),
        "f 644 14 ./Release".into(),
        "f 750 10 ./pool/run.sh".into(),
        "l 777 ./InRelease Release".into(),
    ];
    want.sort();
    let mut got: Vec<String> = listing
        .lines()
        .map(|l| {
            // Directory sizes depend on the file system: left out.
            let w: Vec<&str> = l.split(' ').collect();
            match w[0] {
                "d" => format!("d {} {}", w[1], w[3]),
                "l" => format!("l {} {} {}", w[1], w[3], w[4]),
                _ => format!("f {} {} {}", w[1], w[2], w[3]),
            }
        })
        .collect();
    got.sort();
    assert_eq!(got, want, "{listing}");

    // A host that cannot unpack says so, naming the directory; the packer stops.
    let err = h.send_tree(&tree, "/proc/ferry-no/repo").await.unwrap_err();
    assert!(matches!(err, HostError::Failed { .. }), "{err}");
    assert!(err.to_string().contains("/proc/ferry-no/repo"), "{err}");
}
