//! `ferry license` through the real binary: the full round trip keygen → request → issue →
//! activate → verify → status with --local on fixture machine roots, and the bad inputs a
//! delivery engineer can meet, each ending in one clear line and a failing exit code.
#![allow(clippy::unwrap_used, missing_docs)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Machine {
    machine_id: &'static str,
    product_uuid: &'static str,
    disks: Vec<&'static str>,
    macs: Vec<&'static str>,
    gpus: u32,
}

fn machine() -> Machine {
    Machine {
        machine_id: "3d1219c7c4c5404aaa1f6d2a48adfda4",
        product_uuid: "4c4c4544-0042-3510-8052-b4c04f384d32",
        disks: vec!["S4EWNX0R123456", "S4EWNX0R654321"],
        macs: vec!["52:54:00:12:34:56", "52:54:00:12:34:57"],
        gpus: 0,
    }
}

/// Writes the files ferry reads under a machine root: machine-id, DMI, block devices, NICs and
/// PCI devices (plus a loop device and a bridge, which must be ignored).
fn write_root(root: &Path, m: &Machine) {
    let put = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{text}\n")).unwrap();
    };
    let _ = std::fs::remove_dir_all(root);
    put("etc/hostname", "node1");
    put("etc/machine-id", m.machine_id);
    put("sys/class/dmi/id/product_uuid", m.product_uuid);
    for (i, s) in m.disks.iter().enumerate() {
        put(
            &format!("sys/block/sd{}/device/serial", (b'a' + i as u8) as char),
            s,
        );
    }
    put("sys/block/loop0/serial", "changes-every-boot");
    for (i, mac) in m.macs.iter().enumerate() {
        put(&format!("sys/class/net/eth{i}/address"), mac);
        std::fs::create_dir_all(root.join(format!("sys/class/net/eth{i}/device"))).unwrap();
    }
    put("sys/class/net/br0/address", "02:42:ac:11:00:01");
    for i in 0..m.gpus {
        put(
            &format!("sys/bus/pci/devices/0000:0{i}:00.0/vendor"),
            "0x10de",
        );
        put(
            &format!("sys/bus/pci/devices/0000:0{i}:00.0/class"),
            "0x030200",
        );
    }
    put("sys/bus/pci/devices/0000:09:00.0/vendor", "0x8086");
    put("sys/bus/pci/devices/0000:09:00.0/class", "0x020000");
}

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        let site = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        write_root(&site.root(), &machine());
        site
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn root(&self) -> PathBuf {
        self.p("root")
    }

    fn ferry(&self, args: &[&str], now: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.arg("license")
            .args(args)
            .current_dir(self.dir.path())
            .env("FERRY_STATE_DIR", self.p("state"));
        cmd.env_remove("FERRY_LICENSE_NOW");
        if let Some(now) = now {
            cmd.env("FERRY_LICENSE_NOW", now);
        }
        cmd.output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str], now: Option<&str>) -> String {
        let out = self.ferry(args, now);
        assert!(
            out.status.success(),
            "ferry license {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure with one clear `error:` line containing `needle`.
    fn fails(&self, args: &[&str], now: Option<&str>, needle: &str) -> String {
        let out = self.ferry(args, now);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !out.status.success(),
            "ferry license {args:?} succeeded:\n{stdout}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr.contains(needle) || stdout.contains(needle),
            "{args:?}: wanted `{needle}`, got:\n{stdout}{stderr}"
        );
        stderr
    }

    fn spec(&self, name: &str, text: &str) -> String {
        std::fs::write(self.p(name), text).unwrap();
        name.to_owned()
    }

    /// keygen, request, issue with `spec`: returns the license file name.
    fn licensed(&self, spec: &str, out: &str) -> String {
        if !self.p("vendor.key").exists() {
            self.ok(&["keygen", "-o", "vendor.key"], None);
        }
        let root = self.root();
        self.ok(
            &[
                "request",
                "--local",
                "--root",
                root.to_str().unwrap(),
                "-o",
                "req.txt",
            ],
            None,
        );
        let spec = self.spec("spec.toml", spec);
        self.ok(
            &[
                "issue",
                "--request",
                "req.txt",
                "--spec",
                &spec,
                "--key",
                "vendor.key",
                "-o",
                out,
            ],
            None,
        );
        out.to_owned()
    }

    fn local<'a>(&'a self, root: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = args.to_vec();
        v.extend(["--pubkey", "vendor.key.pub", "--local", "--root", root]);
        v
    }
}

const MINIMAL_SPEC: &str =
    "customer = \"Example Site\"\nexpires = \"2027-12-31\"\nmax_nodes = 10\n";

