//! Directory trees as blobs: a deterministic tar of a directory (sorted, fixed times and
//! owners), made on a thread and read as a stream, and the guarded unpacking of such a tar that
//! never writes outside its target.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};

use crate::error::{BundleError, Result};
use crate::manifest::check_relative_path;

/// One entry of a directory tree, found by [`scan`].
#[derive(Debug, Clone)]
pub struct TreeEntry {
    /// Path relative to the tree root, `/`-separated.
    pub rel: String,
    /// What it is.
    pub kind: TreeKind,
}

/// Kinds of tree entry.
#[derive(Debug, Clone)]
pub enum TreeKind {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// Its size.
        size: u64,
        /// Whether any execute bit is set.
        executable: bool,
    },
    /// A symlink inside the tree.
    Symlink(String),
}

/// Walks `root`, sorted, and refuses what a bundle cannot carry safely: symlinks that are
/// absolute or lead outside the tree, devices, sockets and fifos.
pub fn scan(root: &Path) -> Result<Vec<TreeEntry>> {
    let mut out = vec![];
    walk(root, "", &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<TreeEntry>) -> Result<()> {
    let mut names = vec![];
    for e in fs::read_dir(dir).map_err(BundleError::io(format!("reading {}", dir.display())))? {
        let e = e.map_err(BundleError::io(format!("reading {}", dir.display())))?;
        let name = e
            .file_name()
            .into_string()
            .map_err(|n| BundleError::Unsafe {
                msg: format!("{}: file name {n:?} is not UTF-8", dir.display()),
            })?;
        names.push(name);
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let meta = fs::symlink_metadata(&path)
            .map_err(BundleError::io(format!("reading {}", path.display())))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path)
                .map_err(BundleError::io(format!("reading link {}", path.display())))?;
            let target =
                target
                    .to_str()
                    .map(str::to_string)
                    .ok_or_else(|| BundleError::Unsafe {
                        msg: format!("{}: link target is not UTF-8", path.display()),
                    })?;
            link_stays_inside(&rel, &target).map_err(|msg| BundleError::Unsafe {
                msg: format!("{} -> {target}: {msg}; a bundle carries only links that stay inside their directory", path.display()),
            })?;
            out.push(TreeEntry {
                rel,
                kind: TreeKind::Symlink(target),
            });
        } else if ft.is_dir() {
            out.push(TreeEntry {
                rel: rel.clone(),
                kind: TreeKind::Dir,
            });
            walk(&path, &rel, out)?;
        } else if ft.is_file() {
            out.push(TreeEntry {
                rel,
                kind: TreeKind::File {
                    size: meta.len(),
                    executable: meta.permissions().mode() & 0o111 != 0,
                },
            });
        } else {
            let what = if ft.is_socket() {
                "a socket"
            } else if ft.is_fifo() {
                "a fifo"
            } else {
                "a device"
            };
            return Err(BundleError::Unsafe {
                msg: format!(
                    "{} is {what}; a bundle carries only files, directories and symlinks",
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// Checks that a symlink at `rel` pointing to `target` stays inside the tree (lexically).
pub fn link_stays_inside(rel: &str, target: &str) -> std::result::Result<(), String> {
    if target.starts_with('/') {
        return Err("symlink is absolute".into());
    }
    if target.is_empty() {
        return Err("symlink target is empty".into());
    }
    // Depth of the link's directory, then walk the target.
    let mut depth: i64 = rel.split('/').count() as i64 - 1;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err("symlink points outside the target".into());
                }
            }
            _ => depth += 1,
        }
    }
    Ok(())
}

/// Bytes a tree's tar will roughly have (for free-space checks and progress).
pub fn estimated_size(entries: &[TreeEntry]) -> u64 {
    entries
        .iter()
        .map(|e| match e.kind {
            TreeKind::File { size, .. } => 1024 + size.div_ceil(512) * 512,
            _ => 1024,
        })
        .sum::<u64>()
        + 1024
}

/// A reader fed by a thread that writes the deterministic tar of a tree (bounded: a few
/// chunks in flight).
pub struct TreeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

/// Starts writing the tar of `root` (entries as from [`scan`]) and returns it as a stream.
pub fn tar_stream(root: PathBuf, entries: Vec<TreeEntry>, mtime: u64) -> TreeReader {
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(4);
    std::thread::spawn(move || {
        let sink = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_tar(&root, &entries, mtime, sink);
        if let Err(e) = result {
            let _ = tx.send(Err(e));
        }
    });
    TreeReader {
        rx,
        chunk: vec![],
        at: 0,
    }
}

const CHUNK: usize = 1 << 20;

struct ChunkWriter {
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.tx
                .send(Ok(chunk))
                .map_err(|_| io::Error::other("tree reader went away"))?;
        }
        Ok(())
    }
}

