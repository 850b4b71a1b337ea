//! `bundle.toml`: what goes into a bundle. Paths are relative to the file. Parsing is strict
//! (unknown keys are errors) and every check that needs more than one field lives in
//! [`BundleSpec::load`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{BundleError, Result};
use crate::manifest::PackageFormat;
use crate::Digest;

/// A parsed, checked bundle.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSpec {
    /// `[bundle]`: name and version.
    pub bundle: BundleMeta,
    /// `[[files]]`: plain files and directories.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// `[[images]]`: container images.
    #[serde(default)]
    pub images: Vec<ImageSpec>,
    /// `[k3s]`: the k3s binary and its air-gap images.
    pub k3s: Option<K3sSpec>,
    /// `[[kubernetes]]`: kubeadm/kubelet/kubectl binaries.
    #[serde(default)]
    pub kubernetes: Vec<PinnedSpec>,
    /// `[[gpu_drivers]]`: GPU driver packages.
    #[serde(default)]
    pub gpu_drivers: Vec<GpuDriverSpec>,
    /// `[[os_packages]]`: offline OS packages.
    #[serde(default)]
    pub os_packages: Vec<OsPackagesSpec>,
    /// `[[app_packages]]`: signed AppPackages (`.fap` from `ferry app pack`).
    #[serde(default)]
    pub app_packages: Vec<AppPackageSpec>,
    /// The directory bundle.toml is in; paths are relative to it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[bundle]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleMeta {
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
}

/// `[[files]]`: a file or a whole directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Item name (also the extracted file or directory name).
    pub name: String,
    /// The file or directory.
    pub path: PathBuf,
    /// Optional version.
    pub version: Option<String>,
    /// Optional architecture.
    pub arch: Option<String>,
    /// Optional pinned sha256 (files only).
    #[serde(default, deserialize_with = "optional_pinned_digest")]
    pub sha256: Option<Digest>,
}

/// `[[images]]`: one image from an archive or a Docker engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Image reference (`demo/app:1.0`).
    #[serde(rename = "ref")]
    pub reference: String,
    /// A docker-archive or OCI archive holding the image.
    pub archive: Option<PathBuf>,
    /// Take the image from the Docker engine (`--docker-host` / `DOCKER_HOST`).
    #[serde(default)]
    pub engine: bool,
}

/// A file whose sha256 is pinned.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedFile {
    /// The file.
    pub path: PathBuf,
    /// Its expected sha256 (`sha256:<hex>` or bare hex).
    #[serde(deserialize_with = "pinned_digest")]
    pub sha256: Digest,
}

/// `[k3s]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K3sSpec {
    /// k3s version (`v1.30.4+k3s1`).
    pub version: String,
    /// Architecture, `amd64` unless given.
    pub arch: Option<String>,
    /// The k3s binary.
    pub binary: PinnedFile,
    /// The air-gap images archive.
    pub airgap_images: PinnedFile,
}

/// `[[app_packages]]`: a `.fap` file. Its name and version are the package's own (from its
/// app.yaml); the sha256 may be pinned, and need not be: the package is signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPackageSpec {
    /// The `.fap` file.
    pub path: PathBuf,
    /// Its expected sha256.
    #[serde(default, deserialize_with = "optional_pinned_digest")]
    pub sha256: Option<Digest>,
}

/// `[[kubernetes]]`: a named, versioned, pinned file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedSpec {
    /// Item name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: Option<String>,
    /// The file.
    pub path: PathBuf,
    /// Its expected sha256.
    #[serde(deserialize_with = "pinned_digest")]
    pub sha256: Digest,
}

/// `[[gpu_drivers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuDriverSpec {
    /// Item name (`nvidia`).
    pub name: String,
    /// Driver version.
    pub version: String,
    /// Architecture.
    pub arch: Option<String>,
    /// The driver package.
    pub path: PathBuf,
    /// Its expected sha256.
    #[serde(deserialize_with = "pinned_digest")]
    pub sha256: Digest,
    /// Kernel versions it fits.
    pub kernels: Vec<String>,
    /// PCI vendor id in hex (`10de`).
    pub pci_vendor: String,
}

