//! A directory tree as one blob: ferry packs it itself (tar, entries in name order), so the
//! same tree always gives the same bytes. That is what lets the relay carry an OS package
//! repository like any other file: its sha256 is known before it is sent, every host checks
//! it on arrival, and a host's step unpacks the relayed copy instead of receiving the tree.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ferry_inventory::transfer::UploadSource;
use sha2::Digest;

/// Packs `dir` as `tar -C dir -cf - .` would, but in a fixed order: `.` first, then each
/// directory's entries sorted by name, a directory's contents right after it. Symlinks are
/// kept as links; modes, owners and times are kept (the host's `tar -x --no-same-owner` drops
/// the owners); long names use GNU's extension.
pub fn pack_tree(dir: &Path, out: impl Write) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    tar.append_path_with_name(dir, ".")?;
    append_sorted(&mut tar, dir, Path::new(""))?;
    tar.into_inner()?.flush()
}

fn append_sorted<W: Write>(
    tar: &mut tar::Builder<W>,
    src: &Path,
    name: &Path,
) -> std::io::Result<()> {
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(src)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (path, inner) = (e.path(), name.join(e.file_name()));
        tar.append_path_with_name(&path, &inner)?;
        if e.file_type()?.is_dir() {
            append_sorted(tar, &path, &inner)?;
        }
    }
    Ok(())
}

/// A tree with its packed form's sha256 and size, measured once ([`PackedTree::measure`]);
/// an [`UploadSource`] that packs it again on each read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedTree {
    /// The tree on the jump host.
    pub dir: PathBuf,
    /// The sha256 of its packed form, lowercase hex.
    pub sha256: String,
    /// Bytes of its packed form.
    pub size: u64,
}

/// Counts and hashes what is written to it.
struct Measure {
    hash: sha2::Sha256,
    size: u64,
}

impl Write for Measure {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hash.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl PackedTree {
    /// Packs `dir` once into a hash (nothing is written anywhere).
    pub fn measure(dir: &Path) -> std::io::Result<Self> {
        let mut m = Measure {
            hash: sha2::Sha256::new(),
            size: 0,
        };
        pack_tree(dir, std::io::BufWriter::with_capacity(1 << 20, &mut m))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            sha256: m
                .hash
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            size: m.size,
        })
    }
}

impl UploadSource for PackedTree {
    fn describe(&self) -> PathBuf {
        self.dir.join("(packed)")
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn sha256(&self) -> &str {
        &self.sha256
    }

    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        // Packed by a thread of its own into a pipe: memory stays constant. A failure (or a
        // tree changed since it was measured) closes the pipe early or gives other bytes, and
        // the receiver's digest check refuses them.
        let (mut reader, writer) = std::io::pipe()?;
        let dir = self.dir.clone();
        std::thread::spawn(move || {
            let _ = pack_tree(&dir, std::io::BufWriter::with_capacity(1 << 20, writer));
        });
        std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())?;
        Ok(Box::new(reader))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("pool/main/b")).unwrap();
        std::fs::create_dir_all(d.path().join("pool/main/a")).unwrap();
        std::fs::write(d.path().join("Packages"), "Package: a\n").unwrap();
        std::fs::write(d.path().join("pool/main/a/a_1.deb"), vec![1u8; 70_000]).unwrap();
        std::fs::write(d.path().join("pool/main/b/b_1.deb"), vec![2u8; 3]).unwrap();
        std::os::unix::fs::symlink("Packages", d.path().join("InRelease")).unwrap();
        d
    }

    #[test]
    fn the_same_tree_packs_to_the_same_bytes_in_name_order() {
        let d = tree();
        let m = PackedTree::measure(d.path()).unwrap();
        let mut bytes = Vec::new();
        m.open_at(0).unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, m.size);
        let sha: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, m.sha256);
        assert_eq!(PackedTree::measure(d.path()).unwrap(), m);
        let names: Vec<String> = tar::Archive::new(&bytes[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                ".",
                "InRelease",
                "Packages",
                "pool",
                "pool/main",
                "pool/main/a",
                "pool/main/a/a_1.deb",
                "pool/main/b",
                "pool/main/b/b_1.deb",
            ]
        );
        // A resumed read gives the rest.
        let mut tail = Vec::new();
        m.open_at(1000).unwrap().read_to_end(&mut tail).unwrap();
        assert_eq!(tail, bytes[1000..]);
    }
}
