//! `ferry bundle` and `ferry key` through the real binary: the issue's plain-files bundle.toml
//! built, verified, inspected, split and extracted; bad input ending in one line and a failing
//! exit code; `--help` that fits 80 columns; verify memory that does not grow with the bundle.
#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

mod cli;
use cli::{fails, ferry, ok};

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
    assert_eq!(v["signature"]["state"], "verified");
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
    // Every part holds at most --max-part-size bytes, every part but the last exactly that
    // (issue 11 item 1: a part one byte too large does not fit the medium it was cut for).
    let mut parts: Vec<_> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.to_string_lossy().contains("split.bundle.part0"))
        .collect();
    parts.sort();
    let (last, full) = parts.split_last().unwrap();
    for part in full {
        assert_eq!(fs::metadata(part).unwrap().len(), 64 * 1024, "{part:?}");
    }
    assert!(fs::metadata(last).unwrap().len() <= 64 * 1024);
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

/// `ferry bundle inspect` as a user reads it: the build date as a date, a directory item as
/// `dir`; golden text in `tests/data/inspect/` (`UPDATE_GOLDEN=1` rewrites it) with the
/// random key's id replaced by `KEYID`. `--json` names the signature's state, key and
/// algorithm as fields.
#[test]
fn inspect_shows_a_date_a_dir_kind_and_a_structured_signature() {
    let d = site();
    let p = d.path();
    fs::write(p.join("notes.txt"), "read me\n").unwrap();
    fs::write(
        p.join("bundle.toml"),
        "[bundle]\nname = \"demo\"\nversion = \"1.0.0\"\n\n\
         [[files]]\nname = \"payload\"\npath = \"payload\"\n\n\
         [[files]]\nname = \"notes\"\npath = \"notes.txt\"\n",
    )
    .unwrap();
    ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "b",
            "--sign-key",
            "key",
        ],
        p,
    ));
    let key_id = ok(&ferry(&["bundle", "verify", "b", "--pubkey", "key.pub"], p));
    let key_id = key_id
        .split("signature by key ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap()
        .to_string();
    let mut g = ferry_tests::golden::Golden::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/inspect");
    for (name, args) in [
        ("unchecked.txt", &["bundle", "inspect", "b"][..]),
        (
            "verified.txt",
            &["bundle", "inspect", "b", "--pubkey", "key.pub"],
        ),
    ] {
        let text = ok(&ferry(args, p)).replace(&key_id, "KEYID");
        g.check(&dir.join(name), &text);
    }
    g.finish(2);

    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&ok(&ferry(args, p))).unwrap()
    };
    let v = json(&["bundle", "inspect", "b", "--json", "--pubkey", "key.pub"]);
    assert_eq!(v["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        v["signature"],
        serde_json::json!({"state": "verified", "key_id": key_id, "algorithm": "ed25519"})
    );
    let v = json(&["bundle", "inspect", "b", "--json"]);
    assert_eq!(
        v["signature"],
        serde_json::json!({"state": "not-checked", "key_id": key_id, "algorithm": "ed25519"})
    );
    ok(&ferry(&["bundle", "build", "bundle.toml", "-o", "u"], p));
    let v = json(&["bundle", "inspect", "u", "--json"]);
    assert_eq!(
        v["signature"],
        serde_json::json!({"state": "unsigned", "key_id": null, "algorithm": null})
    );
}

/// Without `SOURCE_DATE_EPOCH` a bundle records when it was built (not 1970); with it, the
/// epoch, so reproducible builds stay byte for byte the same.
#[test]
fn a_build_without_source_date_epoch_records_its_build_time() {
    let d = site();
    let p = d.path();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["bundle", "build", "bundle.toml", "-o", "now.bundle"])
        .current_dir(p)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("FERRY_SIGN_KEY")
        .output()
        .unwrap();
    ok(&out);
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let v: serde_json::Value = serde_json::from_str(&ok(&ferry(
        &["bundle", "inspect", "now.bundle", "--json"],
        p,
    )))
    .unwrap();
    let created = v["manifest"]["created"].as_u64().unwrap();
    assert!(
        (before..=after).contains(&created),
        "created {created} not within the build ({before}..={after})"
    );
    ok(&ferry(&["bundle", "build", "bundle.toml", "-o", "a"], p));
    ok(&ferry(&["bundle", "build", "bundle.toml", "-o", "b"], p));
    assert_eq!(
        fs::read(p.join("a")).unwrap(),
        fs::read(p.join("b")).unwrap()
    );
}

