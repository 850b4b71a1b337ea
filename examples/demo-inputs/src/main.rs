//! Makes the inputs of `examples/bundle.toml` in a directory, with nothing but Rust: a text
//! payload, a directory of site documents, a docker-archive with two small images that share a
//! base layer, and clearly named STAND-INs for the k3s binary, its air-gap images, a kubectl
//! binary, a GPU driver and a Debian package repository, and the sample MCD platform's package
//! directory (examples/mcd: app.yaml names the two images by the digests the bundle gives them;
//! examples/demo.sh packs and signs it with `ferry app pack`). Every byte is deterministic, so
//! the sha256 values pinned in bundle.toml and the image digests in app.yaml stay valid.
//!
//! `cargo run -p ferry-demo-inputs -- DIR` (examples/demo.sh builds it with ferry in one go).
//! Its own crate, not an example of ferry-bundle: examples build a crate's dev-dependencies,
//! and ferry-bundle's include the whole test harness.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ferry_bundle::Digest;

/// Errors of this example.
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: make-demo-inputs DIR")?;
    for (digest, name) in make(Path::new(&dir))? {
        println!("{}  {name}", digest.hex());
    }
    Ok(())
}

/// Makes the inputs in `dir`; returns the digests of the pinned files (for bundle.toml).
pub fn make(dir: &Path) -> Res<Vec<(Digest, &'static str)>> {
    fs::create_dir_all(dir)?;

    let payload: String = (0..20_000)
        .map(|i| format!("{i:06} demo payload line: the site gets exactly these bytes\n"))
        .collect();
    fs::write(dir.join("payload.txt"), payload)?;
    // Incompressible bytes (like firmware or an already compressed archive): stored as-is.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let firmware: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    fs::write(dir.join("firmware.bin"), firmware)?;

    let docs = dir.join("site-docs");
    fs::create_dir_all(docs.join("runbooks"))?;
    fs::write(
        docs.join("README.md"),
        "# Site documents\nCarried in the bundle as a directory.\n",
    )?;
    fs::write(
        docs.join("runbooks/restore.md"),
        "1. Stay calm.\n2. ferry install --answers site.toml\n".repeat(50),
    )?;
    fs::write(docs.join("runbooks/check.sh"), "#!/bin/sh\necho site ok\n")?;
    fs::set_permissions(
        docs.join("runbooks/check.sh"),
        fs::Permissions::from_mode(0o755),
    )?;
    std::os::unix::fs::symlink("runbooks/restore.md", docs.join("RESTORE.md"))?;

    // Two images sharing a base layer: the bundle stores the base once.
    let base = layer(&[("etc/os-release", b"NAME=demo-base\n".as_slice())])?;
    let app = layer(&[("app/hello.txt", b"hello from demo/app\n".as_slice())])?;
    let tool = layer(&[("tool/hello.txt", b"hello from demo/tool\n".as_slice())])?;
    docker_archive(
        &dir.join("images.tar"),
        &[
            ("demo/app:1.0", vec![&base, &app]),
            ("demo/tool:1.0", vec![&base, &tool]),
        ],
    )?;

    stand_in(
        dir,
        "k3s-STAND-IN",
        "a stand-in for the k3s binary (no real k3s can be downloaded here)",
        true,
    )?;
    docker_archive(
        &dir.join("k3s-airgap-images-amd64-STAND-IN.tar"),
        &[("rancher/mirrored-pause:3.6", vec![&base])],
    )?;
    stand_in(dir, "kubectl-STAND-IN", "a stand-in for kubectl", true)?;
    stand_in(
        dir,
        "NVIDIA-Linux-x86_64-550.90.07-STAND-IN.run",
        "a stand-in for the NVIDIA driver installer",
        true,
    )?;
    let debs = dir.join("debs");
    fs::create_dir_all(&debs)?;
    fs::write(
        debs.join("Packages"),
        "Package: chrony-STAND-IN\nVersion: 4.3-2\nFilename: chrony-STAND-IN_4.3-2_amd64.deb\n",
    )?;
    stand_in(
        &debs,
        "chrony-STAND-IN_4.3-2_amd64.deb",
        "a stand-in Debian package",
        false,
    )?;
    // The sample MCD platform, as in examples/mcd (compiled in: the maker needs no checkout).
    let mcd = dir.join("mcd");
    fs::create_dir_all(mcd.join("files"))?;
    for (path, text) in MCD_PACKAGE {
        fs::write(mcd.join(path), text)?;
    }

    let mut pinned = vec![];
    for f in [
        "k3s-STAND-IN",
        "k3s-airgap-images-amd64-STAND-IN.tar",
        "kubectl-STAND-IN",
        "NVIDIA-Linux-x86_64-550.90.07-STAND-IN.run",
    ] {
        pinned.push((Digest::of(&fs::read(dir.join(f))?), f));
    }
    Ok(pinned)
}

/// The files of examples/mcd, the sample MCD platform's package directory.
const MCD_PACKAGE: [(&str, &str); 3] = [
    ("app.yaml", include_str!("../../mcd/app.yaml")),
    (
        "files/index.html",
        include_str!("../../mcd/files/index.html"),
    ),
    ("files/report.sh", include_str!("../../mcd/files/report.sh")),
];

fn stand_in(dir: &Path, name: &str, what: &str, executable: bool) -> Res<()> {
    let p = dir.join(name);
    fs::write(
        &p,
        format!(
            "#!/bin/sh\n# STAND-IN: {what}; made by make-demo-inputs.\necho \"{name}: {what}\"\n"
        ),
    )?;
    fs::set_permissions(
        &p,
        fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 }),
    )?;
    Ok(())
}

/// A deterministic layer tar holding `files`.
pub fn layer(files: &[(&str, &[u8])]) -> Res<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, path, *data)?;
    }
    Ok(b.into_inner()?)
}

/// A `docker save` archive: manifest.json, one config per image, layers as `<hex>/layer.tar`.
pub fn docker_archive(path: &Path, images: &[(&str, Vec<&Vec<u8>>)]) -> Res<()> {
    let mut b = tar::Builder::new(fs::File::create(path)?);
    let put = |b: &mut tar::Builder<fs::File>, name: &str, data: &[u8]| -> Res<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, name, data)?;
        Ok(())
    };
    let mut manifest = vec![];
    let mut written = std::collections::BTreeSet::new();
    for (tag, layers) in images {
        let mut layer_names = vec![];
        let mut diff_ids = vec![];
        for l in layers {
            let d = Digest::of(l);
            let name = format!("{}/layer.tar", d.hex());
            if written.insert(name.clone()) {
                put(&mut b, &name, l)?;
            }
            layer_names.push(name);
            diff_ids.push(d.to_string());
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Cmd": ["/bin/sh"] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))?;
        let config_name = format!("{}.json", Digest::of(&config).hex());
        if written.insert(config_name.clone()) {
            put(&mut b, &config_name, &config)?;
        }
        manifest.push(
            serde_json::json!({ "Config": config_name, "RepoTags": [tag], "Layers": layer_names }),
        );
    }
    put(&mut b, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    b.into_inner()?.flush()?;
    Ok(())
}
