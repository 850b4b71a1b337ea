//! What the cluster and app VM suites (cluster_vm, apps_vm) share: a testbed of VMs started
//! one at a time, a signed bundle carrying k3s (the k3s-STAND-IN unless `FERRY_TEST_K3S` names
//! a real binary) and busybox images, app packages added to it, a license for the VMs, and
//! the answer file of a k3s cluster.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use vm_tests::{start_or_skip, Testbed, VmSpec};

use super::Site;

/// Each test boots its own VMs: never two testbeds of one binary at once on a 2-core machine.
static ONE_BED: Mutex<()> = Mutex::new(());

/// The k3s version the bundles carry.
pub const K3S_VERSION: &str = "v1.31.4+k3s1";
/// The image in the bundles' air-gap archive.
pub const PAUSE: &str = "ferry-test/pause:3";

/// A testbed of `n` VMs (restored from the saved state), with this binary's lock on testbeds;
/// `None` where VMs or a Docker engine (the bundle's images) cannot be had outside CI.
pub fn start_bed(n: usize) -> Option<(MutexGuard<'static, ()>, Testbed)> {
    start_bed_with(n, &VmSpec::default())
}

/// [`start_bed`] with VMs of `spec`.
pub fn start_bed_with(n: usize, spec: &VmSpec) -> Option<(MutexGuard<'static, ()>, Testbed)> {
    if !ferry_tests::docker::available() {
        assert!(
            !vm_tests::in_ci(),
            "CI must have docker for the cluster bundle"
        );
        return None;
    }
    let guard = ONE_BED.lock().unwrap_or_else(|p| p.into_inner());
    let bed = start_or_skip(n, spec)?;
    Some((guard, bed))
}

/// The k3s binary the tests install: `FERRY_TEST_K3S`, else the stand-in (built when missing).
pub fn k3s_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FERRY_TEST_K3S") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/TEST-HASH -> target/debug/k3s-STAND-IN
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let standin = dir.join("k3s-STAND-IN");
    if !standin.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "-p", "k3s-standin", "--bin", "k3s-STAND-IN"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "building the k3s stand-in failed");
    }
    standin
}

pub fn sha256_of(path: &Path) -> String {
    ferry_bundle::Digest::of(&fs::read(path).unwrap()).hex()
}

/// A busybox image of a bundle: its reference, the archive it is saved to (one per image) and
/// the files it holds besides busybox (path inside the image, content).
pub struct Image<'a> {
    pub reference: &'a str,
    pub archive: &'a str,
    pub files: &'a [(&'a str, &'a [u8])],
}

