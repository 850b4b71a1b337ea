//! Image archives on disk (no engine needed): docker-archive and OCI archives read into OCI
//! images, the OCI layout written back, and every kind of bad archive refused with one line.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ferry_bundle::image::{self, ImageError, OciImage};
use ferry_bundle::{BlobSource, Digest};
use serde_json::{json, Value};

// ---- archive makers -------------------------------------------------------------------------

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h
}

fn add(t: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, data.len() as u64);
    t.append_data(&mut h, path, data).unwrap();
}

fn add_symlink(t: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = header(tar::EntryType::Symlink, 0);
    t.append_link(&mut h, path, target).unwrap();
}

/// A layer: a tar with one file.
fn layer(file: &str, content: &[u8]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    add(&mut t, file, content);
    t.into_inner().unwrap()
}

fn config(diff_ids: &[&[u8]]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|l| Digest::of(l).to_string()).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
    }))
    .unwrap()
}

/// A `docker save` archive of two images: `base` (one layer) and `app` (base's layer, linked
/// to base's copy the way Docker does it, plus its own), in Docker's entry order.
struct DockerFixture {
    base_layer: Vec<u8>,
    app_layer: Vec<u8>,
    bytes: Vec<u8>,
}

fn docker_archive() -> DockerFixture {
    docker_archive_with(|c| c)
}

/// Like [`docker_archive`], letting the test change the app config's bytes.
fn docker_archive_with(edit_app_config: impl Fn(Vec<u8>) -> Vec<u8>) -> DockerFixture {
    let base_layer = layer("etc/base", &[7u8; 5000]);
    let app_layer = layer("app", b"application bytes");
    let base_config = config(&[&base_layer]);
    let app_config = edit_app_config(config(&[&base_layer, &app_layer]));
    let base_cfg_name = format!("{}.json", Digest::of(&base_config).hex());
    let app_cfg_name = format!("{}.json", Digest::of(&app_config).hex());
    let manifest = json!([
        {"Config": base_cfg_name, "RepoTags": ["ferry/base:1"], "Layers": ["aaaa/layer.tar"]},
        {"Config": app_cfg_name, "RepoTags": ["ferry/app:2", "registry.example:5000/app:2"],
         "Layers": ["bbbb/layer.tar", "cccc/layer.tar"]},
    ]);
    let mut t = tar::Builder::new(Vec::new());
    add(&mut t, &base_cfg_name, &base_config);
    add(&mut t, &app_cfg_name, &app_config);
    add(&mut t, "aaaa/VERSION", b"1.0");
    add(&mut t, "aaaa/layer.tar", &base_layer);
    add(&mut t, "bbbb/VERSION", b"1.0");
    add_symlink(&mut t, "bbbb/layer.tar", "../aaaa/layer.tar");
    add(&mut t, "cccc/VERSION", b"1.0");
    add(&mut t, "cccc/layer.tar", &app_layer);
    add(
        &mut t,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    add(&mut t, "repositories", b"{}");
    DockerFixture {
        base_layer,
        app_layer,
        bytes: t.into_inner().unwrap(),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

fn read_source(s: &BlobSource) -> Vec<u8> {
    let mut v = Vec::new();
    s.open().unwrap().read_to_end(&mut v).unwrap();
    v
}

fn find<'a>(images: &'a [OciImage], reference: &str) -> &'a OciImage {
    images
        .iter()
        .find(|i| i.reference == reference)
        .unwrap_or_else(|| panic!("no image {reference}"))
}

fn oci_archive_bytes(images: &[OciImage]) -> Vec<u8> {
    let refs: Vec<&OciImage> = images.iter().collect();
    let mut out = Vec::new();
    image::write_oci_archive(&refs, &mut out).unwrap();
    out
}

/// The error as the user sees it: one line naming the cause.
fn one_line(err: &ImageError) -> String {
    let line = err.to_string();
    assert!(!line.contains('\n'), "not one line: {line}");
    line
}

// ---- docker archives ------------------------------------------------------------------------

#[test]
fn reads_a_docker_archive_with_layers_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let fx = docker_archive();
    let path = write(dir.path(), "saved.tar", &fx.bytes);
    let images = image::from_archive(&path).unwrap();

    let names: Vec<&str> = images.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(
        names,
        [
            "docker.io/ferry/base:1",
            "docker.io/ferry/app:2",
            "registry.example:5000/app:2"
        ]
    );
    let app = find(&images, "docker.io/ferry/app:2");
    assert_eq!(
        (app.os.as_str(), app.architecture.as_str()),
        ("linux", "amd64")
    );
    assert_eq!(app.layers.len(), 2);
    assert_eq!(app.layers[0].digest, Digest::of(&fx.base_layer));
    assert_eq!(app.layers[1].digest, Digest::of(&fx.app_layer));
    for (layer, bytes) in app.layers.iter().zip([&fx.base_layer, &fx.app_layer]) {
        assert_eq!(layer.media_type, image::MEDIA_TYPE_OCI_LAYER_TAR);
        assert_eq!(layer.size, bytes.len() as u64);
        assert!(
            matches!(&layer.source, BlobSource::Range { path: p, .. } if *p == path),
            "layer must be read in place: {:?}",
            layer.source
        );
        assert_eq!(&read_source(&layer.source), bytes);
    }

    // The generated manifest is a standard OCI manifest naming exactly these blobs.
    let manifest_bytes = read_source(&app.manifest.source);
    assert_eq!(Digest::of(&manifest_bytes), app.manifest.digest);
    let m: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], image::MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(m["config"]["digest"], app.config.digest.to_string());
    assert_eq!(m["config"]["mediaType"], image::MEDIA_TYPE_OCI_CONFIG);
    assert_eq!(m["layers"][1]["digest"], app.layers[1].digest.to_string());
    assert_eq!(m["layers"][1]["size"], fx.app_layer.len());
}