/// One rule for output files (issue 11 item 7): `bundle build -o` keeps an existing bundle
/// unless `--force`, as `key generate`, the license commands and `import-ansible` do.
#[test]
fn build_never_replaces_a_bundle_without_force() {
    let d = site();
    let p = d.path();
    ok(&ferry(
        &["bundle", "build", "bundle.toml", "-o", "out.bundle"],
        p,
    ));
    fs::write(p.join("payload/docs/a.txt"), "changed\n").unwrap();
    let before = fs::read(p.join("out.bundle")).unwrap();
    let err = fails(&ferry(
        &["bundle", "build", "bundle.toml", "-o", "out.bundle"],
        p,
    ));
    assert_eq!(
        err,
        "error: out.bundle: already exists; will not overwrite a bundle without --force \
         (or choose another -o)"
    );
    assert_eq!(fs::read(p.join("out.bundle")).unwrap(), before);
    ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "out.bundle",
            "--force",
        ],
        p,
    ));
    assert_ne!(fs::read(p.join("out.bundle")).unwrap(), before);
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

/// One raw tar entry of a directory tree, any name and link target, as an attacker writes it.
fn tar_entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut t = entries.concat();
    t.resize(t.len() + 1024, 0);
    t
}

/// A bundle made by hand with one item `evil` whose contents are (path, form, blob): what a
/// crafted or hostile bundle.toml input could put in. Signed with `key` when given.
fn hostile_bundle(path: &Path, key: Option<&Path>, contents: &[(&str, &str, Vec<u8>)]) {
    use ferry_bundle::{tarfmt, Digest, SigningKey};
    let mut blobs = vec![];
    let mut listed = vec![];
    let mut entries: Vec<(String, Vec<u8>)> = vec![];
    for (p, form, bytes) in contents {
        let d = Digest::of(bytes);
        if !entries.iter().any(|(n, _)| n.ends_with(&d.hex())) {
            blobs.push(
                serde_json::json!({"digest": d, "size": bytes.len(), "compression": "none",
                "stored_size": bytes.len(), "stored_sha256": d}),
            );
            entries.push((format!("blobs/sha256/{}", d.hex()), bytes.clone()));
        }
        listed.push(
            serde_json::json!({"path": p, "digest": d, "size": bytes.len(),
            "form": form, "mode": 420}),
        );
    }
    let manifest = serde_json::json!({
        "format": "ferry-bundle/1", "name": "evil", "version": "1", "created": 1_700_000_000u64,
        "blobs": blobs,
        "items": [{"name": "evil", "version": null, "arch": null, "kind": "file", "contents": listed}]
    });
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    if let Some(k) = key {
        let sig = SigningKey::load(k).unwrap().sign_to_bytes(&bytes);
        entries.push(("manifest.json".into(), bytes));
        entries.push(("manifest.sig".into(), sig));
    } else {
        entries.push(("manifest.json".into(), bytes));
    }
    let mut out = vec![];
    for (name, data) in &entries {
        out.extend_from_slice(&tarfmt::header(name, data.len() as u64, 1_700_000_000));
        out.extend_from_slice(data);
        out.resize(out.len() + tarfmt::padding(data.len() as u64) as usize, 0);
    }
    out.resize(out.len() + 1024, 0);
    fs::write(path, out).unwrap();
}

