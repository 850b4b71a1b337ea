//! End to end through the `ferry` binary: images from a real Docker engine and from a
//! `docker save` archive go into a signed bundle; an image taken back OUT of the bundle is
//! imported by containerd's own `ctr` and a container runs from it; skopeo reads the layout.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use ferry_tests::docker::{self, Containerd, Dockerd};

const BASE: &str = "ferry-test/base:1";
const APP: &str = "ferry-test/app:1";
const APP_FULL: &str = "docker.io/ferry-test/app:1";
const BASE_FULL: &str = "docker.io/ferry-test/base:1";

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", show(&out));
    out
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn an_image_taken_out_of_a_bundle_runs_in_containerd() {
    if !docker::available() || !docker::containerd_available() {
        return;
    }
    let engine = Dockerd::start();
    engine.import_busybox(BASE, &[("etc/base-marker", b"base-layer-present\n")]);
    engine.build_on(BASE, APP, &[("app-marker", b"app-layer-present\n")]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    engine.save(&[BASE], &d.join("base.tar"));
    fs::write(
        d.join("bundle.toml"),
        format!(
            "[bundle]\nname = \"images-e2e\"\nversion = \"1.0.0\"\n\n\
             [[images]]\nref = \"{APP}\"\nengine = true\n\n\
             [[images]]\nref = \"{BASE}\"\narchive = \"base.tar\"\n"
        ),
    )
    .unwrap();
    let key = d.join("key");
    ok(ferry(&["key", "generate", "-o", p(&key)]));
    let bundle = d.join("images.ferry");
    let host = engine.host();
    ok(ferry(&[
        "bundle",
        "build",
        p(&d.join("bundle.toml")),
        "-o",
        p(&bundle),
        "--sign-key",
        p(&key),
        "--docker-host",
        &host,
    ]));
    let pubkey = format!("{}.pub", p(&key));
    ok(ferry(&[
        "bundle",
        "verify",
        p(&bundle),
        "--pubkey",
        &pubkey,
    ]));

    let inspect = ok(ferry(&["bundle", "inspect", p(&bundle), "--json"]));
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains(APP_FULL) && text.contains(BASE_FULL),
        "{text}"
    );

    // The app image, out of the bundle, as an OCI archive for containerd.
    let out_dir = d.join("out");
    ok(ferry(&[
        "bundle",
        "extract",
        p(&bundle),
        APP,
        "-o",
        p(&out_dir),
        "--oci-archive",
        "--pubkey",
        &pubkey,
    ]));
    let archive = out_dir.join("ferry-test_app_1.tar");
    assert!(archive.exists(), "no {}", archive.display());

    let containerd = Containerd::start();
    ok(containerd.import(&archive));
    assert!(containerd.images().contains(&APP_FULL.to_string()));
    let run = ok(containerd.run(
        APP_FULL,
        "ferry-e2e-app",
        &[
            "/bin/sh",
            "-c",
            "echo FERRY-BUNDLE-MARKER; cat /etc/base-marker /app-marker",
        ],
    ));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("FERRY-BUNDLE-MARKER"), "{}", show(&run));
    assert!(stdout.contains("base-layer-present"), "{}", show(&run));
    assert!(stdout.contains("app-layer-present"), "{}", show(&run));

    // The base image, extracted as a plain OCI layout directory, is read by skopeo.
    if Path::new("/usr/bin/skopeo").exists() {
        let layout_dir = d.join("layout");
        ok(ferry(&[
            "bundle",
            "extract",
            p(&bundle),
            BASE,
            "-o",
            p(&layout_dir),
            "--pubkey",
            &pubkey,
        ]));
        let layout = find_layout(&layout_dir)
            .unwrap_or_else(|| panic!("no oci-layout under {}", layout_dir.display()));
        let out = ok(Command::new("skopeo")
            .args(["inspect", &format!("oci:{}:{BASE_FULL}", layout.display())])
            .output()
            .unwrap());
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["Architecture"], "amd64", "{info}");
        assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1), "{info}");
    } else {
        eprintln!("note: skopeo not installed; the skopeo check did not run");
    }
}

/// The directory holding `oci-layout` at or below `dir`.
fn find_layout(dir: &Path) -> Option<std::path::PathBuf> {
    if dir.join("oci-layout").exists() {
        return Some(dir.to_path_buf());
    }
    for e in fs::read_dir(dir).ok()? {
        let path = e.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find_layout(&path) {
                return Some(found);
            }
        }
    }
    None
}

#[test]
fn a_build_naming_an_image_the_engine_lacks_fails_with_one_line_and_no_output() {
    if !docker::available() {
        return;
    }
    let engine = Dockerd::start();
    engine.import_busybox(BASE, &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(
        d.join("bundle.toml"),
        "[bundle]\nname = \"missing\"\nversion = \"1.0.0\"\n\n\
         [[images]]\nref = \"ferry-test/base:1\"\nengine = true\n\n\
         [[images]]\nref = \"ferry-test/not-there:7\"\nengine = true\n",
    )
    .unwrap();
    let key = d.join("key");
    ok(ferry(&["key", "generate", "-o", p(&key)]));
    let bundle = d.join("missing.ferry");
    let out = ferry(&[
        "bundle",
        "build",
        p(&d.join("bundle.toml")),
        "-o",
        p(&bundle),
        "--sign-key",
        p(&key),
        "--docker-host",
        &engine.host(),
    ]);
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ferry-test/not-there:7"), "{stderr}");
    assert!(!bundle.exists(), "a failed build left {}", bundle.display());
    let left: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("missing"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
