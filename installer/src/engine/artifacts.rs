//! What the baseline takes from the bundle: the offline OS package repository for each of the
//! hosts' distributions and the GPU driver. For `apply`, each item is verified and extracted
//! once into `~/.ferry/cache/<digest>/` (skipped when already there) and handed to bootos as
//! `Artifacts`; `plan` reads only the signed manifest and writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ferry_bootos::baseline::{Artifacts, LocalDriver, LocalRepo};
use ferry_bootos::tree::PackedTree;
use ferry_bundle::{Bundle, Digest, Item, ItemKind, PublicKey};
use ferry_inventory::facts::Facts;
use ferry_inventory::relay::BlobSpec;

use crate::config::BundleRef;

/// `debian-12`: os-release's id and version id.
pub fn distro_of(facts: &Facts) -> String {
    format!("{}-{}", facts.os.id, facts.os.version_id)
}

/// Whether a bundle item for `distro` fits the host (`debian-12` fits 12 and 12.5).
pub fn fits(distro: &str, facts: &Facts) -> bool {
    let major = facts.os.version_id.split('.').next().unwrap_or("");
    distro == distro_of(facts) || distro == format!("{}-{major}", facts.os.id)
}

/// What the bundle offers, extracted on the jump host.
#[derive(Debug, Clone, Default)]
pub struct ArtifactSet {
    /// A bundle was given.
    pub bundle: bool,
    /// Repositories by the distribution they fit.
    pub os_repos: BTreeMap<String, LocalRepo>,
    /// The GPU driver, when a host needs one and the bundle has one.
    pub gpu_driver: Option<LocalDriver>,
    /// Every distribution the bundle has repositories for (named when a host's is missing).
    pub distros: Vec<String>,
}

impl ArtifactSet {
    /// What one host gets.
    pub fn for_host(&self, facts: &Facts) -> Artifacts {
        Artifacts {
            os_repo: self
                .os_repos
                .iter()
                .find(|(d, _)| fits(d, facts))
                .map(|(_, r)| r.clone()),
            gpu_driver: self.gpu_driver.clone(),
        }
    }
}

/// Where bundle items are extracted on the jump host, and whether this run may write there.
#[derive(Debug, Clone)]
pub struct Cache {
    /// `~/.ferry/cache`.
    pub dir: PathBuf,
    /// `apply` extracts; `plan` only names where apply will (plan changes nothing).
    pub fill: bool,
}

/// A directory name for an item: the digest of its contents list, so a changed item gets a
/// new directory and an unchanged one is found again.
fn item_digest(item: &Item) -> String {
    let ids: Vec<String> = item.contents.iter().map(|c| c.digest.hex()).collect();
    Digest::of(ids.join("\n").as_bytes()).hex()
}

/// Extracts `item` into `cache/<digest>` unless already there (or, when the cache is not to
/// be filled, only names that directory); returns it.
fn extract_once(bundle: &Bundle, item: &Item, cache: &Cache) -> anyhow::Result<(PathBuf, String)> {
    let digest = item_digest(item);
    let dir = cache.dir.join(&digest);
    if !cache.fill || dir.is_dir() {
        return Ok((dir, digest));
    }
    let cache = &cache.dir;
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    // Extracted beside its final name and renamed when whole: a present directory is complete.
    let tmp = cache.join(format!("{digest}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    bundle
        .extract(Some(&item.name), &tmp, &mut |_| {})
        .with_context(|| format!("extracting {} from the bundle", item.name))?;
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        // Another ferry extracted the same item meanwhile: theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.is_dir() {
            return Err(e).with_context(|| format!("moving into {}", dir.display()));
        }
    }
    Ok((dir, digest))
}

/// The packed form of the extracted tree `dir` ([`PackedTree`]), measured once per item: the
/// figures are kept in `record` (`SHA256 SIZE`), so a later apply with the same bundle reads
/// them instead of packing and hashing a repository of gigabytes again. The tree is never
/// changed after its extraction; were it changed by hand, the relay's digest checks refuse
/// the copy and the steps send the tree directly.
fn packed_once(dir: &Path, record: &Path) -> anyhow::Result<BlobSpec> {
    if let Some(spec) = std::fs::read_to_string(record)
        .ok()
        .and_then(|s| parse_packed(&s))
    {
        return Ok(spec);
    }
    let p = PackedTree::measure(dir).with_context(|| format!("packing {}", dir.display()))?;
    // Written beside its name and renamed: a record present is whole. Losing it only costs
    // the measurement again.
    let tmp = record.with_extension(format!("packed.partial-{}", std::process::id()));
    if std::fs::write(&tmp, format!("{} {}\n", p.sha256, p.size)).is_ok() {
        let _ = std::fs::rename(&tmp, record);
    }
    let _ = std::fs::remove_file(&tmp);
    Ok(BlobSpec {
        sha256: p.sha256,
        size: p.size,
    })
}

/// `SHA256 SIZE` as [`packed_once`] writes it; anything else is no record.
fn parse_packed(s: &str) -> Option<BlobSpec> {
    let mut words = s.split_whitespace();
    let (sha256, size) = (words.next()?, words.next()?.parse().ok()?);
    let hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && words.next().is_none()).then(|| BlobSpec {
        sha256: sha256.to_ascii_lowercase(),
        size,
    })
}

/// The directory holding a `Packages` index under `dir` (the repository root), else `dir`.
fn repo_root(dir: &Path) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join("Packages").exists()
            || d.join("Packages.gz").exists()
            || d.join("repodata").is_dir()
        {
            return d;
        }
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    dir.to_path_buf()
}