#[test]
fn reports_scan_progress_up_to_the_archive_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "saved.tar", &docker_archive().bytes);
    let size = fs::metadata(&path).unwrap().len();
    let mut seen = Vec::new();
    image::from_archive_with_progress(&path, &mut |p| seen.push(p)).unwrap();
    assert!(
        seen.windows(2).all(|w| w[0].scanned <= w[1].scanned),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|p| p.total == size && p.scanned <= size),
        "{seen:?}"
    );
    assert_eq!(seen.last().map(|p| p.scanned), Some(size));
}

#[test]
fn a_layer_shared_by_two_images_has_one_digest() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "saved.tar", &docker_archive().bytes);
    let images = image::from_archive(&path).unwrap();
    let base = find(&images, "docker.io/ferry/base:1");
    let app = find(&images, "docker.io/ferry/app:2");
    assert_eq!(base.layers[0].digest, app.layers[0].digest);
    // The symlinked copy resolves to the very same bytes of the archive.
    match (&base.layers[0].source, &app.layers[0].source) {
        (BlobSource::Range { offset: a, .. }, BlobSource::Range { offset: b, .. }) => {
            assert_eq!(a, b)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn follows_a_hardlinked_layer() {
    let dir = tempfile::tempdir().unwrap();
    let fx = docker_archive();
    // Rebuild the archive with the app's copy of the base layer as a hard link instead.
    let mut t = tar::Builder::new(Vec::new());
    for e in tar::Archive::new(&fx.bytes[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "bbbb/layer.tar" {
            let mut h = header(tar::EntryType::Link, 0);
            t.append_link(&mut h, &name, "aaaa/layer.tar").unwrap();
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        t.append_data(&mut h, &name, &data[..]).unwrap();
    }
    let path = write(dir.path(), "hardlinked.tar", &t.into_inner().unwrap());
    let images = image::from_archive(&path).unwrap();
    let app = find(&images, "docker.io/ferry/app:2");
    assert_eq!(app.layers[0].digest, Digest::of(&fx.base_layer));
    assert_eq!(read_source(&app.layers[0].source), fx.base_layer);
}

#[test]
fn refuses_a_layer_link_that_leaves_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let fx = docker_archive();
    let mut t = tar::Builder::new(Vec::new());
    for e in tar::Archive::new(&fx.bytes[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "bbbb/layer.tar" {
            let mut h = header(tar::EntryType::Symlink, 0);
            t.append_link(&mut h, &name, "../../../etc/passwd").unwrap();
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        t.append_data(&mut h, &name, &data[..]).unwrap();
    }
    let path = write(dir.path(), "escaping.tar", &t.into_inner().unwrap());
    let err = image::from_archive(&path).unwrap_err();
    assert!(matches!(err, ImageError::MissingEntry { .. }), "{err:?}");
    one_line(&err);
}

#[test]
fn output_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "saved.tar", &docker_archive().bytes);
    let a = image::from_archive(&path).unwrap();
    let copy = write(dir.path(), "copy.tar", &fs::read(&path).unwrap());
    let b = image::from_archive(&copy).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.manifest.digest, y.manifest.digest);
    }
    let refs: Vec<&OciImage> = a.iter().collect();
    assert_eq!(image::index_json(&refs), image::index_json(&refs));
    assert_eq!(oci_archive_bytes(&a), oci_archive_bytes(&b));
}

#[test]
fn index_json_names_every_image_for_containerd() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "saved.tar", &docker_archive().bytes);
    let images = image::from_archive(&path).unwrap();
    let refs: Vec<&OciImage> = images.iter().collect();
    let index: Value = serde_json::from_slice(&image::index_json(&refs)).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], image::MEDIA_TYPE_OCI_INDEX);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3);
    for (d, img) in manifests.iter().zip(&images) {
        assert_eq!(d["digest"], img.manifest.digest.to_string());
        assert_eq!(d["size"], img.manifest.size);
        assert_eq!(d["annotations"]["io.containerd.image.name"], img.reference);
        assert_eq!(
            d["annotations"]["org.opencontainers.image.ref.name"],
            img.reference
        );
        assert_eq!(
            d["platform"],
            json!({"architecture": "amd64", "os": "linux"})
        );
    }
    assert_eq!(image::OCI_LAYOUT, br#"{"imageLayoutVersion":"1.0.0"}"#);
}