/// Every path under `dir`, relative, sorted.
fn tree_listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            out.push(e.path().strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn extract_writes_nothing_outside_its_target_whatever_the_links() {
    use tar::EntryType::{Directory, Regular, Symlink};
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&ferry(&["key", "generate", "-o", "key"], p));
    // Where the escapes below lead: a name in /tmp that no one else uses.
    let victim = format!("ferry-victim-{}", std::process::id());
    let victim_path = Path::new("/tmp").join(&victim);
    let _ = fs::remove_file(&victim_path);

    // The issue's chain: p1/../p16/up -> ../..(x16) is the tree's root, and
    // p1/../p16/esc -> up/../..(x16) is 16 levels above it (/ from here).
    let deep: String = (1..=16).map(|i| format!("p{i}/")).collect();
    let up = "../".repeat(16);
    let chain = vec![
        tar_entry(&format!("{deep}up"), Symlink, up.trim_end_matches('/'), b""),
        tar_entry(&format!("{deep}esc"), Symlink, &format!("up/{up}"), b""),
    ];
    // (what, the item's contents as (path, form, blob), what the refusal says)
    type Contents<'a> = Vec<(String, &'a str, Vec<u8>)>;
    let cases: Vec<(&str, Contents, &str)> = vec![
        (
            "chained links",
            vec![("t".into(), "tree", tar_of(&chain))],
            "once the link",
        ),
        (
            "an entry below a link, beside the tree",
            vec![
                ("t".into(), "tree", tar_of(&chain)),
                (
                    format!("t/{deep}esc/tmp/{victim}"),
                    "file",
                    b"owned".to_vec(),
                ),
            ],
            "is inside content path \"t\"",
        ),
        (
            "an entry below a link, inside the tree",
            vec![(
                "t".into(),
                "tree",
                tar_of(
                    &[
                        chain.clone(),
                        vec![tar_entry(
                            &format!("{deep}esc/tmp/{victim}"),
                            Regular,
                            "",
                            b"owned",
                        )],
                    ]
                    .concat(),
                ),
            )],
            "would be written through the symlink",
        ),
        (
            "a link to a link to outside",
            vec![(
                "t".into(),
                "tree",
                tar_of(&[
                    tar_entry("d/e/up", Symlink, "../..", b""),
                    tar_entry("x", Symlink, "d/e/up/..", b""),
                ]),
            )],
            "points outside the target once the link d/e/up is followed",
        ),
        (
            "a link named like a later directory",
            vec![(
                "t".into(),
                "tree",
                tar_of(&[
                    tar_entry("d/up", Symlink, "..", b""),
                    // Looks inside (d/up/..), leads above the tree: d/up is the root.
                    tar_entry("tmp", Symlink, "d/up/..", b""),
                    tar_entry("tmp/", Directory, "", b""),
                    tar_entry(&format!("tmp/{victim}"), Regular, "", b"owned"),
                ]),
            )],
            "would be written through the symlink tmp",
        ),
        (
            "an absolute link",
            vec![(
                "t".into(),
                "tree",
                tar_of(&[tar_entry("abs", Symlink, "/tmp", b"")]),
            )],
            "symlink is absolute",
        ),
    ];
    let mut problems = vec![];
    for (what, contents, want) in cases {
        let contents: Vec<(&str, &str, Vec<u8>)> = contents
            .iter()
            .map(|(a, b, c)| (a.as_str(), *b, c.clone()))
            .collect();
        for signed in [true, false] {
            let sandbox = p.join("sandbox");
            fs::create_dir_all(sandbox.join("out")).unwrap();
            let bundle = sandbox.join("evil.bundle");
            hostile_bundle(&bundle, signed.then(|| p.join("key")).as_deref(), &contents);
            // What exists outside the target (-o out) must not change.
            let outside = || -> Vec<String> {
                tree_listing(p)
                    .into_iter()
                    .filter(|f| !f.starts_with("sandbox/out/"))
                    .collect()
            };
            let before = outside();
            let check: &[&str] = if signed {
                &["--pubkey", "../key.pub"]
            } else {
                &["--insecure-skip-signature"]
            };
            let o = ferry(
                &[&["bundle", "extract", "evil.bundle", "-o", "out"], check].concat(),
                &sandbox,
            );
            // Every shape is tried before failing, so a report names all that got through.
            let case = format!("{what} (signed: {signed})");
            let err = String::from_utf8_lossy(&o.stderr);
            let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("warning:")).collect();
            if o.status.success() {
                problems.push(format!("{case}: extracted"));
            } else if lines.len() != 1 || !lines[0].contains(want) {
                problems.push(format!(
                    "{case}: expected one line with {want:?}, got {err}"
                ));
            }
            if victim_path.exists() {
                problems.push(format!("{case}: wrote {}", victim_path.display()));
                let _ = fs::remove_file(&victim_path);
            }
            if outside() != before {
                problems.push(format!("{case}: wrote beside the target"));
            }
            if o.status.success() || !tree_listing(&sandbox.join("out")).is_empty() {
                problems.push(format!("{case}: left files in the target"));
            }
            fs::remove_dir_all(&sandbox).unwrap();
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn plan_extracts_nothing_into_the_jump_hosts_cache() {
    use ferry_tests::sshd::{self, Sshd};
    if !sshd::available() {
        return;
    }
    // A reachable host runs this machine's distribution, and the bundle has a repository for
    // it: apply would extract that repository; plan must not write it anywhere.
    let os = fs::read_to_string("/etc/os-release").unwrap();
    let field = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    };
    let distro = format!("{}-{}", field("ID"), field("VERSION_ID"));
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&ferry(&["key", "generate", "-o", "key"], p));
    fs::create_dir_all(p.join("repo")).unwrap();
    fs::write(p.join("repo/Packages"), "").unwrap();
    fs::write(
        p.join("bundle.toml"),
        format!(
            "[bundle]\nname = \"site\"\nversion = \"1\"\n\n[[os_packages]]\nname = \"base\"\n\
             format = \"deb\"\ndistro = \"{distro}\"\npath = \"repo\"\n"
        ),
    )
    .unwrap();
    ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "site.ferry",
            "--sign-key",
            "key",
        ],
        p,
    ));
    let server = Sshd::start();
    fs::write(
        p.join("inventory.toml"),
        format!(
            "[[hosts]]\nname = \"h\"\naddress = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\nkey = \"{}\"\n",
            server.port,
            sshd::KEY_USER,
            sshd::fixture().keys.ed25519.display()
        ),
    )
    .unwrap();
    fs::write(
        p.join("site.toml"),
        "inventory = \"inventory.toml\"\nbundle = \"site.ferry\"\nbundle-pubkey = \"key.pub\"\n\
         [cluster]\nname = \"t\"\n",
    )
    .unwrap();
    let home = p.join("home");
    fs::create_dir_all(&home).unwrap();
    let before = tree_listing(p);
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["plan", "--answers", "site.toml", "--json"])
        .arg("--known-hosts")
        .arg(p.join("known_hosts"))
        .current_dir(p)
        .env("HOME", &home)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "plan printed no JSON ({e}): {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert_eq!(doc["hosts"][0]["host"], "h", "{doc:#}");
    assert_ne!(doc["hosts"][0]["status"], "unreachable", "{doc:#}");
    let cache = home.join(".ferry/cache");
    assert!(
        !cache.exists(),
        "plan wrote into the jump host's cache: {:?}",
        tree_listing(&cache)
    );
    // What docs/host-init.md says plan writes, and nothing else: its own run directory and
    // the host key of a host met for the first time (in the --known-hosts file given).
    let written: Vec<String> = tree_listing(p)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    let (ours, other): (Vec<&String>, Vec<&String>) = written.iter().partition(|f| {
        f.as_str() == "home/.ferry"
            || f.as_str() == "home/.ferry/runs"
            || f.starts_with("home/.ferry/runs/plan-")
            || f.as_str() == "known_hosts"
    });
    assert!(other.is_empty(), "plan wrote {other:?}");
    assert!(
        ours.iter().any(|f| f.as_str() == "known_hosts"),
        "the new host's key was not recorded: {written:?}"
    );
}
