//! `Host`'s file primitives over a real sshd: a write creates missing parents readable by
//! everyone (0755, whatever umask the write itself runs under), and restoring a file that was
//! absent removes it and the directories the write created, but never a directory that holds
//! something else. A plan's files read in one command are the same as read one by one.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ferry_bootos::host::{FileState, Host, Prefetched, SshHost};
use ferry_inventory::ssh::{Session, SessionOptions};
use ferry_tests::sshd::{self, Sshd};

async fn host(s: &Sshd, dir: &std::path::Path) -> SshHost {
    let target = s.target("files", sshd::KEY_USER);
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
    assert_eq!(now.text(), Some("x = 1\n"));
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

/// A host reached as the harness's banner user: its `.bashrc` prints a banner on stdout (and a
/// line on stderr) before every command, as many sites' login shells do.
async fn banner_host(s: &Sshd, dir: &std::path::Path) -> SshHost {
    let target = s.target("banner", sshd::BANNER_USER);
    let mut opts = SessionOptions::new(dir.join("known_hosts"));
    opts.connect_timeout = Duration::from_secs(10);
    SshHost::new(Arc::new(Session::connect(&target, &opts).await.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_shell_banner_and_binary_bytes_do_not_corrupt_a_file_read_or_restored() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let local = tempfile::tempdir().unwrap();
    let h = banner_host(&s, local.path()).await;
    // The banner really is there, before every command's output.
    let said = h.run_ok("echo hello").await.unwrap();
    assert!(said.contains(sshd::BANNER_TEXT), "{said:?}");
    let root = h
        .run_ok("mktemp -d /tmp/ferry-banner.XXXXXX")
        .await
        .unwrap();
    let root = root.lines().last().unwrap().trim().to_string();

    // Text whose first line looks like a mode, with no final newline.
    let text = format!("644\n{}\nlast line", sshd::BANNER_TEXT);
    // Every byte value, invalid UTF-8 included.
    let binary: Vec<u8> = (0..=255u8).chain([0xff, 0xfe, 0x00, b'\n']).collect();
    for (name, content) in [("text.conf", text.as_bytes()), ("blob.bin", &binary[..])] {
        let path = format!("{root}/{name}");
        h.write_file(&path, content, 0o640).await.unwrap();
        let read = h.read_file(&path).await.unwrap();
        assert_eq!(
            read.bytes(),
            Some(content),
            "{name} read back byte for byte"
        );
        assert_eq!(read.mode, Some(0o640), "{name}");
        // The snapshot goes through a journal (JSON) and back onto the host unchanged.
        let journaled: FileState =
            serde_json::from_str(&serde_json::to_string(&read).unwrap()).unwrap();
        assert_eq!(journaled, read);
        h.write_file(&path, b"changed\n", 0o600).await.unwrap();
        h.restore_file(&path, &journaled).await.unwrap();
        let sums = h
            .run_ok(&format!("sha256sum {path} && stat -c %a {path}"))
            .await
            .unwrap();
        assert!(
            sums.contains(&ferry_bootos::host::sha256_hex(content)) && sums.ends_with("640\n"),
            "{name} restored exactly: {sums}"
        );
    }
    let absent = h.read_file(&format!("{root}/none/x")).await.unwrap();
    assert!(!absent.exists());
    assert_eq!(absent.missing_dirs, [format!("{root}/none")]);
    h.run_ok(&format!("rm -rf {root}")).await.unwrap();
}

/// What a plan reads in one command ([`Prefetched`]) is, file for file, what `read_file` reads
/// alone, behind a login shell that prints a banner: text, every byte value, an absent file
/// with its absent parents, and an empty file; a probe's output is what `run` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_read_at_once_are_the_files_read_one_by_one() {
    if !sshd::available() {
        return;
    }
    let s = Sshd::start();
    let local = tempfile::tempdir().unwrap();
    let h = banner_host(&s, local.path()).await;
    let root = h
        .run_ok("mktemp -d /tmp/ferry-prefetch.XXXXXX")
        .await
        .unwrap();
    let root = root.lines().last().unwrap().trim().to_string();
    let binary: Vec<u8> = (0..=255u8).chain([0xff, 0x00]).collect();
    let text = format!("{}\nFERRY-0000000000000000 end\n", sshd::BANNER_TEXT);
    h.write_file(&format!("{root}/text.conf"), text.as_bytes(), 0o640)
        .await
        .unwrap();
    h.write_file(&format!("{root}/blob.bin"), &binary, 0o600)
        .await
        .unwrap();
    h.write_file(&format!("{root}/empty"), b"", 0o644)
        .await
        .unwrap();
    let paths: Vec<String> = ["text.conf", "blob.bin", "gone/x", "empty", "text.conf"]
        .iter()
        .map(|p| format!("{root}/{p}"))
        .collect();
    // Probes as resources run them: output without a final newline, stderr, a failure.
    let probes: Vec<String> = vec![
        format!("printf 'a\\nb' && cat {root}/text.conf"),
        "echo out; echo err >&2; exit 3".to_string(),
        format!("cat {root}/none"),
    ];
    let at_once = Prefetched::new(&h, &paths, &probes).await;
    assert_eq!(
        at_once.len(),
        7,
        "every distinct file, the absent one included, and every probe"
    );
    for p in &probes {
        let (ahead, alone) = (at_once.run(p).await.unwrap(), h.run(p).await.unwrap());
        assert_eq!(
            (ahead.status, &ahead.described),
            (alone.status, &alone.described),
            "{p}"
        );
        // The banner user's login shell prints (on both outputs) before what `run` returns
        // alone; read ahead, there is only the probe's own.
        assert!(
            alone.stdout.ends_with(&ahead.stdout) && alone.stderr.ends_with(&ahead.stderr),
            "{p}: {ahead:?} {alone:?}"
        );
    }
    assert_eq!(at_once.run(&probes[1]).await.unwrap().stdout, "out\n");
    assert_eq!(at_once.run(&probes[1]).await.unwrap().stderr, "err\n");
    assert_eq!(at_once.run(&probes[1]).await.unwrap().status, Some(3));
    for p in &paths {
        assert_eq!(
            at_once.read_file(p).await.unwrap(),
            h.read_file(p).await.unwrap(),
            "{p}"
        );
    }
    assert_eq!(
        at_once
            .read_file(&format!("{root}/gone/x"))
            .await
            .unwrap()
            .missing_dirs,
        [format!("{root}/gone")]
    );
    // They were read before: a change since is not seen through it (a plan only reads), and
    // a file it was not given is read from the host.
    h.write_file(&format!("{root}/empty"), b"now\n", 0o644)
        .await
        .unwrap();
    h.write_file(&format!("{root}/other"), b"o\n", 0o644)
        .await
        .unwrap();
    let empty = at_once.read_file(&format!("{root}/empty")).await.unwrap();
    assert_eq!(empty.bytes(), Some(&b""[..]));
    let other = at_once.read_file(&format!("{root}/other")).await.unwrap();
    assert_eq!(other.text(), Some("o\n"));
    h.run_ok(&format!("rm -rf {root}")).await.unwrap();
}
