//! Building, verifying, inspecting and extracting real bundles: the happy paths.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::fs;

use common::*;
use ferry_bundle::manifest::Compression;
use ferry_bundle::Bundle;

#[test]
fn builds_verifies_and_extracts_files_and_a_directory() {
    let fx = Fixture::new();
    let out = fx.path().join("demo.bundle");
    let summary = fx.build(&fx.standard_spec(), &out, None).unwrap();
    assert_eq!(summary.items.len(), 4);
    assert!(
        summary.deduplicated > 0,
        "payload listed twice must be stored once"
    );

    let bundle = Bundle::open(&out, Some(&fx.public)).unwrap();
    let report = bundle.verify(true, &mut |_| {}).unwrap();
    assert_eq!(report.items, 4);
    let m = bundle.manifest();
    // Text is compressed, random bytes are stored as-is.
    let payload = m.items.iter().find(|i| i.name == "payload").unwrap();
    let random = m.items.iter().find(|i| i.name == "random").unwrap();
    assert_eq!(
        bundle
            .blob(&payload.contents[0].digest)
            .unwrap()
            .compression,
        Compression::Zstd
    );
    assert_eq!(
        bundle.blob(&random.contents[0].digest).unwrap().compression,
        Compression::None
    );

    let x = fx.path().join("x");
    bundle.extract(None, &x, &mut |_| {}).unwrap();
    assert_eq!(
        fs::read(x.join("payload")).unwrap(),
        fs::read(fx.path().join("payload")).unwrap()
    );
    assert_eq!(
        fs::read(x.join("payload-again")).unwrap(),
        fs::read(fx.path().join("payload")).unwrap()
    );
    assert_eq!(
        fs::read(x.join("random")).unwrap(),
        fs::read(fx.path().join("random.bin")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(x.join("tree/link")).unwrap(),
        "alpha\n".repeat(100)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(x.join("tree/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    // Nothing but the items (no staging leftovers).
    let mut top: Vec<_> = fs::read_dir(&x)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["payload", "payload-again", "random", "tree"]);
}

#[test]
fn plain_tar_lists_the_bundle() {
    let fx = Fixture::new();
    let out = fx.path().join("demo.bundle");
    fx.build(&fx.standard_spec(), &out, None).unwrap();
    let listed = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(text.lines().last() == Some("manifest.sig"), "{text}");
    assert!(text.contains("manifest.json"));
}

#[test]
fn same_inputs_give_byte_identical_bundles() {
    let fx = Fixture::new();
    let a = fx.path().join("a.bundle");
    let b = fx.path().join("b.bundle");
    fx.build(&fx.standard_spec(), &a, None).unwrap();
    fx.build(&fx.standard_spec(), &b, None).unwrap();
    assert_eq!(sha(&fs::read(&a).unwrap()), sha(&fs::read(&b).unwrap()));
}

#[test]
fn split_parts_verify_and_extract_without_joining() {
    let fx = Fixture::new();
    let out = fx.path().join("demo.bundle");
    let summary = fx
        .build(&fx.standard_spec(), &out, Some(64 * 1024))
        .unwrap();
    assert!(
        !out.exists(),
        "a split build writes parts, not the whole file"
    );
    let part1 = fx.path().join("demo.bundle.part001");
    assert!(fs::metadata(&part1).unwrap().len() == 64 * 1024);
    assert!(summary.files.len() > 3);
    // The same bytes as an unsplit build.
    let whole = fx.path().join("whole.bundle");
    fx.build(&fx.standard_spec(), &whole, None).unwrap();
    let mut joined = vec![];
    for n in 1.. {
        let p = fx.path().join(format!("demo.bundle.part{n:03}"));
        if !p.exists() {
            break;
        }
        joined.extend(fs::read(p).unwrap());
    }
    assert_eq!(joined, fs::read(&whole).unwrap());

    for path in [out.clone(), fx.path().join("demo.bundle.parts")] {
        let bundle = Bundle::open(&path, Some(&fx.public)).unwrap();
        let report = bundle.verify(true, &mut |_| {}).unwrap();
        assert!(report.parts > 3);
    }
    // Naming any part opens the split bundle it belongs to.
    let bundle = Bundle::open(&fx.path().join("demo.bundle.part002"), Some(&fx.public)).unwrap();
    assert_eq!(bundle.manifest().items.len(), 4);
    let bundle = Bundle::open(&out, Some(&fx.public)).unwrap();
    let x = fx.path().join("x");
    bundle.extract(Some("random"), &x, &mut |_| {}).unwrap();
    assert_eq!(
        fs::read(x.join("random")).unwrap(),
        fs::read(fx.path().join("random.bin")).unwrap()
    );
}

#[test]
fn extracting_one_item_reads_only_that_item() {
    let fx = Fixture::new();
    let out = fx.path().join("demo.bundle");
    fx.build(&fx.standard_spec(), &out, None).unwrap();
    let bundle = Bundle::open(&out, Some(&fx.public)).unwrap();
    // Damage the random item's bytes in place: the payload still extracts, the random one not.
    let random = bundle.item("random").unwrap().contents[0].digest;
    let payload_size = bundle.item("payload").unwrap().size();
    let mut bytes = fs::read(&out).unwrap();
    let needle = &fs::read(fx.path().join("random.bin")).unwrap()[1000..1032];
    let at = bytes.windows(32).position(|w| w == needle).unwrap();
    bytes[at] ^= 1;
    fs::write(&out, &bytes).unwrap();
    let bundle = Bundle::open(&out, Some(&fx.public)).unwrap();
    let mut read = 0;
    bundle
        .extract(Some("payload"), &fx.path().join("x"), &mut |e| {
            if let ferry_bundle::ReadEvent::Bytes { bytes } = e {
                read += bytes
            }
        })
        .unwrap();
    assert_eq!(read, payload_size);
    let err = bundle
        .extract(Some("random"), &fx.path().join("y"), &mut |_| {})
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("blob {random} (item random) is corrupt")),
        "{err}"
    );
    assert!(
        !fx.path().join("y/random").exists(),
        "a corrupt item is not left behind"
    );
}
