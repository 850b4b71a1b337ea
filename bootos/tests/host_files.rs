//! `Host`'s file primitives over a real sshd: a write creates missing parents readable by
//! everyone (0755, whatever umask the write itself runs under), and restoring a file that was
//! absent removes it and the directories the write created, but never a directory that holds
//! something else.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ferry_bootos::host::{FileState, Host, SshHost};
use ferry_inventory::ssh::{Session, SessionOptions};
use ferry_inventory::{Auth, Sudo, Target};
use ferry_tests::sshd::{self, Sshd};

async fn host(s: &Sshd, dir: &std::path::Path) -> SshHost {
    let target = Target {
        name: "files".into(),
        address: s.address.clone(),
        port: s.port,
        user: sshd::KEY_USER.into(),
        auth: Auth::Key {
            path: sshd::fixture().keys.ed25519.clone(),
            passphrase: None,
        },
        sudo: Sudo::None,
        bastion: None,
    };
    let mut opts = SessionOptions::new(dir.join("known_hosts"));
    opts.connect_timeout = Duration::from_secs(10);
    SshHost::new(Arc::new(Session::connect(&target, &opts).await.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_an_absent_file_removes_only_the_empty_directories_its_write_made() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let local = tempfile::tempdir().unwrap();
    let h = host(&s, local.path()).await;
    let root = h.run_ok("mktemp -d /tmp/ferry-files.XXXXXX").await.unwrap();
    let root = root.trim();
    let file = format!("{root}/a/b/c.conf");

    let before = h.read_file(&file).await.unwrap();
    assert!(!before.exists());
    assert_eq!(
        before.missing_dirs,
        [format!("{root}/a/b"), format!("{root}/a")],
        "the absent parents, innermost first"
    );

    h.write_file(&file, b"x = 1\n", 0o600).await.unwrap();
    let modes = h
        .run_ok(&format!("stat -c '%a %n' {root}/a {root}/a/b {file}"))
        .await
        .unwrap();
    assert_eq!(
        modes,
        format!("755 {root}/a\n755 {root}/a/b\n600 {file}\n"),
        "parents 0755, the file its own mode"
    );
    let now = h.read_file(&file).await.unwrap();
    assert_eq!(now.content.as_deref(), Some("x = 1\n"));
    assert_eq!(now.mode, Some(0o600));

    // Something else was put in `a` meanwhile: `a/b` goes, `a` stays with it.
    h.run_ok(&format!("touch {root}/a/other")).await.unwrap();
    h.restore_file(&file, &before).await.unwrap();
    let left = h
        .run_ok(&format!("cd {root} && find . | sort"))
        .await
        .unwrap();
    assert_eq!(left, ".\n./a\n./a/other\n");

    // Without it, the whole tree the write made goes.
    h.write_file(&file, b"x = 2\n", 0o644).await.unwrap();
    h.run_ok(&format!("rm {root}/a/other")).await.unwrap();
    // The undo data as the journal keeps it: it round-trips through JSON.
    let before: FileState = serde_json::from_str(&format!(
        "{{\"content\":null,\"mode\":null,\"missing_dirs\":[\"{root}/a/b\",\"{root}/a\"]}}"
    ))
    .unwrap();
    h.restore_file(&file, &before).await.unwrap();
    let left = h
        .run_ok(&format!("cd {root} && find . | sort"))
        .await
        .unwrap();
    assert_eq!(left, ".\n", "nothing the write made is left");
    h.run_ok(&format!("rmdir {root}")).await.unwrap();
}
