//! Reading a bundle in place: resolve its parts, walk the canonical tar headers into an offset
//! table, check the manifest and its signature, then read any blob by offset through a stack
//! of small readers (range → stored sha256 → zstd → content sha256) that fail at end of stream
//! when a digest differs. Verify and extract are built from those readers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::beneath::{Beneath, Refused};
use crate::error::{BundleError, Result};
use crate::keys::PublicKey;
use crate::manifest::{check_relative_path, BlobEntry, Compression, Form, Item, Manifest, FORMAT};
use crate::parts::{Part, PartedReader, PartsIndex, PARTS_FORMAT};
use crate::tarfmt::{self, BLOCK};
use crate::Digest;

/// Largest manifest or signature accepted (a manifest is JSON text; this bounds memory).
const MAX_MANIFEST: u64 = 256 << 20;

/// How a bundle is laid out on disk.
#[derive(Debug, Clone)]
pub enum Layout {
    /// One file.
    Single(PathBuf),
    /// Numbered parts with a parts index.
    Split {
        /// `NAME.parts`.
        index_path: PathBuf,
        /// Its parsed content.
        index: PartsIndex,
        /// The exact bytes `index` was parsed from: the signature is checked over these, so
        /// what is verified is what is used.
        raw: Vec<u8>,
    },
}

/// Whether the signature was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureState {
    /// Checked against the given key (its id).
    Verified(String),
    /// A signature is there but no key was given to check it.
    Unchecked {
        /// The signer's key id as the signature names it (`malformed` when unreadable).
        key_id: String,
        /// The algorithm the signature names (`malformed` when unreadable).
        algorithm: String,
    },
    /// The bundle has no signature.
    Unsigned,
}

/// Where a blob sits.
#[derive(Debug, Clone, Copy)]
struct Located {
    offset: u64,
    index: usize,
}

/// An open bundle: its manifest and where every blob is.
#[derive(Debug)]
pub struct Bundle {
    path: PathBuf,
    layout: Layout,
    parts: Vec<Part>,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    signature: SignatureState,
    blobs: HashMap<Digest, Located>,
    mtime: u64,
}

/// What verify and extract report while they work.
#[derive(Debug, Clone)]
pub enum ReadEvent {
    /// Work started: this many bytes to go through.
    Started {
        /// Total bytes.
        bytes: u64,
    },
    /// More bytes done.
    Bytes {
        /// Bytes since the last event.
        bytes: u64,
    },
    /// An item was written by extract.
    ItemExtracted {
        /// Item name.
        name: String,
        /// Where.
        path: PathBuf,
    },
}

/// The outcome of a successful verify.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// Bytes read.
    pub bytes: u64,
    /// Blobs checked.
    pub blobs: usize,
    /// Items.
    pub items: usize,
    /// Parts checked by hash (0 for a single file).
    pub parts: usize,
    /// Key id that signed it.
    pub key_id: String,
    /// Whether content digests were checked by decompressing (`--deep`).
    pub deep: bool,
}

