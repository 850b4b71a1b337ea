//! `manifest.json`: the bill of materials. It lists every blob (content digest, sizes,
//! compression, stored hash) and every item with its kind-specific fields and the files that
//! `extract` writes. The signature covers its exact bytes.

use serde::{Deserialize, Serialize};

use crate::Digest;

/// The format string this version writes and reads.
pub const FORMAT: &str = "ferry-bundle/1";

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Bundle name from bundle.toml.
    pub name: String,
    /// Bundle version from bundle.toml.
    pub version: String,
    /// When it was built, seconds since 1970 (`SOURCE_DATE_EPOCH` when set, else the build
    /// time); also every tar mtime.
    pub created: u64,
    /// Every blob in the bundle, in tar order.
    pub blobs: Vec<BlobEntry>,
    /// Every item, in bundle.toml order.
    pub items: Vec<Item>,
}

/// How a blob's bytes sit in the tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as-is (already compressed data, or data zstd does not shrink).
    None,
    /// One zstd frame.
    Zstd,
}

/// One blob in the blob table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobEntry {
    /// sha256 of the uncompressed bytes: the content address.
    pub digest: Digest,
    /// Uncompressed size.
    pub size: u64,
    /// How it is stored.
    pub compression: Compression,
    /// Size of the bytes in the tar.
    pub stored_size: u64,
    /// sha256 of the bytes in the tar.
    pub stored_sha256: Digest,
}

impl BlobEntry {
    /// The tar entry name of this blob.
    pub fn entry_name(&self) -> String {
        entry_name(&self.digest, self.compression)
    }
}

/// The tar entry name of a blob.
pub fn entry_name(digest: &Digest, compression: Compression) -> String {
    match compression {
        Compression::None => format!("blobs/sha256/{}", digest.hex()),
        Compression::Zstd => format!("blobs/sha256/{}.zst", digest.hex()),
    }
}

/// One item: what a site installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Unique name in the bundle (for images: the reference).
    pub name: String,
    /// Version, when the item has one.
    pub version: Option<String>,
    /// Architecture (`amd64`, `arm64`), when it matters.
    pub arch: Option<String>,
    /// What the item is, with its kind-specific fields.
    #[serde(flatten)]
    pub kind: ItemKind,
    /// What `extract` writes.
    pub contents: Vec<Content>,
}

impl Item {
    /// Total uncompressed bytes of the item's contents.
    pub fn size(&self) -> u64 {
        self.contents.iter().map(|c| c.size).sum()
    }
}

/// The kinds of item, with their own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ItemKind {
    /// A plain file or a directory tree.
    File,
    /// k3s: its binary and its air-gap images archive.
    K3s,
    /// A Kubernetes binary (kubeadm, kubelet, kubectl).
    Kubernetes,
    /// A GPU driver package.
    GpuDriver {
        /// Kernel versions (`uname -r`) it is built for.
        kernels: Vec<String>,
        /// PCI vendor id in hex (`10de` for NVIDIA).
        pci_vendor: String,
    },
    /// An offline OS package repository or package set.
    OsPackages {
        /// Package format.
        format: PackageFormat,
        /// Distribution it fits (`debian-12`, `rhel-9`).
        distro: String,
    },
    /// A signed AppPackage.
    AppPackage,
    /// A container image as an OCI image layout.
    Image {
        /// The image reference (`demo/app:1.0`).
        reference: String,
        /// Digest of the image manifest.
        manifest_digest: Digest,
        /// Operating system (`linux`).
        os: String,
        /// CPU architecture (`amd64`).
        architecture: String,
    },
}

impl ItemKind {
    /// The kind's name as written in the manifest.
    pub fn label(&self) -> &'static str {
        match self {
            ItemKind::File => "file",
            ItemKind::K3s => "k3s",
            ItemKind::Kubernetes => "kubernetes",
            ItemKind::GpuDriver { .. } => "gpu-driver",
            ItemKind::OsPackages { .. } => "os-packages",
            ItemKind::AppPackage => "app-package",
            ItemKind::Image { .. } => "image",
        }
    }
}

/// OS package formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageFormat {
    /// Debian packages.
    Deb,
    /// RPM packages.
    Rpm,
}

/// One thing `extract` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Clean relative path under the output directory.
    pub path: String,
    /// The blob.
    pub digest: Digest,
    /// Uncompressed size.
    pub size: u64,
    /// A file, or a directory tree stored as a tar.
    pub form: Form,
    /// File mode (0o644 or 0o755) for files.
    pub mode: u32,
}

/// How a content's blob becomes files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// The blob is the file.
    File,
    /// The blob is a tar of a directory, unpacked into `path/`.
    Tree,
}

/// Checks a relative path has no `..`, no root, no empty or `.` parts. `Err` says why.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') {
        return Err(format!("{path:?} is an absolute path"));
    }
    for part in path.split('/') {
        match part {
            ".." => return Err(format!("{path:?} contains '..'")),
            "" | "." => return Err(format!("{path:?} is not a clean relative path")),
            _ if part.contains('\0') => return Err(format!("{path:?} contains NUL")),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_kind_specific_fields_beside_the_common_ones() {
        let item = Item {
            name: "nvidia".into(),
            version: Some("550".into()),
            arch: Some("amd64".into()),
            kind: ItemKind::GpuDriver {
                kernels: vec!["6.1.0-23-amd64".into()],
                pci_vendor: "10de".into(),
            },
            contents: vec![],
        };
        let json = serde_json::to_string(&item).unwrap();
        assert_eq!(
            json,
            r#"{"name":"nvidia","version":"550","arch":"amd64","kind":"gpu-driver","kernels":["6.1.0-23-amd64"],"pci_vendor":"10de","contents":[]}"#
        );
        assert_eq!(serde_json::from_str::<Item>(&json).unwrap(), item);
    }

    #[test]
    fn refuses_escaping_paths() {
        for bad in ["", "/etc/passwd", "a/../../b", "..", "a//b", "./a"] {
            assert!(check_relative_path(bad).is_err(), "{bad} passed");
        }
        check_relative_path("k3s/k3s").unwrap();
    }
}
