//! Building a bundle: plan the items from bundle.toml, check free space, then stream every
//! blob once, in order, into the canonical tar (hashing the content, compressing with zstd on
//! all cores where it helps, hashing the stored bytes), and finish with the signed manifest.
//! Output goes to temporary files renamed at the end; an error leaves nothing behind.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::app_package::AppPackage;
use crate::error::{BundleError, Result};
use crate::image::{self, OciImage};
use crate::keys::SigningKey;
use crate::manifest::{
    entry_name, BlobEntry, Compression, Content, Form, Item, ItemKind, Manifest, PackageFormat,
    FORMAT,
};
use crate::parts::{hash_file, part_name, Output, PartEntry, PartsIndex, PARTS_FORMAT};
use crate::spec::BundleSpec;
use crate::tarfmt;
use crate::tree::{self, TreeEntry};
use crate::{BlobSource, Digest};

/// How to build.
#[derive(Debug)]
pub struct BuildOptions {
    /// The bundle file to write (`NAME`; split bundles write `NAME.partNNN` and `NAME.parts`).
    pub output: PathBuf,
    /// Signs the manifest (and the parts index) when given.
    pub sign_key: Option<SigningKey>,
    /// Cut the output into parts of at most this many bytes.
    pub max_part_size: Option<u64>,
    /// Every timestamp in the bundle (`SOURCE_DATE_EPOCH` or the build time: see
    /// [`crate::build_time`]).
    pub source_date_epoch: u64,
    /// The Docker engine for `engine = true` images (`unix:///run/docker.sock`).
    pub docker_host: Option<String>,
    /// zstd worker threads; 0 means one per core.
    pub threads: u32,
}

/// What the builder reports while it works. The CLI draws these; the library never prints.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// Images are being read or exported (can take a while before any byte is written).
    ReadingImages {
        /// How many image references.
        count: usize,
    },
    /// The plan is made: items with their uncompressed sizes, in order.
    Planned {
        /// (name, kind, bytes) per item.
        items: Vec<(String, &'static str, u64)>,
    },
    /// An item's blobs are being written.
    ItemStarted {
        /// Item name.
        name: String,
    },
    /// More uncompressed bytes of the current item are done.
    Bytes {
        /// Item name.
        name: String,
        /// Bytes since the last event.
        bytes: u64,
    },
    /// An item is complete.
    ItemFinished {
        /// What the item cost.
        summary: ItemSummary,
    },
}

/// Sizes of one item in the bundle.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemSummary {
    /// Item name.
    pub name: String,
    /// Item kind.
    pub kind: &'static str,
    /// Uncompressed bytes of the item.
    pub size: u64,
    /// Bytes the item added to the bundle (its new blobs, as stored).
    pub stored: u64,
    /// Uncompressed bytes not stored again because an earlier blob had the same content.
    pub deduplicated: u64,
}

/// The result of a build.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildSummary {
    /// The files written (one, or the parts followed by the parts index and its signature).
    pub files: Vec<PathBuf>,
    /// Per item.
    pub items: Vec<ItemSummary>,
    /// Total bytes of the bundle (sum of parts).
    pub bundle_size: u64,
    /// Sum of item sizes before compression and deduplication.
    pub input_size: u64,
    /// Bytes saved by storing shared content once.
    pub deduplicated: u64,
    /// Number of distinct blobs.
    pub blobs: usize,
    /// Digest of manifest.json (names this exact bundle).
    pub manifest_digest: Digest,
}

enum Source {
    Blob(BlobSource),
    Tree(PathBuf, Vec<TreeEntry>),
}

struct PlannedContent {
    path: String,
    form: Form,
    mode: u32,
    source: Source,
    /// Known up front (pinned in bundle.toml, or an image blob's digest).
    expected: Option<Digest>,
    /// What the file is, for a pinned-digest error ("k3s binary").
    what: String,
    size: u64,
}

struct PlannedItem {
    item: Item,
    contents: Vec<PlannedContent>,
}