impl Bundle {
    /// Opens the bundle at `path` (a bundle file, `NAME` of a split bundle, or its `NAME.parts`).
    /// Checks every tar header, the manifest's consistency with the tar, and — when `key` is
    /// given — the signatures of the manifest and the parts index. Reads headers only, not blob
    /// contents.
    pub fn open(path: &Path, key: Option<&PublicKey>) -> Result<Self> {
        let layout = resolve(path)?;
        let (parts, shown) = match &layout {
            Layout::Single(p) => {
                let size = fs::metadata(p)
                    .map_err(BundleError::io(format!("opening bundle {}", p.display())))?
                    .len();
                (
                    vec![Part {
                        path: p.clone(),
                        size,
                        sha256: None,
                    }],
                    p.clone(),
                )
            }
            Layout::Split {
                index_path,
                index,
                raw,
            } => (
                check_parts(index_path, index, raw, key)?,
                index_path.clone(),
            ),
        };
        let mut r = PartedReader::new(parts.clone());
        let entries = scan(&mut r, &shown)?;
        let damaged = |msg: String| BundleError::damaged(&shown, msg);

        let manifest_entry = entries
            .iter()
            .find(|e| e.name == "manifest.json")
            .ok_or_else(|| {
                damaged(
                    "has no manifest.json: not a ferry bundle, or the copy is incomplete".into(),
                )
            })?;
        let manifest_bytes = read_small(&mut r, manifest_entry, &shown)?;
        let signature = match entries.iter().find(|e| e.name == "manifest.sig") {
            Some(e) => {
                let sig = read_small(&mut r, e, &shown)?;
                match key {
                    Some(k) => {
                        k.verify(&manifest_bytes, &sig, &shown, "manifest.json")?;
                        SignatureState::Verified(k.key_id())
                    }
                    None => {
                        let (key_id, algorithm) =
                            serde_json::from_slice::<crate::keys::SignatureFile>(&sig)
                                .map(|s| (s.key_id, s.algorithm))
                                .unwrap_or_else(|_| ("malformed".into(), "malformed".into()));
                        SignatureState::Unchecked { key_id, algorithm }
                    }
                }
            }
            None => {
                if key.is_some() {
                    return Err(BundleError::Signature {
                        bundle: shown.clone(),
                        msg: "is not signed (no manifest.sig): rebuild it with --sign-key".into(),
                    });
                }
                SignatureState::Unsigned
            }
        };
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| damaged(format!("manifest.json is not a valid ferry manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(damaged(format!(
                "manifest format is {:?}; this ferry reads {FORMAT}: use a matching ferry version",
                manifest.format
            )));
        }
        let mtime = entries.first().map(|e| e.mtime).unwrap_or(0);
        if entries.iter().any(|e| e.mtime != manifest.created) {
            return Err(damaged(
                "tar entry times differ from the manifest's created time (changed after build?)"
                    .into(),
            ));
        }
        let blobs = check_consistency(&manifest, &entries, &r, &shown)?;
        Ok(Bundle {
            path: shown,
            layout,
            parts,
            manifest,
            manifest_bytes,
            signature,
            blobs,
            mtime,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The exact bytes of manifest.json (what the signature covers).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// Whether and by whom the bundle is signed.
    pub fn signature(&self) -> &SignatureState {
        &self.signature
    }

    /// Single file or parts.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The path shown in messages (the bundle file or the parts index).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Total bytes on disk.
    pub fn size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// The blob table entry for a digest.
    pub fn blob(&self, digest: &Digest) -> Option<&BlobEntry> {
        self.blobs
            .get(digest)
            .map(|l| &self.manifest.blobs[l.index])
    }

    /// An item by name.
    pub fn item(&self, name: &str) -> Result<&Item> {
        self.manifest
            .items
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| BundleError::NoSuchItem {
                name: name.to_string(),
                known: self
                    .manifest
                    .items
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Which items use a blob (for naming them in errors).
    fn users(&self, digest: &Digest) -> String {
        let names: BTreeSet<&str> = self
            .manifest
            .items
            .iter()
            .filter(|i| i.contents.iter().any(|c| c.digest == *digest))
            .map(|i| i.name.as_str())
            .collect();
        names.into_iter().collect::<Vec<_>>().join(", ")
    }

    /// Opens one blob as a stream of its content. Reading it to the end verifies it: the
    /// stream fails when the stored bytes or the content do not match the manifest.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader> {
        let loc = self
            .blobs
            .get(digest)
            .ok_or_else(|| BundleError::damaged(&self.path, format!("has no blob {digest}")))?;
        let entry = &self.manifest.blobs[loc.index];
        let mut r = PartedReader::new(self.parts.clone());
        r.seek(SeekFrom::Start(loc.offset))
            .map_err(BundleError::io(format!("reading {}", self.path.display())))?;
        let users = self.users(digest);
        let stored = Checked::new(
            r.take(entry.stored_size),
            entry.stored_size,
            entry.stored_sha256,
            format!(
                "blob {} (item {users}) is corrupt: its stored bytes",
                entry.digest
            ),
        );
        match entry.compression {
            // Stored as-is: the stored bytes are the content, and opening checked that their
            // declared digest and size are the content's, so one hash pass checks both.
            Compression::None => Ok(BlobReader(Box::new(stored))),
            Compression::Zstd => {
                let decoder = zstd::stream::read::Decoder::new(stored)
                    .map_err(BundleError::io(format!("reading blob {digest}")))?;
                Ok(BlobReader(Box::new(Checked::new(
                    decoder,
                    entry.size,
                    entry.digest,
                    format!(
                        "blob {} (item {users}) is corrupt: its content",
                        entry.digest
                    ),
                ))))
            }
        }
    }

    /// Checks the whole bundle front to back: every part's hash (split bundles), every
    /// header and padding byte, every blob's stored sha256, and with `deep` every content
    /// digest too. The signature was checked by [`Bundle::open`] with the key. Memory stays
    /// constant; the first failure is returned, naming the part, entry, blob or item.
    pub fn verify(&self, deep: bool, progress: &mut dyn FnMut(ReadEvent)) -> Result<VerifyReport> {
        let key_id = match &self.signature {
            SignatureState::Verified(k) => k.clone(),
            _ => {
                return Err(BundleError::Signature {
                    bundle: self.path.clone(),
                    msg: "signature not checked: open the bundle with a public key to verify it"
                        .into(),
                })
            }
        };
        let total = self.size();
        progress(ReadEvent::Started { bytes: total });
        let mut r = PartedReader::new(self.parts.clone());
        let split = self.parts.len() > 1 || matches!(self.layout, Layout::Split { .. });
        if split {
            r.check_parts();
        }
        let shown = self.path.clone();
        let io_err = |e: io::Error| -> BundleError {
            if e.kind() == io::ErrorKind::Other || e.kind() == io::ErrorKind::UnexpectedEof {
                BundleError::damaged(&shown, e.to_string())
            } else {
                BundleError::Io {
                    what: format!("reading {}", shown.display()),
                    source: e,
                }
            }
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        let mut blobs = 0;
        loop {
            let mut h = [0u8; 512];
            r.read_exact(&mut h).map_err(io_err)?;
            pos += BLOCK;
            progress(ReadEvent::Bytes { bytes: BLOCK });
            if h.iter().all(|&b| b == 0) {
                let mut rest = Vec::new();
                (&mut r)
                    .take(BLOCK)
                    .read_to_end(&mut rest)
                    .map_err(io_err)?;
                pos += rest.len() as u64;
                if rest.len() as u64 != BLOCK || rest.iter().any(|&b| b != 0) {
                    return Err(BundleError::damaged(
                        &self.path,
                        format!("the end of the archive at offset {pos} is damaged"),
                    ));
                }
                break;
            }
            let parsed = tarfmt::parse(&h).map_err(|m| {
                BundleError::damaged(&self.path, format!("{m}{}", r.locate(pos - BLOCK)))
            })?;
            let blob = self.blobs_by_name(&parsed.name);
            let mut stored = Sha256::new();
            let mut content = if deep && blob.is_some_and(|b| b.compression == Compression::Zstd) {
                Some(
                    zstd::stream::write::Decoder::new(HashSink::default())
                        .map_err(BundleError::io("starting zstd"))?,
                )
            } else {
                None
            };
            let mut left = parsed.size;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                r.read_exact(&mut buf[..want]).map_err(io_err)?;
                if blob.is_some() {
                    stored.update(&buf[..want]);
                }
                if let Some(dec) = content.as_mut() {
                    if dec.write_all(&buf[..want]).is_err() {
                        let b = blob.map(|b| b.digest).unwrap_or(Digest::of(b""));
                        return Err(BundleError::damaged(
                            &self.path,
                            format!("blob {b} (item {}) does not decompress", self.users(&b)),
                        ));
                    }
                }
                left -= want as u64;
                pos += want as u64;
                progress(ReadEvent::Bytes { bytes: want as u64 });
            }
            let pad = tarfmt::padding(parsed.size) as usize;
            r.read_exact(&mut buf[..pad]).map_err(io_err)?;
            if buf[..pad].iter().any(|&b| b != 0) {
                return Err(BundleError::damaged(
                    &self.path,
                    format!(
                        "padding after entry {:?} is not zero{}",
                        parsed.name,
                        r.locate(pos)
                    ),
                ));
            }
            pos += pad as u64;
            progress(ReadEvent::Bytes { bytes: pad as u64 });
            if let Some(b) = blob {
                blobs += 1;
                let got = Digest::from_bytes(stored.finalize().into());
                if got != b.stored_sha256 {
                    return Err(BundleError::damaged(
                        &self.path,
                        format!(
                            "blob {} (item {}) is corrupt: its stored bytes hash to {got}, the manifest says {}{}",
                            b.digest,
                            self.users(&b.digest),
                            b.stored_sha256,
                            r.locate(pos - pad as u64 - parsed.size)
                        ),
                    ));
                }
                if let Some(dec) = content {
                    let mut dec = dec;
                    let ok = dec.flush().is_ok();
                    let sink = dec.into_inner();
                    let (d, n) = sink.finish();
                    if !ok || d != b.digest || n != b.size {
                        return Err(BundleError::damaged(
                            &self.path,
                            format!(
                                "blob {} (item {}) is corrupt: its content hashes to {d} ({n} bytes), the manifest says {} ({} bytes)",
                                b.digest,
                                self.users(&b.digest),
                                b.digest,
                                b.size
                            ),
                        ));
                    }
                }
            }
        }
        if pos != total {
            return Err(BundleError::damaged(
                &self.path,
                format!(
                    "has {} bytes of trailing data after the end of the archive",
                    total.saturating_sub(pos)
                ),
            ));
        }
        Ok(VerifyReport {
            bytes: total,
            blobs,
            items: self.manifest.items.len(),
            parts: if split { self.parts.len() } else { 0 },
            key_id,
            deep,
        })
    }

    fn blobs_by_name(&self, name: &str) -> Option<&BlobEntry> {
        let hex = name.strip_prefix("blobs/sha256/")?;
        let hex = hex.strip_suffix(".zst").unwrap_or(hex);
        let d = Digest::from_hex(hex).ok()?;
        self.blob(&d)
    }

    /// Writes one item (or every item, when `name` is `None`) under `dir`. Each item is
    /// written to a temporary directory inside `dir` and moved into place only once all its
    /// blobs have checked out; existing paths are never overwritten. Reads only the blobs of
    /// the items asked for.
    pub fn extract(
        &self,
        name: Option<&str>,
        dir: &Path,
        progress: &mut dyn FnMut(ReadEvent),
    ) -> Result<Vec<PathBuf>> {
        let items: Vec<&Item> = match name {
            Some(n) => vec![self.item(n)?],
            None => self.manifest.items.iter().collect(),
        };
        fs::create_dir_all(dir).map_err(BundleError::io(format!("creating {}", dir.display())))?;
        let total = items.iter().map(|i| i.size()).sum();
        progress(ReadEvent::Started { bytes: total });
        // Refuse before writing anything when a target exists.
        for item in &items {
            for top in tops(item) {
                let dest = dir.join(&top);
                if dest.symlink_metadata().is_ok() {
                    return Err(BundleError::Unsafe {
                        msg: format!(
                            "{} exists; will not overwrite it (extract into an empty directory)",
                            dest.display()
                        ),
                    });
                }
            }
        }
        let mut written = vec![];
        for item in items {
            let staging = Staging(dir.join(format!(".ferry-extract-{}", std::process::id())));
            fs::create_dir(&staging.0)
                .map_err(BundleError::io(format!("creating {}", staging.0.display())))?;
            // Everything below is created from this directory without following a link.
            let root = Beneath::open(&staging.0)
                .map_err(BundleError::io(format!("opening {}", staging.0.display())))?;
            let refused = |r: Refused| match r {
                Refused::Unsafe(m) => BundleError::Unsafe {
                    msg: format!(
                        "item {}: content {m}; nothing was written outside the target",
                        item.name
                    ),
                },
                Refused::Io { what, source } => BundleError::Io { what, source },
            };
            for c in &item.contents {
                let target = staging.0.join(&c.path);
                let mut blob = self.open_blob(&c.digest)?;
                let mut counted = Counting {
                    inner: &mut blob,
                    progress: &mut *progress,
                };
                match c.form {
                    Form::File => {
                        let mut f = root.create_file(&c.path, 0o600).map_err(refused)?;
                        io::copy(&mut counted, &mut f).map_err(|e| self.read_err(e, &target))?;
                        f.set_permissions(fs::Permissions::from_mode(c.mode & 0o755))
                            .map_err(BundleError::io(format!(
                                "setting mode of {}",
                                target.display()
                            )))?;
                    }
                    Form::Tree => {
                        root.mkdir(&c.path).map_err(refused)?;
                        let tree = root.dir(&c.path, false).map_err(refused)?;
                        let tree_result = crate::tree::unpack(&mut counted, &tree, &item.name);
                        // Drain to the end so the digest is checked even after the tar's end.
                        let drained = io::copy(&mut counted, &mut io::sink());
                        tree_result?;
                        drained.map_err(|e| self.read_err(e, &target))?;
                    }
                }
            }
            for top in tops(item) {
                let from = staging.0.join(&top);
                let to = dir.join(&top);
                move_no_replace(&from, &to)?;
                written.push(to);
            }
            progress(ReadEvent::ItemExtracted {
                name: item.name.clone(),
                path: dir.join(tops(item).first().cloned().unwrap_or_default()),
            });
        }
        Ok(written)
    }

    fn read_err(&self, e: io::Error, target: &Path) -> BundleError {
        if e.kind() == io::ErrorKind::Other || e.kind() == io::ErrorKind::InvalidData {
            BundleError::damaged(&self.path, e.to_string())
        } else {
            BundleError::Io {
                what: format!("extracting to {}", target.display()),
                source: e,
            }
        }
    }

    /// Writes an image item as an OCI archive (a tar of its OCI image layout) to `out`, the
    /// form `ctr images import` and `docker load` read. Blobs are streamed and verified.
    pub fn write_image_archive(&self, name: &str, out: &mut dyn Write) -> Result<()> {
        self.write_image_archive_with(name, out, &|index| Ok(index))
    }

    /// [`Self::write_image_archive`] with the layout's `index.json` passed through `edit`
    /// first (to name the images otherwise for the importer). The index is read whole (it is
    /// small) and checked against its digest before `edit` sees it; the blobs it points to are
    /// still streamed and verified, and an importer still checks them against the manifests.
    pub fn write_image_archive_with(
        &self,
        name: &str,
        out: &mut dyn Write,
        edit: &dyn Fn(Vec<u8>) -> std::result::Result<Vec<u8>, String>,
    ) -> Result<()> {
        let item = self.item(name)?;
        if !matches!(item.kind, crate::ItemKind::Image { .. }) {
            return Err(BundleError::Unsafe {
                msg: format!("item {name} is a {}, not an image", item.kind.label()),
            });
        }
        let werr = |e: io::Error| BundleError::Io {
            what: "writing the OCI archive".into(),
            source: e,
        };
        for c in &item.contents {
            let rel = c.path.split_once('/').map(|(_, r)| r).unwrap_or(&c.path);
            let mut blob = self.open_blob(&c.digest)?;
            if rel == "index.json" {
                let mut index = Vec::new();
                blob.read_to_end(&mut index)
                    .map_err(|e| self.read_err(e, Path::new(name)))?;
                let index = edit(index).map_err(|msg| BundleError::Unsafe {
                    msg: format!("the index of image {name}: {msg}"),
                })?;
                out.write_all(&tarfmt::header(rel, index.len() as u64, self.mtime))
                    .map_err(werr)?;
                out.write_all(&index).map_err(werr)?;
                let pad = tarfmt::padding(index.len() as u64) as usize;
                out.write_all(&[0u8; 512][..pad]).map_err(werr)?;
                continue;
            }
            out.write_all(&tarfmt::header(rel, c.size, self.mtime))
                .map_err(werr)?;
            io::copy(&mut blob, out).map_err(|e| self.read_err(e, Path::new(name)))?;
            let pad = tarfmt::padding(c.size) as usize;
            out.write_all(&[0u8; 512][..pad]).map_err(werr)?;
        }
        out.write_all(&[0u8; 1024]).map_err(werr)?;
        Ok(())
    }
}

/// The top-level names an item writes under the output directory.
fn tops(item: &Item) -> Vec<String> {
    let mut t: Vec<String> = vec![];
    for c in &item.contents {
        let top = c.path.split('/').next().unwrap_or_default().to_string();
        if !t.contains(&top) {
            t.push(top);
        }
    }
    t
}

struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

struct Counting<'a, R> {
    inner: R,
    progress: &'a mut dyn FnMut(ReadEvent),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(ReadEvent::Bytes { bytes: n as u64 });
        Ok(n)
    }
}

