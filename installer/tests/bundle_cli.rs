//! `ferry bundle` and `ferry key` through the real binary: the issue's plain-files bundle.toml
//! built, verified, inspected, split and extracted; bad input ending in one line and a failing
//! exit code; `--help` that fits 80 columns; verify memory that does not grow with the bundle.
#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

fn ferry(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("FERRY_SIGN_KEY")
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The failure's stderr, which must be exactly one line.
fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected failure, got success: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8(o.stderr.clone()).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert_eq!(lines.len(), 1, "error is not one line: {err}");
    lines[0].to_string()
}

/// A directory with the issue's bundle.toml (a payload directory) and a key pair.
fn site() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    fs::create_dir_all(p.join("payload/docs")).unwrap();
    fs::write(p.join("payload/docs/a.txt"), "alpha\n".repeat(20_000)).unwrap();
    let random = ferry_tests::noise::bytes(200_000, 0x2545_F491_4F6C_DD1D);
    fs::write(p.join("payload/blob.bin"), random).unwrap();
    fs::write(
        p.join("bundle.toml"),
        "[bundle]\nname = \"demo\"\nversion = \"1.0.0\"\n\n[[files]]\nname = \"payload\"\npath = \"payload\"      # a file or a whole directory\n",
    )
    .unwrap();
    ok(&ferry(&["key", "generate", "-o", "key"], p));
    d
}

#[test]
fn key_generate_writes_a_private_key_only_its_owner_can_read() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(&ferry(&["key", "generate", "-o", "k"], d.path()));
    assert!(out.contains("key id"), "{out}");
    let mode = fs::metadata(d.path().join("k"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let public = fs::read_to_string(d.path().join("k.pub")).unwrap();
    assert!(public.starts_with("-----BEGIN FERRY ED25519 PUBLIC KEY-----"));
    let private = fs::read_to_string(d.path().join("k")).unwrap();
    let err = fails(&ferry(&["key", "generate", "-o", "k"], d.path()));
    assert!(
        err.contains("k: already exists; will not overwrite a key"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(d.path().join("k")).unwrap(), private);
}

#[test]
fn builds_verifies_inspects_splits_and_extracts_the_issue_example() {
    let d = site();
    let p = d.path();
    let out = ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "demo.bundle",
            "--sign-key",
            "key",
        ],
        p,
    ));
    assert!(
        out.contains("payload") && out.contains("signed by key"),
        "{out}"
    );
    let out = ok(&ferry(
        &[
            "bundle",
            "verify",
            "demo.bundle",
            "--pubkey",
            "key.pub",
            "--deep",
        ],
        p,
    ));
    assert!(out.starts_with("OK: demo 1.0.0"), "{out}");

    let json = ok(&ferry(
        &[
            "bundle",
            "inspect",
            "demo.bundle",
            "--json",
            "--pubkey",
            "key.pub",
        ],
        p,
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["manifest"]["name"], "demo");
    assert_eq!(v["manifest"]["items"][0]["name"], "payload");
    assert_eq!(v["manifest"]["items"][0]["kind"], "file");
    assert!(v["signature"].as_str().unwrap().starts_with("verified"));
    let table = ok(&ferry(&["bundle", "inspect", "demo.bundle"], p));
    assert!(
        table.contains("payload") && table.contains("not checked"),
        "{table}"
    );

    ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "split.bundle",
            "--sign-key",
            "key",
            "--max-part-size",
            "64K",
        ],
        p,
    ));
    assert!(p.join("split.bundle.part002").exists());
    ok(&ferry(
        &["bundle", "verify", "split.bundle", "--pubkey", "key.pub"],
        p,
    ));
    ok(&ferry(
        &[
            "bundle",
            "extract",
            "split.bundle.parts",
            "payload",
            "-o",
            "x",
            "--pubkey",
            "key.pub",
        ],
        p,
    ));
    assert_eq!(
        fs::read(p.join("x/payload/blob.bin")).unwrap(),
        fs::read(p.join("payload/blob.bin")).unwrap()
    );
    assert_eq!(
        fs::read(p.join("x/payload/docs/a.txt")).unwrap(),
        fs::read(p.join("payload/docs/a.txt")).unwrap()
    );
}

