//! Writing beneath a directory without ever following a link. Every path is walked from an
//! open directory one component at a time with `O_NOFOLLOW`, and the last component is created
//! with `O_EXCL` / `mkdirat` / `symlinkat` / `linkat`, none of which follow a link either: a
//! symlink on disk (made by a crafted bundle, or by anyone else meanwhile) cannot redirect a
//! write. Plain `openat` per component rather than `openat2(RESOLVE_BENEATH)`: the agent runs on
//! kernels older than 5.6, and refusing every link is stricter than staying beneath.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{linkat, mkdirat, openat, statat, symlinkat, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Why a write beneath a directory did not happen.
#[derive(Debug)]
pub enum Refused {
    /// The path would go through a link or a non-directory, or already exists.
    Unsafe(String),
    /// The filesystem failed (no space, permissions...).
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
}

/// An open directory that paths are written beneath.
#[derive(Debug)]
pub struct Beneath {
    fd: OwnedFd,
    shown: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Beneath {
    /// Opens `dir` (the caller's own choice of directory: a link in `dir` itself is followed).
    pub fn open(dir: &Path) -> io::Result<Self> {
        let fd = openat(
            rustix::fs::CWD,
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            shown: dir.to_path_buf(),
        })
    }

    fn io(&self, what: &str, rel: &str, e: Errno) -> Refused {
        Refused::Io {
            what: format!("{what} {}", self.shown.join(rel).display()),
            source: io::Error::from(e),
        }
    }

    /// Says why `prefix` could not be entered: a symlink, or not a directory.
    fn not_a_dir(&self, at: &OwnedFd, name: &str, prefix: &str) -> Refused {
        match statat(at, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                Refused::Unsafe(format!("would be written through the symlink {prefix}"))
            }
            _ => Refused::Unsafe(format!("needs {prefix} to be a directory")),
        }
    }

    /// The directory `rel` beneath this one, made (mode 0755) where missing when `create`.
    pub fn dir(&self, rel: &str, create: bool) -> Result<Beneath, Refused> {
        let mut cur = openat(&self.fd, ".", DIR_FLAGS, Mode::empty())
            .map_err(|e| self.io("opening", "", e))?;
        let mut walked = String::new();
        for name in rel.split('/').filter(|p| !p.is_empty()) {
            if name == "." || name == ".." {
                return Err(Refused::Unsafe(format!(
                    "{rel:?} is not a clean relative path"
                )));
            }
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(name);
            let next = match openat(&cur, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.io("creating", &walked, e)),
                    }
                    match openat(&cur, name, DIR_FLAGS, Mode::empty()) {
                        Ok(fd) => fd,
                        Err(Errno::LOOP | Errno::NOTDIR) => {
                            return Err(self.not_a_dir(&cur, name, &walked))
                        }
                        Err(e) => return Err(self.io("opening", &walked, e)),
                    }
                }
                Err(Errno::LOOP | Errno::NOTDIR) => return Err(self.not_a_dir(&cur, name, &walked)),
                Err(e) => return Err(self.io("opening", &walked, e)),
            };
            cur = next;
        }
        Ok(Beneath {
            fd: cur,
            shown: self.shown.join(rel),
        })
    }

    /// The parent of `rel` (created where missing) and `rel`'s last component.
    fn parent<'a>(&self, rel: &'a str, create: bool) -> Result<(Beneath, &'a str), Refused> {
        let (dir, leaf) = rel.rsplit_once('/').unwrap_or(("", rel));
        if leaf.is_empty() || leaf == "." || leaf == ".." {
            return Err(Refused::Unsafe(format!(
                "{rel:?} is not a clean relative path"
            )));
        }
        Ok((self.dir(dir, create)?, leaf))
    }

    /// Creates the directory `rel` (and its parents); an existing directory is fine, anything
    /// else there is refused.
    pub fn mkdir(&self, rel: &str) -> Result<(), Refused> {
        let (parent, leaf) = self.parent(rel, true)?;
        match mkdirat(&parent.fd, leaf, Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => match statat(&parent.fd, leaf, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(()),
                _ => Err(Refused::Unsafe(format!(
                    "{rel:?} is a directory and also something else"
                ))),
            },
            Err(e) => Err(self.io("creating", rel, e)),
        }
    }

    /// Creates the new file `rel` with `mode` (its parents as needed); an existing path of any
    /// kind is refused.
    pub fn create_file(&self, rel: &str, mode: u32) -> Result<File, Refused> {
        let (parent, leaf) = self.parent(rel, true)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match openat(&parent.fd, leaf, flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::EXIST) => Err(Refused::Unsafe(format!("{rel:?} appears twice"))),
            Err(e) => Err(self.io("creating", rel, e)),
        }
    }

    /// Creates the symlink `rel` pointing to `target` (its parents as needed).
    pub fn symlink(&self, rel: &str, target: &str) -> Result<(), Refused> {
        let (parent, leaf) = self.parent(rel, true)?;
        match symlinkat(target, &parent.fd, leaf) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => Err(Refused::Unsafe(format!(
                "{rel:?} is a symlink and also something else"
            ))),
            Err(e) => Err(self.io("creating link", rel, e)),
        }
    }

    /// Makes `rel` a hard link to the regular file `source` (both beneath this directory).
    pub fn hard_link(&self, source: &str, rel: &str) -> Result<(), Refused> {
        let (from, from_leaf) = self.parent(source, false).map_err(|_| {
            Refused::Unsafe(format!(
                "{rel:?} is a hardlink to {source:?}, which is not in the tree"
            ))
        })?;
        match statat(&from.fd, from_leaf, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
            Ok(_) => {
                return Err(Refused::Unsafe(format!(
                    "{rel:?} is a hardlink to {source:?}, which is not a regular file"
                )))
            }
            Err(_) => {
                return Err(Refused::Unsafe(format!(
                    "{rel:?} is a hardlink to {source:?}, which is not in the tree"
                )))
            }
        }
        let (to, to_leaf) = self.parent(rel, true)?;
        match linkat(&from.fd, from_leaf, &to.fd, to_leaf, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => Err(Refused::Unsafe(format!("{rel:?} appears twice"))),
            Err(e) => Err(self.io("creating link", rel, e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn never_writes_through_a_link_already_on_disk() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("l")).unwrap();
        let b = Beneath::open(root.path()).unwrap();
        for r in [
            b.create_file("l/x", 0o644).map(|_| ()),
            b.mkdir("l/d"),
            b.symlink("l/s", "."),
            b.create_file("l", 0o644).map(|_| ()),
        ] {
            assert!(matches!(r, Err(Refused::Unsafe(_))), "{r:?}");
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        b.create_file("a/b/c", 0o600)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert_eq!(std::fs::read(root.path().join("a/b/c")).unwrap(), b"x");
    }
}