#[derive(Default)]
struct HashSink {
    hash: Sha256,
    count: u64,
}

impl HashSink {
    fn finish(self) -> (Digest, u64) {
        (Digest::from_bytes(self.hash.finalize().into()), self.count)
    }
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash.update(buf);
        self.count += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes what passes and fails at end of stream when the size or digest
/// differs from what was expected ("verify while reading").
struct Checked<R> {
    inner: R,
    hash: Sha256,
    count: u64,
    size: u64,
    digest: Digest,
    what: String,
    done: bool,
}

impl<R: Read> Checked<R> {
    fn new(inner: R, size: u64, digest: Digest, what: String) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            count: 0,
            size,
            digest,
            what,
            done: false,
        }
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Other => {
                return Err(io::Error::other(format!(
                    "{} cannot be read: {e}",
                    self.what
                )))
            }
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} cannot be read: {e}", self.what),
                ))
            }
        };
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        if self.count > self.size {
            return Err(io::Error::other(format!(
                "{} are longer than the manifest's {} bytes",
                self.what, self.size
            )));
        }
        if n == 0 {
            self.done = true;
            let got = Digest::from_bytes(std::mem::take(&mut self.hash).finalize().into());
            if self.count != self.size {
                return Err(io::Error::other(format!(
                    "{} have {} bytes, the manifest says {}",
                    self.what, self.count, self.size
                )));
            }
            if got != self.digest {
                return Err(io::Error::other(format!(
                    "{} hash to {got}, the manifest says {}",
                    self.what, self.digest
                )));
            }
        }
        Ok(n)
    }
}

