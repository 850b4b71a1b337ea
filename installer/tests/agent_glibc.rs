//! The agent must start on CentOS 7 (glibc 2.17). `scripts/build-compat.sh` builds such a
//! binary with cargo-zigbuild and checks its GLIBC_ symbol versions; these tests prove the check
//! can fail (the normal build on this machine needs a newer glibc) and, when a compat binary is
//! given in FERRY_COMPAT_BIN, that it passes and speaks the agent protocol.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-compat.sh")
}

fn have_objdump() -> bool {
    let found = Command::new("objdump").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but objdump is missing (apt-get install binutils)"
        );
        eprintln!("SKIPPED (not in CI): objdump missing; apt-get install binutils");
    }
    found
}

#[test]
fn the_glibc_check_flags_a_binary_that_needs_a_newer_glibc() {
    if !have_objdump() {
        return;
    }
    let out = Command::new("bash")
        .arg(script())
        .arg("--check-only")
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("more than 2.17"), "{stderr}");
    assert!(stderr.contains("(GLIBC_2."), "names the symbols: {stderr}");
}

#[test]
fn the_compat_binary_needs_at_most_glibc_2_17_and_speaks_the_protocol() {
    let Some(bin) = ferry_tests::compat_binary() else {
        return;
    };
    if !have_objdump() {
        return;
    }
    let out = Command::new("bash")
        .arg(script())
        .arg("--check-only")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&bin)
        .arg("agent")
        .arg("--root")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut hello = String::new();
    out.read_line(&mut hello).unwrap();
    let want = format!(
        "{{\"hello\":{{\"protocol\":{}",
        ferry_inventory::agent::PROTOCOL_VERSION
    );
    assert!(hello.starts_with(&want), "{hello}");
    let mut inp = child.stdin.take().unwrap();
    writeln!(inp, r#"{{"id":1,"op":"exit"}}"#).unwrap();
    let mut resp = String::new();
    out.read_line(&mut resp).unwrap();
    assert!(resp.starts_with(r#"{"id":1,"ok""#), "{resp}");
    assert!(child.wait().unwrap().success());
}