#[test]
fn round_trips_keygen_request_issue_activate_verify_status() {
    let site = Site::new();
    let root = site.root();
    site.fails(
        &["status", "--local", "--root", root.to_str().unwrap()],
        None,
        "status     PROBLEM: no license is installed",
    );
    let out = site.ok(&["keygen", "-o", "vendor.key"], None);
    assert!(out.contains("issuer key"), "{out}");
    let mode = |p: &str| std::fs::metadata(site.p(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("vendor.key"), 0o600);
    assert!(site.p("vendor.key.pub").exists());

    let root = site.root();
    let root = root.to_str().unwrap();
    let out = site.ok(
        &[
            "request", "--local", "--root", root, "-o", "req.txt", "--qr",
        ],
        None,
    );
    assert!(out.contains('█'), "no QR code printed:\n{out}");
    assert_eq!(mode("req.txt"), 0o600);
    let req = std::fs::read_to_string(site.p("req.txt")).unwrap();
    assert!(req.starts_with("-----BEGIN FERRY LICENSE REQUEST-----\n"));
    // Identifiers never travel in clear.
    for secret in [
        "3d1219c7c4c5404aaa1f6d2a48adfda4",
        "S4EWNX0R123456",
        "52:54:00:12:34:56",
    ] {
        assert!(!req.contains(secret) && !out.contains(secret));
    }

    site.spec("spec.toml", MINIMAL_SPEC);
    let out = site.ok(
        &[
            "issue",
            "--request",
            "req.txt",
            "--spec",
            "spec.toml",
            "--key",
            "vendor.key",
            "-o",
            "site.lic",
        ],
        None,
    );
    assert!(
        out.contains("Example Site") && out.contains("10 nodes"),
        "{out}"
    );

    let out = site.ok(&site.local(root, &["activate", "site.lic"]), None);
    assert!(out.contains("is valid: 1 of 10 nodes"), "{out}");
    site.ok(&site.local(root, &["verify", "site.lic"]), None);
    let out = site.ok(&["status", "--local", "--root", root], None);
    for line in [
        "customer   Example Site",
        "nodes      1 in use of 10",
        "GPUs       0 in use of unlimited",
        "status     OK",
    ] {
        assert!(out.contains(line), "status lacks `{line}`:\n{out}");
    }
    assert!(
        out.lines().count() <= 24 && out.lines().all(|l| l.chars().count() <= 100),
        "{out}"
    );
    let out = site.ok(&["status", "--local", "--root", root, "--json"], None);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["valid"], true);
    let out = site.ok(&["inspect", "site.lic"], None);
    assert!(
        out.contains("Example Site") && out.contains("ed25519+xchacha20poly1305"),
        "{out}"
    );
    // Nothing in the state dir or output holds the vendor's private key.
    let key = std::fs::read_to_string(site.p("vendor.key")).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    assert!(!out.contains(key_line));
}

#[test]
fn verify_fails_on_other_hardware_and_a_clone_but_not_after_a_disk_swap() {
    let site = Site::new();
    let lic = site.licensed(MINIMAL_SPEC, "site.lic");
    let root = site.root();
    let root = root.to_str().unwrap();
    site.ok(&site.local(root, &["activate", &lic]), None);

    let mut m = machine();
    m.disks[1] = "REPLACEMENT-DISK";
    write_root(&site.root(), &m);
    site.ok(&site.local(root, &["verify", &lic]), None);

    let mut clone = machine();
    clone.product_uuid = "00000000-1111-2222-3333-444444444444";
    clone.macs = vec!["52:54:00:ab:cd:ef"];
    write_root(&site.root(), &clone);
    site.fails(
        &site.local(root, &["verify", &lic]),
        None,
        "license is for other hardware",
    );

    write_root(
        &site.root(),
        &Machine {
            machine_id: "ffffffffffffffffffffffffffffffff",
            product_uuid: "ffffffff-0000-0000-0000-000000000000",
            disks: vec!["OTHER"],
            macs: vec!["52:54:00:00:00:01"],
            gpus: 0,
        },
    );
    site.fails(
        &site.local(root, &["verify", &lic]),
        None,
        "license is for other hardware",
    );
    site.fails(
        &["status", "--local", "--root", root],
        None,
        "status     PROBLEM: license is for other hardware",
    );
}

#[test]
fn refuses_more_gpus_than_licensed() {
    let site = Site::new();
    let lic = site.licensed(&format!("{MINIMAL_SPEC}max_gpus = 2\n"), "site.lic");
    let mut m = machine();
    m.gpus = 3;
    write_root(&site.root(), &m);
    let root = site.root();
    site.fails(
        &site.local(root.to_str().unwrap(), &["activate", &lic]),
        None,
        "3 GPUs are in use but the license allows 2",
    );
}