/// `[[os_packages]]`: a directory of packages (a repository) or one package file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsPackagesSpec {
    /// Item name.
    pub name: String,
    /// `deb` or `rpm`.
    pub format: PackageFormat,
    /// Distribution (`debian-12`).
    pub distro: String,
    /// Architecture.
    pub arch: Option<String>,
    /// Directory or file. A directory of `.deb` files without a `Packages` index is made a
    /// flat apt repository by the build (crate::apt_repo).
    pub path: PathBuf,
    /// Optional pinned sha256 (files only).
    #[serde(default, deserialize_with = "optional_pinned_digest")]
    pub sha256: Option<Digest>,
    /// Packages every host of `distro` already has: dependencies on them count as met when the
    /// build makes a repository from `.deb` files.
    #[serde(default)]
    pub base_packages: Vec<String>,
}

/// The one reading of a `sha256` in bundle.toml, for every table: `sha256:<hex>` as the
/// manifest writes it, or the bare hex that `sha256sum` prints.
fn parse_pinned(s: &str) -> std::result::Result<Digest, String> {
    let parsed = match s.strip_prefix("sha256:") {
        Some(hex) => Digest::from_hex(hex),
        None => Digest::from_hex(s),
    };
    parsed.map_err(|_| {
        format!("invalid digest {s:?}: expected sha256:<64 lowercase hex digits> or the 64 digits alone")
    })
}

fn pinned_digest<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
    let s = String::deserialize(d)?;
    parse_pinned(&s).map_err(serde::de::Error::custom)
}

fn optional_pinned_digest<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Digest>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| parse_pinned(&s).map_err(serde::de::Error::custom))
        .transpose()
}