/// Builds the bundle `spec` describes. See the module docs.
pub fn build(
    spec: &BundleSpec,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<BuildSummary> {
    let (dir, base) = split_output(&opts.output)?;
    if opts.max_part_size == Some(0) {
        return Err(BundleError::Spec {
            path: opts.output.clone(),
            msg: "--max-part-size must be more than 0".into(),
        });
    }
    // Images from an engine are exported to a spool directory beside the output.
    let spool = SpoolDir(dir.join(format!(".{base}.spool-{}", std::process::id())));
    let planned = plan(spec, opts, &spool.0, progress)?;
    check_disjoint(spec, &planned)?;
    progress(BuildEvent::Planned {
        items: planned
            .iter()
            .map(|p| {
                (
                    p.item.name.clone(),
                    p.item.kind.label(),
                    p.contents.iter().map(|c| c.size).sum(),
                )
            })
            .collect(),
    });
    check_free_space(&dir, &planned)?;

    let mut out = Output::new(&dir, &base, opts.max_part_size);
    let mut writer = BlobWriter {
        out: &mut out,
        mtime: opts.source_date_epoch,
        threads: if opts.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        } else {
            opts.threads
        },
        buf: vec![0u8; 1 << 20],
    };
    let mut blobs: Vec<BlobEntry> = vec![];
    let mut known: HashMap<Digest, usize> = HashMap::new();
    let mut items = vec![];
    let mut summaries = vec![];
    for p in planned {
        let mut item = p.item;
        progress(BuildEvent::ItemStarted {
            name: item.name.clone(),
        });
        let mut summary = ItemSummary {
            name: item.name.clone(),
            kind: item.kind.label(),
            size: 0,
            stored: 0,
            deduplicated: 0,
        };
        for c in p.contents {
            if let Some(d) = c.expected.filter(|d| known.contains_key(d)) {
                let size = blobs[known[&d]].size;
                summary.size += size;
                summary.deduplicated += size;
                progress(BuildEvent::Bytes {
                    name: item.name.clone(),
                    bytes: size,
                });
                item.contents.push(content(&c, d, size));
                continue;
            }
            let name = item.name.clone();
            let mut on_bytes = |n| {
                progress(BuildEvent::Bytes {
                    name: name.clone(),
                    bytes: n,
                })
            };
            let reader: Box<dyn Read + Send> = match &c.source {
                Source::Blob(src) => src
                    .open()
                    .map_err(BundleError::io(format!("reading {}", src.describe())))?,
                Source::Tree(root, entries) => Box::new(tree::tar_stream(
                    root.clone(),
                    entries.clone(),
                    opts.source_date_epoch,
                )),
            };
            let start = writer.out.len();
            let entry = writer
                .write_blob(reader, &mut on_bytes)
                .map_err(|e| match e {
                    WriteError::Read(source) => BundleError::Io {
                        what: format!("item {}: reading {}", item.name, c.what),
                        source,
                    },
                    WriteError::Write(source) => BundleError::Io {
                        what: format!("writing {}", opts.output.display()),
                        source,
                    },
                })?;
            if let Some(expected) = c.expected {
                if expected != entry.digest {
                    let path = match &c.source {
                        Source::Blob(BlobSource::File(p)) => p.clone(),
                        Source::Blob(other) => PathBuf::from(other.describe()),
                        Source::Tree(p, _) => p.clone(),
                    };
                    return Err(BundleError::PinnedDigestMismatch {
                        what: c.what.clone(),
                        path,
                        expected,
                        actual: entry.digest,
                    });
                }
            }
            summary.size += entry.size;
            let digest = entry.digest;
            if let Some(&at) = known.get(&digest) {
                writer.out.truncate(start).map_err(BundleError::io(format!(
                    "writing {}",
                    opts.output.display()
                )))?;
                summary.deduplicated += entry.size;
                item.contents.push(content(&c, digest, blobs[at].size));
            } else {
                summary.stored += writer.out.len() - start;
                known.insert(digest, blobs.len());
                item.contents.push(content(&c, digest, entry.size));
                blobs.push(entry);
            }
        }
        progress(BuildEvent::ItemFinished {
            summary: summary.clone(),
        });
        summaries.push(summary);
        items.push(item);
    }

    let manifest = Manifest {
        format: FORMAT.into(),
        name: spec.bundle.name.clone(),
        version: spec.bundle.version.clone(),
        created: opts.source_date_epoch,
        blobs,
        items,
    };
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError::Io {
        what: "writing manifest.json".into(),
        source: io::Error::other(e),
    })?;
    manifest_bytes.push(b'\n');
    let werr = BundleError::io(format!("writing {}", opts.output.display()));
    writer
        .write_small("manifest.json", &manifest_bytes)
        .map_err(werr)?;
    if let Some(key) = &opts.sign_key {
        let sig = key.sign_to_bytes(&manifest_bytes);
        writer
            .write_small("manifest.sig", &sig)
            .map_err(BundleError::io(format!(
                "writing {}",
                opts.output.display()
            )))?;
    }
    writer
        .out
        .write_all(&[0u8; 1024])
        .map_err(BundleError::io(format!(
            "writing {}",
            opts.output.display()
        )))?;
    let blob_count = manifest.blobs.len();
    drop(writer);

    let files = finish_output(out, &dir, &base, opts)?;
    drop(spool);
    let bundle_size = files.1;
    let input_size = summaries.iter().map(|s| s.size).sum();
    let deduplicated = summaries.iter().map(|s| s.deduplicated).sum();
    Ok(BuildSummary {
        files: files.0,
        items: summaries,
        bundle_size,
        input_size,
        deduplicated,
        blobs: blob_count,
        manifest_digest: Digest::of(&manifest_bytes),
    })
}