#[test]
fn refuses_expired_not_yet_valid_and_a_clock_set_back() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    let lic = site.licensed(
        "customer = \"c\"\nexpires = \"2030-06-30\"\nnot_before = \"2030-01-01\"\nmax_nodes = 1\ngrace_days = 10\n",
        "site.lic",
    );
    site.fails(
        &site.local(root, &["activate", &lic]),
        Some("2029-12-31"),
        "not valid before 2030-01-01",
    );
    site.fails(
        &site.local(root, &["activate", &lic]),
        Some("2030-07-11"),
        "expired on 2030-06-30",
    );
    let out = site.ok(&site.local(root, &["activate", &lic]), Some("2030-07-05"));
    assert!(out.contains("grace"), "{out}");
    site.ok(&site.local(root, &["verify", &lic]), Some("2030-07-06"));
    site.fails(
        &site.local(root, &["verify", &lic]),
        Some("2030-07-05"),
        "the clock was set back",
    );
}

#[test]
fn refuses_an_older_license_after_a_newer_one() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    let old = site.licensed(&format!("{MINIMAL_SPEC}sequence = 5\n"), "old.lic");
    let new = site.licensed(&format!("{MINIMAL_SPEC}sequence = 6\n"), "new.lic");
    site.ok(&site.local(root, &["activate", &new]), None);
    site.fails(
        &site.local(root, &["activate", &old]),
        None,
        "older than the installed license",
    );
    // The installed license is untouched.
    let out = site.ok(&["status", "--local", "--root", root], None);
    assert!(out.contains("sequence 6"), "{out}");
}

#[test]
fn refuses_changed_truncated_and_empty_license_files() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    let lic = site.licensed(MINIMAL_SPEC, "site.lic");
    let text = std::fs::read(site.p(&lic)).unwrap();
    let mut changed = text.clone();
    changed[100] = if changed[100] == b'A' { b'B' } else { b'A' };
    std::fs::write(site.p("changed.lic"), &changed).unwrap();
    site.fails(
        &site.local(root, &["verify", "changed.lic"]),
        None,
        "checksum does not match",
    );
    std::fs::write(site.p("short.lic"), &text[..text.len() / 2]).unwrap();
    site.fails(
        &site.local(root, &["verify", "short.lic"]),
        None,
        "is truncated",
    );
    std::fs::write(site.p("empty.lic"), b"").unwrap();
    site.fails(
        &site.local(root, &["activate", "empty.lic"]),
        None,
        "license file is empty",
    );
    site.fails(
        &site.local(root, &["verify", "req.txt"]),
        None,
        "this is a license request file",
    );
    // Signed by another vendor key.
    site.ok(&["keygen", "-o", "other.key"], None);
    site.ok(
        &["request", "--local", "--root", root, "-o", "req2.txt"],
        None,
    );
    site.ok(
        &[
            "issue",
            "--request",
            "req2.txt",
            "--spec",
            "spec.toml",
            "--key",
            "other.key",
            "-o",
            "other.lic",
        ],
        None,
    );
    site.fails(
        &site.local(root, &["verify", "other.lic"]),
        None,
        "not a trusted key here",
    );
}

#[test]
fn refuses_a_hand_edited_request() {
    let site = Site::new();
    site.licensed(MINIMAL_SPEC, "site.lic");
    let text = std::fs::read_to_string(site.p("req.txt")).unwrap();
    let line = text.lines().nth(3).unwrap().to_owned();
    let edited_line: String = line.chars().rev().collect();
    std::fs::write(site.p("req.txt"), text.replace(&line, &edited_line)).unwrap();
    let err = site.fails(
        &[
            "issue",
            "--request",
            "req.txt",
            "--spec",
            "spec.toml",
            "--key",
            "vendor.key",
            "-o",
            "x.lic",
        ],
        None,
        "license request file was changed or damaged",
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!site.p("x.lic").exists());
}

#[test]
fn keygen_never_overwrites_a_key() {
    let site = Site::new();
    site.ok(&["keygen", "-o", "vendor.key"], None);
    let before = std::fs::read(site.p("vendor.key")).unwrap();
    site.fails(&["keygen", "-o", "vendor.key"], None, "already exists");
    assert_eq!(std::fs::read(site.p("vendor.key")).unwrap(), before);
}

#[test]
fn keygen_force_replaces_a_symlink_instead_of_writing_through_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let site = Site::new();
    std::fs::write(site.p("victim"), "precious").unwrap();
    std::os::unix::fs::symlink(site.p("victim"), site.p("vendor.key")).unwrap();
    std::os::unix::fs::symlink(site.p("victim"), site.p("vendor.key.pub")).unwrap();
    site.ok(&["keygen", "-o", "vendor.key", "--force"], None);
    assert_eq!(std::fs::read(site.p("victim")).unwrap(), b"precious");
    for name in ["vendor.key", "vendor.key.pub"] {
        let meta = std::fs::symlink_metadata(site.p(name)).unwrap();
        assert!(meta.file_type().is_file(), "{name} is still a link");
    }
    let mode = std::fs::metadata(site.p("vendor.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn help_fits_80_columns() {
    for sub in [
        "keygen", "request", "issue", "activate", "inspect", "verify", "status",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["license", sub, "--help"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.lines().all(|l| l.chars().count() <= 80),
            "{sub}:\n{text}"
        );
    }
}