#[test]
fn verify_fails_naming_the_damaged_item() {
    let d = site();
    let p = d.path();
    ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "demo.bundle",
            "--sign-key",
            "key",
        ],
        p,
    ));
    let mut bytes = fs::read(p.join("demo.bundle")).unwrap();
    bytes[5000] ^= 0x01;
    fs::write(p.join("demo.bundle"), &bytes).unwrap();
    let err = fails(&ferry(
        &["bundle", "verify", "demo.bundle", "--pubkey", "key.pub"],
        p,
    ));
    assert!(
        err.starts_with("error: verifying bundle: ") && err.contains("(item payload) is corrupt"),
        "{err}"
    );
}

#[test]
fn refuses_a_wrong_key_an_unsigned_bundle_and_a_bad_part_size() {
    let d = site();
    let p = d.path();
    ok(&ferry(&["key", "generate", "-o", "other"], p));
    ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "demo.bundle",
            "--sign-key",
            "key",
        ],
        p,
    ));
    let err = fails(&ferry(
        &["bundle", "verify", "demo.bundle", "--pubkey", "other.pub"],
        p,
    ));
    assert!(err.contains("not by the given public key"), "{err}");
    let o = ferry(
        &["bundle", "build", "bundle.toml", "-o", "unsigned.bundle"],
        p,
    );
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: no --sign-key"));
    let err = fails(&ferry(
        &["bundle", "verify", "unsigned.bundle", "--pubkey", "key.pub"],
        p,
    ));
    assert!(err.contains("is not signed (no manifest.sig)"), "{err}");
    let o = ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "x.bundle",
            "--max-part-size",
            "4X",
        ],
        p,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"4X\" is not a size"));
    let err = fails(&ferry(
        &["bundle", "verify", "missing.bundle", "--pubkey", "key.pub"],
        p,
    ));
    assert!(err.contains("no such file, and no parts index"), "{err}");
}

#[test]
fn a_pinned_mismatch_fails_the_build_with_one_line_and_no_output() {
    let d = site();
    let p = d.path();
    fs::write(p.join("k3s"), "#!/bin/sh\necho k3s STAND-IN\n").unwrap();
    fs::write(p.join("airgap.tar"), "STAND-IN").unwrap();
    let good = ferry_bundle::Digest::of(b"STAND-IN");
    fs::write(
        p.join("bundle.toml"),
        format!(
            "[bundle]\nname = \"demo\"\nversion = \"1\"\n[k3s]\nversion = \"v1.30.4+k3s1\"\n\
             binary = {{ path = \"k3s\", sha256 = \"{}\" }}\nairgap_images = {{ path = \"airgap.tar\", sha256 = \"{good}\" }}\n",
            "a".repeat(64)
        ),
    )
    .unwrap();
    let before: Vec<_> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let err = fails(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "demo.bundle",
            "--sign-key",
            "key",
        ],
        p,
    ));
    assert!(
        err.contains("k3s binary ./k3s: sha256 mismatch: bundle.toml pins sha256:aaaa"),
        "{err}"
    );
    let after: Vec<_> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "a failed build left {after:?}");
}

#[test]
fn help_fits_80_columns() {
    for args in [
        vec!["bundle", "--help"],
        vec!["bundle", "build", "--help"],
        vec!["bundle", "verify", "--help"],
        vec!["bundle", "inspect", "--help"],
        vec!["bundle", "extract", "--help"],
        vec!["key", "generate", "--help"],
    ] {
        let out = ok(&ferry(&args, Path::new(".")));
        for line in out.lines() {
            assert!(line.chars().count() <= 80, "{args:?}: {line:?}");
        }
    }
}

/// Peak RSS in KiB of `ferry ARGS` measured by GNU time, or None when it is not installed.
fn peak_rss_kib(args: &[&str], cwd: &Path) -> Option<u64> {
    if !Path::new("/usr/bin/time").exists() {
        return None;
    }
    let o = Command::new("/usr/bin/time")
        .args(["-f", "%M", env!("CARGO_BIN_EXE_ferry")])
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8(o.stderr).unwrap();
    Some(err.lines().last().unwrap().trim().parse().unwrap())
}