// ---- OCI archives ---------------------------------------------------------------------------

#[test]
fn an_oci_archive_written_by_ferry_reads_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "saved.tar", &docker_archive().bytes);
    let images = image::from_archive(&path).unwrap();
    let oci = write(dir.path(), "oci.tar", &oci_archive_bytes(&images));
    let back = image::from_archive(&oci).unwrap();
    assert_eq!(back.len(), images.len());
    for (a, b) in images.iter().zip(&back) {
        assert_eq!(a.reference, b.reference);
        assert_eq!(a.manifest.digest, b.manifest.digest);
        assert_eq!(a.manifest.media_type, b.manifest.media_type);
        assert_eq!(a.config.digest, b.config.digest);
        let da: Vec<_> = a.layers.iter().map(|l| (l.digest, &l.media_type)).collect();
        let db: Vec<_> = b.layers.iter().map(|l| (l.digest, &l.media_type)).collect();
        assert_eq!(da, db);
        assert_eq!((&a.os, &a.architecture), (&b.os, &b.architecture));
    }
    // The shared layer is stored once: 2 manifests, 2 configs, 2 distinct layers.
    let blobs = tar::Archive::new(fs::File::open(&oci).unwrap())
        .entries()
        .unwrap()
        .filter(|e| {
            let e = e.as_ref().unwrap();
            e.header().entry_type() == tar::EntryType::Regular
                && e.path().unwrap().starts_with("blobs/sha256")
        })
        .count();
    assert_eq!(blobs, 6);
}

