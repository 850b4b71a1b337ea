//! Test-only packages built on the spot: real tiny `.deb` files and an apt repository of them
//! (so package installs run the real apt and dpkg on a VM), and a STAND-IN for NVIDIA's `.run`
//! driver installer that honours its command-line contract without being a driver.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A file a test package installs.
pub struct DebFile<'a> {
    /// Absolute path on the target (`/usr/bin/ferry-test-tool`).
    pub path: &'a str,
    /// Content.
    pub content: &'a str,
    /// Permission bits.
    pub mode: u32,
}

/// What is missing on this machine to build test packages (for [`crate::require`]).
pub fn missing_tools() -> Option<String> {
    for (tool, pkg) in [("dpkg-deb", "dpkg"), ("sha256sum", "coreutils")] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} is missing (Debian package {pkg})"));
        }
    }
    None
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds `name_version_all.deb` in `out_dir` with `dpkg-deb --build`: the given files and a
/// control file with `depends` (package names). Returns its path.
pub fn deb(
    out_dir: &Path,
    name: &str,
    version: &str,
    depends: &[&str],
    files: &[DebFile<'_>],
) -> PathBuf {
    let root = out_dir.join(format!("{name}.build"));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("DEBIAN")).unwrap_or_else(|e| panic!("{e}"));
    let mut control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: ferry tests \
         <tests@ferry.invalid>\nSection: misc\nPriority: optional\n"
    );
    if !depends.is_empty() {
        control.push_str(&format!("Depends: {}\n", depends.join(", ")));
    }
    control.push_str(&format!(
        "Description: ferry test package {name}\n Built by ferry's tests; not for use.\n"
    ));
    fs::write(root.join("DEBIAN/control"), control).unwrap_or_else(|e| panic!("{e}"));
    for f in files {
        let p = root.join(f.path.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(&p, f.content).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&p, fs::Permissions::from_mode(f.mode))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let deb = out_dir.join(format!("{name}_{version}_all.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&root)
        .arg(&deb));
    fs::remove_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
    deb
}

/// Makes `dir` (holding `.deb` files) a flat apt repository with ferry's own builder
/// (`ferry_bundle::apt_repo`, what `bundle build` runs), so VM tests install from the
/// repository ferry makes: its `Packages`, `Packages.gz` and `Release` are put beside the
/// packages. The test packages depend only on each other.
pub fn flat_repo(dir: &Path) {
    let staging = dir.with_extension("ferry-repo");
    ferry_bundle::apt_repo::write_flat_repo(dir, &staging, "debian-12", &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    for f in ["Packages", "Packages.gz", "Release"] {
        fs::rename(staging.join(f), dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    fs::remove_dir_all(&staging).unwrap_or_else(|e| panic!("{e}"));
}

/// A stand-in driver package.
pub struct StandinDriver {
    /// The `.run` file.
    pub file: PathBuf,
    /// Its sha256 (hex).
    pub sha256: String,
    /// The version its `nvidia-smi` reports.
    pub version: String,
}

/// Writes `NVIDIA-Linux-x86_64-<version>-STAND-IN.run` into `dir`: a shell script with the
/// `.run` installer's contract and nothing of a driver. `--silent` installs
/// `/usr/bin/nvidia-smi` (it answers `--query-gpu=driver_version --format=csv,noheader` with
/// the version) and `/usr/bin/nvidia-installer` (`--uninstall --silent` removes what was
/// installed), and records the files it put in `/var/lib/nvidia-standin/files`.
pub fn nvidia_driver(dir: &Path, version: &str) -> StandinDriver {
    let file = dir.join(format!("NVIDIA-Linux-x86_64-{version}-STAND-IN.run"));
    let script = format!(
        r#"#!/bin/sh
# STAND-IN for NVIDIA-Linux-x86_64-{version}.run, built by ferry's tests. NOT a driver: it only
# honours the installer's command line (--silent, --no-questions, --uninstall).
set -eu
VERSION={version}
state=/var/lib/nvidia-standin
silent=
mode=install
for a in "$@"; do
  case "$a" in
    --silent|-s) silent=1 ;;
    --no-questions|-q) ;;
    --uninstall) mode=uninstall ;;
    *) echo "stand-in installer: unknown option $a" >&2; exit 2 ;;
  esac
done
[ -n "$silent" ] || {{ echo "stand-in installer: only --silent runs are supported" >&2; exit 2; }}
if [ "$mode" = uninstall ]; then
  [ -f "$state/files" ] || {{ echo "stand-in installer: no driver installed" >&2; exit 1; }}
  while read -r f; do rm -f "$f"; done < "$state/files"
  rm -rf "$state"
  echo "uninstalled stand-in driver $VERSION" >> /var/log/nvidia-uninstall.log
  exit 0
fi
mkdir -p "$state"
cp "$0" "$state/installer.run"
cat > /usr/bin/nvidia-smi <<EOF
#!/bin/sh
case "\$*" in
  *--query-gpu=driver_version*) echo $VERSION ;;
  *) echo "NVIDIA-SMI $VERSION (ferry test STAND-IN, no GPU)" ;;
esac
EOF
cat > /usr/bin/nvidia-installer <<EOF
#!/bin/sh
exec sh $state/installer.run "\$@"
EOF
chmod 755 /usr/bin/nvidia-smi /usr/bin/nvidia-installer
printf '%s\n' /usr/bin/nvidia-smi /usr/bin/nvidia-installer > "$state/files"
echo "installed stand-in driver $VERSION" >> /var/log/nvidia-installer.log
"#
    );
    let mut f = fs::File::create(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    f.write_all(script.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    let sha = run(Command::new("sha256sum").arg(&file));
    StandinDriver {
        sha256: sha
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
        file,
        version: version.to_string(),
    }
}