#[test]
fn verify_memory_does_not_grow_with_the_bundle() {
    if !Path::new("/usr/bin/time").exists() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("/usr/bin/time is missing: apt-get install time");
        }
        eprintln!("SKIPPED verify_memory_does_not_grow_with_the_bundle: /usr/bin/time is missing (apt-get install time)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&ferry(&["key", "generate", "-o", "key"], p));
    let mut rss = vec![];
    for (name, mib) in [("small", 8usize), ("large", 160)] {
        fs::create_dir_all(p.join(name)).unwrap();
        // Half text, half pseudo-random, so both storage paths are used.
        let random = ferry_tests::noise::bytes(mib << 19, 88172645463325252);
        fs::write(p.join(name).join("random.bin"), random).unwrap();
        let text: String = (0..(mib << 19) / 32)
            .map(|i| format!("{i:>12} some log text..\n"))
            .collect();
        fs::write(p.join(name).join("text.log"), text).unwrap();
        fs::write(
            p.join(format!("{name}.toml")),
            format!(
                "[bundle]\nname = \"{name}\"\nversion = \"1\"\n[[files]]\nname = \"r\"\npath = \"{name}/random.bin\"\n[[files]]\nname = \"t\"\npath = \"{name}/text.log\"\n"
            ),
        )
        .unwrap();
        let bundle = format!("{name}.bundle");
        let build = peak_rss_kib(
            &[
                "bundle",
                "build",
                &format!("{name}.toml"),
                "-o",
                &bundle,
                "--sign-key",
                "key",
            ],
            p,
        )
        .unwrap();
        let verify = peak_rss_kib(
            &["bundle", "verify", &bundle, "--pubkey", "key.pub", "--deep"],
            p,
        )
        .unwrap();
        rss.push((build, verify));
    }
    let (small, large) = (rss[0], rss[1]);
    eprintln!(
        "peak RSS KiB (build, verify --deep): 8 MiB input {small:?}, 160 MiB input {large:?}"
    );
    assert!(
        large.1 < 64 * 1024 && large.0 < 64 * 1024,
        "over 64 MiB: {large:?}"
    );
    assert!(
        large.1 < small.1 + 8 * 1024,
        "verify memory grew with size: {small:?} -> {large:?}"
    );
    assert!(
        large.0 < small.0 + 24 * 1024,
        "build memory grew with size: {small:?} -> {large:?}"
    );
}

#[test]
fn extract_requires_a_pubkey_or_an_explicit_insecure_flag() {
    let d = site();
    let p = d.path();
    ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "demo.bundle",
            "--sign-key",
            "key",
        ],
        p,
    ));
    let o = ferry(&["bundle", "extract", "demo.bundle", "-o", "x"], p);
    assert!(!o.status.success(), "extract without --pubkey succeeded");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--pubkey") && err.contains("--insecure-skip-signature"),
        "{err}"
    );
    assert!(!p.join("x").exists(), "an unchecked extract wrote x/");
    let o = ferry(
        &[
            "bundle",
            "extract",
            "demo.bundle",
            "-o",
            "x",
            "--insecure-skip-signature",
        ],
        p,
    );
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the signature is not checked"),
        "no warning"
    );
    assert_eq!(
        fs::read(p.join("x/payload/blob.bin")).unwrap(),
        fs::read(p.join("payload/blob.bin")).unwrap()
    );
}

#[test]
fn a_closed_stdout_ends_ferry_quietly() {
    // `ferry ... | head`: the reader is gone before ferry writes. No panic, no "Broken pipe".
    let d = site();
    let p = d.path();
    ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "demo.bundle",
            "--sign-key",
            "key",
        ],
        p,
    ));
    for args in [
        vec!["--help"],
        vec!["bundle", "inspect", "demo.bundle", "--pubkey", "key.pub"],
        vec!["bundle", "inspect", "demo.bundle", "--json"],
    ] {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        drop(read_end);
        let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(&args)
            .current_dir(p)
            .stdout(std::process::Stdio::from(write_end))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}
