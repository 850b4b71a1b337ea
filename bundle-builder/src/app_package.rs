//! The signed AppPackage file (`NAME-VERSION.fap`, docs/app-package.md): a canonical tar of
//! `package.json` (every file with its digest), `package.sig` (its Ed25519 signature), then
//! `app.yaml` and the files it names. Packing reads and checks app.yaml first (ferry-apps), so
//! a package that would be refused on site is refused on the build machine. The same
//! directory and key always give the same bytes: every header is dated 0, files go in a fixed
//! order, and Ed25519 signatures are deterministic.
//!
//! A package holds descriptions and config files, never images (those travel in the bundle),
//! so it is read whole, within [`MAX_PACKAGE`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ferry_apps::{AppSpec, APP_YAML};
use serde::{Deserialize, Serialize};

use crate::error::{BundleError, Result};
use crate::keys::{PublicKey, SignatureFile, SigningKey};
use crate::read::SignatureState;
use crate::tarfmt;
use crate::Digest;

/// The format string this version writes and reads.
pub const APP_FORMAT: &str = "ferry-app/1";

/// A file in a package becomes a ConfigMap or Secret, which Kubernetes caps at 1 MiB.
pub const MAX_FILE: u64 = 1 << 20;

/// The largest `.fap` ferry reads (app.yaml and its config files).
pub const MAX_PACKAGE: u64 = 64 << 20;

const INDEX: &str = "package.json";
const SIG: &str = "package.sig";

/// `package.json`: the signed list of the package's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageIndex {
    /// Always [`APP_FORMAT`].
    pub format: String,
    /// `app.yaml` first, then the files it names, sorted.
    pub files: Vec<PackageFile>,
}

/// One file of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageFile {
    /// Its path in the package directory (`files/web.conf`).
    pub path: String,
    /// sha256 of its bytes.
    pub sha256: Digest,
    /// Its size.
    pub size: u64,
}

/// A package read from a `.fap` file: checked structure, digests and (when a key was given)
/// signature; its app.yaml read and checked.
#[derive(Debug, Clone)]
pub struct AppPackage {
    /// The `.fap` file.
    pub path: PathBuf,
    /// What app.yaml says.
    pub spec: AppSpec,
    /// The signed file list.
    pub index: PackageIndex,
    /// Who signed it, and whether that was checked.
    pub signature: SignatureState,
    /// sha256 of the whole `.fap` file.
    pub digest: Digest,
    files: BTreeMap<String, Vec<u8>>,
}

impl AppPackage {
    /// The bytes of a file of the package (`app.yaml`, `files/web.conf`).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// `NAME-VERSION.fap`, the file name `ferry app pack` suggests.
    pub fn file_name(spec: &AppSpec) -> String {
        format!("{}-{}.fap", spec.name, spec.version)
    }

    /// Reads a `.fap` file; with `key`, refuses it unless that key signed it.
    pub fn open(path: &Path, key: Option<&PublicKey>) -> Result<Self> {
        let damaged = |msg: String| BundleError::damaged(path, msg);
        let size = fs::metadata(path)
            .map_err(BundleError::io(format!(
                "opening app package {}",
                path.display()
            )))?
            .len();
        if size > MAX_PACKAGE {
            return Err(damaged(format!(
                "is {size} bytes, more than an app package can be ({MAX_PACKAGE}): not an app \
                 package?"
            )));
        }
        let bytes = fs::read(path).map_err(BundleError::io(format!(
            "reading app package {}",
            path.display()
        )))?;
        Self::from_bytes(path, &bytes, key)
    }