fn content(c: &PlannedContent, digest: Digest, size: u64) -> Content {
    Content {
        path: c.path.clone(),
        digest,
        size,
        form: c.form,
        mode: c.mode,
    }
}

/// Renames the output into place, writes the parts index, and clears stale files of an
/// earlier build with the same name. Returns the files and the bundle's size.
fn finish_output(
    out: Output,
    dir: &Path,
    base: &str,
    opts: &BuildOptions,
) -> Result<(Vec<PathBuf>, u64)> {
    let written = out.finish()?;
    let total: u64 = written.iter().map(|(_, s)| s).sum();
    let remove = |p: PathBuf| {
        if p.symlink_metadata().is_ok() {
            let _ = fs::remove_file(p);
        }
    };
    let mut files: Vec<PathBuf> = written.iter().map(|(p, _)| p.clone()).collect();
    if opts.max_part_size.is_none() {
        remove(dir.join(format!("{base}.parts")));
        remove(dir.join(format!("{base}.parts.sig")));
        let mut n = 1;
        while dir.join(part_name(base, n)).exists() {
            remove(dir.join(part_name(base, n)));
            n += 1;
        }
        return Ok((files, total));
    }
    let cleanup = |files: &[PathBuf]| {
        for f in files {
            let _ = fs::remove_file(f);
        }
    };
    let mut parts = vec![];
    for (path, size) in &written {
        let sha256 = match hash_file(path) {
            Ok(d) => d,
            Err(e) => {
                cleanup(&files);
                return Err(BundleError::Io {
                    what: format!("hashing {}", path.display()),
                    source: e,
                });
            }
        };
        parts.push(PartEntry {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: *size,
            sha256,
        });
    }
    let index = PartsIndex {
        format: PARTS_FORMAT.into(),
        bundle: base.to_string(),
        total_size: total,
        parts,
    };
    let mut bytes = serde_json::to_vec_pretty(&index).unwrap_or_default();
    bytes.push(b'\n');
    let mut extra = vec![(dir.join(format!("{base}.parts")), bytes.clone())];
    if let Some(key) = &opts.sign_key {
        extra.push((
            dir.join(format!("{base}.parts.sig")),
            key.sign_to_bytes(&bytes),
        ));
    } else {
        remove(dir.join(format!("{base}.parts.sig")));
    }
    for (path, data) in extra {
        let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
        if let Err(e) = fs::write(&tmp, &data).and_then(|_| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            cleanup(&files);
            return Err(BundleError::Io {
                what: format!("writing {}", path.display()),
                source: e,
            });
        }
        files.push(path);
    }
    remove(dir.join(base));
    let mut n = written.len() + 1;
    while dir.join(part_name(base, n)).exists() {
        remove(dir.join(part_name(base, n)));
        n += 1;
    }
    Ok((files, total))
}

