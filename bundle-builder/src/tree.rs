//! Directory trees as blobs: a deterministic tar of a directory (sorted, fixed times and
//! owners), made on a thread and read as a stream, and the guarded unpacking of such a tar that
//! never writes outside its target.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};

use crate::beneath::{Beneath, Refused};
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
/// absolute, lead outside the tree once every link on the way is followed, or loop; devices,
/// sockets and fifos.
pub fn scan(root: &Path) -> Result<Vec<TreeEntry>> {
    let mut out = vec![];
    walk(root, "", &mut out)?;
    let links = links_of(&out);
    for (rel, target) in &links {
        link_stays_inside(&links, rel).map_err(|msg| BundleError::Unsafe {
            msg: format!(
                "{} -> {target}: {msg}; a bundle carries only links that stay inside their directory",
                root.join(rel).display()
            ),
        })?;
    }
    Ok(out)
}

/// The symlinks among `entries`, by path.
fn links_of(entries: &[TreeEntry]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|e| match &e.kind {
            TreeKind::Symlink(t) => Some((e.rel.clone(), t.clone())),
            _ => None,
        })
        .collect()
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

/// Most links followed while resolving one (as Linux's own limit): more is a loop.
const MAX_HOPS: usize = 40;

/// Checks that the symlink at `rel` (one of `links`, the tree's symlinks by path) resolves
/// inside the tree the way the kernel would resolve it: every link met on the way is followed,
/// so a chain of links that each look inside (`up -> ../..`, `esc -> up/..`) is judged by where
/// it really leads. `Err` says why not.
pub fn link_stays_inside(
    links: &BTreeMap<String, String>,
    rel: &str,
) -> std::result::Result<(), String> {
    let Some(target) = links.get(rel) else {
        return Ok(());
    };
    let mut dir: Vec<String> = rel.split('/').map(str::to_string).collect();
    dir.pop();
    let mut todo: VecDeque<String> = VecDeque::new();
    let mut hops = 0;
    let mut via = rel.to_string();
    let mut next = target.clone();
    loop {
        if next.starts_with('/') {
            return Err(if via == rel {
                "symlink is absolute".into()
            } else {
                format!("symlink is absolute once the link {via} is followed")
            });
        }
        if next.is_empty() {
            return Err(format!("symlink target of {via} is empty"));
        }
        for (i, part) in next.split('/').enumerate() {
            todo.insert(i, part.to_string());
        }
        let mut followed = false;
        while let Some(part) = todo.pop_front() {
            match part.as_str() {
                "" | "." => {}
                ".." => {
                    if dir.pop().is_none() {
                        return Err(if via == rel {
                            "symlink points outside the target".into()
                        } else {
                            format!(
                                "symlink points outside the target once the link {via} is followed"
                            )
                        });
                    }
                }
                _ => {
                    dir.push(part);
                    let here = dir.join("/");
                    if let Some(t) = links.get(&here) {
                        hops += 1;
                        if hops > MAX_HOPS {
                            return Err(format!("symlink loop (through {here})"));
                        }
                        dir.pop();
                        via = here;
                        next = t.clone();
                        followed = true;
                        break;
                    }
                }
            }
        }
        if !followed {
            return Ok(());
        }
    }
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
/// `..` or absolute paths, devices, entries below a symlink, and symlinks that do not resolve
/// inside `dest` (following every link on the way, as the kernel would). Nothing is created
/// through a link: each path is walked without following one ([`Beneath`]), and symlinks are
/// made last, once every link in the tree has been checked. `name` names the item in errors.
pub fn unpack(reader: impl Read, dest: &Beneath, name: &str) -> Result<()> {
    let unsafe_entry = |msg: String| BundleError::Unsafe {
        msg: format!("item {name}: {msg}; nothing was written outside the target"),
    };
    let refused = |r: Refused| match r {
        Refused::Unsafe(m) => unsafe_entry(format!("tar entry {m}")),
        Refused::Io { what, source } => BundleError::Io { what, source },
    };
    let read_err = BundleError::io(format!("reading the tree of item {name}"));
    // Links wait until everything else is written: while they are not on disk, nothing can
    // be written through one, and an entry below one is refused by name.
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let below_link = |links: &BTreeMap<String, String>, rel: &str| -> Option<String> {
        let mut prefix = String::new();
        for part in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if links.contains_key(&prefix) {
                return Some(prefix);
            }
        }
        None
    };
    let mut ar = tar::Archive::new(reader);
    for entry in ar.entries().map_err(read_err)? {
        let mut entry =
            entry.map_err(BundleError::io(format!("reading the tree of item {name}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = raw.trim_end_matches('/').to_string();
        check_relative_path(&rel).map_err(|m| unsafe_entry(format!("tar entry {m}")))?;
        if let Some(link) = below_link(&links, &rel) {
            return Err(unsafe_entry(format!(
                "tar entry {rel:?} would be written through the symlink {link}"
            )));
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => dest.mkdir(&rel).map_err(refused)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
                let mut f = dest.create_file(&rel, mode | 0o600).map_err(refused)?;
                io::copy(&mut entry, &mut f)
                    .map_err(BundleError::io(format!("writing {rel} of item {name}")))?;
                f.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(BundleError::io(format!(
                        "setting the mode of {rel} of item {name}"
                    )))?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                if links.insert(rel.clone(), link).is_some() {
                    return Err(unsafe_entry(format!("tar entry {rel:?} appears twice")));
                }
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
                if let Some(l) = below_link(&links, &link) {
                    return Err(unsafe_entry(format!(
                        "tar entry {rel:?} is a hardlink through the symlink {l}"
                    )));
                }
                dest.hard_link(&link, &rel).map_err(refused)?;
            }
            other => {
                return Err(unsafe_entry(format!(
                    "tar entry {rel:?} is of type {other:?}; only files, directories and links are allowed"
                )))
            }
        }
    }
    for (rel, target) in &links {
        link_stays_inside(&links, rel)
            .map_err(|m| unsafe_entry(format!("tar entry {rel:?} -> {target:?}: {m}")))?;
    }
    for (rel, target) in &links {
        dest.symlink(rel, target).map_err(refused)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn judges_links_by_where_they_lead() {
        let one = |rel: &str, target: &str| {
            link_stays_inside(&BTreeMap::from([(rel.into(), target.into())]), rel)
        };
        assert!(one("a/b", "../c").is_ok());
        assert!(one("a/b", "c/../../d").is_ok());
        assert!(one("a/b", "../../c").is_err());
        assert!(one("b", "/etc/passwd").is_err());
        assert!(one("b", "..").is_err());
    }

    #[test]
    fn follows_every_link_on_the_way() {
        let links = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        // Each looks inside on its own; together they lead one level above the tree.
        let chain = links(&[("d/e/up", "../.."), ("esc", "d/e/up/..")]);
        assert!(link_stays_inside(&chain, "d/e/up").is_ok());
        let err = link_stays_inside(&chain, "esc").unwrap_err();
        assert!(err.contains("once the link d/e/up is followed"), "{err}");
        let abs = links(&[("a", "b"), ("b", "/etc")]);
        assert!(link_stays_inside(&abs, "a")
            .unwrap_err()
            .contains("absolute"));
        let loop_ = links(&[("self", "self")]);
        assert!(link_stays_inside(&loop_, "self")
            .unwrap_err()
            .contains("loop"));
        let fine = links(&[("a/l", "../b"), ("b", "c/d"), ("x", "a/l/e")]);
        assert!(link_stays_inside(&fine, "x").is_ok());
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
        unpack(tar.as_slice(), &Beneath::open(out.path()).unwrap(), "t").unwrap();
        assert_eq!(fs::read(out.path().join("link")).unwrap(), b"hello");
        let mode = fs::metadata(out.path().join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
