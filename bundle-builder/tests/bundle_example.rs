//! The example bundle (examples/bundle.toml on the inputs make-demo-inputs makes): every item
//! kind, pins that hold, images that share a layer stored once and come out as OCI layouts.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

#[allow(dead_code, missing_docs)]
#[path = "../../examples/demo-inputs/src/main.rs"]
mod demo_inputs;

use std::fs;

use common::Fixture;
use ferry_bundle::manifest::ItemKind;
use ferry_bundle::Bundle;

#[test]
fn the_example_bundle_builds_with_every_item_kind_and_shared_layers_stored_once() {
    let fx = Fixture::new();
    let inputs = fx.path().join("inputs");
    demo_inputs::make(&inputs).unwrap();
    // As examples/demo.sh does with `ferry app pack`.
    let key = ferry_bundle::SigningKey::load(&fx.key).unwrap();
    let packed = ferry_bundle::app_package::pack(&inputs.join("mcd"), &key).unwrap();
    fs::write(inputs.join("mcd-2.3.0.fap"), &packed.bytes).unwrap();
    let spec = inputs.join("bundle.toml");
    fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bundle.toml"),
        &spec,
    )
    .unwrap();
    let out = fx.path().join("demo.bundle");
    let summary = fx.build(&spec, &out, None).unwrap();
    let tool = summary
        .items
        .iter()
        .find(|i| i.name == "demo/tool:1.0")
        .unwrap();
    assert!(
        tool.deduplicated > 0,
        "the shared base layer was stored twice"
    );

    let bundle = Bundle::open(&out, Some(&fx.public)).unwrap();
    bundle.verify(true, &mut |_| {}).unwrap();
    let kinds: Vec<&str> = bundle
        .manifest()
        .items
        .iter()
        .map(|i| i.kind.label())
        .collect();
    for kind in [
        "file",
        "image",
        "k3s",
        "kubernetes",
        "gpu-driver",
        "os-packages",
        "app-package",
    ] {
        assert!(kinds.contains(&kind), "no {kind} item in {kinds:?}");
    }
    let mcd = bundle.item("mcd").unwrap();
    assert_eq!(mcd.version.as_deref(), Some("2.3.0"));
    assert_eq!(mcd.contents[0].path, "mcd/mcd-2.3.0.fap");
    let app = bundle.item("demo/app:1.0").unwrap();
    let ItemKind::Image {
        reference,
        manifest_digest,
        ..
    } = &app.kind
    else {
        panic!("not an image: {app:?}")
    };
    assert_eq!(reference, "docker.io/demo/app:1.0");

    // Out comes a standard OCI image layout.
    let x = fx.path().join("x");
    bundle
        .extract(Some("demo/app:1.0"), &x, &mut |_| {})
        .unwrap();
    let layout = x.join("demo_app_1.0");
    assert_eq!(
        fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], manifest_digest.to_string());
    for entry in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let digest = ferry_bundle::Digest::of(&fs::read(entry.path()).unwrap());
        assert_eq!(digest.hex(), entry.file_name().to_str().unwrap());
    }
    // And as an OCI archive that plain tar lists.
    let mut archive = vec![];
    bundle
        .write_image_archive("demo/app:1.0", &mut archive)
        .unwrap();
    let names: Vec<String> = tar::Archive::new(archive.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(&names[..2], ["oci-layout", "index.json"]);
    assert!(names.contains(&format!("blobs/sha256/{}", manifest_digest.hex())));
    // With the index edited on the way (a longer one: the entry's size follows it); every other
    // entry as it was.
    let mut edited = vec![];
    bundle
        .write_image_archive_with("demo/app:1.0", &mut edited, &|mut index| {
            index.extend_from_slice(b"\n\n");
            Ok(index)
        })
        .unwrap();
    let entries = |bytes: &[u8]| -> Vec<(String, Vec<u8>)> {
        tar::Archive::new(bytes)
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = vec![];
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                (e.path().unwrap().display().to_string(), data)
            })
            .collect()
    };
    let (plain, edited) = (entries(&archive), entries(&edited));
    assert_eq!(plain.len(), edited.len());
    for ((pn, pd), (en, ed)) in plain.iter().zip(&edited) {
        assert_eq!(pn, en);
        if pn == "index.json" {
            assert_eq!(ed, &[pd.as_slice(), b"\n\n"].concat());
        } else {
            assert_eq!(pd, ed, "{pn} unchanged");
        }
    }
    // An edit that fails stops the archive with its reason.
    let err = bundle
        .write_image_archive_with("demo/app:1.0", &mut vec![], &|_| Err("no".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("the index of image demo/app:1.0: no"), "{err}");
}