impl BundleSpec {
    /// Reads and checks a bundle.toml.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| BundleError::Spec {
            path: path.to_path_buf(),
            msg: format!("cannot read: {e}"),
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &base).map_err(|msg| BundleError::Spec {
            path: path.to_path_buf(),
            msg,
        })
    }

    /// Parses bundle.toml text; relative paths are taken from `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> std::result::Result<Self, String> {
        let mut spec: BundleSpec = toml::from_str(text).map_err(|e| {
            // toml's message spans lines; keep the first line plus position.
            e.to_string().lines().collect::<Vec<_>>().join(" ")
        })?;
        spec.base_dir = if base_dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base_dir.to_path_buf()
        };
        spec.check()?;
        Ok(spec)
    }

    /// Resolves a path from bundle.toml against its directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        self.base_dir.join(p)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.bundle.name.trim().is_empty() {
            return Err("[bundle] name is empty".into());
        }
        if self.bundle.version.trim().is_empty() {
            return Err("[bundle] version is empty".into());
        }
        let mut names = BTreeSet::new();
        let mut seen = |name: &str, table: &str| -> std::result::Result<(), String> {
            if name.is_empty() {
                return Err(format!("[[{table}]] has an empty name"));
            }
            if name.contains('/') && table != "images" {
                return Err(format!("[[{table}]] name {name:?} must not contain '/'"));
            }
            if name == "." || name == ".." || name.starts_with('.') {
                return Err(format!("[[{table}]] name {name:?} must not start with '.'"));
            }
            if !names.insert(name.to_string()) {
                return Err(format!(
                    "two items are named {name:?}; item names must be unique"
                ));
            }
            Ok(())
        };
        for f in &self.files {
            seen(&f.name, "files")?;
        }
        for i in &self.images {
            seen(&i.reference, "images")?;
            match (&i.archive, i.engine) {
                (Some(_), true) => {
                    return Err(format!(
                        "image {:?}: give either archive = \"...\" or engine = true, not both",
                        i.reference
                    ))
                }
                (None, false) => {
                    return Err(format!(
                        "image {:?}: say where it comes from: archive = \"path\" or engine = true",
                        i.reference
                    ))
                }
                _ => {}
            }
        }
        if self.k3s.is_some() {
            seen("k3s", "k3s")?;
        }
        for k in &self.kubernetes {
            seen(&k.name, "kubernetes")?;
        }
        for g in &self.gpu_drivers {
            seen(&g.name, "gpu_drivers")?;
            if g.pci_vendor.len() != 4 || !g.pci_vendor.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "gpu driver {:?}: pci_vendor {:?} must be 4 hex digits (10de for NVIDIA)",
                    g.name, g.pci_vendor
                ));
            }
            if g.kernels.is_empty() {
                return Err(format!(
                    "gpu driver {:?}: list the kernel versions it fits in kernels = [...]",
                    g.name
                ));
            }
        }
        for o in &self.os_packages {
            seen(&o.name, "os_packages")?;
        }
        if names.is_empty() && self.app_packages.is_empty() {
            return Err("the bundle has no items: add [[files]], [[images]], [k3s], ...".into());
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_plain_files_form_from_the_issue() {
        let spec = BundleSpec::parse(
            "[bundle]\nname = \"demo\"\nversion = \"1.0.0\"\n\n[[files]]\nname = \"payload\"\npath = \"payload\"      # a file or a whole directory\n",
            Path::new("/x"),
        )
        .unwrap();
        assert_eq!(spec.bundle.name, "demo");
        assert_eq!(spec.resolve(&spec.files[0].path), Path::new("/x/payload"));
    }

    #[test]
    fn every_table_reads_a_sha256_with_or_without_its_prefix() {
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let want: Digest = format!("sha256:{hex}").parse().unwrap();
        for pin in [format!("sha256:{hex}"), hex.to_string()] {
            let text = format!(
                "[bundle]\nname = \"d\"\nversion = \"1\"\n\
                 [[files]]\nname = \"f\"\npath = \"f\"\nsha256 = \"{pin}\"\n\
                 [k3s]\nversion = \"v1\"\n\
                 binary = {{ path = \"k3s\", sha256 = \"{pin}\" }}\n\
                 airgap_images = {{ path = \"a.tar\", sha256 = \"{pin}\" }}\n\
                 [[kubernetes]]\nname = \"kubectl\"\nversion = \"1\"\npath = \"k\"\nsha256 = \"{pin}\"\n\
                 [[gpu_drivers]]\nname = \"nvidia\"\nversion = \"1\"\npath = \"n\"\nsha256 = \"{pin}\"\n\
                 kernels = [\"6.1\"]\npci_vendor = \"10de\"\n\
                 [[os_packages]]\nname = \"base\"\nformat = \"deb\"\ndistro = \"debian-12\"\npath = \"p.deb\"\nsha256 = \"{pin}\"\n\
                 [[app_packages]]\npath = \"a.fap\"\nsha256 = \"{pin}\"\n"
            );
            let spec = BundleSpec::parse(&text, Path::new(".")).unwrap();
            let k3s = spec.k3s.as_ref().unwrap();
            let pins = [
                spec.files[0].sha256,
                Some(k3s.binary.sha256),
                Some(k3s.airgap_images.sha256),
                Some(spec.kubernetes[0].sha256),
                Some(spec.gpu_drivers[0].sha256),
                spec.os_packages[0].sha256,
                spec.app_packages[0].sha256,
            ];
            assert!(pins.iter().all(|p| *p == Some(want)), "{pin}: {pins:?}");
        }
    }

    #[test]
    fn refuses_unknown_keys_duplicate_names_and_bad_digests() {
        let base = "[bundle]\nname = \"d\"\nversion = \"1\"\n";
        for (extra, want) in [
            ("[[files]]\nname = \"a\"\npath = \"a\"\ncolour = 1\n", "unknown field"),
            (
                "[[files]]\nname = \"a\"\npath = \"a\"\n[[files]]\nname = \"a\"\npath = \"b\"\n",
                "two items are named \"a\"",
            ),
            (
                "[[kubernetes]]\nname = \"kubectl\"\nversion = \"1\"\npath = \"k\"\nsha256 = \"abc\"\n",
                "invalid digest",
            ),
            (
                "[[files]]\nname = \"a\"\npath = \"a\"\nsha256 = \"abc\"\n",
                "invalid digest \"abc\"",
            ),
            ("", "no items"),
        ] {
            let err = BundleSpec::parse(&format!("{base}{extra}"), Path::new(".")).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