    /// Reads a package from its bytes; `path` names it in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8], key: Option<&PublicKey>) -> Result<Self> {
        let damaged = |msg: String| BundleError::damaged(path, msg);
        let entries = entries(bytes)
            .map_err(|m| damaged(format!("{m}: not an app package, or a damaged copy")))?;
        let mut it = entries.into_iter();
        let (index_bytes, sig_bytes) = match (it.next(), it.next()) {
            (Some((n1, b1)), Some((n2, b2))) if n1 == INDEX && n2 == SIG => (b1, b2),
            _ => {
                return Err(damaged(
                    "does not start with package.json and package.sig: not a signed ferry app \
                     package (make one with `ferry app pack`)"
                        .into(),
                ))
            }
        };
        let signature = match key {
            Some(k) => {
                k.verify_as(index_bytes, sig_bytes, path, "app package", "the package")?;
                SignatureState::Verified(k.key_id())
            }
            None => {
                let s: std::result::Result<SignatureFile, _> = serde_json::from_slice(sig_bytes);
                let (key_id, algorithm) = s
                    .map(|s| (s.key_id, s.algorithm))
                    .unwrap_or_else(|_| ("malformed".into(), "malformed".into()));
                SignatureState::Unchecked { key_id, algorithm }
            }
        };
        let index: PackageIndex = serde_json::from_slice(index_bytes)
            .map_err(|e| damaged(format!("package.json is not a valid package index: {e}")))?;
        if index.format != APP_FORMAT {
            return Err(damaged(format!(
                "package format is {:?}; this ferry reads {APP_FORMAT}: use a matching ferry \
                 version",
                index.format
            )));
        }
        let rest: Vec<(String, &[u8])> = it.collect();
        let listed: Vec<&str> = index.files.iter().map(|f| f.path.as_str()).collect();
        let present: Vec<&str> = rest.iter().map(|(n, _)| n.as_str()).collect();
        if listed != present {
            return Err(damaged(format!(
                "holds files {present:?}, and package.json lists {listed:?} (changed after \
                 packing?)"
            )));
        }
        let mut files = BTreeMap::new();
        for (f, (name, data)) in index.files.iter().zip(rest) {
            if Digest::of(data) != f.sha256 || data.len() as u64 != f.size {
                return Err(damaged(format!(
                    "{name} does not match its digest in package.json (changed after packing)"
                )));
            }
            files.insert(name, data.to_vec());
        }
        let shown = format!("{}:{APP_YAML}", path.display());
        let yaml = files
            .get(APP_YAML)
            .ok_or_else(|| damaged(format!("has no {APP_YAML}")))?;
        let text = std::str::from_utf8(yaml)
            .map_err(|_| damaged(format!("{APP_YAML} is not UTF-8 text")))?;
        let spec = AppSpec::parse(text, &shown)
            .map_err(|e| BundleError::AppPackage { msg: e.to_string() })?;
        let mut want = vec![APP_YAML.to_string()];
        want.extend(spec.package_files().into_iter().map(str::to_string));
        if want != listed {
            return Err(damaged(format!(
                "holds files {listed:?}, and its app.yaml names {want:?}"
            )));
        }
        Ok(AppPackage {
            path: path.to_path_buf(),
            spec,
            index,
            signature,
            digest: Digest::of(bytes),
            files,
        })
    }
}

/// The canonical tar's entries, in order, with every header, padding byte and the end checked.
fn entries(bytes: &[u8]) -> std::result::Result<Vec<(String, &[u8])>, String> {
    let mut out = vec![];
    let mut at = 0usize;
    loop {
        let block: &[u8; 512] = bytes
            .get(at..at + 512)
            .and_then(|b| b.try_into().ok())
            .ok_or("ends before its end blocks")?;
        if block.iter().all(|&b| b == 0) {
            let end = bytes.get(at..).unwrap_or_default();
            if end.len() != 1024 || end.iter().any(|&b| b != 0) {
                return Err("has bytes after or instead of its two end blocks".into());
            }
            return Ok(out);
        }
        let h = tarfmt::parse(block)?;
        if h.mtime != 0 {
            return Err(format!(
                "entry {:?} is not dated 0 as packing writes",
                h.name
            ));
        }
        at += 512;
        let size = usize::try_from(h.size).map_err(|_| "an entry is too large")?;
        let data = bytes
            .get(at..at + size)
            .ok_or_else(|| format!("entry {:?} is cut short", h.name))?;
        at += size;
        let pad = tarfmt::padding(h.size) as usize;
        if bytes
            .get(at..at + pad)
            .is_none_or(|p| p.iter().any(|&b| b != 0))
        {
            return Err(format!("the padding after {:?} is not zeros", h.name));
        }
        at += pad;
        if out.iter().any(|(n, _): &(String, &[u8])| *n == h.name) {
            return Err(format!("entry {:?} appears twice", h.name));
        }
        out.push((h.name, data));
    }
}