/// A blob's content as a verifying stream (see [`Bundle::open_blob`]).
pub struct BlobReader(Box<dyn Read + Send>);

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// Finds the layout of the bundle at `path`.
pub fn resolve(path: &Path) -> Result<Layout> {
    // A part given by name (`NAME.part001`) means the split bundle it belongs to.
    let part_of = path.to_str().and_then(|s| {
        let (base, n) = s.rsplit_once(".part")?;
        (n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| PathBuf::from(format!("{base}.parts")))
    });
    let index_path = if path.extension().is_some_and(|e| e == "parts") {
        Some(path.to_path_buf())
    } else if let Some(index) = part_of.filter(|p| p.is_file()) {
        Some(index)
    } else if path.is_file() {
        None
    } else {
        let candidate = PathBuf::from(format!("{}.parts", path.display()));
        if candidate.is_file() {
            Some(candidate)
        } else {
            return Err(BundleError::Io {
                what: format!("opening bundle {}", path.display()),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no such file, and no parts index {}", candidate.display()),
                ),
            });
        }
    };
    let Some(index_path) = index_path else {
        return Ok(Layout::Single(path.to_path_buf()));
    };
    // Read once, with a cap: these same bytes are parsed here and signature-checked later.
    let what = || format!("reading parts index {}", index_path.display());
    let mut bytes = vec![];
    fs::File::open(&index_path)
        .and_then(|f| f.take(MAX_MANIFEST + 1).read_to_end(&mut bytes))
        .map_err(BundleError::io(what()))?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(BundleError::damaged(
            &index_path,
            format!("parts index is larger than {MAX_MANIFEST} bytes: not a ferry parts index"),
        ));
    }
    let index: PartsIndex = serde_json::from_slice(&bytes)
        .map_err(|e| BundleError::damaged(&index_path, format!("parts index is malformed: {e}")))?;
    if index.format != PARTS_FORMAT {
        return Err(BundleError::damaged(
            &index_path,
            format!(
                "parts index format is {:?}, this ferry reads {PARTS_FORMAT}",
                index.format
            ),
        ));
    }
    Ok(Layout::Split {
        index_path,
        index,
        raw: bytes,
    })
}