#[test]
fn reads_a_docker_25_archive_as_oci() {
    // Docker 25+ `docker save` writes an OCI layout plus the classic manifest.json; the OCI
    // side is authoritative.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "saved.tar", &docker_archive().bytes);
    let images = image::from_archive(&path).unwrap();
    let oci = oci_archive_bytes(&images);
    let mut t = tar::Builder::new(Vec::new());
    for e in tar::Archive::new(&oci[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        t.append_data(&mut h, &name, &data[..]).unwrap();
    }
    add(&mut t, "manifest.json", b"[]");
    let path = write(dir.path(), "docker25.tar", &t.into_inner().unwrap());
    let back = image::from_archive(&path).unwrap();
    let names: Vec<&str> = back.iter().map(|i| i.reference.as_str()).collect();
    let want: Vec<&str> = images.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(names, want);
    assert_eq!(back[1].manifest.digest, images[1].manifest.digest);
}

/// An OCI layout made by another tool: `./`-prefixed names, a gzip layer, a nested index.
fn foreign_oci_archive(flip_layer_bit: bool) -> (Vec<u8>, Digest) {
    let gz_layer: Vec<u8> = {
        // Not really compressed data; media types are carried, not interpreted.
        let mut v = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        v.extend_from_slice(b"pretend-gzip-layer-bytes");
        v
    };
    let cfg = serde_json::to_vec(&json!({"architecture": "arm64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"x").to_string()]}}))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::of(&cfg).to_string(), "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": Digest::of(&gz_layer).to_string(), "size": gz_layer.len()}],
    }))
    .unwrap();
    let inner_index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": Digest::of(&manifest).to_string(), "size": manifest.len(),
                       "platform": {"architecture": "arm64", "os": "linux"}}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                       "digest": Digest::of(&inner_index).to_string(), "size": inner_index.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "quay.io/x/y:3"}}],
    }))
    .unwrap();
    let mut stored_layer = gz_layer.clone();
    if flip_layer_bit {
        stored_layer[12] ^= 0x10;
    }
    let mut t = tar::Builder::new(Vec::new());
    add(&mut t, "./oci-layout", image::OCI_LAYOUT);
    add(&mut t, "./index.json", &index);
    for (d, bytes) in [
        (Digest::of(&inner_index), &inner_index),
        (Digest::of(&manifest), &manifest),
        (Digest::of(&cfg), &cfg),
        (Digest::of(&gz_layer), &stored_layer),
    ] {
        add(&mut t, &format!("./blobs/sha256/{}", d.hex()), bytes);
    }
    (t.into_inner().unwrap(), Digest::of(&gz_layer))
}

#[test]
fn reads_an_oci_archive_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, layer_digest) = foreign_oci_archive(false);
    let path = write(dir.path(), "foreign.tar", &bytes);
    let images = image::from_archive(&path).unwrap();
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!(img.reference, "quay.io/x/y:3");
    assert_eq!(img.architecture, "arm64");
    assert_eq!(img.layers[0].digest, layer_digest);
    assert_eq!(
        img.layers[0].media_type, "application/vnd.oci.image.layer.v1.tar+gzip",
        "compressed layers stay compressed"
    );
    assert!(matches!(img.layers[0].source, BlobSource::Range { .. }));
}

#[test]
fn refuses_an_oci_blob_that_does_not_match_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, layer_digest) = foreign_oci_archive(true);
    let path = write(dir.path(), "flipped.tar", &bytes);
    let err = image::from_archive(&path).unwrap_err();
    assert!(matches!(err, ImageError::BlobMismatch { .. }), "{err:?}");
    assert!(one_line(&err).contains(&layer_digest.hex()), "{err}");
}

// ---- bad input ------------------------------------------------------------------------------

#[test]
fn refuses_a_layer_whose_sha256_does_not_match_its_diff_id() {
    let dir = tempfile::tempdir().unwrap();
    // The app config claims a different last layer than the archive holds.
    let fx = docker_archive_with(|c| {
        let mut v: Value = serde_json::from_slice(&c).unwrap();
        v["rootfs"]["diff_ids"][1] = json!(Digest::of(b"another layer").to_string());
        serde_json::to_vec(&v).unwrap()
    });
    let path = write(dir.path(), "mismatch.tar", &fx.bytes);
    let err = image::from_archive(&path).unwrap_err();
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err:?}");
    let line = one_line(&err);
    assert!(line.contains("cccc/layer.tar"), "{line}");
    assert!(
        line.contains(&Digest::of(b"another layer").to_string()),
        "{line}"
    );
}

#[test]
fn refuses_a_flipped_bit_inside_a_layer() {
    let dir = tempfile::tempdir().unwrap();
    let fx = docker_archive();
    let mut bytes = fx.bytes.clone();
    // Flip a bit inside the app layer's payload (its file content).
    let at = find_bytes(&bytes, b"application bytes").unwrap();
    bytes[at] ^= 1;
    let path = write(dir.path(), "flipped.tar", &bytes);
    let err = image::from_archive(&path).unwrap_err();
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err:?}");
    one_line(&err);
}

