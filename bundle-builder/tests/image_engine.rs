//! Images from a real Docker engine (a private dockerd started by the test), written as an OCI
//! archive and run by a real containerd: the proof that ferry's image layout is the standard one.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use ferry_bundle::image::{self, EngineProgress, ImageError, OciImage};
use ferry_bundle::BlobSource;
use ferry_tests::docker::{self, Containerd, Dockerd};

const BASE: &str = "ferry-test/base:1";
const APP: &str = "ferry-test/app:1";
const BASE_FULL: &str = "docker.io/ferry-test/base:1";
const APP_FULL: &str = "docker.io/ferry-test/app:1";

/// A base image (busybox + a marker) and an app image built FROM it (one more layer).
fn engine_with_two_images() -> Dockerd {
    let engine = Dockerd::start();
    engine.import_busybox(BASE, &[("etc/base-marker", b"base-layer-present\n")]);
    engine.build_on(BASE, APP, &[("app-marker", b"app-layer-present\n")]);
    engine
}

fn write_archive(images: &[OciImage], out: &Path) {
    let refs: Vec<&OciImage> = images.iter().collect();
    let file = fs::File::create(out).unwrap();
    image::write_oci_archive(&refs, std::io::BufWriter::new(file)).unwrap();
}

fn stdout(out: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn images_exported_from_a_real_engine_run_in_containerd() {
    if !docker::available() || !docker::containerd_available() {
        return;
    }
    let engine = engine_with_two_images();
    let spool = tempfile::tempdir().unwrap();
    let refs = vec![BASE.to_string(), APP.to_string()];
    let images = image::from_engine(&engine.host(), &refs, spool.path()).unwrap();

    assert_eq!(images.len(), 2);
    assert_eq!(images[0].reference, BASE_FULL);
    assert_eq!(images[1].reference, APP_FULL);
    assert_eq!(
        (images[1].os.as_str(), images[1].architecture.as_str()),
        ("linux", "amd64")
    );
    assert_eq!(images[0].layers.len(), 1);
    assert_eq!(images[1].layers.len(), 2);
    assert_eq!(
        images[0].config.digest.to_string(),
        engine.image_id(BASE).unwrap(),
        "the config blob is the engine's own image config"
    );
    // Layers are read in place from the one spool file, not copied.
    for layer in &images[1].layers {
        match &layer.source {
            BlobSource::Range { path, .. } => assert!(path.starts_with(spool.path())),
            other => panic!("layer not read in place: {other:?}"),
        }
    }

    let archive = spool.path().join("images.oci.tar");
    write_archive(&images, &archive);

    let containerd = Containerd::start();
    let out = containerd.import(&archive);
    assert!(out.status.success(), "ctr images import: {}", stdout(&out));
    let names = containerd.images();
    assert!(names.contains(&APP_FULL.to_string()), "{names:?}");
    assert!(names.contains(&BASE_FULL.to_string()), "{names:?}");

    let out = containerd.run(
        APP_FULL,
        "ferry-run-app",
        &[
            "/bin/sh",
            "-c",
            "echo FERRY-MARKER-OK; cat /etc/base-marker /app-marker",
        ],
    );
    assert!(out.status.success(), "ctr run: {}", stdout(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FERRY-MARKER-OK"), "{}", stdout(&out));
    assert!(text.contains("base-layer-present"), "{}", stdout(&out));
    assert!(text.contains("app-layer-present"), "{}", stdout(&out));

    // containerd's own export of what it imported is an OCI archive ferry reads back with
    // the same manifest: the layout survived a round trip through a foreign tool.
    let exported = spool.path().join("ctr-export.tar");
    let out = containerd.ctr(&["images", "export", &exported.to_string_lossy(), APP_FULL]);
    assert!(out.status.success(), "ctr images export: {}", stdout(&out));
    let back = image::from_archive(&exported).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].reference, APP_FULL);
    assert_eq!(back[0].manifest.digest, images[1].manifest.digest);
}

#[test]
fn two_images_sharing_a_base_share_the_layer_digest() {
    if !docker::available() {
        return;
    }
    let engine = engine_with_two_images();
    let spool = tempfile::tempdir().unwrap();
    let refs = vec![APP.to_string(), BASE.to_string()];
    let mut events = Vec::new();
    let images = image::from_engine_with_progress(&engine.host(), &refs, spool.path(), &mut |e| {
        events.push(e)
    })
    .unwrap();
    let found: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            EngineProgress::Found { reference, .. } => Some(reference.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(found, [APP, BASE]);
    assert!(
        matches!(events.last(), Some(EngineProgress::Scanning(p)) if p.scanned == p.total && p.total > 0),
        "{events:?}"
    );
    let (app, base) = (&images[0], &images[1]);
    assert_eq!(app.layers[0].digest, base.layers[0].digest);
    assert_ne!(app.layers[1].digest, base.layers[0].digest);

    // The written layout stores the shared layer once: 2 manifests + 2 configs + 2 layers.
    let archive = spool.path().join("shared.tar");
    write_archive(&images, &archive);
    let blobs = tar::Archive::new(fs::File::open(&archive).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .filter(|p| p.starts_with("blobs/sha256/") && p.len() > "blobs/sha256/".len())
        .count();
    assert_eq!(blobs, 6);
}

#[test]
fn reads_a_real_docker_save_archive_with_a_symlinked_layer() {
    if !docker::available() {
        return;
    }
    let engine = engine_with_two_images();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.tar");
    engine.save(&[BASE, APP], &saved);

    // Docker writes the base layer once and links the app's copy of it to that one.
    let links = tar::Archive::new(fs::File::open(&saved).unwrap())
        .entries()
        .unwrap()
        .filter(|e| e.as_ref().unwrap().header().entry_type() == tar::EntryType::Symlink)
        .count();
    assert!(links >= 1, "expected a symlinked layer in docker's archive");

    let images = image::from_archive(&saved).unwrap();
    let mut names: Vec<&str> = images.iter().map(|i| i.reference.as_str()).collect();
    names.sort();
    assert_eq!(names, [APP_FULL, BASE_FULL]);
    let app = images.iter().find(|i| i.reference == APP_FULL).unwrap();
    let base = images.iter().find(|i| i.reference == BASE_FULL).unwrap();
    assert_eq!(app.layers[0].digest, base.layers[0].digest);
}

#[test]
fn refuses_an_image_name_the_engine_does_not_have() {
    if !docker::available() {
        return;
    }
    let engine = Dockerd::start();
    engine.import_busybox(BASE, &[]);
    let spool = tempfile::tempdir().unwrap();
    let refs = vec![BASE.to_string(), "ferry-test/absent:9".to_string()];
    let err = image::from_engine(&engine.host(), &refs, spool.path()).unwrap_err();
    assert!(matches!(err, ImageError::UnknownImage { .. }), "{err:?}");
    let line = err.to_string();
    assert!(line.contains("ferry-test/absent:9"), "{line}");
    assert!(!line.contains('\n'), "{line}");
    assert_eq!(
        fs::read_dir(spool.path()).unwrap().count(),
        0,
        "nothing was spooled"
    );
}

#[test]
fn refuses_an_export_that_cannot_fit_in_the_spool_directory() {
    if !docker::available() {
        return;
    }
    let engine = Dockerd::start();
    engine.import_busybox(BASE, &[]);
    // A 256 KiB file system; the busybox image alone is about 2 MB.
    let disk = ferry_tests::sshd::SmallDisk::mount(256);
    let err = image::from_engine(&engine.host(), &[BASE.to_string()], disk.path()).unwrap_err();
    assert!(matches!(err, ImageError::SpoolSpace { .. }), "{err:?}");
    let line = err.to_string();
    assert!(line.contains(&disk.path().display().to_string()), "{line}");
    assert!(!line.contains('\n'), "{line}");
    assert_eq!(
        fs::read_dir(disk.path()).unwrap().count(),
        0,
        "nothing was spooled"
    );
}

#[test]
fn refuses_an_engine_that_is_not_there() {
    let spool = tempfile::tempdir().unwrap();
    let sock = spool.path().join("no-such-docker.sock");
    let host = format!("unix://{}", sock.display());
    let err = image::from_engine(&host, &[BASE.to_string()], spool.path()).unwrap_err();
    assert!(matches!(err, ImageError::Engine { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-docker.sock"), "{err}");
}

#[test]
fn an_image_id_is_accepted_as_a_reference() {
    if !docker::available() {
        return;
    }
    let engine = Dockerd::start();
    let id = engine.import_busybox(BASE, &[]);
    let spool = tempfile::tempdir().unwrap();
    let short = id.trim_start_matches("sha256:")[..12].to_string();
    let images = image::from_engine(&engine.host(), &[short], spool.path()).unwrap();
    assert_eq!(images[0].reference, id);
    assert!(images[0].is_untagged());
    let index: serde_json::Value =
        serde_json::from_slice(&image::index_json(&[&images[0]])).unwrap();
    assert!(
        index["manifests"][0].get("annotations").is_none(),
        "{index}"
    );
}

#[test]
fn the_private_engine_runs_containers_without_a_bridge() {
    if !docker::available() {
        return;
    }
    let engine = Dockerd::start();
    engine.import_busybox(BASE, &[("etc/base-marker", b"base-layer-present\n")]);
    let (out, code) = engine.run(BASE, &["/bin/sh", "-c", "cat /etc/base-marker; exit 3"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("base-layer-present"), "{out}");
}

#[test]
fn a_skopeo_made_oci_archive_with_gzip_layers_runs_in_containerd() {
    if !docker::available() || !docker::containerd_available() || !skopeo_available() {
        return;
    }
    let engine = engine_with_two_images();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("app-saved.tar");
    engine.save(&[APP], &saved);
    // skopeo compresses layers for OCI destinations: a foreign layout with gzip layers.
    let sk = dir.path().join("skopeo.oci.tar");
    let out = std::process::Command::new(SKOPEO)
        .args([
            "copy",
            &format!("docker-archive:{}", saved.display()),
            &format!("oci-archive:{}:{APP_FULL}", sk.display()),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy: {}", stdout(&out));

    let images = image::from_archive(&sk).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].reference, APP_FULL);
    assert_eq!(images[0].layers.len(), 2);
    for layer in &images[0].layers {
        assert_eq!(
            layer.media_type, "application/vnd.oci.image.layer.v1.tar+gzip",
            "gzip layers stay gzip"
        );
    }

    let rewritten = dir.path().join("ferry.oci.tar");
    write_archive(&images, &rewritten);
    let containerd = Containerd::start();
    let out = containerd.import(&rewritten);
    assert!(out.status.success(), "ctr images import: {}", stdout(&out));
    let out = containerd.run(
        APP_FULL,
        "ferry-run-skopeo",
        &["/bin/sh", "-c", "cat /etc/base-marker /app-marker"],
    );
    assert!(out.status.success(), "ctr run: {}", stdout(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("base-layer-present") && text.contains("app-layer-present"),
        "{}",
        stdout(&out)
    );
}

const SKOPEO: &str = "/usr/bin/skopeo";

/// skopeo is a second, independent reader/writer of OCI layouts (Debian's `skopeo`); same
/// rule as the engine: a loud skip, or a failure under `CI=true`.
fn skopeo_available() -> bool {
    if Path::new(SKOPEO).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {SKOPEO} is missing (apt-get install skopeo)");
    }
    eprintln!(
        "!!!!! SKIPPED: {SKOPEO} is missing (apt-get install skopeo); this test did NOT run !!!!!"
    );
    false
}