/// Opens the bundle (its signature checked against the pubkey), and extracts (when
/// `cache.fill`) the repository of every distribution in `distros` it has, and the GPU driver
/// when `gpu` is set.
pub fn prepare(
    bundle: &BundleRef,
    cache: &Cache,
    distros: &[String],
    gpu: bool,
) -> anyhow::Result<ArtifactSet> {
    let key = PublicKey::load(&bundle.pubkey)
        .with_context(|| format!("bundle-pubkey {}", bundle.pubkey.display()))?;
    let b = Bundle::open(&bundle.path, Some(&key))
        .with_context(|| format!("bundle {}", bundle.path.display()))?;
    let mut set = ArtifactSet {
        bundle: true,
        ..ArtifactSet::default()
    };
    for item in &b.manifest().items {
        match &item.kind {
            ItemKind::OsPackages { format, distro } => {
                set.distros.push(distro.clone());
                let wanted = distros
                    .iter()
                    .any(|d| d == distro || d.split('.').next() == Some(distro.as_str()));
                if !wanted || set.os_repos.contains_key(distro) {
                    continue;
                }
                let (dir, digest) = extract_once(&b, item, cache)?;
                let dir = repo_root(&dir);
                // Measured for the relay: every host of this distribution gets these bytes.
                let packed = if cache.fill {
                    Some(packed_once(
                        &dir,
                        &cache.dir.join(format!("{digest}.packed")),
                    )?)
                } else {
                    None
                };
                set.os_repos.insert(
                    distro.clone(),
                    LocalRepo {
                        dir,
                        digest,
                        packed,
                        distro: distro.clone(),
                        format: serde_json::to_value(format)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_else(|| "deb".into()),
                    },
                );
            }
            ItemKind::GpuDriver {
                kernels,
                pci_vendor,
            } if gpu
                && set.gpu_driver.is_none()
                && pci_vendor.trim_start_matches("0x") == "10de" =>
            {
                let Some(content) = item.contents.first() else {
                    continue;
                };
                let (dir, _) = extract_once(&b, item, cache)?;
                set.gpu_driver = Some(LocalDriver {
                    file: dir.join(&content.path),
                    sha256: content.digest.hex(),
                    version: item.version.clone().unwrap_or_default(),
                    kernels: kernels.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(set)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn facts(id: &str, version: &str) -> Facts {
        let mut f = Facts::default();
        f.os.id = id.into();
        f.os.version_id = version.into();
        f
    }

    fn repo(distro: &str) -> LocalRepo {
        LocalRepo {
            dir: PathBuf::from(format!("/cache/{distro}")),
            digest: "d".into(),
            distro: distro.into(),
            format: "deb".into(),
            packed: None,
        }
    }

    #[test]
    fn each_host_gets_the_repository_of_its_own_distribution() {
        let mut set = ArtifactSet {
            bundle: true,
            ..ArtifactSet::default()
        };
        set.os_repos.insert("debian-12".into(), repo("debian-12"));
        set.os_repos
            .insert("ubuntu-22.04".into(), repo("ubuntu-22.04"));
        let pick = |f: &Facts| set.for_host(f).os_repo.map(|r| r.distro);
        assert_eq!(pick(&facts("debian", "12")).as_deref(), Some("debian-12"));
        assert_eq!(
            pick(&facts("ubuntu", "22.04")).as_deref(),
            Some("ubuntu-22.04")
        );
        assert_eq!(pick(&facts("debian", "11")), None);
        assert_eq!(pick(&facts("rocky", "9")), None);
        assert_eq!(distro_of(&facts("debian", "12")), "debian-12");
    }

    #[test]
    fn the_repository_root_is_where_its_index_is() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("repo/debian-12");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("Packages"), "").unwrap();
        assert_eq!(repo_root(d.path()), deep);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(repo_root(empty.path()), empty.path());
    }

    #[test]
    fn a_repository_is_packed_and_hashed_once_per_bundle_item() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("repo");
        std::fs::create_dir_all(tree.join("pool")).unwrap();
        std::fs::write(tree.join("Packages"), "Package: a\n").unwrap();
        std::fs::write(tree.join("pool/a.deb"), vec![7u8; 100_000]).unwrap();
        let record = d.path().join("item.packed");
        let first = packed_once(&tree, &record).unwrap();
        let measured = PackedTree::measure(&tree).unwrap();
        assert_eq!(
            (first.sha256.as_str(), first.size),
            (measured.sha256.as_str(), measured.size)
        );
        assert_eq!(
            std::fs::read_to_string(&record).unwrap(),
            format!("{} {}\n", first.sha256, first.size)
        );
        // The second apply reads the record: the tree is not packed again (a tree that is
        // gone cannot be packed, yet the figures come back).
        std::fs::remove_dir_all(&tree).unwrap();
        assert_eq!(packed_once(&tree, &record).unwrap(), first);
        // Only our own record counts; anything else is measured again (and fails here, the
        // tree being gone).
        for bad in [
            "",
            "abc 12\n",
            &format!("{} x\n", first.sha256),
            &format!("{} 1 2\n", first.sha256),
        ] {
            std::fs::write(&record, bad).unwrap();
            assert!(packed_once(&tree, &record).is_err(), "{bad:?}");
        }
        assert!(std::fs::read_dir(d.path())
            .unwrap()
            .all(|e| { !e.unwrap().file_name().to_string_lossy().contains("partial") }));
    }
}