#[test]
fn refuses_a_truncated_archive() {
    let dir = tempfile::tempdir().unwrap();
    let fx = docker_archive();
    let base_at = find_bytes(&fx.bytes, &[7u8; 64]).unwrap();
    let app_at = find_bytes(&fx.bytes, b"application bytes").unwrap();
    for cut in [100, 700, base_at + 1000, app_at + 3, fx.bytes.len() / 2] {
        let path = write(dir.path(), &format!("cut-{cut}.tar"), &fx.bytes[..cut]);
        let err = image::from_archive(&path).expect_err(&format!("cut at {cut} was accepted"));
        let line = one_line(&err);
        assert!(
            matches!(
                err,
                ImageError::Corrupt { .. }
                    | ImageError::MissingEntry { .. }
                    | ImageError::NotATar { .. }
            ),
            "cut at {cut}: {err:?}"
        );
        assert!(line.contains(&path.display().to_string()), "{line}");
    }
    // Cut exactly between two entries: every entry read is whole, yet the end marker is gone.
    let boundary = find_bytes(&fx.bytes, b"manifest.json\0").unwrap();
    assert_eq!(boundary % 512, 0);
    let path = write(dir.path(), "cut-at-boundary.tar", &fx.bytes[..boundary]);
    let err = image::from_archive(&path).unwrap_err();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err:?}");
    assert!(one_line(&err).contains("end-of-archive marker"), "{err}");
}

#[test]
fn refuses_a_corrupt_tar_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = docker_archive().bytes;
    // The second entry's header: flip a bit in its name, so its checksum no longer matches.
    let second = 512
        + bytes[124..136]
            .iter()
            .take_while(|b| **b != 0)
            .fold(0usize, |a, b| a * 8 + (*b - b'0') as usize)
            .div_ceil(512)
            * 512;
    bytes[second + 3] ^= 0x01;
    let path = write(dir.path(), "corrupt.tar", &bytes);
    let err = image::from_archive(&path).unwrap_err();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err:?}");
    assert!(one_line(&err).contains("truncated or corrupt"), "{err}");
}

#[test]
fn refuses_a_missing_layer() {
    let dir = tempfile::tempdir().unwrap();
    let fx = docker_archive();
    // Rebuild the archive without cccc/layer.tar.
    let mut t = tar::Builder::new(Vec::new());
    let mut src = tar::Archive::new(&fx.bytes[..]);
    for e in src.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "cccc/layer.tar" {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        t.append_data(&mut h, &name, &data[..]).unwrap();
    }
    let path = write(dir.path(), "missing.tar", &t.into_inner().unwrap());
    let err = image::from_archive(&path).unwrap_err();
    assert!(matches!(err, ImageError::MissingEntry { .. }), "{err:?}");
    assert!(one_line(&err).contains("cccc/layer.tar"), "{err}");
}

#[test]
fn refuses_an_archive_that_is_neither_docker_nor_oci() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = tar::Builder::new(Vec::new());
    add(&mut t, "README", b"just some files");
    add(&mut t, "data/x.bin", &[1, 2, 3]);
    let path = write(dir.path(), "plain.tar", &t.into_inner().unwrap());
    let err = image::from_archive(&path).unwrap_err();
    assert!(
        matches!(err, ImageError::NotAnImageArchive { .. }),
        "{err:?}"
    );
    assert!(one_line(&err).contains("neither a docker archive"), "{err}");

    let text = write(
        dir.path(),
        "notes.txt",
        &b"hello, this is not a tar\n".repeat(40),
    );
    let err = image::from_archive(&text).unwrap_err();
    assert!(matches!(err, ImageError::NotATar { .. }), "{err:?}");
    one_line(&err);

    let empty = write(dir.path(), "empty.tar", b"");
    let err = image::from_archive(&empty).unwrap_err();
    assert!(matches!(err, ImageError::NotATar { .. }), "{err:?}");

    let gz = write(dir.path(), "saved.tar.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    let err = image::from_archive(&gz).unwrap_err();
    assert!(one_line(&err).contains("gzip-compressed"), "{err}");

    let absent = dir.path().join("absent.tar");
    let err = image::from_archive(&absent).unwrap_err();
    assert!(matches!(err, ImageError::Io { .. }), "{err:?}");
    assert!(one_line(&err).contains("absent.tar"), "{err}");
}