/// Reads exactly `left` bytes or fails: a file that shrinks while the bundle is built is an
/// error, not a silently corrupt tar.
struct Exact<R> {
    inner: R,
    left: u64,
    path: PathBuf,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "{} shrank while the bundle was built",
                self.path.display()
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn write_tar(root: &Path, entries: &[TreeEntry], mtime: u64, sink: ChunkWriter) -> io::Result<()> {
    let mut b = tar::Builder::new(sink);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        match &e.kind {
            TreeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, format!("{}/", e.rel), io::empty())?;
            }
            TreeKind::File { size, executable } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if *executable { 0o755 } else { 0o644 });
                h.set_size(*size);
                let path = root.join(&e.rel);
                let f = File::open(&path).map_err(|err| {
                    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
                })?;
                let exact = Exact {
                    inner: f,
                    left: *size,
                    path,
                };
                b.append_data(&mut h, &e.rel, exact)?;
            }
            TreeKind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, &e.rel, target)?;
            }
        }
    }
    let mut sink = b.into_inner()?;
    sink.flush()
}

impl Read for TreeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Unpacks a tree tar from `reader` into `dest` (an empty directory). Refuses entries with
/// `..` or absolute paths, links that lead outside `dest`, devices, and any entry that would be
/// written through a symlink. `name` names the item in errors.
pub fn unpack(reader: impl Read, dest: &Path, name: &str) -> Result<()> {
    let unsafe_entry = |msg: String| BundleError::Unsafe {
        msg: format!("item {name}: {msg}; nothing was written outside the target"),
    };
    let mut ar = tar::Archive::new(reader);
    let entries = ar
        .entries()
        .map_err(BundleError::io(format!("reading the tree of item {name}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(BundleError::io(format!("reading the tree of item {name}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = raw.trim_end_matches('/').to_string();
        check_relative_path(&rel).map_err(|m| unsafe_entry(format!("tar entry {m}")))?;
        let target = safe_target(dest, &rel).map_err(unsafe_entry)?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                if !target.is_dir() {
                    fs::create_dir(&target)
                        .map_err(BundleError::io(format!("creating {}", target.display())))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode | 0o600)
                    .open(&target)
                    .map_err(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            unsafe_entry(format!("tar entry {rel:?} appears twice"))
                        } else {
                            BundleError::Io {
                                what: format!("creating {}", target.display()),
                                source: e,
                            }
                        }
                    })?;
                io::copy(&mut entry, &mut f)
                    .map_err(BundleError::io(format!("writing {}", target.display())))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(BundleError::io(format!("setting mode of {}", target.display())))?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                link_stays_inside(&rel, &link)
                    .map_err(|m| unsafe_entry(format!("tar entry {rel:?} -> {link:?}: {m}")))?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(BundleError::io(format!("creating link {}", target.display())))?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                check_relative_path(&link).map_err(|m| {
                    unsafe_entry(format!(
                        "tar entry {rel:?} is a hardlink to {m}: hardlink points outside the target"
                    ))
                })?;
                let source = safe_target(dest, &link).map_err(unsafe_entry)?;
                let meta = fs::symlink_metadata(&source).map_err(|_| {
                    unsafe_entry(format!(
                        "tar entry {rel:?} is a hardlink to {link:?}, which is not in the tree"
                    ))
                })?;
                if !meta.is_file() {
                    return Err(unsafe_entry(format!(
                        "tar entry {rel:?} is a hardlink to {link:?}, which is not a regular file"
                    )));
                }
                fs::hard_link(&source, &target)
                    .map_err(BundleError::io(format!("creating link {}", target.display())))?;
            }
            other => {
                return Err(unsafe_entry(format!(
                    "tar entry {rel:?} is of type {other:?}; only files, directories and links are allowed"
                )))
            }
        }
    }
    Ok(())
}

/// `dest/rel`, after checking no existing ancestor inside `dest` is a symlink (so nothing is
/// ever written through one).
fn safe_target(dest: &Path, rel: &str) -> std::result::Result<PathBuf, String> {
    let mut at = dest.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if Path::new(part)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(format!("tar entry {rel:?} is not a clean relative path"));
        }
        at.push(part);
        if i + 1 < parts.len() {
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(format!(
                        "tar entry {rel:?} would be written through the symlink {}",
                        parts[..=i].join("/")
                    ))
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(format!(
                        "tar entry {rel:?} needs {} to be a directory",
                        parts[..=i].join("/")
                    ))
                }
                Err(_) => {
                    fs::create_dir(&at).map_err(|e| format!("creating {}: {e}", at.display()))?
                }
            }
        }
    }
    Ok(at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn judges_links_by_where_they_lead() {
        assert!(link_stays_inside("a/b", "../c").is_ok());
        assert!(link_stays_inside("a/b", "c/../../d").is_ok());
        assert!(link_stays_inside("a/b", "../../c").is_err());
        assert!(link_stays_inside("b", "/etc/passwd").is_err());
        assert!(link_stays_inside("b", "..").is_err());
    }

    #[test]
    fn a_tree_round_trips_with_modes_and_links() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("d/e")).unwrap();
        fs::write(src.path().join("d/e/f.txt"), b"hello").unwrap();
        fs::write(src.path().join("run.sh"), b"#!/bin/sh").unwrap();
        fs::set_permissions(src.path().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("d/e/f.txt", src.path().join("link")).unwrap();
        let entries = scan(src.path()).unwrap();
        let mut tar = vec![];
        tar_stream(src.path().to_path_buf(), entries, 0)
            .read_to_end(&mut tar)
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        unpack(tar.as_slice(), out.path(), "t").unwrap();
        assert_eq!(fs::read(out.path().join("link")).unwrap(), b"hello");
        let mode = fs::metadata(out.path().join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
