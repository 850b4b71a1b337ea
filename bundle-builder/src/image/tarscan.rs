//! One streaming pass over an image archive: every entry's name, kind, data offset and size, and
//! for regular files the sha256 of the data. Nothing but small metadata is kept in memory; blob
//! bytes are read again later, in place, by byte range.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::verify::hash_reader;
use super::{ImageError, ScanProgress};
use crate::{BlobSource, Digest};

/// How often (in bytes scanned) progress is reported.
const PROGRESS_STEP: u64 = 8 * 1024 * 1024;
/// The largest metadata file (manifest, config, index) read into memory.
const METADATA_LIMIT: u64 = 16 * 1024 * 1024;
/// How many links are followed before a chain counts as a loop.
const MAX_LINK_HOPS: usize = 16;

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    File {
        offset: u64,
        size: u64,
        digest: Digest,
    },
    Symlink(String),
    Hardlink(String),
    Other,
}

/// A regular file inside the archive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileEntry {
    pub offset: u64,
    pub size: u64,
    pub digest: Digest,
}

/// The scanned table of contents of one archive.
pub(crate) struct Scan {
    pub path: PathBuf,
    entries: BTreeMap<String, Kind>,
}

impl Scan {
    /// Reads the whole archive once, hashing each regular file; `progress` gets the bytes
    /// scanned so far and the archive's size, every few megabytes.
    pub fn of(path: &Path, progress: &mut dyn FnMut(ScanProgress)) -> Result<Scan, ImageError> {
        let io_err = |source| ImageError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let mut magic = [0u8; 6];
        let got = read_up_to(&mut file, &mut magic).map_err(io_err)?;
        if let Some(kind) = compression(&magic[..got]) {
            return Err(ImageError::Unsupported {
                path: path.to_path_buf(),
                what: format!("the archive is {kind}-compressed; decompress it first"),
            });
        }
        if got == 0 {
            return Err(ImageError::NotATar {
                path: path.to_path_buf(),
                detail: "the file is empty".into(),
            });
        }
        let file = File::open(path).map_err(io_err)?;
        let total = file.metadata().map_err(io_err)?.len();
        let mut next_report = 0u64;
        let mut report = |scanned: u64| {
            if scanned >= next_report {
                progress(ScanProgress { scanned, total });
                next_report = scanned + PROGRESS_STEP;
            }
        };
        let mut archive = tar::Archive::new(file);
        let mut entries = BTreeMap::new();
        let mut last: Option<String> = None;
        let corrupt = |last: &Option<String>, detail: String| match last {
            None => ImageError::NotATar {
                path: path.to_path_buf(),
                detail: "no valid tar header at the start".into(),
            },
            Some(name) => ImageError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("after entry {name}: {}", one_line(&detail)),
            },
        };
        // Where the last entry's data (padded to a block) ends: the end-of-archive marker
        // must follow, or the archive was cut at an entry boundary.
        let mut end = 0u64;
        let iter = archive
            .entries_with_seek()
            .map_err(|e| corrupt(&last, e.to_string()))?;
        for entry in iter {
            let mut entry = entry.map_err(|e| corrupt(&last, e.to_string()))?;
            let raw_name = entry
                .path()
                .map_err(|e| corrupt(&last, e.to_string()))?
                .to_string_lossy()
                .into_owned();
            let Some(name) = normalize(&raw_name) else {
                continue;
            };
            // The size is the archive's claim: a hostile one must not overflow, nor point
            // past the end of the file.
            let entry_end = entry
                .size()
                .div_ceil(512)
                .checked_mul(512)
                .and_then(|padded| entry.raw_file_position().checked_add(padded))
                .filter(|e| *e <= total)
                .ok_or_else(|| ImageError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!(
                        "entry {name} claims {} bytes, more than the archive holds ({total} bytes)",
                        entry.size()
                    ),
                })?;
            end = end.max(entry_end);
            let header = entry.header();
            let kind = match header.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let offset = entry.raw_file_position();
                    let size = entry.size();
                    let (digest, read) = hash_reader(&mut entry, &mut |n| report(offset + n))
                        .map_err(|e| ImageError::Corrupt {
                            path: path.to_path_buf(),
                            detail: format!("reading entry {name}: {}", one_line(&e.to_string())),
                        })?;
                    if read != size {
                        return Err(ImageError::Corrupt {
                            path: path.to_path_buf(),
                            detail: format!("entry {name} is cut short: {read} of {size} bytes"),
                        });
                    }
                    Kind::File {
                        offset,
                        size,
                        digest,
                    }
                }
                t @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                    let target = entry
                        .link_name()
                        .map_err(|e| corrupt(&Some(name.clone()), e.to_string()))?
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if t == tar::EntryType::Symlink {
                        Kind::Symlink(target)
                    } else {
                        Kind::Hardlink(target)
                    }
                }
                _ => Kind::Other,
            };
            last = Some(name.clone());
            entries.insert(name, kind);
        }
        if !entries.is_empty() && !ends_with_marker(path, end).map_err(io_err)? {
            return Err(ImageError::Corrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "it ends after entry {} without the end-of-archive marker",
                    last.unwrap_or_default()
                ),
            });
        }
        progress(ScanProgress {
            scanned: total,
            total,
        });
        if entries.is_empty() {
            return Err(ImageError::NotATar {
                path: path.to_path_buf(),
                detail: "no entries".into(),
            });
        }
        Ok(Scan {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// True when the archive has an entry of this name (of any kind).
    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The regular file an entry name leads to, following symlinks (relative to the entry's
    /// folder) and hardlinks (archive paths) inside the archive. `named_by` goes into the error.
    pub fn file(&self, name: &str, named_by: &str) -> Result<FileEntry, ImageError> {
        let missing = |entry: &str| ImageError::MissingEntry {
            path: self.path.clone(),
            entry: entry.to_string(),
            named_by: named_by.to_string(),
        };
        let mut current = normalize(name).ok_or_else(|| missing(name))?;
        for _ in 0..MAX_LINK_HOPS {
            match self.entries.get(&current) {
                Some(Kind::File {
                    offset,
                    size,
                    digest,
                }) => {
                    return Ok(FileEntry {
                        offset: *offset,
                        size: *size,
                        digest: *digest,
                    })
                }
                Some(Kind::Symlink(target)) => {
                    let dir = Path::new(&current)
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default();
                    let joined = dir.join(target).to_string_lossy().into_owned();
                    current = normalize(&joined).ok_or_else(|| missing(&joined))?;
                }
                Some(Kind::Hardlink(target)) => {
                    current = normalize(target).ok_or_else(|| missing(target))?;
                }
                Some(Kind::Other) | None => return Err(missing(&current)),
            }
        }
        Err(ImageError::Corrupt {
            path: self.path.clone(),
            detail: format!("entry {name} is a link loop"),
        })
    }

    /// A blob source reading the entry's bytes in place.
    pub fn source(&self, entry: &FileEntry) -> BlobSource {
        BlobSource::Range {
            path: self.path.clone(),
            offset: entry.offset,
            len: entry.size,
        }
    }

    /// Reads a small metadata entry (JSON) into memory.
    pub fn read_metadata(&self, name: &str, named_by: &str) -> Result<Vec<u8>, ImageError> {
        let entry = self.file(name, named_by)?;
        if entry.size > METADATA_LIMIT {
            return Err(ImageError::Unsupported {
                path: self.path.clone(),
                what: format!(
                    "metadata entry {name} has {} bytes, more than the {METADATA_LIMIT} allowed",
                    entry.size
                ),
            });
        }
        let mut bytes = Vec::with_capacity(entry.size as usize);
        self.source(&entry)
            .open()
            .and_then(|r| r.take(entry.size).read_to_end(&mut bytes))
            .map_err(|source| ImageError::Io {
                path: self.path.clone(),
                source,
            })?;
        if bytes.len() as u64 != entry.size || Digest::of(&bytes) != entry.digest {
            return Err(ImageError::Corrupt {
                path: self.path.clone(),
                detail: format!("entry {name} changed while it was read"),
            });
        }
        Ok(bytes)
    }
}

/// Parses JSON metadata, naming the entry on failure.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    scan: &Scan,
    entry: &str,
    bytes: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::BadMetadata {
        path: scan.path.clone(),
        entry: entry.to_string(),
        detail: e.to_string(),
    })
}

/// Generated bytes as a blob source.
pub(crate) fn bytes_source(bytes: Vec<u8>) -> BlobSource {
    BlobSource::Bytes(Arc::new(bytes))
}

/// `./a/../b/c` → `b/c`; `None` for the root itself or a path leaving the archive.
fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

/// True when a zero block (the end-of-archive marker) starts at `end`.
fn ends_with_marker(path: &Path, end: u64) -> io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(end))?;
    let mut block = [0u8; 512];
    let got = read_up_to(&mut f, &mut block)?;
    Ok(got == 512 && block.iter().all(|b| *b == 0))
}

/// A library's error text made safe for one line: control characters escaped, length capped.
fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

fn compression(magic: &[u8]) -> Option<&'static str> {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if magic.starts_with(b"BZh") {
        Some("bzip2")
    } else {
        None
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes_entry_names() {
        assert_eq!(normalize("./index.json").as_deref(), Some("index.json"));
        assert_eq!(
            normalize("a/../b/layer.tar").as_deref(),
            Some("b/layer.tar")
        );
        assert_eq!(normalize("./"), None);
        assert_eq!(normalize("../x"), None);
    }
}