#[test]
fn refuses_bad_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = tar::Builder::new(Vec::new());
    add(&mut t, "manifest.json", b"{ this is not json");
    let path = write(dir.path(), "badjson.tar", &t.into_inner().unwrap());
    let err = image::from_archive(&path).unwrap_err();
    assert!(matches!(err, ImageError::BadMetadata { .. }), "{err:?}");
    assert!(one_line(&err).contains("manifest.json"), "{err}");
}

#[test]
fn writing_refuses_a_layer_that_changed_after_reading() {
    let dir = tempfile::tempdir().unwrap();
    let fx = docker_archive();
    let path = write(dir.path(), "saved.tar", &fx.bytes);
    let images = image::from_archive(&path).unwrap();
    let mut bytes = fx.bytes.clone();
    let at = find_bytes(&bytes, b"application bytes").unwrap();
    bytes[at] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let refs: Vec<&OciImage> = images.iter().collect();
    let err = image::write_oci_archive(&refs, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, ImageError::BlobChanged { .. }), "{err:?}");
    assert!(
        one_line(&err).contains(&Digest::of(&fx.app_layer).to_string()),
        "{err}"
    );
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn refuses_an_entry_claiming_an_impossible_size() {
    // A valid archive, its end marker replaced by one more header whose (base-256) size is
    // hostile, checksum correct: refused with one line naming the entry, never an overflow.
    let dir = tempfile::tempdir().unwrap();
    let base = docker_archive().bytes;
    let body = &base[..base.len() - 1024];
    assert!(base[body.len()..].iter().all(|b| *b == 0));
    for (i, (kind, size)) in [
        (tar::EntryType::Regular, u64::MAX),
        (tar::EntryType::Regular, u64::MAX - 4096),
        (tar::EntryType::Directory, u64::MAX - 4096),
        (tar::EntryType::Symlink, 1 << 40),
    ]
    .into_iter()
    .enumerate()
    {
        let mut h = header(kind, size);
        h.set_path("evil/layer.tar").unwrap();
        h.set_cksum();
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(h.as_bytes());
        bytes.extend_from_slice(&[0u8; 1024]);
        let path = write(dir.path(), &format!("huge-{i}.tar"), &bytes);
        let err = image::from_archive(&path).unwrap_err();
        assert!(matches!(err, ImageError::Corrupt { .. }), "{size}: {err:?}");
        let line = one_line(&err);
        // u64::MAX is caught inside the tar reader ("size overflow" after the entry before).
        assert!(
            line.contains("evil/layer.tar") || line.contains("size overflow"),
            "{size}: {line}"
        );
    }
}

#[test]
fn refuses_an_image_and_an_item_that_would_extract_to_the_same_directory() {
    // `ferry/base:1` is extracted to ferry_base_1/, which the file item is named too: one
    // would be written inside the other.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "saved.tar", &docker_archive().bytes);
    write(dir.path(), "notes", b"notes");
    let toml = write(
        dir.path(),
        "bundle.toml",
        b"[bundle]\nname = \"d\"\nversion = \"1\"\n\n[[images]]\nref = \"ferry/base:1\"\narchive = \"saved.tar\"\n\n[[files]]\nname = \"ferry_base_1\"\npath = \"notes\"\n",
    );
    let out = dir.path().join("d.bundle");
    let err = ferry_bundle::build(
        &ferry_bundle::BundleSpec::load(&toml).unwrap(),
        &ferry_bundle::BuildOptions {
            output: out.clone(),
            sign_key: None,
            max_part_size: None,
            source_date_epoch: 0,
            docker_host: None,
            threads: 1,
        },
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "items \"ferry_base_1\" and \"ferry/base:1\" would both extract to \"ferry_base_1\""
        ),
        "{err}"
    );
    assert!(!out.exists());
}
