//! Bad input gets one clear line naming the cause, and nothing else: each case the issue lists.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::fs;
use std::path::Path;

use common::*;
use ferry_bundle::{Bundle, PublicKey, SigningKey};

fn open_and_verify(path: &Path, key: &PublicKey) -> Result<(), String> {
    let b = Bundle::open(path, Some(key)).map_err(|e| e.to_string())?;
    b.verify(false, &mut |_| {}).map_err(|e| e.to_string())?;
    Ok(())
}

fn built() -> (Fixture, std::path::PathBuf) {
    let fx = Fixture::new();
    let out = fx.path().join("demo.bundle");
    fx.build(&fx.standard_spec(), &out, None).unwrap();
    (fx, out)
}

fn one_line(msg: &str) {
    assert!(!msg.contains('\n'), "error spans lines: {msg}");
}

#[test]
fn refuses_a_truncated_bundle() {
    let (fx, out) = built();
    let data = fs::read(&out).unwrap();
    for cut in [
        100,
        512,
        5000,
        data.len() / 2,
        data.len() - 1500,
        data.len() - 1024,
        data.len() - 1,
    ] {
        let p = fx.path().join("cut.bundle");
        fs::write(&p, &data[..cut]).unwrap();
        let err = open_and_verify(&p, &fx.public).unwrap_err();
        one_line(&err);
        assert!(err.contains("truncated"), "cut at {cut}: {err}");
    }
}

#[test]
fn catches_one_flipped_bit_anywhere() {
    let (fx, out) = built();
    let data = fs::read(&out).unwrap();
    let p = fx.path().join("flipped.bundle");
    // Every 307th byte across the whole file, a different bit each time.
    let mut checked = 0;
    for (n, at) in (0..data.len()).step_by(307).enumerate() {
        let mut bad = data.clone();
        bad[at] ^= 1 << (n % 8);
        fs::write(&p, &bad).unwrap();
        let err = open_and_verify(&p, &fx.public);
        assert!(err.is_err(), "flip at byte {at} was not detected");
        one_line(&err.unwrap_err());
        checked += 1;
    }
    assert!(checked > 100);
}