fn check_parts(
    index_path: &Path,
    index: &PartsIndex,
    raw: &[u8],
    key: Option<&PublicKey>,
) -> Result<Vec<Part>> {
    let dir = index_path.parent().unwrap_or(Path::new("."));
    if let Some(k) = key {
        let sig_path = PathBuf::from(format!("{}.sig", index_path.display()));
        let sig = fs::read(&sig_path).map_err(|_| BundleError::Signature {
            bundle: index_path.to_path_buf(),
            msg: format!(
                "parts index is not signed ({} is missing)",
                sig_path.display()
            ),
        })?;
        k.verify(raw, &sig, index_path, "the parts index")?;
    }
    let mut parts = vec![];
    let mut total = 0u64;
    for (n, p) in index.parts.iter().enumerate() {
        if p.file.contains('/') || p.file.starts_with('.') {
            return Err(BundleError::damaged(
                index_path,
                format!("part name {:?} is not a plain file name", p.file),
            ));
        }
        let path = dir.join(&p.file);
        let size = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(_) => {
                return Err(BundleError::damaged(
                    index_path,
                    format!(
                        "part {} of {} ({}) is missing",
                        n + 1,
                        index.parts.len(),
                        path.display()
                    ),
                ))
            }
        };
        if size != p.size {
            return Err(BundleError::damaged(
                index_path,
                format!(
                    "part {} ({}) has {size} bytes, the parts index says {}: truncated, or not this bundle's part",
                    n + 1,
                    path.display(),
                    p.size
                ),
            ));
        }
        total += size;
        parts.push(Part {
            path,
            size,
            sha256: Some(p.sha256),
        });
    }
    if total != index.total_size {
        return Err(BundleError::damaged(
            index_path,
            format!(
                "parts add up to {total} bytes, the index says {}",
                index.total_size
            ),
        ));
    }
    Ok(parts)
}

