//! Uploads against real sshd: verify, skip, resume after sshd dies, disk full, banners, sudo.
#![allow(clippy::unwrap_used)]

#[path = "ssh_common.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use ferry_inventory::ssh::{Pool, Session};
use ferry_inventory::transfer::{
    upload, upload_many, LocalFile, TransferError, TransferEvent, UploadOptions, UploadOutcome,
};
use ferry_inventory::{Secret, Sudo};
use ferry_tests::sshd::{self, ScratchDir, SmallDisk, Sshd, SshdOptions};

/// Writes `size` bytes of deterministic noise (incompressible, so nothing is cheated).
fn noise_file(path: &Path, size: usize, seed: u64) {
    ferry_tests::noise::write_file(path, size as u64, seed).unwrap();
}

/// A directory the given user owns (the "remote" disk is this machine's).
fn owned_dir(user: &str) -> ScratchDir {
    let d = ScratchDir::new("upload");
    let ok = Command::new("chown")
        .arg(user)
        .arg(d.path())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    d
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn no_progress(_: TransferEvent) {}

#[tokio::test]
async fn uploads_verifies_and_skips_an_identical_file() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    noise_file(&src, 5 << 20, 1);
    let file = LocalFile::open(&src).await.unwrap();
    assert_eq!(file.sha256, sha256_of(&src));
    let dest_dir = owned_dir(sshd::KEY_USER);
    let dest = dest_dir.path().join("sub/blob");
    let dest_s = dest.to_str().unwrap();
    let sess = Session::connect(&key_target("k", &s, sshd::KEY_USER), &options(dir.path()))
        .await
        .unwrap();
    let events = Mutex::new(Vec::new());
    let record = |e: TransferEvent| events.lock().unwrap().push(e);
    let out = upload(&sess, &file, dest_s, &UploadOptions::default(), &record)
        .await
        .unwrap();
    assert_eq!(out, UploadOutcome::Uploaded { resumed_from: 0 });
    assert_eq!(sha256_of(&dest), file.sha256);
    assert!(!Path::new(&format!("{dest_s}.ferry-partial")).exists());
    {
        let ev = events.lock().unwrap();
        assert!(matches!(
            ev.first(),
            Some(TransferEvent::Started { offset: 0, .. })
        ));
        assert!(ev.contains(&TransferEvent::Progress {
            host: "k".into(),
            done: 5 << 20,
            size: 5 << 20
        }));
        assert_eq!(ev.last(), Some(&TransferEvent::Done { host: "k".into() }));
    }
    let again = upload(
        &sess,
        &file,
        dest_s,
        &UploadOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(again, UploadOutcome::AlreadyPresent);
    // Mode applied.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[tokio::test]
async fn does_not_trust_a_partial_file_with_a_foreign_prefix() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    noise_file(&src, 3 << 20, 2);
    let file = LocalFile::open(&src).await.unwrap();
    let dest_dir = owned_dir(sshd::KEY_USER);
    let dest = dest_dir.path().join("blob");
    let partial = dest_dir.path().join("blob.ferry-partial");
    noise_file(&partial, 1 << 20, 99);
    let _ = Command::new("chown")
        .arg(sshd::KEY_USER)
        .arg(&partial)
        .status();
    let sess = Session::connect(&key_target("k", &s, sshd::KEY_USER), &options(dir.path()))
        .await
        .unwrap();
    let out = upload(
        &sess,
        &file,
        dest.to_str().unwrap(),
        &UploadOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(out, UploadOutcome::Uploaded { resumed_from: 0 });
    assert_eq!(sha256_of(&dest), file.sha256);
}

#[tokio::test]
async fn resumes_after_sshd_is_killed_mid_upload() {
    if !sshd::available() {
        return;
    }
    let mut s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big");
    let size = 256usize << 20;
    noise_file(&src, size, 3);
    let file = LocalFile::open(&src).await.unwrap();
    let dest_dir = owned_dir(sshd::KEY_USER);
    let dest = dest_dir.path().join("big");
    let dest_s = dest.to_str().unwrap().to_string();
    let target = key_target("k", &s, sshd::KEY_USER);
    let opts = options(dir.path());

    // Kill sshd (and the connection's processes) once 48 MiB are on the way; the upload waits
    // in its progress callback until the kill is done, so it cannot finish first.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<()>();
    let trip_state = Mutex::new(Some((tx, ack_rx)));
    let trip = move |e: TransferEvent| {
        if let TransferEvent::Progress { done, .. } = e {
            if done >= 48 << 20 {
                if let Some((tx, ack)) = trip_state.lock().unwrap().take() {
                    let _ = tx.send(());
                    let _ = ack.recv();
                }
            }
        }
    };
    let sess = Session::connect(&target, &opts).await.unwrap();
    let up = UploadOptions::default();
    let uploading = upload(&sess, &file, &dest_s, &up, &trip);
    let killer = tokio::task::spawn_blocking(move || {
        rx.recv().unwrap();
        s.kill();
        let _ = ack_tx.send(());
        s
    });
    let first = uploading.await;
    let mut s = killer.await.unwrap();
    let err = first.unwrap_err();
    assert!(
        matches!(
            err,
            TransferError::Interrupted { .. } | TransferError::Ssh(_)
        ),
        "{err}"
    );
    let partial = format!("{dest_s}.ferry-partial");
    // Give the orphaned `cat` a moment to flush and exit.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    assert!(have > 0 && have < size as u64, "partial has {have} bytes");

    s.restart();
    let sess = Session::connect(&target, &opts).await.unwrap();
    let out = upload(
        &sess,
        &file,
        &dest_s,
        &UploadOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(out, UploadOutcome::Uploaded { resumed_from: have });
    assert_eq!(sha256_of(&dest), file.sha256);
}

#[tokio::test]
async fn a_full_remote_disk_is_a_clear_error_and_leaves_nothing() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    noise_file(&src, 4 << 20, 4);
    let file = LocalFile::open(&src).await.unwrap();
    let disk = SmallDisk::mount(1024);
    let dest = disk.path().join("blob");
    let sess = Session::connect(&key_target("k", &s, sshd::KEY_USER), &options(dir.path()))
        .await
        .unwrap();
    let err = upload(
        &sess,
        &file,
        dest.to_str().unwrap(),
        &UploadOptions::default(),
        &no_progress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("no space left"), "{err}");
    let left: Vec<_> = std::fs::read_dir(disk.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn uploads_through_a_banner_printing_login_shell() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start_with(SshdOptions {
        banner: true,
        ..SshdOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    noise_file(&src, 1 << 20, 5);
    let file = LocalFile::open(&src).await.unwrap();
    let dest_dir = owned_dir(sshd::BANNER_USER);
    let dest = dest_dir.path().join("blob");
    let sess = Session::connect(
        &key_target("b", &s, sshd::BANNER_USER),
        &options(dir.path()),
    )
    .await
    .unwrap();
    for expected in [
        UploadOutcome::Uploaded { resumed_from: 0 },
        UploadOutcome::AlreadyPresent,
    ] {
        let out = upload(
            &sess,
            &file,
            dest.to_str().unwrap(),
            &UploadOptions::default(),
            &no_progress,
        )
        .await
        .unwrap();
        assert_eq!(out, expected);
    }
    assert_eq!(sha256_of(&dest), file.sha256);
}

#[tokio::test]
async fn uploads_as_root_with_a_sudo_password() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    noise_file(&src, 2 << 20, 6);
    let file = LocalFile::open(&src).await.unwrap();
    // Root-owned, 0755: only root may write here.
    let dest_dir = ScratchDir::new("rootdest");
    let dest = dest_dir.path().join("blob");
    let mut t = key_target("sudopw", &s, sshd::SUDO_PASSWORD_USER);
    t.sudo = Sudo::Password(Secret::new(sshd::PASSWORD));
    let sess = Session::connect(&t, &options(dir.path())).await.unwrap();
    let opts = UploadOptions {
        as_root: true,
        mode: 0o600,
        staged: None,
    };
    upload(&sess, &file, dest.to_str().unwrap(), &opts, &no_progress)
        .await
        .unwrap();
    assert_eq!(sha256_of(&dest), file.sha256);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&dest).unwrap().uid(), 0);
    assert!(!host_log(dir.path(), "sudopw").contains(sshd::PASSWORD));
}

#[tokio::test]
async fn uploads_to_many_hosts_with_overall_progress() {
    if !sshd::available() {
        return;
    }
    let servers: Vec<Sshd> = (0..4).map(|_| Sshd::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    noise_file(&src, 2 << 20, 7);
    let file = LocalFile::open(&src).await.unwrap();
    let pool = Arc::new(Pool::new(options(dir.path())));
    // All "hosts" share this machine's disk: give each its own login user, and upload to a
    // path relative to the login's home.
    let users = [
        sshd::KEY_USER,
        sshd::SUDO_USER,
        sshd::SUDO_PASSWORD_USER,
        sshd::BANNER_USER,
    ];
    let rel = format!("ferrytest-many-{}/blob", std::process::id());
    let targets: Vec<_> = servers
        .iter()
        .zip(users)
        .enumerate()
        .map(|(i, (s, u))| key_target(&format!("h{i}"), s, u))
        .collect();
    let last = Arc::new(Mutex::new(None));
    let l2 = last.clone();
    let results = upload_many(
        pool.clone(),
        &targets,
        &file,
        &rel,
        &UploadOptions::default(),
        Arc::new(move |e| {
            if let TransferEvent::Overall { .. } = e {
                *l2.lock().unwrap() = Some(e);
            }
        }),
    )
    .await;
    assert_eq!(results.len(), 4);
    for (name, r) in &results {
        assert!(
            r.is_ok(),
            "{name}: {:?}",
            r.as_ref().err().map(|e| e.to_string())
        );
    }
    for u in users {
        let placed = Path::new("/home").join(u).join(&rel);
        assert_eq!(sha256_of(&placed), file.sha256, "{u}");
        let _ = std::fs::remove_dir_all(placed.parent().unwrap());
    }
    match last.lock().unwrap().clone() {
        Some(TransferEvent::Overall {
            hosts_finished,
            hosts,
            done,
            total,
        }) => {
            assert_eq!((hosts_finished, hosts), (4, 4));
            assert_eq!((done, total), (4 * file.size, 4 * file.size));
        }
        other => panic!("no overall progress: {other:?}"),
    }
    assert_eq!(pool.len().await, 4);
}

#[tokio::test]
async fn places_a_copy_the_relay_left_on_the_host_instead_of_sending_it() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    noise_file(&src, 3 << 20, 7);
    let file = LocalFile::open(&src).await.unwrap();
    let host_dir = owned_dir(sshd::KEY_USER);
    let store = host_dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(&src, store.join(&file.sha256)).unwrap();
    let ok = Command::new("chown")
        .args(["-R", sshd::KEY_USER])
        .arg(&store)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let opts = UploadOptions {
        staged: Some(store.to_str().unwrap().to_string()),
        ..UploadOptions::default()
    };
    let sess = Session::connect(&key_target("k", &s, sshd::KEY_USER), &options(dir.path()))
        .await
        .unwrap();
    let dest = host_dir.path().join("placed");
    let out = upload(&sess, &file, dest.to_str().unwrap(), &opts, &no_progress)
        .await
        .unwrap();
    assert_eq!(out, UploadOutcome::Staged);
    assert_eq!(sha256_of(&dest), file.sha256);
    // A staged copy that is not what its name says is removed, and the bytes are sent.
    let bad = host_dir.path().join("second");
    std::fs::write(store.join(&file.sha256), b"not the blob").unwrap();
    let out = upload(&sess, &file, bad.to_str().unwrap(), &opts, &no_progress)
        .await
        .unwrap();
    assert_eq!(out, UploadOutcome::Uploaded { resumed_from: 0 });
    assert_eq!(sha256_of(&bad), file.sha256);
    assert!(!store.join(&file.sha256).exists());
}