/// A signed bundle `out` of `dir` (key `vendor`, made when missing) named `vm-cluster`, with
/// k3s (the binary, and when `with_airgap` an air-gap archive holding [`PAUSE`]) and
/// `images`, and nothing else: the site's hosts get containerd from their image (the baseline
/// starts it).
pub fn build_bundle(dir: &Path, out: &str, with_airgap: bool, images: &[Image<'_>]) -> PathBuf {
    use ferry_tests::docker::Dockerd;
    let engine = Dockerd::start();
    engine.import_busybox(PAUSE, &[("pause-marker", b"pause\n")]);
    engine.save(&[PAUSE], &dir.join("airgap.tar"));
    let mut toml = "[bundle]\nname = \"vm-cluster\"\nversion = \"1.0.0\"\n\n".to_string();
    for image in images {
        engine.import_busybox(image.reference, image.files);
        engine.save(&[image.reference], &dir.join(image.archive));
        toml.push_str(&format!(
            "[[images]]\nref = \"{}\"\narchive = \"{}\"\n\n",
            image.reference, image.archive
        ));
    }
    let k3s = k3s_binary();
    fs::copy(&k3s, dir.join("k3s")).unwrap();
    if with_airgap {
        toml.push_str(&format!(
            "[k3s]\nversion = \"{K3S_VERSION}\"\nbinary = {{ path = \"k3s\", sha256 = \"{}\" }}\n\
             airgap_images = {{ path = \"airgap.tar\", sha256 = \"{}\" }}\n",
            sha256_of(&dir.join("k3s")),
            sha256_of(&dir.join("airgap.tar")),
        ));
    }
    fs::write(dir.join("bundle.toml"), toml).unwrap();
    let ferry = |args: &[&str]| super::ferry_in(dir, args);
    if !dir.join("vendor.pub").exists() {
        ferry(&["key", "generate", "-o", "vendor"]);
    }
    ferry(&[
        "bundle",
        "build",
        "bundle.toml",
        "-o",
        out,
        "--sign-key",
        "vendor",
    ]);
    dir.join(out)
}

/// The manifest digest (`sha256:…`) `bundle` recorded for the image whose reference contains
/// `name`: what a package names its image by.
pub fn image_digest(bundle: &Path, name: &str) -> String {
    let bundle = ferry_bundle::Bundle::open(bundle, None).unwrap();
    bundle
        .manifest()
        .items
        .iter()
        .find_map(|i| match &i.kind {
            ferry_bundle::ItemKind::Image {
                reference,
                manifest_digest,
                ..
            } if reference.contains(name) => Some(manifest_digest.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no image {name} in the bundle"))
}

/// Adds the packed `packages` (files of `dir`) to `dir/bundle.toml` and builds `site.ferry`
/// again with them (its images' digests stay the ones the first build recorded).
pub fn add_packages(dir: &Path, packages: &[&str]) {
    let mut toml = fs::read_to_string(dir.join("bundle.toml")).unwrap();
    for p in packages {
        toml.push_str(&format!("\n[[app_packages]]\npath = \"{p}\"\n"));
    }
    fs::write(dir.join("bundle.toml"), toml).unwrap();
    super::ferry_in(
        dir,
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "site.ferry",
            "--sign-key",
            "vendor",
            "--force",
        ],
    );
}

/// A license for the hosts of `inventory` from the test vendor key (built into test builds
/// only) granting `modules` (TOML lines of its `[modules]`): `site.lic`, its activation record
/// in `lic/`.
pub fn license_for(site: &Site, inventory: &str, modules: &str) {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../licensing/testdata");
    fs::copy(
        testdata.join("test-issuer-a.key"),
        site.path().join("issuer.key"),
    )
    .unwrap();
    site.ferry(&[
        "license",
        "request",
        "-i",
        inventory,
        "--state-dir",
        "lic",
        "-o",
        "req.txt",
    ])
    .expect_ok("license request -i");
    site.write(
        "spec.toml",
        &format!(
            "customer = \"VM Site\"\nexpires = \"2099-12-31\"\nmax_nodes = 10\n\n[modules]\n{modules}"
        ),
    );
    site.ferry(&[
        "license",
        "issue",
        "--request",
        "req.txt",
        "--spec",
        "spec.toml",
        "--key",
        "issuer.key",
        "-o",
        "site.lic",
    ])
    .expect_ok("license issue");
}

/// `[cluster] images` as `FERRY_TEST_IMAGES` (`import` or `registry`) says; the default's
/// when unset.
pub fn images_from() -> Option<String> {
    std::env::var("FERRY_TEST_IMAGES")
        .ok()
        .filter(|v| !v.is_empty())
}

/// Whether a cluster of two nodes or more pulls its images from the site registry on its
/// first server (`images = "registry"`).
pub fn pulls_from_registry() -> bool {
    images_from().as_deref() == Some("registry")
}

/// The answer file `name`: k3s from `bundle`, with `extra` lines in `[cluster]` (and tables
/// after it), and `images` from [`images_from`].
pub fn answers(site: &Site, name: &str, inventory: &str, bundle: &str, extra: &str) -> String {
    let images = images_from()
        .map(|v| format!("images = \"{v}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "inventory = \"{inventory}\"\nbundle = \"{bundle}\"\nbundle-pubkey = \"vendor.pub\"\n\n\
         [cluster]\nname = \"vm-cluster\"\ndistribution = \"k3s\"\n{images}{extra}\n\n\
         [preflight]\nmin-cpus = 1\nmin-memory-mib = 512\nmin-disk-gib = 1\n"
    );
    site.write(name, &text).to_str().unwrap().to_string()
}

/// The first `hosts` VMs of the testbed, one server and the rest agents.
pub fn inventory(site: &Site, bed: &Testbed, name: &str, hosts: usize) -> String {
    inventory_with(site, bed, name, hosts, 1)
}

/// The first `hosts` VMs of the testbed, the first `servers` of them servers.
pub fn inventory_with(
    site: &Site,
    bed: &Testbed,
    name: &str,
    hosts: usize,
    servers: usize,
) -> String {
    let text = ferry_tests::vmhost::inventory_toml(bed, servers);
    let blocks: Vec<&str> = text
        .split("[[hosts]]")
        .filter(|b| !b.trim().is_empty())
        .collect();
    let mut out = String::new();
    for b in blocks.iter().take(hosts) {
        out.push_str("[[hosts]]");
        out.push_str(b);
    }
    site.write(name, &out);
    name.to_string()
}