/// One tar entry.
struct Entry {
    name: String,
    offset: u64,
    size: u64,
    mtime: u64,
}

/// Walks the headers, seeking past contents.
fn scan(r: &mut PartedReader, shown: &Path) -> Result<Vec<Entry>> {
    let total = r.total();
    let damaged = |msg: String| BundleError::damaged(shown, msg);
    let mut entries: Vec<Entry> = vec![];
    let mut names = BTreeSet::new();
    let mut pos = 0u64;
    // The padding of the previous entry is read with the next header (one read): every byte
    // that is neither a blob, the manifest nor its signature is checked here, so everything
    // that reads a bundle (extract included) checks what verify checks of its structure.
    let mut pad_from = 0u64;
    let mut buf = vec![0u8; 2 * BLOCK as usize];
    loop {
        if pos + BLOCK > total {
            return Err(damaged(format!(
                "is truncated: it ends at byte {total}, inside the tar header expected at {pos} (copy it again)"
            )));
        }
        let pad = (pos - pad_from) as usize;
        r.seek(SeekFrom::Start(pad_from))
            .and_then(|_| r.read_exact(&mut buf[..pad + BLOCK as usize]))
            .map_err(|e| damaged(format!("reading header at offset {pos}: {e}")))?;
        if buf[..pad].iter().any(|&b| b != 0) {
            let after = entries.last().map(|e| e.name.as_str()).unwrap_or_default();
            return Err(damaged(format!(
                "padding after entry {after:?} is not zero{}",
                r.locate(pad_from)
            )));
        }
        let mut h = [0u8; 512];
        h.copy_from_slice(&buf[pad..pad + BLOCK as usize]);
        if h.iter().all(|&b| b == 0) {
            if pos + 2 * BLOCK > total {
                return Err(damaged(format!(
                    "is truncated: it ends at byte {total}, inside the end-of-archive blocks"
                )));
            }
            if pos + 2 * BLOCK < total {
                return Err(damaged(format!(
                    "has {} bytes of trailing data after the end of the archive",
                    total - pos - 2 * BLOCK
                )));
            }
            r.read_exact(&mut h)
                .map_err(|e| damaged(format!("reading the end of the archive: {e}")))?;
            if h.iter().any(|&b| b != 0) {
                return Err(damaged(format!(
                    "the end of the archive at offset {} is damaged",
                    pos + BLOCK
                )));
            }
            break;
        }
        let parsed = tarfmt::parse(&h)
            .map_err(|m| damaged(format!("at offset {pos}{}: {m}", r.locate(pos))))?;
        check_entry_name(&parsed.name).map_err(|m| damaged(format!("at offset {pos}: {m}")))?;
        if !names.insert(parsed.name.clone()) {
            return Err(damaged(format!(
                "duplicate entry {:?} at offset {pos}",
                parsed.name
            )));
        }
        let offset = pos + BLOCK;
        // The header is canonical but the size in it is not trusted yet (the signature is
        // checked later): a hostile base-256 size must not overflow.
        let Some(end) = offset
            .checked_add(parsed.size)
            .and_then(|e| e.checked_add(tarfmt::padding(parsed.size)))
        else {
            return Err(damaged(format!(
                "entry {:?} at offset {pos} claims an impossible size of {} bytes",
                parsed.name, parsed.size
            )));
        };
        if end > total {
            return Err(damaged(format!(
                "is truncated: entry {:?} needs {} bytes from offset {offset}, but the bundle ends at byte {total} (copy it again)",
                parsed.name, parsed.size
            )));
        }
        entries.push(Entry {
            name: parsed.name,
            offset,
            size: parsed.size,
            mtime: parsed.mtime,
        });
        pad_from = offset + parsed.size;
        pos = end;
    }
    // Order: blobs, then manifest.json, then manifest.sig.
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let first_meta = names
        .iter()
        .position(|n| !n.starts_with("blobs/"))
        .unwrap_or(names.len());
    if names[first_meta..].iter().any(|n| n.starts_with("blobs/"))
        || (names.len() > first_meta && names[first_meta] != "manifest.json")
    {
        return Err(damaged(
            "entries are out of order: blobs, then manifest.json, then manifest.sig".into(),
        ));
    }
    Ok(entries)
}

