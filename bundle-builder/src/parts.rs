//! One logical byte stream kept in one file or cut into numbered parts. The writer fills parts
//! as it goes (never a full copy first) and can patch or cut back bytes it wrote; the reader
//! reads straight across parts as one `Read + Seek`, never joining them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{BundleError, Result};
use crate::Digest;

/// Format string of the parts index.
pub const PARTS_FORMAT: &str = "ferry-parts/1";

/// `NAME.parts`: which parts make the bundle, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartsIndex {
    /// Always [`PARTS_FORMAT`].
    pub format: String,
    /// The bundle's file name (without `.partNNN`).
    pub bundle: String,
    /// Sum of the part sizes.
    pub total_size: u64,
    /// The parts, in order.
    pub parts: Vec<PartEntry>,
}

/// One part in the parts index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartEntry {
    /// File name, beside the index (`demo.bundle.part001`).
    pub file: String,
    /// Its size.
    pub size: u64,
    /// sha256 of its bytes.
    pub sha256: Digest,
}

/// The name of part `n` (1-based) of `base`.
pub fn part_name(base: &str, n: usize) -> String {
    format!("{base}.part{n:03}")
}

/// Where the output goes while a build runs: temporary files renamed into place by
/// [`Output::finish`], removed on drop otherwise.
pub(crate) struct Output {
    dir: PathBuf,
    base: String,
    part_size: Option<u64>,
    files: Vec<File>,
    tmp_paths: Vec<PathBuf>,
    len: u64,
    finished: bool,
}