#[test]
fn names_what_a_flipped_bit_damaged() {
    let (fx, out) = built();
    let data = fs::read(&out).unwrap();
    let p = fx.path().join("flipped.bundle");
    let flip = |at: usize| {
        let mut bad = data.clone();
        bad[at] ^= 0x10;
        fs::write(&p, &bad).unwrap();
        open_and_verify(&p, &fx.public).unwrap_err()
    };
    let find = |needle: &[u8]| {
        data.windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    // In a stored-as-is blob: the random item.
    let random = fs::read(fx.path().join("random.bin")).unwrap();
    let err = flip(find(&random[5000..5032]));
    assert!(
        err.contains("(item random) is corrupt: its stored bytes hash to"),
        "{err}"
    );
    // In the manifest.
    let err = flip(find(b"\"format\": \"ferry-bundle/1\"") + 3);
    assert!(
        err.contains("manifest.json signature does not match"),
        "{err}"
    );
    // In the signature.
    let err = flip(find(b"\"signature\":\"") + 20);
    assert!(err.contains("signature"), "{err}");
    // In a tar header (the first one's size field) and in the padding after an entry.
    let err = flip(130);
    assert!(
        err.contains("tar header of entry") && err.contains("damaged"),
        "{err}"
    );
    let sig_at = find(b"\"algorithm\"");
    let sig_len = data[sig_at..].iter().position(|&b| b == 0).unwrap();
    let err = flip(sig_at + sig_len + 3);
    assert!(
        err.contains("padding after entry \"manifest.sig\" is not zero"),
        "{err}"
    );
    // In the end-of-archive blocks.
    let err = flip(data.len() - 10);
    assert!(err.contains("end of the archive"), "{err}");
}

#[test]
fn deep_verify_checks_content_digests() {
    let (fx, out) = built();
    let b = Bundle::open(&out, Some(&fx.public)).unwrap();
    let report = b.verify(true, &mut |_| {}).unwrap();
    assert!(report.deep && report.blobs == 3);
}

#[test]
fn refuses_a_wrong_or_missing_signature() {
    let (fx, out) = built();
    let other = SigningKey::generate().unwrap().public();
    let err = open_and_verify(&out, &other).unwrap_err();
    assert!(
        err.ends_with(&format!(
            "manifest.json is signed by key {}, not by the given public key {}",
            fx.public.key_id(),
            other.key_id()
        )),
        "{err}"
    );
    // An unsigned bundle.
    let mut entries = read_raw(&out);
    entries.retain(|(n, _)| n != "manifest.sig");
    let p = fx.path().join("unsigned.bundle");
    write_raw(&p, &entries);
    let err = open_and_verify(&p, &fx.public).unwrap_err();
    assert!(
        err.contains("is not signed (no manifest.sig): rebuild it with --sign-key"),
        "{err}"
    );
    // A signature over other bytes (taken from another bundle).
    let mut entries = read_raw(&out);
    let fx2 = Fixture::new();
    let sig = SigningKey::load(&fx.key)
        .unwrap()
        .sign_to_bytes(b"something else");
    entries
        .iter_mut()
        .find(|(n, _)| n == "manifest.sig")
        .unwrap()
        .1 = sig;
    write_raw(&p, &entries);
    let err = open_and_verify(&p, &fx.public).unwrap_err();
    assert!(
        err.contains(
            "manifest.json signature does not match: the bundle was changed after signing"
        ),
        "{err}"
    );
    drop(fx2);
}

#[test]
fn refuses_a_manifest_naming_an_absent_blob() {
    let (fx, out) = built();
    let mut entries = read_raw(&out);
    let b = Bundle::open(&out, None).unwrap();
    let random = b.item("random").unwrap().contents[0].digest;
    entries.retain(|(n, _)| *n != format!("blobs/sha256/{}", random.hex()));
    let p = fx.path().join("absent.bundle");
    write_raw(&p, &entries);
    let err = open_and_verify(&p, &fx.public).unwrap_err();
    one_line(&err);
    assert!(
        err.ends_with(&format!(
            "the manifest names blob {random} (item random) but the bundle does not contain it"
        )),
        "{err}"
    );
}

#[test]
fn refuses_duplicate_entries() {
    let (fx, out) = built();
    let mut entries = read_raw(&out);
    let first = entries[0].clone();
    entries.insert(1, first.clone());
    let p = fx.path().join("dup.bundle");
    write_raw(&p, &entries);
    let err = open_and_verify(&p, &fx.public).unwrap_err();
    assert!(
        err.contains(&format!("duplicate entry {:?}", first.0)),
        "{err}"
    );
}

#[test]
fn refuses_outer_entries_with_dotdot_or_absolute_paths() {
    let (fx, out) = built();
    for (name, want) in [
        ("../evil", "contains '..'"),
        ("/etc/evil", "is an absolute path"),
        ("blobs/../../evil", "contains '..'"),
        ("notes.txt", "unexpected tar entry \"notes.txt\""),
    ] {
        let mut entries = read_raw(&out);
        entries.insert(0, (name.to_string(), b"x".to_vec()));
        let p = fx.path().join("paths.bundle");
        write_raw(&p, &entries);
        let err = open_and_verify(&p, &fx.public).unwrap_err();
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn refuses_tree_entries_that_escape_the_target() {
    use tar::EntryType::{Link, Regular, Symlink};
    let fx = Fixture::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            raw_tar_entry("../evil", Regular, "", b"x"),
            "\"../evil\" contains '..'",
        ),
        (
            "absolute",
            raw_tar_entry("/tmp/evil", Regular, "", b"x"),
            "is an absolute path",
        ),
        (
            "symlink out",
            raw_tar_entry("l", Symlink, "../../etc", b""),
            "symlink points outside the target",
        ),
        (
            "absolute symlink",
            raw_tar_entry("l", Symlink, "/etc/passwd", b""),
            "symlink is absolute",
        ),
        (
            "hardlink out",
            raw_tar_entry("h", Link, "../x", b""),
            "hardlink points outside the target",
        ),
        (
            "hardlink to absolute",
            raw_tar_entry("h", Link, "/etc/passwd", b""),
            "hardlink points outside the target",
        ),
        (
            "write through a symlink",
            [
                raw_tar_entry("l", Symlink, ".", b""),
                raw_tar_entry("l/x", Regular, "", b"x"),
            ]
            .concat(),
            "would be written through the symlink l",
        ),
    ];
    for (what, mut tar, want) in cases {
        tar.resize(tar.len() + 1024, 0);
        let p = fx.path().join("evil.bundle");
        bundle_with_tree(&p, &fx.key, tar);
        let b = Bundle::open(&p, Some(&fx.public)).unwrap();
        let target = fx.path().join("x").join(what.replace(' ', "-"));
        let before = listing(fx.path());
        let err = b
            .extract(None, &target, &mut |_| {})
            .unwrap_err()
            .to_string();
        one_line(&err);
        assert!(err.contains(want), "{what}: {err}");
        assert!(
            err.contains("nothing was written outside the target"),
            "{what}: {err}"
        );
        // Nothing was left anywhere: not in the target, not beside it.
        let after: Vec<String> = listing(fx.path())
            .into_iter()
            .filter(|p| !before.contains(p) && !p.starts_with("x"))
            .collect();
        assert!(after.is_empty(), "{what}: wrote {after:?}");
        assert_eq!(
            fs::read_dir(&target).unwrap().count(),
            0,
            "{what}: left files in the target"
        );
    }
}

#[test]
fn refuses_a_declared_size_mismatch() {
    let (fx, out) = built();
    let p = fx.path().join("size.bundle");
    let mut entries = read_raw(&out);
    edit_manifest(&mut entries, &fx.key, |m| {
        let n = m["blobs"][0]["stored_size"].as_u64().unwrap();
        m["blobs"][0]["stored_size"] = (n + 1).into();
    });
    write_raw(&p, &entries);
    let err = open_and_verify(&p, &fx.public).unwrap_err();
    assert!(
        err.contains("the manifest declares") && err.contains("stored bytes but the tar entry has"),
        "{err}"
    );

    let mut entries = read_raw(&out);
    edit_manifest(&mut entries, &fx.key, |m| {
        let n = m["items"][0]["contents"][0]["size"].as_u64().unwrap();
        m["items"][0]["contents"][0]["size"] = (n + 1).into();
    });
    write_raw(&p, &entries);
    let err = open_and_verify(&p, &fx.public).unwrap_err();
    assert!(err.contains("item payload: payload declares"), "{err}");

    // A content size that lies is caught when the blob is read.
    let mut entries = read_raw(&out);
    edit_manifest(&mut entries, &fx.key, |m| {
        let n = m["blobs"][0]["size"].as_u64().unwrap();
        m["blobs"][0]["size"] = (n + 1).into();
        m["items"][0]["contents"][0]["size"] = (n + 1).into();
        m["items"][3]["contents"][0]["size"] = (n + 1).into();
    });
    write_raw(&p, &entries);
    let b = Bundle::open(&p, Some(&fx.public)).unwrap();
    let err = b
        .extract(Some("payload"), &fx.path().join("x"), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("(item payload, payload-again) is corrupt: its content have"),
        "{err}"
    );
}

#[test]
fn stops_the_build_on_a_pinned_sha256_mismatch_and_leaves_nothing() {
    let fx = Fixture::new();
    fs::write(
        fx.path().join("kubectl"),
        b"#!/bin/sh\necho stand-in kubectl\n",
    )
    .unwrap();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let spec = fx.write_spec(&format!(
        "[[files]]\nname = \"payload\"\npath = \"payload\"\n\n\
         [[kubernetes]]\nname = \"kubectl\"\nversion = \"1.30.4\"\npath = \"kubectl\"\nsha256 = \"{wrong}\"\n"
    ));
    let before = listing(fx.path());
    let out = fx.path().join("demo.bundle");
    let err = fx.build(&spec, &out, None).unwrap_err().to_string();
    let actual = sha(&fs::read(fx.path().join("kubectl")).unwrap());
    assert_eq!(
        err,
        format!(
            "kubernetes binary kubectl {}: sha256 mismatch: bundle.toml pins {wrong}, the file has {actual}",
            fx.path().join("kubectl").display()
        )
    );
    assert_eq!(
        listing(fx.path()),
        before,
        "a failed build left files behind"
    );
    // Split output too.
    let err = fx.build(&spec, &out, Some(4096)).unwrap_err().to_string();
    assert!(err.contains("sha256 mismatch"), "{err}");
    assert_eq!(
        listing(fx.path()),
        before,
        "a failed split build left files behind"
    );
}

#[test]
fn builds_a_file_pinned_by_bare_hex_sha256_as_sha256sum_prints_it() {
    let fx = Fixture::new();
    let hex = sha(&fs::read(fx.path().join("payload")).unwrap()).hex();
    let spec = fx.write_spec(&format!(
        "[[files]]\nname = \"payload\"\npath = \"payload\"\nsha256 = \"{hex}\"\n"
    ));
    let out = fx.path().join("demo.bundle");
    fx.build(&spec, &out, None).unwrap();
    open_and_verify(&out, &fx.public).unwrap();
}

#[test]
fn refuses_a_file_whose_bare_hex_sha256_differs_in_one_line_naming_it() {
    let fx = Fixture::new();
    let wrong = "0".repeat(64);
    let spec = fx.write_spec(&format!(
        "[[files]]\nname = \"payload\"\npath = \"payload\"\nsha256 = \"{wrong}\"\n"
    ));
    let before = listing(fx.path());
    let err = fx
        .build(&spec, &fx.path().join("demo.bundle"), None)
        .unwrap_err()
        .to_string();
    let actual = sha(&fs::read(fx.path().join("payload")).unwrap());
    assert_eq!(
        err,
        format!(
            "file payload {}: sha256 mismatch: bundle.toml pins sha256:{wrong}, the file has {actual}",
            fx.path().join("payload").display()
        )
    );
    assert_eq!(
        listing(fx.path()),
        before,
        "a failed build left files behind"
    );
}

#[test]
fn a_failed_build_keeps_the_previous_bundle() {
    let (fx, out) = built();
    let before = fs::read(&out).unwrap();
    fs::write(fx.path().join("kubectl"), b"x").unwrap();
    let spec = fx.write_spec(&format!(
        "[[files]]\nname = \"payload\"\npath = \"payload\"\n[[kubernetes]]\nname = \"kubectl\"\nversion = \"1\"\npath = \"kubectl\"\nsha256 = \"{}\"\n",
        "1".repeat(64)
    ));
    assert!(fx.build(&spec, &out, None).is_err());
    assert_eq!(fs::read(&out).unwrap(), before);
}

#[test]
fn names_a_missing_out_of_order_or_corrupt_part() {
    let fx = Fixture::new();
    let out = fx.path().join("demo.bundle");
    fx.build(&fx.standard_spec(), &out, Some(64 * 1024))
        .unwrap();
    let part = |n: usize| fx.path().join(format!("demo.bundle.part{n:03}"));
    let (p2, p3) = (fs::read(part(2)).unwrap(), fs::read(part(3)).unwrap());

    // Missing.
    fs::rename(part(2), fx.path().join("aside")).unwrap();
    let err = open_and_verify(&out, &fx.public).unwrap_err();
    assert!(
        err.contains("part 2 of ") && err.contains("demo.bundle.part002) is missing"),
        "{err}"
    );
    fs::rename(fx.path().join("aside"), part(2)).unwrap();

    // Out of order: part 2 and 3 swapped (same size).
    fs::write(part(2), &p3).unwrap();
    fs::write(part(3), &p2).unwrap();
    let err = open_and_verify(&out, &fx.public).unwrap_err();
    assert!(
        err.contains("demo.bundle.part002 holds the bytes of part 3")
            && err.contains("the parts are out of order"),
        "{err}"
    );
    fs::write(part(2), &p2).unwrap();
    fs::write(part(3), &p3).unwrap();

    // Corrupt: one flipped bit in part 3.
    let mut bad = p3.clone();
    bad[1000] ^= 4;
    fs::write(part(3), &bad).unwrap();
    let err = open_and_verify(&out, &fx.public).unwrap_err();
    assert!(
        err.contains("part ") && err.contains("demo.bundle.part003 is corrupt: its sha256 is"),
        "{err}"
    );
    fs::write(part(3), &p3).unwrap();

    // Truncated part.
    fs::write(part(3), &p3[..1000]).unwrap();
    let err = open_and_verify(&out, &fx.public).unwrap_err();
    assert!(
        err.contains("demo.bundle.part003) has 1000 bytes, the parts index says 65536"),
        "{err}"
    );
    fs::write(part(3), &p3).unwrap();

    // A parts index signed by someone else.
    let other = SigningKey::generate().unwrap().public();
    let err = open_and_verify(&out, &other).unwrap_err();
    assert!(err.contains("the parts index is signed by key"), "{err}");
    open_and_verify(&out, &fx.public).unwrap();
}

#[test]
fn extract_never_overwrites() {
    let (fx, out) = built();
    let x = fx.path().join("x");
    fs::create_dir_all(&x).unwrap();
    fs::write(x.join("payload"), b"mine").unwrap();
    let b = Bundle::open(&out, Some(&fx.public)).unwrap();
    let err = b.extract(None, &x, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("payload exists; will not overwrite it"),
        "{err}"
    );
    assert_eq!(fs::read(x.join("payload")).unwrap(), b"mine");
    assert_eq!(fs::read_dir(&x).unwrap().count(), 1);
}

#[test]
fn refuses_source_trees_with_links_that_leave_them() {
    let fx = Fixture::new();
    std::os::unix::fs::symlink("/etc/passwd", fx.path().join("tree/pw")).unwrap();
    let spec = fx.write_spec("[[files]]\nname = \"tree\"\npath = \"tree\"\n");
    let err = fx
        .build(&spec, &fx.path().join("o.bundle"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tree/pw -> /etc/passwd: symlink is absolute"),
        "{err}"
    );
}

#[test]
fn refuses_source_trees_whose_links_leave_them_once_followed_or_loop() {
    type MakeLinks = fn(&Path);
    let cases: [(&str, MakeLinks, &str); 3] = [
        (
            "a chain",
            |t| {
                // up is the tree's root; esc, through up, is above it.
                fs::create_dir_all(t.join("d/e")).unwrap();
                std::os::unix::fs::symlink("../..", t.join("d/e/up")).unwrap();
                std::os::unix::fs::symlink("up/../x", t.join("d/e/esc")).unwrap();
            },
            "tree/d/e/esc -> up/../x: symlink points outside the target once the link d/e/up is followed",
        ),
        (
            "a link to a link to an absolute path",
            |t| {
                std::os::unix::fs::symlink("b", t.join("a")).unwrap();
                std::os::unix::fs::symlink("/etc", t.join("b")).unwrap();
            },
            "symlink is absolute",
        ),
        (
            "a self loop",
            |t| std::os::unix::fs::symlink("self", t.join("self")).unwrap(),
            "tree/self -> self: symlink loop",
        ),
    ];
    for (what, make, want) in cases {
        let fx = Fixture::new();
        make(&fx.path().join("tree"));
        let spec = fx.write_spec("[[files]]\nname = \"tree\"\npath = \"tree\"\n");
        let out = fx.path().join("o.bundle");
        let err = fx.build(&spec, &out, None).unwrap_err().to_string();
        one_line(&err);
        assert!(err.contains(want), "{what}: {err}");
        assert!(!out.exists(), "{what}: a bundle was written");
    }
}

#[test]
fn extract_checks_padding_and_end_blocks_as_verify_does() {
    let (fx, out) = built();
    let data = fs::read(&out).unwrap();
    let entries = read_raw(&out);
    // The padding after the first entry whose size is not a multiple of 512, and the last
    // byte of the second end block.
    let mut at = 0;
    let mut pad_at = None;
    for (_, bytes) in &entries {
        at += 512 + bytes.len();
        if bytes.len() % 512 != 0 {
            pad_at = Some(at);
            break;
        }
        at += ferry_bundle::tarfmt::padding(bytes.len() as u64) as usize;
    }
    for (what, flip, want) in [
        ("padding", pad_at.unwrap(), "is not zero"),
        ("end block", data.len() - 1, "the end of the archive"),
    ] {
        let mut bad = data.clone();
        bad[flip] ^= 0x10;
        let p = fx.path().join("flipped.bundle");
        fs::write(&p, &bad).unwrap();
        let target = fx.path().join(format!("x-{}", what.replace(' ', "-")));
        let result =
            Bundle::open(&p, Some(&fx.public)).and_then(|b| b.extract(None, &target, &mut |_| {}));
        let err = result.expect_err(what).to_string();
        one_line(&err);
        assert!(err.contains(want), "{what}: {err}");
        assert!(
            !target.exists() || listing(&target).is_empty(),
            "{what}: extracted"
        );
    }
}

#[test]
fn checks_free_space_before_writing_anything() {
    // A real small file system: a 1 MiB tmpfs (needs root to mount).
    let fx = Fixture::new();
    let small = fx.path().join("small");
    fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("cannot mount a tmpfs (the free-space test needs root)");
        }
        eprintln!(
            "SKIPPED checks_free_space_before_writing_anything: cannot mount a tmpfs (needs root)"
        );
        return;
    }
    fs::write(fx.path().join("big.bin"), pseudo_random(3 << 20, 3)).unwrap();
    let spec = fx.write_spec("[[files]]\nname = \"big\"\npath = \"big.bin\"\n");
    let result = fx.build(&spec, &small.join("demo.bundle"), None);
    let left = fs::read_dir(&small).unwrap().count();
    let _ = std::process::Command::new("umount").arg(&small).status();
    let err = result.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "not enough free space in {}: the bundle needs up to",
            small.display()
        )),
        "{err}"
    );
    assert_eq!(left, 0, "a refused build wrote into the output directory");
}