/// Moves an extracted item from staging into place, atomically refusing to replace a path that
/// appeared since the up-front check (`RENAME_NOREPLACE`). On a filesystem without that flag,
/// falls back to check-then-rename.
fn move_no_replace(from: &Path, to: &Path) -> Result<()> {
    // rustix issues the syscall itself: glibc only wraps renameat2 from 2.28, and the agent
    // binary must run on glibc 2.17 hosts.
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    let exists = || BundleError::Unsafe {
        msg: format!(
            "{} appeared while extracting; will not overwrite it (extract into an empty directory)",
            to.display()
        ),
    };
    let io_err = |e: io::Error| BundleError::Io {
        what: format!("moving {} to {}", from.display(), to.display()),
        source: e,
    };
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(exists()),
        Err(Errno::INVAL | Errno::NOSYS) => {
            if to.symlink_metadata().is_ok() {
                return Err(exists());
            }
            fs::rename(from, to).map_err(io_err)
        }
        Err(e) => Err(io_err(io::Error::from(e))),
    }
}

fn check_entry_name(name: &str) -> std::result::Result<(), String> {
    if name == "manifest.json" || name == "manifest.sig" {
        return Ok(());
    }
    let ok = name.strip_prefix("blobs/sha256/").is_some_and(|rest| {
        let hex = rest.strip_suffix(".zst").unwrap_or(rest);
        Digest::from_hex(hex).is_ok()
    });
    if ok {
        return Ok(());
    }
    check_relative_path(name)
        .map_err(|m| format!("tar entry {m}; a ferry bundle never holds such a path"))?;
    Err(format!(
        "unexpected tar entry {name:?}: a ferry bundle holds only blobs/sha256/<hex>[.zst], manifest.json and manifest.sig"
    ))
}