impl Output {
    /// Prepares output `dir/base`, cut into parts of `part_size` bytes when given.
    pub fn new(dir: &Path, base: &str, part_size: Option<u64>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            base: base.to_string(),
            part_size,
            files: vec![],
            tmp_paths: vec![],
            len: 0,
            finished: false,
        }
    }

    fn cap(&self) -> u64 {
        self.part_size.unwrap_or(u64::MAX)
    }

    fn final_name(&self, n: usize) -> String {
        match self.part_size {
            Some(_) => part_name(&self.base, n),
            None => self.base.clone(),
        }
    }

    fn open_part(&mut self) -> io::Result<()> {
        let n = self.files.len() + 1;
        let tmp = self
            .dir
            .join(format!("{}.tmp-{}", self.final_name(n), std::process::id()));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        self.files.push(f);
        self.tmp_paths.push(tmp);
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Overwrites bytes already written at `offset`.
    pub fn write_at(&self, mut offset: u64, mut bytes: &[u8]) -> io::Result<()> {
        let cap = self.cap();
        while !bytes.is_empty() {
            let idx = (offset / cap) as usize;
            let within = offset % cap;
            let n = bytes.len().min((cap - within) as usize);
            let file = self
                .files
                .get(idx)
                .ok_or_else(|| io::Error::other("patch beyond the written output"))?;
            file.write_all_at(&bytes[..n], within)?;
            bytes = &bytes[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// Cuts the output back to `len` bytes (drops a blob found to be a duplicate).
    pub fn truncate(&mut self, len: u64) -> io::Result<()> {
        let cap = self.cap();
        let keep = if len == 0 {
            0
        } else {
            len.div_ceil(cap) as usize
        };
        while self.files.len() > keep.max(1) {
            self.files.pop();
            if let Some(p) = self.tmp_paths.pop() {
                fs::remove_file(p)?;
            }
        }
        if let Some(last) = self.files.last() {
            let start = (self.files.len() as u64 - 1).saturating_mul(cap);
            last.set_len(len - start.min(len))?;
        }
        self.len = len;
        Ok(())
    }

    /// Syncs and renames every part into place. Returns the final paths and sizes, in order.
    pub fn finish(mut self) -> Result<Vec<(PathBuf, u64)>> {
        if self.files.is_empty() {
            self.open_part().map_err(BundleError::io(format!(
                "creating output in {}",
                self.dir.display()
            )))?;
        }
        let mut done = vec![];
        for (i, f) in self.files.iter().enumerate() {
            f.sync_all().map_err(BundleError::io(format!(
                "syncing {}",
                self.tmp_paths[i].display()
            )))?;
        }
        for (i, tmp) in self.tmp_paths.iter().enumerate() {
            let dest = self.dir.join(self.final_name(i + 1));
            let size = self.files[i]
                .metadata()
                .map_err(BundleError::io(format!("reading {}", tmp.display())))?
                .len();
            fs::rename(tmp, &dest).map_err(BundleError::io(format!(
                "renaming {} to {}",
                tmp.display(),
                dest.display()
            )))?;
            done.push((dest, size));
        }
        self.finished = true;
        Ok(done)
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let cap = self.cap();
        let idx = (self.len / cap) as usize;
        while self.files.len() <= idx {
            self.open_part()?;
        }
        let within = self.len % cap;
        let n = buf.len().min((cap - within) as usize);
        self.files[idx].write_all_at(&buf[..n], within)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.finished {
            for p in &self.tmp_paths {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// sha256 of a whole file, streamed.
pub(crate) fn hash_file(path: &Path) -> io::Result<Digest> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest::from_bytes(h.finalize().into()))
}

/// One part as the reader sees it.
#[derive(Debug, Clone)]
pub struct Part {
    /// Its file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its expected sha256 (split bundles only).
    pub sha256: Option<Digest>,
}

/// A `Read + Seek` over one or more part files, as one stream. When `check_parts` is on and
/// the stream is read from start to end in order, each part is hashed on the way and a part
/// that does not match its index entry fails the read, named.
pub struct PartedReader {
    parts: Vec<Part>,
    starts: Vec<u64>,
    total: u64,
    pos: u64,
    open: Option<(usize, File)>,
    check: Option<(u64, Sha256)>,
}

impl PartedReader {
    /// Reads across `parts`.
    pub fn new(parts: Vec<Part>) -> Self {
        let mut starts = vec![];
        let mut total = 0;
        for p in &parts {
            starts.push(total);
            total += p.size;
        }
        Self {
            parts,
            starts,
            total,
            pos: 0,
            open: None,
            check: None,
        }
    }

    /// Turns on hashing of each part during a front-to-back read.
    pub fn check_parts(&mut self) {
        self.check = Some((0, Sha256::new()));
    }

    /// Total length of the stream.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Which part holds `offset`, for error messages (empty for a single file).
    pub fn locate(&self, offset: u64) -> String {
        if self.parts.len() < 2 {
            return String::new();
        }
        let idx = self.part_index(offset.min(self.total.saturating_sub(1)));
        format!(" (in part {})", self.parts[idx].path.display())
    }

    fn part_index(&self, offset: u64) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(mut i) => {
                // Skip empty parts.
                while i + 1 < self.parts.len() && self.parts[i].size == 0 {
                    i += 1;
                }
                i
            }
            Err(i) => i - 1,
        }
    }

    fn part_done(&mut self, idx: usize, digest: Digest) -> io::Result<()> {
        let part = &self.parts[idx];
        if part.sha256 == Some(digest) || part.sha256.is_none() {
            return Ok(());
        }
        if let Some(other) = self.parts.iter().position(|p| p.sha256 == Some(digest)) {
            return Err(io::Error::other(format!(
                "part {} holds the bytes of part {} ({}): the parts are out of order",
                part.path.display(),
                other + 1,
                self.parts[other].path.display()
            )));
        }
        Err(io::Error::other(format!(
            "part {} is corrupt: its sha256 is {digest}, the parts index says {}",
            part.path.display(),
            part.sha256.map(|d| d.to_string()).unwrap_or_default()
        )))
    }
}

impl Read for PartedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.total || buf.is_empty() {
            return Ok(0);
        }
        let idx = self.part_index(self.pos);
        if self.open.as_ref().map(|(i, _)| *i) != Some(idx) {
            let part = &self.parts[idx];
            let f = File::open(&part.path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("opening part {}: {e}", part.path.display()),
                )
            })?;
            self.open = Some((idx, f));
        }
        let within = self.pos - self.starts[idx];
        let room = (self.parts[idx].size - within).min(buf.len() as u64) as usize;
        let Some((_, f)) = self.open.as_mut() else {
            return Ok(0);
        };
        let n = f.read_at(&mut buf[..room], within)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "part {} ends early (truncated or changed while reading)",
                    self.parts[idx].path.display()
                ),
            ));
        }
        if let Some((hashed, h)) = self.check.as_mut() {
            if *hashed == self.pos {
                h.update(&buf[..n]);
                *hashed += n as u64;
                if *hashed == self.starts[idx] + self.parts[idx].size {
                    let digest = Digest::from_bytes(std::mem::take(h).finalize().into());
                    self.part_done(idx, digest)?;
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PartedReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.total.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| io::Error::other("seek before the start of the bundle"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_patches_and_cuts_across_parts_and_reads_them_back_as_one_stream() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Output::new(dir.path(), "b", Some(10));
        out.write_all(&(0u8..35).collect::<Vec<_>>()).unwrap();
        out.write_at(8, &[100, 101, 102]).unwrap();
        out.truncate(25).unwrap();
        out.write_all(&[7; 3]).unwrap();
        let parts = out.finish().unwrap();
        assert_eq!(parts.len(), 3);
        let mut r = PartedReader::new(
            parts
                .iter()
                .map(|(p, s)| Part {
                    path: p.clone(),
                    size: *s,
                    sha256: None,
                })
                .collect(),
        );
        let mut all = vec![];
        r.read_to_end(&mut all).unwrap();
        let mut want: Vec<u8> = (0u8..25).collect();
        want[8..11].copy_from_slice(&[100, 101, 102]);
        want.extend([7, 7, 7]);
        assert_eq!(all, want);
        r.seek(SeekFrom::Start(9)).unwrap();
        let mut two = [0; 3];
        r.read_exact(&mut two).unwrap();
        assert_eq!(two, [101, 102, 11]);
    }

    #[test]
    fn a_dropped_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Output::new(dir.path(), "b", Some(4));
        out.write_all(b"0123456789").unwrap();
        drop(out);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