#[test]
fn refuses_a_header_claiming_an_impossible_size() {
    // A canonical base-256 header whose size is u64::MAX, checksum recomputed: it passes the
    // header check, and the size must then be refused, not overflow.
    let (fx, out) = built();
    let name = format!("blobs/sha256/{}", "ab".repeat(32));
    let h = ferry_bundle::tarfmt::header(&name, u64::MAX, 1_700_000_000);
    assert_eq!(
        ferry_bundle::tarfmt::parse(&h).unwrap().size,
        u64::MAX,
        "the crafted header must pass the canonical check"
    );
    let mut data = h.to_vec();
    data.extend_from_slice(&fs::read(&out).unwrap());
    let p = fx.path().join("huge.bundle");
    fs::write(&p, data).unwrap();
    let err = Bundle::open(&p, Some(&fx.public)).unwrap_err().to_string();
    one_line(&err);
    assert!(
        err.contains(&format!("entry {name:?}")) && err.contains("impossible size"),
        "{err}"
    );
}

#[test]
fn extract_never_overwrites_a_file_that_appears_during_extraction() {
    // The target is absent at the up-front check, then created while the item is being
    // written to staging: the move into place must refuse, not replace it.
    let (fx, out) = built();
    let x = fx.path().join("x");
    fs::create_dir_all(&x).unwrap();
    let b = Bundle::open(&out, Some(&fx.public)).unwrap();
    let racer = x.join("payload");
    let err = b
        .extract(None, &x, &mut |e| {
            if matches!(e, ferry_bundle::ReadEvent::Bytes { .. }) && !racer.exists() {
                fs::write(&racer, b"mine").unwrap();
            }
        })
        .unwrap_err()
        .to_string();
    one_line(&err);
    assert!(
        err.contains("payload appeared while extracting; will not overwrite it"),
        "{err}"
    );
    assert_eq!(fs::read(&racer).unwrap(), b"mine");
}
