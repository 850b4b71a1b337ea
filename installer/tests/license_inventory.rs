//! `ferry license -i inventory.toml` through the real binary against real sshd hosts: the site's
//! fingerprint gathered over SSH from every host, activation installing the license state on
//! every host, verify and status counting the inventory's nodes.
#![allow(clippy::unwrap_used, missing_docs)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use ferry_tests::sshd::{self, Sshd};

fn ferry(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("license")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("FERRY_STATE_DIR", dir.join("state"))
        .env_remove("FERRY_LICENSE_NOW")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = ferry(dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "ferry license {args:?} failed:\n{text}"
    );
    text
}

fn inventory(dir: &Path, servers: &[Sshd]) -> String {
    let key = sshd::fixture().keys.ed25519.display().to_string();
    let mut toml = String::new();
    for (i, s) in servers.iter().enumerate() {
        toml += &format!(
            "[[hosts]]\nname = \"node{i}\"\naddress = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\nkey = \"{key}\"\nsudo = \"passwordless\"\n\n",
            s.port,
            sshd::SUDO_USER
        );
    }
    std::fs::write(dir.join("inventory.toml"), toml).unwrap();
    "inventory.toml".into()
}

#[test]
fn activates_a_license_on_every_host_of_an_inventory() {
    if !sshd::available() {
        return;
    }
    let servers = [Sshd::start(), Sshd::start()];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inv = inventory(dir, &servers);
    let hosts_dir = dir.join("on-hosts");
    let hosts_dir_s = hosts_dir.to_str().unwrap();
    let site = ["-i", inv.as_str(), "--host-state-dir", hosts_dir_s];

    // The vendor's key: test issuer key A, which test builds of ferry trust.
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../licensing/testdata");
    std::fs::copy(testdata.join("test-issuer-a.key"), dir.join("vendor.key")).unwrap();
    std::fs::copy(
        testdata.join("test-issuer-a.key.pub"),
        dir.join("vendor.key.pub"),
    )
    .unwrap();
    let out = ok(dir, &[&["request"][..], &site, &["-o", "req.txt"]].concat());
    assert!(out.contains("for 2 host(s)"), "{out}");

    std::fs::write(
        dir.join("one.toml"),
        "customer = \"c\"\nexpires = \"2027-12-31\"\nmax_nodes = 1\n",
    )
    .unwrap();
    ok(
        dir,
        &[
            "issue",
            "--request",
            "req.txt",
            "--spec",
            "one.toml",
            "--key",
            "vendor.key",
            "-o",
            "one.lic",
        ],
    );
    let out = ferry(
        dir,
        &[
            &["activate", "one.lic", "--pubkey", "vendor.key.pub"][..],
            &site,
        ]
        .concat(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("2 nodes are in use but the license allows 1"),
        "{err}"
    );
    assert!(
        !hosts_dir.join("license.lic").exists(),
        "a refused license was installed on the hosts"
    );

    std::fs::write(
        dir.join("two.toml"),
        "customer = \"c\"\nexpires = \"2027-12-31\"\nmax_nodes = 2\n",
    )
    .unwrap();
    ok(
        dir,
        &[
            "issue",
            "--request",
            "req.txt",
            "--spec",
            "two.toml",
            "--key",
            "vendor.key",
            "-o",
            "two.lic",
        ],
    );
    let out = ok(
        dir,
        &[
            &["activate", "two.lic", "--pubkey", "vendor.key.pub"][..],
            &site,
        ]
        .concat(),
    );
    assert!(out.contains("installed on 2 host(s)"), "{out}");
    for f in ["license.lic", "guard.json"] {
        assert_eq!(
            std::fs::read(hosts_dir.join(f)).unwrap(),
            std::fs::read(dir.join("state").join(f)).unwrap(),
            "{f} on the hosts differs from the jump host's"
        );
    }
    let records: Vec<_> = std::fs::read_dir(hosts_dir.join("requests"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );

    ok(dir, &[&["verify", "two.lic"][..], &site].concat());
    let out = ok(dir, &[&["status"][..], &site].concat());
    assert!(
        out.contains("nodes      2 in use of 2") && out.contains("status     OK"),
        "{out}"
    );
    // The hosts keep the highest time seen: a jump host whose state is restored from a backup
    // taken before a later status call still refuses a clock earlier than what the hosts saw.
    let record = dir.join("state/requests").join(records[0].file_name());
    let backup = std::fs::read(dir.join("state/guard.json")).unwrap();
    let record_backup = std::fs::read(&record).unwrap();
    let later = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([&["license", "status"][..], &site].concat())
        .current_dir(dir)
        .env("HOME", dir)
        .env("FERRY_STATE_DIR", dir.join("state"))
        .env("FERRY_LICENSE_NOW", "2027-06-01")
        .output()
        .unwrap();
    assert!(
        later.status.success(),
        "{}",
        String::from_utf8_lossy(&later.stdout)
    );
    std::fs::write(dir.join("state/guard.json"), &backup).unwrap();
    std::fs::write(&record, &record_backup).unwrap();
    let out = ferry(dir, &[&["verify", "two.lic"][..], &site].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("the clock was set back"),
        "{err}"
    );
    // The hosts' guards (guard.json and the one in the activation record) follow the highest
    // time seen on the site.
    for f in [
        Path::new("guard.json"),
        &Path::new("requests").join(records[0].file_name()),
    ] {
        assert_eq!(
            std::fs::read(hosts_dir.join(f)).unwrap(),
            std::fs::read(dir.join("state").join(f)).unwrap(),
            "{f:?}"
        );
    }
}