/// What packing made.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The `.fap` bytes.
    pub bytes: Vec<u8>,
    /// What app.yaml says.
    pub spec: AppSpec,
    /// The signed file list.
    pub index: PackageIndex,
}

/// Packs the package directory `dir` (its app.yaml and the files it names), signed with `key`.
pub fn pack(dir: &Path, key: &SigningKey) -> Result<Packed> {
    let yaml_path = dir.join(APP_YAML);
    let spec =
        AppSpec::load(&yaml_path).map_err(|e| BundleError::AppPackage { msg: e.to_string() })?;
    let root = dir.canonicalize().map_err(BundleError::io(format!(
        "opening package directory {}",
        dir.display()
    )))?;
    let mut paths = vec![APP_YAML];
    paths.extend(spec.package_files());
    let mut files = vec![];
    for p in paths {
        if [INDEX, SIG].contains(&p) {
            return Err(BundleError::AppPackage {
                msg: format!(
                    "{}: a config file may not be named {p} (the package's own index): rename it",
                    yaml_path.display()
                ),
            });
        }
        let full = dir.join(p);
        let real = full.canonicalize().map_err(|e| BundleError::AppPackage {
            msg: format!(
                "{}: config file {p} cannot be read ({e}): add it to the package directory or \
                 fix the path",
                yaml_path.display()
            ),
        })?;
        if !real.starts_with(&root) {
            return Err(BundleError::AppPackage {
                msg: format!(
                    "{}: config file {p} leads outside the package directory (a link?): copy \
                     the file in",
                    yaml_path.display()
                ),
            });
        }
        let meta =
            fs::metadata(&real).map_err(BundleError::io(format!("reading {}", full.display())))?;
        if !meta.is_file() {
            return Err(BundleError::AppPackage {
                msg: format!("{}: config file {p} is not a file", yaml_path.display()),
            });
        }
        if meta.len() > MAX_FILE {
            return Err(BundleError::AppPackage {
                msg: format!(
                    "{}: config file {p} is {} bytes; it becomes a ConfigMap, which holds at \
                     most 1 MiB: put large data in an image or a volume",
                    yaml_path.display(),
                    meta.len()
                ),
            });
        }
        let data =
            fs::read(&real).map_err(BundleError::io(format!("reading {}", full.display())))?;
        files.push((p.to_string(), data));
    }
    let index = PackageIndex {
        format: APP_FORMAT.into(),
        files: files
            .iter()
            .map(|(p, d)| PackageFile {
                path: p.clone(),
                sha256: Digest::of(d),
                size: d.len() as u64,
            })
            .collect(),
    };
    let mut index_bytes = serde_json::to_vec_pretty(&index).map_err(|e| BundleError::Io {
        what: "writing package.json".into(),
        source: std::io::Error::other(e),
    })?;
    index_bytes.push(b'\n');
    let sig = key.sign_to_bytes(&index_bytes);
    let mut bytes = vec![];
    let mut put = |name: &str, data: &[u8]| {
        bytes.extend_from_slice(&tarfmt::header(name, data.len() as u64, 0));
        bytes.extend_from_slice(data);
        bytes.resize(bytes.len() + tarfmt::padding(data.len() as u64) as usize, 0);
    };
    put(INDEX, &index_bytes);
    put(SIG, &sig);
    for (p, d) in &files {
        put(p, d);
    }
    bytes.extend_from_slice(&[0u8; 1024]);
    Ok(Packed { bytes, spec, index })
}
