//! Flat apt repositories from real `.deb` files (built here with dpkg-deb, control archives
//! compressed with xz, gzip and zstd), read back by apt itself; and a set whose dependencies
//! are not closed refused with each unmet relation and who needs it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use ferry_bundle::apt_repo::{write_flat_repo, AptRepoError, Unmet};
use ferry_bundle::Bundle;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds `NAME_VERSION_all.deb` in `dir` with the extra control `fields`.
fn deb(dir: &Path, name: &str, version: &str, fields: &str, compression: &str) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.path().join("usr/share/doc").join(name)).unwrap();
    std::fs::write(
        root.path().join("usr/share/doc").join(name).join("README"),
        format!("{name} {version}\n"),
    )
    .unwrap();
    std::fs::write(
        root.path().join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: ferry <ferry@example.org>\n\
             {fields}Description: test package {name}\n a package built by ferry's tests\n"
        ),
    )
    .unwrap();
    let out = dir.join(format!("{name}_{version}_all.deb"));
    let o = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Z", compression, "--build"])
        .arg(root.path())
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn base() -> BTreeSet<String> {
    ["libc6".to_string()].into()
}

#[test]
fn builds_a_flat_repository_apt_installs_from() {
    if !have("dpkg-deb") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let debs = work.path().join("debs");
    std::fs::create_dir(&debs).unwrap();
    deb(
        &debs,
        "app",
        "1.0-1",
        "Depends: libx (>= 1.6.20~ds1-1+deb12u3) | liby, mail-agent, libc6 (>= 2.36)\n",
        "xz",
    );
    deb(&debs, "libx", "1.6.20-1", "Pre-Depends: libc6\n", "gzip");
    deb(&debs, "mta", "2:3.0", "Provides: mail-agent\n", "zstd");
    let repo = work.path().join("repo");
    let made = write_flat_repo(&debs, &repo, "debian-12", &base()).unwrap();
    assert_eq!(
        made.packages,
        ["app 1.0-1 all", "libx 1.6.20-1 all", "mta 2:3.0 all"]
    );

    // The index names each file with its size and hash; Packages.gz is the same index; the
    // Release file's sums are the files'.
    let index = std::fs::read_to_string(repo.join("Packages")).unwrap();
    for name in [
        "app_1.0-1_all.deb",
        "libx_1.6.20-1_all.deb",
        "mta_2:3.0_all.deb",
    ] {
        let bytes = std::fs::read(repo.join(name)).unwrap();
        let sha = ferry_bundle::Digest::of(&bytes).hex();
        assert!(
            index.contains(&format!(
                "Filename: ./{name}\nSize: {}\nSHA256: {sha}\n",
                bytes.len()
            )),
            "{index}"
        );
    }
    let mut gz = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(repo.join("Packages.gz")).unwrap()),
        &mut gz,
    )
    .unwrap();
    assert_eq!(gz, index);
    let release = std::fs::read_to_string(repo.join("Release")).unwrap();
    let sha = ferry_bundle::Digest::of(index.as_bytes()).hex();
    assert!(
        release.contains(&format!(" {sha} {} Packages\n", index.len())),
        "{release}"
    );

    // The same packages give the same bytes.
    let again = work.path().join("again");
    write_flat_repo(&debs, &again, "debian-12", &base()).unwrap();
    for f in ["Packages", "Packages.gz", "Release"] {
        assert_eq!(
            std::fs::read(repo.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }

    // apt reads it with no other source and would install app with what it needs from it.
    if !have("apt-get") {
        return;
    }
    let apt = work.path().join("apt");
    for d in ["lists/partial", "cache/archives/partial", "etc"] {
        std::fs::create_dir_all(apt.join(d)).unwrap();
    }
    // The base system's libc6, as dpkg records an installed package.
    std::fs::write(
        apt.join("status"),
        "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: all\n\
         Maintainer: x <x@example.org>\nDescription: base\n",
    )
    .unwrap();
    std::fs::write(
        apt.join("etc/sources.list"),
        format!("deb [trusted=yes] file:{} ./\n", repo.display()),
    )
    .unwrap();
    let opts = |cmd: &mut Command| {
        for (k, v) in [
            ("Dir::Etc::SourceList", apt.join("etc/sources.list")),
            ("Dir::Etc::SourceParts", apt.join("etc")),
            ("Dir::Etc::Preferences", apt.join("etc/none")),
            ("Dir::Etc::PreferencesParts", apt.join("etc")),
            ("Dir::State::Lists", apt.join("lists")),
            ("Dir::State::status", apt.join("status")),
            ("Dir::Cache", apt.join("cache")),
            ("APT::Sandbox::User", "root".into()),
            ("Debug::NoLocking", "1".into()),
        ] {
            cmd.arg("-o").arg(format!("{k}={}", v.display()));
        }
    };
    let mut update = Command::new("apt-get");
    opts(&mut update);
    let o = update.arg("update").output().unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let mut install = Command::new("apt-get");
    opts(&mut install);
    let o = install.args(["-s", "install", "app"]).output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{said}");
    for p in ["Inst app (1.0-1", "Inst libx (1.6.20-1", "Inst mta (2:3.0"] {
        assert!(said.contains(p), "{said}");
    }
}

#[test]
fn refuses_a_set_whose_dependencies_are_not_closed_naming_each() {
    if !have("dpkg-deb") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let debs = work.path().join("debs");
    std::fs::create_dir(&debs).unwrap();
    deb(
        &debs,
        "app",
        "1.0-1",
        "Depends: libx (>= 2.0), libgone | libalso-gone\nPre-Depends: libc6\n",
        "xz",
    );
    deb(&debs, "libx", "1.9-1", "Provides: virt (= 2.0)\n", "xz");
    deb(&debs, "tool", "1", "Depends: virt (>= 3)\n", "gzip");
    let repo = work.path().join("repo");
    let err = write_flat_repo(&debs, &repo, "debian-12", &base()).unwrap_err();
    let AptRepoError::NotClosed { distro, missing } = &err else {
        panic!("{err}");
    };
    assert_eq!(distro, "debian-12");
    let unmet = |relation: &str, needed_by: &str| Unmet {
        relation: relation.into(),
        needed_by: needed_by.into(),
        field: "Depends",
    };
    assert_eq!(
        missing,
        &[
            unmet("libx (>= 2.0)", "app 1.0-1"),
            unmet("libgone | libalso-gone", "app 1.0-1"),
            unmet("virt (>= 3)", "tool 1"),
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains("libx (>= 2.0) (needed by app 1.0-1, Depends)"),
        "{text}"
    );
    assert!(!repo.exists(), "nothing is written for a refused set");
}

/// `bundle build` given a directory of .deb files carries the repository made from them; a set
/// that is not closed fails the build naming what is missing.
#[test]
fn a_bundle_of_deb_files_carries_their_repository() {
    if !have("dpkg-deb") {
        return;
    }
    let fx = common::Fixture::new();
    let debs = fx.path().join("debs");
    std::fs::create_dir(&debs).unwrap();
    deb(&debs, "app", "1.0-1", "Depends: libx, libc6\n", "xz");
    deb(&debs, "libx", "1.0", "", "xz");
    let spec = fx.write_spec(
        "[[os_packages]]\nname = \"base\"\nformat = \"deb\"\ndistro = \"debian-12\"\n\
         path = \"debs\"\nbase_packages = [\"libc6\"]\n",
    );
    let out = fx.path().join("demo.bundle");
    fx.build(&spec, &out, None).unwrap();
    let bundle = Bundle::open(&out, Some(&fx.public)).unwrap();
    let x = fx.path().join("x");
    bundle.extract(None, &x, &mut |_| {}).unwrap();
    let mut got: Vec<String> = std::fs::read_dir(x.join("base"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "Packages",
            "Packages.gz",
            "Release",
            "app_1.0-1_all.deb",
            "libx_1.0_all.deb"
        ]
    );
    // The repository was made in the build's spool, which is gone.
    assert!(std::fs::read_dir(fx.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("spool")));

    std::fs::remove_file(debs.join("libx_1.0_all.deb")).unwrap();
    let err = fx
        .build(&spec, &fx.path().join("again.bundle"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("libx (needed by app 1.0-1, Depends)"), "{err}");
    assert!(err.contains("debian-12"), "{err}");
}