/// Splits `-o` into its directory and file name.
fn split_output(output: &Path) -> Result<(PathBuf, String)> {
    let bad = |msg: &str| BundleError::Spec {
        path: output.to_path_buf(),
        msg: msg.to_string(),
    };
    if output.is_dir() {
        return Err(bad(
            "is a directory; give the bundle's file name, e.g. -o out/site.bundle",
        ));
    }
    let base = output
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| bad("the output needs a UTF-8 file name"))?
        .to_string();
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(bad("its directory does not exist"));
    }
    Ok((dir, base))
}

struct SpoolDir(PathBuf);

/// A directory holding `.deb` files and no apt index of its own.
fn needs_apt_index(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.iter().any(|n| n.ends_with(".deb"))
        && !names.iter().any(|n| {
            matches!(
                n.as_str(),
                "Packages" | "Packages.gz" | "Packages.xz" | "dists"
            )
        })
}

impl Drop for SpoolDir {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn sanitize(reference: &str) -> String {
    reference
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn plan(
    spec: &BundleSpec,
    opts: &BuildOptions,
    spool: &Path,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<Vec<PlannedItem>> {
    let mut out = vec![];
    let mut packages = vec![];
    let file_content = |path: &Path, out_path: String, what: String, pinned: Option<Digest>| {
        let meta = fs::metadata(path).map_err(|e| BundleError::Io {
            what: format!("{what} {}", path.display()),
            source: e,
        })?;
        use std::os::unix::fs::PermissionsExt;
        if meta.is_dir() {
            if pinned.is_some() {
                return Err(BundleError::Spec {
                    path: path.to_path_buf(),
                    msg: format!("{what} is a directory; sha256 can only be pinned for a file"),
                });
            }
            let entries = tree::scan(path)?;
            let size = tree::estimated_size(&entries);
            return Ok(PlannedContent {
                path: out_path,
                form: Form::Tree,
                mode: 0o755,
                source: Source::Tree(path.to_path_buf(), entries),
                expected: None,
                what,
                size,
            });
        }
        Ok(PlannedContent {
            path: out_path,
            form: Form::File,
            mode: if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            },
            source: Source::Blob(BlobSource::File(path.to_path_buf())),
            expected: pinned,
            what,
            size: meta.len(),
        })
    };
    let file_name = |p: &Path| -> Result<String> {
        p.file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or_else(|| BundleError::Spec {
                path: p.to_path_buf(),
                msg: "needs a UTF-8 file name".into(),
            })
    };
    let item = |name: &str, version: Option<&str>, arch: Option<&str>, kind: ItemKind| Item {
        name: name.to_string(),
        version: version.map(str::to_string),
        arch: arch.map(str::to_string),
        kind,
        contents: vec![],
    };

    for f in &spec.files {
        let c = file_content(
            &spec.resolve(&f.path),
            f.name.clone(),
            format!("file {}", f.name),
            f.sha256,
        )?;
        out.push(PlannedItem {
            item: item(
                &f.name,
                f.version.as_deref(),
                f.arch.as_deref(),
                ItemKind::File,
            ),
            contents: vec![c],
        });
    }

    if !spec.images.is_empty() {
        out.extend(plan_images(spec, opts, spool, progress)?);
    }

    if let Some(k) = &spec.k3s {
        let arch = k.arch.as_deref().unwrap_or("amd64");
        let bin = spec.resolve(&k.binary.path);
        let air = spec.resolve(&k.airgap_images.path);
        let mut c1 = file_content(
            &bin,
            "k3s/k3s".into(),
            "k3s binary".into(),
            Some(k.binary.sha256),
        )?;
        c1.mode = 0o755;
        let c2 = file_content(
            &air,
            format!("k3s/{}", file_name(&air)?),
            "k3s air-gap images".into(),
            Some(k.airgap_images.sha256),
        )?;
        out.push(PlannedItem {
            item: item("k3s", Some(&k.version), Some(arch), ItemKind::K3s),
            contents: vec![c1, c2],
        });
    }
    for k in &spec.kubernetes {
        let p = spec.resolve(&k.path);
        let mut c = file_content(
            &p,
            k.name.clone(),
            format!("kubernetes binary {}", k.name),
            Some(k.sha256),
        )?;
        c.mode = 0o755;
        out.push(PlannedItem {
            item: item(
                &k.name,
                Some(&k.version),
                k.arch.as_deref(),
                ItemKind::Kubernetes,
            ),
            contents: vec![c],
        });
    }
    for g in &spec.gpu_drivers {
        let p = spec.resolve(&g.path);
        let c = file_content(
            &p,
            format!("{}/{}", g.name, file_name(&p)?),
            format!("gpu driver {}", g.name),
            Some(g.sha256),
        )?;
        out.push(PlannedItem {
            item: item(
                &g.name,
                Some(&g.version),
                g.arch.as_deref(),
                ItemKind::GpuDriver {
                    kernels: g.kernels.clone(),
                    pci_vendor: g.pci_vendor.to_lowercase(),
                },
            ),
            contents: vec![c],
        });
    }
    for o in &spec.os_packages {
        let mut p = spec.resolve(&o.path);
        if o.format == PackageFormat::Deb && needs_apt_index(&p) {
            // A directory of .deb files: the bundle carries the repository built from them.
            let repo = spool.join("os-packages").join(&o.name);
            let base = o.base_packages.iter().cloned().collect();
            crate::apt_repo::write_flat_repo(&p, &repo, &o.distro, &base).map_err(|e| {
                BundleError::Spec {
                    path: p.clone(),
                    msg: format!("os packages {}: {e}", o.name),
                }
            })?;
            p = repo;
        }
        let out_path = if p.is_dir() {
            o.name.clone()
        } else {
            format!("{}/{}", o.name, file_name(&p)?)
        };
        let c = file_content(&p, out_path, format!("os packages {}", o.name), o.sha256)?;
        out.push(PlannedItem {
            item: item(
                &o.name,
                None,
                o.arch.as_deref(),
                ItemKind::OsPackages {
                    format: o.format,
                    distro: o.distro.clone(),
                },
            ),
            contents: vec![c],
        });
    }
    for a in &spec.app_packages {
        let p = spec.resolve(&a.path);
        let package = AppPackage::open(&p, None)?;
        let c = file_content(
            &p,
            format!(
                "{}/{}",
                package.spec.name,
                AppPackage::file_name(&package.spec)
            ),
            format!("app package {}", package.spec.name),
            a.sha256.or(Some(package.digest)),
        )?;
        out.push(PlannedItem {
            item: item(
                package.spec.name.as_str(),
                Some(&package.spec.version.to_string()),
                None,
                ItemKind::AppPackage,
            ),
            contents: vec![c],
        });
        packages.push(package);
    }
    check_app_packages(spec, &packages, &out)?;
    Ok(out)
}

fn plan_images(
    spec: &BundleSpec,
    opts: &BuildOptions,
    spool: &Path,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<Vec<PlannedItem>> {
    progress(BuildEvent::ReadingImages {
        count: spec.images.len(),
    });
    let image_err = |e: image::ImageError| BundleError::Image(e.to_string());
    // Each archive is scanned once, however many images it holds.
    let mut archives: BTreeMap<PathBuf, Vec<OciImage>> = BTreeMap::new();
    for i in &spec.images {
        if let Some(a) = &i.archive {
            let path = spec.resolve(a);
            if let std::collections::btree_map::Entry::Vacant(slot) = archives.entry(path) {
                let images = image::from_archive(slot.key()).map_err(image_err)?;
                slot.insert(images);
            }
        }
    }
    let engine_refs: Vec<String> = spec
        .images
        .iter()
        .filter(|i| i.engine)
        .map(|i| i.reference.clone())
        .collect();
    let mut from_engine = vec![];
    if !engine_refs.is_empty() {
        let host = opts.docker_host.clone().ok_or_else(|| BundleError::Spec {
            path: spec.base_dir.join("bundle.toml"),
            msg: "images with engine = true need a Docker engine: pass --docker-host or set DOCKER_HOST".into(),
        })?;
        fs::create_dir_all(spool)
            .map_err(BundleError::io(format!("creating {}", spool.display())))?;
        from_engine = image::from_engine(&host, &engine_refs, spool).map_err(image_err)?;
    }
    let mut out = vec![];
    for (n, i) in spec.images.iter().enumerate() {
        let want = image::normalize_reference(&i.reference);
        let img = match &i.archive {
            Some(a) => {
                let path = spec.resolve(a);
                let held = archives.get(&path).map(Vec::as_slice).unwrap_or_default();
                held.iter()
                    .find(|m| m.reference == want)
                    .cloned()
                    .ok_or_else(|| {
                        BundleError::Image(format!(
                            "image archive {} has no image {} (it holds: {})",
                            path.display(),
                            i.reference,
                            held.iter()
                                .map(|m| m.reference.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?
            }
            None => {
                let idx = spec.images[..n].iter().filter(|x| x.engine).count();
                from_engine.get(idx).cloned().ok_or_else(|| {
                    BundleError::Image(format!(
                        "the Docker engine returned no image for {}",
                        i.reference
                    ))
                })?
            }
        };
        let dir = sanitize(&i.reference);
        let index = image::index_json(&[&img]);
        let mut contents = vec![
            PlannedContent {
                path: format!("{dir}/oci-layout"),
                form: Form::File,
                mode: 0o644,
                expected: Some(Digest::of(image::OCI_LAYOUT)),
                size: image::OCI_LAYOUT.len() as u64,
                source: Source::Blob(BlobSource::Bytes(Arc::new(image::OCI_LAYOUT.to_vec()))),
                what: format!("image {} oci-layout", i.reference),
            },
            PlannedContent {
                path: format!("{dir}/index.json"),
                form: Form::File,
                mode: 0o644,
                expected: Some(Digest::of(&index)),
                size: index.len() as u64,
                source: Source::Blob(BlobSource::Bytes(Arc::new(index))),
                what: format!("image {} index.json", i.reference),
            },
        ];
        for b in img.blobs() {
            contents.push(PlannedContent {
                path: format!("{dir}/blobs/sha256/{}", b.digest.hex()),
                form: Form::File,
                mode: 0o644,
                expected: Some(b.digest),
                size: b.size,
                source: Source::Blob(b.source.clone()),
                what: format!("image {} blob {}", i.reference, b.digest),
            });
        }
        out.push(PlannedItem {
            item: Item {
                name: i.reference.clone(),
                version: None,
                arch: Some(img.architecture.clone()),
                kind: ItemKind::Image {
                    reference: img.reference.clone(),
                    manifest_digest: img.manifest.digest,
                    os: img.os.clone(),
                    architecture: img.architecture.clone(),
                },
                contents: vec![],
            },
            contents,
        });
    }
    Ok(out)
}

/// Refuses two items writing the same top-level path (an image `a/b:1` and a file item
/// `a_b_1`, say): one would be written inside the other when extracted.
fn check_disjoint(spec: &BundleSpec, planned: &[PlannedItem]) -> Result<()> {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for p in planned {
        for c in &p.contents {
            let top = c.path.split('/').next().unwrap_or_default();
            match owner.insert(top, &p.item.name) {
                Some(other) if other != p.item.name => {
                    return Err(BundleError::Spec {
                        path: spec.base_dir.join("bundle.toml"),
                        msg: format!(
                            "items {other:?} and {:?} would both extract to {top:?}: rename one",
                            p.item.name
                        ),
                    })
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Refuses app packages the site could not deploy from this bundle: one whose image is not
/// among the bundle's images (same repository, same manifest digest), one named like another
/// item, and dependencies that are missing, out of range or circular.
fn check_app_packages(
    spec: &BundleSpec,
    packages: &[AppPackage],
    planned: &[PlannedItem],
) -> Result<()> {
    let bad = |msg: String| BundleError::Spec {
        path: spec.base_dir.join("bundle.toml"),
        msg,
    };
    let images: Vec<(&str, &Digest)> = planned
        .iter()
        .filter_map(|p| match &p.item.kind {
            ItemKind::Image {
                reference,
                manifest_digest,
                ..
            } => Some((reference.as_str(), manifest_digest)),
            _ => None,
        })
        .collect();
    for package in packages {
        let name = &package.spec.name;
        let named = planned
            .iter()
            .filter(|p| p.item.name == name.as_str())
            .count();
        if named > 1 {
            return Err(bad(format!(
                "app package {name} is named like another item of the bundle: bundle one \
                 package of each name, and rename the other item"
            )));
        }
        for image in package.spec.images() {
            let full = image::normalize_reference(image.repository());
            let repo = repository_of(&full);
            let found = images
                .iter()
                .any(|(r, d)| d.to_string() == image.digest() && repository_of(r) == repo);
            if !found {
                let same_repo: Vec<String> = images
                    .iter()
                    .filter(|(r, _)| repository_of(r) == repo)
                    .map(|(r, d)| format!("{r} is {d}"))
                    .collect();
                return Err(bad(format!(
                    "app package {name} {} runs image {image}, which is not in the bundle{}: \
                     add it to [[images]] (or pack the package with the digest the bundle has)",
                    package.spec.version,
                    if same_repo.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", same_repo.join(", "))
                    }
                )));
            }
        }
    }
    let specs: Vec<&ferry_apps::AppSpec> = packages.iter().map(|p| &p.spec).collect();
    ferry_apps::deps::order(&specs).map_err(|e| bad(e.to_string()))?;
    Ok(())
}

/// `docker.io/demo/app:1.0` → `docker.io/demo/app` (a full reference, as the bundle writes).
fn repository_of(full: &str) -> &str {
    let name = full.split('@').next().unwrap_or(full);
    match name.rfind(':') {
        Some(c) if !name[c..].contains('/') => &name[..c],
        _ => name,
    }
}

/// Fails early when the output directory cannot hold the bundle at its largest (no
/// compression, only known duplicates removed).
fn check_free_space(dir: &Path, planned: &[PlannedItem]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut needed: u64 = 4096;
    for c in planned.iter().flat_map(|p| &p.contents) {
        if let Some(d) = c.expected {
            if !seen.insert(d) {
                continue;
            }
        }
        needed += c.size + c.size / 64 + 1024;
    }
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|e| BundleError::Io {
        what: format!("checking free space in {}", dir.display()),
        source: io::Error::from(e),
    })?;
    let available = (stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64);
    if needed > available {
        return Err(BundleError::NoSpace {
            dir: dir.to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}

/// Bytes per zstd job (see `write_blob`).
const ZSTD_JOB_SIZE: u32 = 2 << 20;

enum WriteError {
    Read(io::Error),
    Write(io::Error),
}

struct BlobWriter<'a> {
    out: &'a mut Output,
    mtime: u64,
    threads: u32,
    buf: Vec<u8>,
}

/// Counts and hashes what passes through to the output.
struct HashingWriter<'a> {
    out: &'a mut Output,
    hash: Sha256,
    count: u64,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Data that is already compressed: storing it as-is beats compressing it again.
fn looks_compressed(sample: &[u8]) -> bool {
    const MAGICS: &[&[u8]] = &[
        &[0x1f, 0x8b],                      // gzip
        &[0x28, 0xb5, 0x2f, 0xfd],          // zstd
        &[0xfd, b'7', b'z', b'X', b'Z', 0], // xz
        b"BZh",                             // bzip2
        b"PK\x03\x04",                      // zip, jar
        &[0xed, 0xab, 0xee, 0xdb],          // rpm
        b"!<arch>\n",                       // deb (ar)
        &[0x89, b'P', b'N', b'G'],          // png
        &[0xff, 0xd8, 0xff],                // jpeg
    ];
    MAGICS.iter().any(|m| sample.starts_with(m))
}

fn worth_compressing(sample: &[u8]) -> bool {
    if sample.len() < 64 || looks_compressed(sample) {
        return false;
    }
    match zstd::bulk::compress(sample, 1) {
        Ok(c) => (c.len() as u64) * 10 < (sample.len() as u64) * 9,
        Err(_) => false,
    }
}

impl BlobWriter<'_> {
    /// Streams one blob into the tar: placeholder header, content, padding, then the real
    /// header patched in once the digest and stored size are known.
    fn write_blob(
        &mut self,
        mut reader: Box<dyn Read + Send>,
        on_bytes: &mut dyn FnMut(u64),
    ) -> std::result::Result<BlobEntry, WriteError> {
        let header_at = self.out.len();
        self.out.write_all(&[0u8; 512]).map_err(WriteError::Write)?;
        // Sample the first MiB to decide how to store the blob.
        let mut filled = 0;
        while filled < self.buf.len() {
            let n = read_retry(&mut reader, &mut self.buf[filled..]).map_err(WriteError::Read)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        let compress = worth_compressing(&self.buf[..filled]);
        let mut content = Sha256::new();
        let mut size = 0u64;
        let sink = HashingWriter {
            out: self.out,
            hash: Sha256::new(),
            count: 0,
        };
        let mut first = filled;
        let sink = if compress {
            let mut enc = zstd::stream::write::Encoder::new(sink, 3).map_err(WriteError::Write)?;
            enc.multithread(self.threads.max(1))
                .map_err(WriteError::Write)?;
            // Small fixed jobs bound memory (zstd's default at level 3 is 8 MiB per job, a few
            // jobs in flight per worker) and keep the output independent of the worker count.
            enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))
                .map_err(WriteError::Write)?;
            loop {
                let n = if first > 0 {
                    std::mem::take(&mut first)
                } else {
                    read_retry(&mut reader, &mut self.buf).map_err(WriteError::Read)?
                };
                if n == 0 {
                    break;
                }
                content.update(&self.buf[..n]);
                enc.write_all(&self.buf[..n]).map_err(WriteError::Write)?;
                size += n as u64;
                on_bytes(n as u64);
            }
            enc.finish().map_err(WriteError::Write)?
        } else {
            let mut sink = sink;
            loop {
                let n = if first > 0 {
                    std::mem::take(&mut first)
                } else {
                    read_retry(&mut reader, &mut self.buf).map_err(WriteError::Read)?
                };
                if n == 0 {
                    break;
                }
                sink.write_all(&self.buf[..n]).map_err(WriteError::Write)?;
                size += n as u64;
                on_bytes(n as u64);
            }
            sink
        };
        let stored_size = sink.count;
        let stored_sha256 = Digest::from_bytes(sink.hash.finalize().into());
        let digest = if compress {
            Digest::from_bytes(content.finalize().into())
        } else {
            stored_sha256
        };
        let compression = if compress {
            Compression::Zstd
        } else {
            Compression::None
        };
        let pad = tarfmt::padding(stored_size) as usize;
        self.out
            .write_all(&[0u8; 512][..pad])
            .map_err(WriteError::Write)?;
        let header = tarfmt::header(&entry_name(&digest, compression), stored_size, self.mtime);
        self.out
            .write_at(header_at, &header)
            .map_err(WriteError::Write)?;
        Ok(BlobEntry {
            digest,
            size,
            compression,
            stored_size,
            stored_sha256,
        })
    }

    fn write_small(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let header = tarfmt::header(name, bytes.len() as u64, self.mtime);
        self.out.write_all(&header)?;
        self.out.write_all(bytes)?;
        let pad = tarfmt::padding(bytes.len() as u64) as usize;
        self.out.write_all(&[0u8; 512][..pad])
    }
}

fn read_retry(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