fn read_small(r: &mut PartedReader, e: &Entry, shown: &Path) -> Result<Vec<u8>> {
    if e.size > MAX_MANIFEST {
        return Err(BundleError::damaged(
            shown,
            format!(
                "{} is {} bytes, more than a manifest can be",
                e.name, e.size
            ),
        ));
    }
    let mut out = vec![0u8; e.size as usize];
    r.seek(SeekFrom::Start(e.offset))
        .and_then(|_| r.read_exact(&mut out))
        .map_err(|err| BundleError::damaged(shown, format!("reading {}: {err}", e.name)))?;
    Ok(out)
}

fn check_consistency(
    m: &Manifest,
    entries: &[Entry],
    r: &PartedReader,
    shown: &Path,
) -> Result<HashMap<Digest, Located>> {
    let damaged = |msg: String| BundleError::damaged(shown, msg);
    let by_name: BTreeMap<&str, &Entry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut blobs = HashMap::new();
    for (index, b) in m.blobs.iter().enumerate() {
        let name = b.entry_name();
        let Some(e) = by_name.get(name.as_str()) else {
            let users: Vec<&str> = m
                .items
                .iter()
                .filter(|i| i.contents.iter().any(|c| c.digest == b.digest))
                .map(|i| i.name.as_str())
                .collect();
            return Err(damaged(format!(
                "the manifest names blob {} (item {}) but the bundle does not contain it",
                b.digest,
                users.join(", ")
            )));
        };
        if e.size != b.stored_size {
            return Err(damaged(format!(
                "blob {}: the manifest declares {} stored bytes but the tar entry has {}{}",
                b.digest,
                b.stored_size,
                e.size,
                r.locate(e.offset)
            )));
        }
        if b.compression == Compression::None
            && (b.size != b.stored_size || b.digest != b.stored_sha256)
        {
            return Err(damaged(format!(
                "blob {}: stored as-is but its declared size or digest differs from the stored one",
                b.digest
            )));
        }
        if blobs
            .insert(
                b.digest,
                Located {
                    offset: e.offset,
                    index,
                },
            )
            .is_some()
        {
            return Err(damaged(format!(
                "the manifest lists blob {} twice",
                b.digest
            )));
        }
    }
    for e in entries {
        if e.name.starts_with("blobs/") && !m.blobs.iter().any(|b| b.entry_name() == e.name) {
            return Err(damaged(format!(
                "tar entry {:?} is not listed in the manifest",
                e.name
            )));
        }
    }
    let mut item_names = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for item in &m.items {
        if !item_names.insert(item.name.as_str()) {
            return Err(damaged(format!(
                "the manifest lists item {:?} twice",
                item.name
            )));
        }
        for c in &item.contents {
            check_relative_path(&c.path)
                .map_err(|msg| damaged(format!("item {}: content path {msg}", item.name)))?;
            if !paths.insert(c.path.as_str()) {
                return Err(damaged(format!(
                    "item {}: content path {:?} appears twice in the manifest",
                    item.name, c.path
                )));
            }
            let Some(l) = blobs.get(&c.digest) else {
                return Err(damaged(format!(
                    "the manifest names blob {} (item {}) but the bundle does not contain it",
                    c.digest, item.name
                )));
            };
            if m.blobs[l.index].size != c.size {
                return Err(damaged(format!(
                    "item {}: {} declares {} bytes, blob {} has {}",
                    item.name, c.path, c.size, c.digest, m.blobs[l.index].size
                )));
            }
        }
    }
    // A content below another would be written inside what the other wrote (a tree's link,
    // say): each content owns its path and everything under it.
    for p in &paths {
        let mut prefix = String::new();
        for part in p.split('/') {
            if !prefix.is_empty() {
                if paths.contains(prefix.as_str()) {
                    let owner = |path: &str| {
                        m.items
                            .iter()
                            .find(|i| i.contents.iter().any(|c| c.path == path))
                            .map(|i| i.name.as_str())
                            .unwrap_or_default()
                    };
                    return Err(damaged(format!(
                        "item {}: content path {p:?} is inside content path {prefix:?} of item {}; each content owns its path",
                        owner(p),
                        owner(&prefix)
                    )));
                }
                prefix.push('/');
            }
            prefix.push_str(part);
        }
    }
    Ok(blobs)
}
