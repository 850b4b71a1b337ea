//! `ferry license` through the real binary: the full round trip request → issue → activate →
//! verify → status with --local on fixture machine roots, and the bad inputs a delivery engineer
//! (or someone on site trying to mint a license) can meet, each ending in one clear line and a
//! failing exit code. This is a test build of ferry: it trusts the test issuer keys of
//! licensing/testdata/ and takes --now and --root (a release build does neither: see
//! `the_release_binary_has_no_test_options`).
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

    /// The vendor's key: test issuer key A, built into test builds only.
    fn vendor_key(&self) {
        if !self.p("vendor.key").exists() {
            for (name, to) in [
                ("test-issuer-a.key", "vendor.key"),
                ("test-issuer-a.key.pub", "vendor.key.pub"),
            ] {
                std::fs::copy(testdata(name), self.p(to)).unwrap();
            }
        }
    }

    /// A new request, and a license issued for it with the vendor's key and `spec`: returns the
    /// license file name.
    fn licensed(&self, spec: &str, out: &str) -> String {
        self.vendor_key();
        let root = self.root();
        self.ok(
            &[
                "request",
                "--local",
                "--root",
                root.to_str().unwrap(),
                "-o",
                "req.txt",
                "--force",
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
                "--force",
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

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../licensing/testdata")
        .join(name)
}

/// Unix seconds now, for `--now` values relative to the real day (licenses are valid from the
/// day they are issued).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

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
    let out = site.ok(&["keygen", "-o", "new.key"], None);
    assert!(out.contains("issuer key"), "{out}");
    let mode = |p: &str| std::fs::metadata(site.p(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("new.key"), 0o600);
    assert!(site.p("new.key.pub").exists());
    site.vendor_key();

    let root = site.root();
    let root = root.to_str().unwrap();
    let out = site.ok(
        &[
            "request", "--local", "--root", root, "-o", "req.txt", "--qr",
        ],
        None,
    );
    assert!(out.contains('█'), "no QR code printed:\n{out}");
    assert!(
        out.contains("save the license they send back as req.lic"),
        "{out}"
    );
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
    // Within 48 hours of the highest time seen is tolerated; more is a clock set back.
    site.ok(&site.local(root, &["verify", &lic]), Some("2030-07-05"));
    site.fails(
        &site.local(root, &["verify", &lic]),
        Some("2030-07-03"),
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
    // Signed by another key.
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
        "not a vendor key built into this ferry",
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

/// One rule for every output (-o) of the license commands and `ferry key generate`: an existing
/// file is refused with one line naming --force, left as it was, and --force replaces it.
#[test]
fn outputs_are_never_overwritten_without_force() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    site.vendor_key();
    site.spec("spec.toml", MINIMAL_SPEC);
    for name in [
        "req.txt",
        "site.lic",
        "bundle.key",
        "bundle.key.pub",
        "mine.key",
    ] {
        std::fs::write(site.p(name), "precious\n").unwrap();
    }
    let issue = |force: bool| {
        let mut args = vec![
            "issue",
            "--request",
            "fresh.txt",
            "--spec",
            "spec.toml",
            "--key",
            "vendor.key",
            "-o",
            "site.lic",
        ];
        if force {
            args.push("--force");
        }
        args
    };
    let key_generate = |force: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(["key", "generate", "-o", "bundle.key"])
            .current_dir(site.dir.path());
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    type Run<'a> = Box<dyn Fn() -> Output + 'a>;
    let refused: [(&str, Run); 4] = [
        (
            "req.txt",
            Box::new(|| {
                site.ferry(
                    &["request", "--local", "--root", root, "-o", "req.txt"],
                    None,
                )
            }),
        ),
        ("site.lic", Box::new(|| site.ferry(&issue(false), None))),
        ("bundle.key", Box::new(|| key_generate(false))),
        (
            "mine.key",
            Box::new(|| site.ferry(&["keygen", "-o", "mine.key"], None)),
        ),
    ];
    site.ok(
        &["request", "--local", "--root", root, "-o", "fresh.txt"],
        None,
    );
    for (name, run) in &refused {
        let out = run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was replaced");
        assert!(
            err.contains(&format!("{name}: already exists; will not overwrite"))
                && err.contains("--force")
                && err.lines().count() == 1,
            "{name}: {err}"
        );
        assert_eq!(std::fs::read_to_string(site.p(name)).unwrap(), "precious\n");
    }
    site.ok(
        &[
            "request", "--local", "--root", root, "-o", "req.txt", "--force",
        ],
        None,
    );
    site.ok(&issue(true), None);
    assert!(key_generate(true).status.success());
    site.ok(&["keygen", "-o", "mine.key", "--force"], None);
    for name in [
        "req.txt",
        "site.lic",
        "bundle.key",
        "bundle.key.pub",
        "mine.key",
    ] {
        assert_ne!(
            std::fs::read_to_string(site.p(name)).unwrap(),
            "precious\n",
            "{name} was not replaced with --force"
        );
    }
    let mode = std::fs::metadata(site.p("bundle.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
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
        "keygen", "keys", "request", "issue", "activate", "inspect", "verify", "status",
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

/// Issue 10 item 4: anyone on site could make a key, issue themselves a license and activate it
/// with `--pubkey mine.pub`. Only the vendor keys built into ferry are trusted; --pubkey chooses
/// among them and cannot add one.
#[test]
fn refuses_a_license_from_a_key_that_is_not_built_in() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    let vendor = site.licensed(MINIMAL_SPEC, "vendor.lic");
    site.ok(&site.local(root, &["activate", &vendor]), None);

    site.ok(&["keygen", "-o", "mine.key"], None);
    site.ok(
        &["request", "--local", "--root", root, "-o", "mine.txt"],
        None,
    );
    site.spec(
        "big.toml",
        "customer = \"me\"\nexpires = \"2099-12-31\"\nmax_nodes = 999\n",
    );
    site.ok(
        &[
            "issue",
            "--request",
            "mine.txt",
            "--spec",
            "big.toml",
            "--key",
            "mine.key",
            "-o",
            "mine.lic",
        ],
        None,
    );
    let local = ["--local", "--root", root];
    let err = site.fails(
        &[
            &["activate", "mine.lic", "--pubkey", "mine.key.pub"][..],
            &local,
        ]
        .concat(),
        None,
        "is not a vendor key built into this ferry",
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let err = site.fails(
        &[&["activate", "mine.lic"][..], &local].concat(),
        None,
        "not a vendor key built into this ferry",
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("it was not issued by the vendor"), "{err}");
    // The vendor's license stays installed and valid.
    let out = site.ok(&[&["status"][..], &local].concat(), None);
    assert!(
        out.contains("customer   Example Site") && out.contains("status     OK"),
        "{out}"
    );
    // Planting the key where older ferry pinned keys changes nothing.
    std::fs::create_dir_all(site.p("state/trusted")).unwrap();
    std::fs::copy(site.p("mine.key.pub"), site.p("state/trusted/mine.pub")).unwrap();
    site.fails(
        &[&["verify", "mine.lic"][..], &local].concat(),
        None,
        "not a vendor key built into this ferry",
    );
}

#[test]
fn pubkey_chooses_among_the_built_in_keys_by_file_or_id() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    let out = site.ok(&["keys"], None);
    for id in ["b2b28b5dac7b8854", "e039d258f3500e3d"] {
        assert!(out.contains(id), "{out}");
    }
    let lic = site.licensed(MINIMAL_SPEC, "site.lic");
    let local = ["--local", "--root", root];
    // Signed by key A: choosing only key B refuses it, choosing A (by id or file) accepts it.
    site.fails(
        &[
            &["verify", &lic, "--pubkey", "e039d258f3500e3d"][..],
            &local,
        ]
        .concat(),
        None,
        "signed by issuer key b2b28b5dac7b8854",
    );
    site.ok(
        &[
            &["verify", &lic, "--pubkey", "b2b28b5dac7b8854"][..],
            &local,
        ]
        .concat(),
        None,
    );
    site.ok(
        &[
            &["activate", &lic, "--pubkey", "vendor.key.pub"][..],
            &local,
        ]
        .concat(),
        None,
    );
    site.fails(
        &[&["status", "--pubkey", "0123456789abcdef"][..], &local].concat(),
        None,
        "no vendor key with that id is built into this ferry",
    );
}

/// Issue 10 item 6: `rm license.lic guard.json` reset the guards, and an older, expired license
/// then activated at an earlier date.
#[test]
fn removing_the_license_state_fails_closed_instead_of_starting_over() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    let today = unix_now();
    let old = site.licensed(
        &format!(
            "customer = \"c\"\nexpires = \"{}\"\nmax_nodes = 1\ngrace_days = 0\nsequence = 1\n",
            date(today + 5 * DAY)
        ),
        "old.lic",
    );
    let new = site.licensed(&format!("{MINIMAL_SPEC}sequence = 2\n"), "new.lic");
    let later = (today + 30 * DAY).to_string();
    site.ok(
        &site.local(root, &["activate", &old]),
        Some(&today.to_string()),
    );
    site.ok(&site.local(root, &["activate", &new]), Some(&later));
    site.ok(&["status", "--local", "--root", root], Some(&later));

    std::fs::remove_file(site.p("state/license.lic")).unwrap();
    std::fs::remove_file(site.p("state/guard.json")).unwrap();
    site.fails(
        &["status", "--local", "--root", root],
        Some(&later),
        "status     PROBLEM: license state in",
    );
    let out = site.ferry(&["status", "--local", "--root", root], Some(&later));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("missing or incomplete")
            && stdout.contains("re-activate with a new license from the vendor"),
        "{stdout}"
    );
    // The older license, at a date when it was still valid: refused, nothing installed.
    site.fails(
        &site.local(root, &["activate", &old]),
        Some(&(today + DAY).to_string()),
        "the clock was set back",
    );
    assert!(!site.p("state/license.lic").exists());
    // The way out: a new request and the vendor's license for it.
    let renewal = site.licensed(&format!("{MINIMAL_SPEC}sequence = 3\n"), "renewal.lic");
    site.ok(&site.local(root, &["activate", &renewal]), Some(&later));
    let out = site.ok(&["status", "--local", "--root", root], Some(&later));
    assert!(out.contains("status     OK"), "{out}");
}

/// Issue 10 item 7: a clock set ahead once locked the site out for good. A clock put right within
/// 48 hours goes on working; beyond that, a license for a request made after the guards last
/// moved resets them.
#[test]
fn a_clock_once_set_ahead_is_tolerated_within_48_hours_and_reset_by_the_vendor_beyond() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    let today = unix_now();
    let at = |t: i64| t.to_string();
    let lic = site.licensed(
        "customer = \"c\"\nexpires = \"2099-12-31\"\nmax_nodes = 1\n",
        "site.lic",
    );
    site.ok(&site.local(root, &["activate", &lic]), Some(&at(today)));
    // 40 hours ahead while a check ran, then put right.
    site.ok(
        &["status", "--local", "--root", root],
        Some(&at(today + 40 * HOUR)),
    );
    let out = site.ok(
        &["status", "--local", "--root", root],
        Some(&at(today + HOUR)),
    );
    assert!(out.contains("status     OK"), "{out}");

    // A year ahead, then put right: locked out, and told the way out.
    site.ok(
        &["status", "--local", "--root", root],
        Some(&at(today + 365 * DAY)),
    );
    let fixed = today + 2 * HOUR;
    site.fails(
        &["status", "--local", "--root", root],
        Some(&at(fixed)),
        "run `ferry license request` and activate the vendor's license for that request",
    );
    let renewal = site.licensed(
        "customer = \"c\"\nexpires = \"2099-12-31\"\nmax_nodes = 1\n",
        "renewal.lic",
    );
    site.ok(&site.local(root, &["activate", &renewal]), Some(&at(fixed)));
    let out = site.ok(
        &["status", "--local", "--root", root],
        Some(&at(fixed + HOUR)),
    );
    assert!(out.contains("status     OK"), "{out}");
    // The old license does not get the reset.
    site.fails(
        &site.local(root, &["verify", &lic]),
        Some(&at(fixed - 3 * DAY)),
        "the clock was set back",
    );
}

/// Issue 10: mail clients add blank lines and CRLF line ends; the license reads the same.
#[test]
fn activates_a_license_file_a_mail_client_reformatted() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    let lic = site.licensed(MINIMAL_SPEC, "site.lic");
    let text = std::fs::read_to_string(site.p(&lic)).unwrap();
    let mailed = format!("\r\n{}\r\n\r\n", text.replace('\n', "\r\n\r\n"));
    std::fs::write(site.p("mailed.lic"), mailed).unwrap();
    site.ok(&site.local(root, &["activate", "mailed.lic"]), None);
}

/// Issue 11 item 7: the command printed after `request` works as printed (it named a LICENSE
/// placeholder and left out --local and the state directory).
#[test]
fn request_prints_an_activate_command_that_works_as_printed() {
    let site = Site::new();
    let root = site.root();
    site.vendor_key();
    site.spec("spec.toml", MINIMAL_SPEC);
    let state = site.p("my state");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["license", "request", "--local", "--root"])
        .arg(&root)
        .arg("--state-dir")
        .arg(&state)
        .args(["-o", "req.txt"])
        .current_dir(site.dir.path())
        .env_remove("FERRY_STATE_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let mut lines = stdout.lines();
    lines
        .find(|l| l.contains("save the license they send back as req.lic and run:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let command = lines.next().unwrap().trim();
    site.ok(
        &[
            "issue",
            "--request",
            "req.txt",
            "--spec",
            "spec.toml",
            "--key",
            "vendor.key",
            "-o",
            "req.lic",
        ],
        None,
    );
    // Run exactly what was printed, through a shell, with no FERRY_STATE_DIR to help.
    let run = Command::new("sh")
        .args(["-c", command])
        .current_dir(site.dir.path())
        .env_remove("FERRY_STATE_DIR")
        .env_remove("FERRY_LICENSE_NOW")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "`{command}` failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(state.join("license.lic").exists());
}

/// Issue 11 item 7: as a user who cannot write /var/lib/ferry, `request` says to use --state-dir.
#[test]
fn request_as_non_root_names_state_dir() {
    use std::os::unix::process::CommandExt as _;
    let site = Site::new();
    let root = site.root();
    let default = Path::new("/var/lib/ferry/license");
    std::fs::set_permissions(site.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(["license", "request", "--local", "--root"])
        .arg(&root)
        .args(["-o", "req.txt"])
        .current_dir(site.dir.path())
        .env_remove("FERRY_STATE_DIR");
    if nix_is_root() {
        // nobody: cannot write under /var/lib.
        cmd.uid(65534).gid(65534);
    } else if std::fs::metadata("/var/lib").is_ok_and(|m| !m.permissions().readonly())
        && default.exists()
    {
        eprintln!(
            "SKIPPED: not root and {} is writable here",
            default.display()
        );
        return;
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("permission denied") && err.contains("--state-dir DIR"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!site.p("req.txt").exists());
}

fn nix_is_root() -> bool {
    // The tests run as root in CI; /proc/self/status says who we are without a libc call.
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Issue 11 item 7: `issue` warns when the expiry is already past.
#[test]
fn issue_warns_when_the_expiry_is_already_past() {
    let site = Site::new();
    let root = site.root();
    site.vendor_key();
    site.ok(
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
    let yesterday = date(unix_now() - DAY);
    let ago = date(unix_now() - 30 * DAY);
    for (expires, grace, needle) in [
        (yesterday.as_str(), 14, "it works only in its grace period"),
        (ago.as_str(), 0, "every site will refuse it"),
    ] {
        site.spec(
            "spec.toml",
            &format!(
                "customer = \"c\"\nexpires = \"{expires}\"\nmax_nodes = 1\ngrace_days = {grace}\n"
            ),
        );
        let out = site.ferry(
            &[
                "issue",
                "--request",
                "req.txt",
                "--spec",
                "spec.toml",
                "--key",
                "vendor.key",
                "-o",
                "late.lic",
                "--force",
            ],
            None,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("warning: license lic-")
                && err.contains(&format!("expired on {expires}, before today"))
                && err.contains(needle),
            "{err}"
        );
    }
}

/// Issue 10 item 5: the release binary has no `--now`, `FERRY_LICENSE_NOW` or `--root`, and
/// trusts no test key. CI builds it (scripts/build-compat.sh, `cargo zigbuild --release`, no dev
/// dependencies, so no `testing` feature) and names it in FERRY_COMPAT_BIN.
#[test]
fn the_release_binary_has_no_test_options() {
    let site = Site::new();
    let root = site.root();
    let root = root.to_str().unwrap();
    let state = site.p("state");
    let state = state.to_str().unwrap();
    // The test build takes them (the status runs, and finds nothing installed): the
    // assertions below can fail.
    site.fails(
        &["status", "--local", "--root", root, "--now", "2030-01-01"],
        None,
        "no license is installed",
    );
    let Some(release) = ferry_tests::compat_binary() else {
        return;
    };
    let run = |args: &[&str], now: Option<&str>| {
        let mut cmd = Command::new(&release);
        cmd.arg("license").args(args).env_remove("FERRY_STATE_DIR");
        cmd.env_remove("FERRY_LICENSE_NOW");
        if let Some(now) = now {
            cmd.env("FERRY_LICENSE_NOW", now);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(
        &[
            "status",
            "--local",
            "--state-dir",
            state,
            "--now",
            "2030-01-01",
        ],
        None,
    );
    assert!(!ok && err.contains("unexpected argument '--now'"), "{err}");
    let (ok, err) = run(
        &["status", "--local", "--state-dir", state, "--root", root],
        None,
    );
    assert!(!ok && err.contains("unexpected argument '--root'"), "{err}");
    let (ok, err) = run(
        &["status", "--local", "--state-dir", state],
        Some("2030-01-01"),
    );
    assert!(
        !ok && err.contains(
            "FERRY_LICENSE_NOW is set, but this ferry reads the time only from the clock"
        ),
        "{err}"
    );
    let out = Command::new(&release)
        .args(["license", "keys"])
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{keys}");
    for id in ["b2b28b5dac7b8854", "e039d258f3500e3d"] {
        assert!(
            !keys.contains(id),
            "the release binary trusts test key {id}:\n{keys}"
        );
    }
}

/// `YYYY-MM-DD` of a Unix time.
fn date(t: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
