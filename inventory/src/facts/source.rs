//! Where facts are read from: a file system root (`/` on a live host, a fixture tree in tests)
//! or the captured output of the shell fallback script. Both answer the same questions, so
//! one set of parsers serves both.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Read-only access to a host's files, by absolute path (`/proc/meminfo`).
pub(crate) trait Source {
    /// A file's text, if it exists and is readable.
    fn read(&self, path: &str) -> Option<String>;
    /// The names in a directory, sorted.
    fn list(&self, dir: &str) -> Vec<String>;
    /// Whether a path exists (file, directory, socket, link).
    fn exists(&self, path: &str) -> bool;
    /// The last component of a symlink's target.
    fn link_name(&self, path: &str) -> Option<String>;
    /// The full target of a symlink.
    fn link_target(&self, path: &str) -> Option<String>;
    /// The output of a named probe command (see `shell.rs`), if it ran.
    fn command(&self, name: &str) -> Option<String>;
    /// True for the live host's own `/` (statvfs, getifaddrs and the clock apply).
    fn live(&self) -> bool;
}

/// Files under a root directory.
pub(crate) struct RootSource {
    root: PathBuf,
    live: bool,
}

impl RootSource {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            live: root == Path::new("/"),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }
}

impl Source for RootSource {
    fn read(&self, path: &str) -> Option<String> {
        let bytes = std::fs::read(self.path(path)).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(dir))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn exists(&self, path: &str) -> bool {
        std::fs::symlink_metadata(self.path(path)).is_ok()
    }

    fn link_name(&self, path: &str) -> Option<String> {
        let t = std::fs::read_link(self.path(path)).ok()?;
        t.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    fn link_target(&self, path: &str) -> Option<String> {
        let t = std::fs::read_link(self.path(path)).ok()?;
        Some(t.to_string_lossy().into_owned())
    }

    fn command(&self, name: &str) -> Option<String> {
        if !self.live {
            // Fixture trees may hold a probe's recorded output.
            return self.read(&format!("/.ferry-cmd/{name}"));
        }
        let (prog, args) = super::shell::probe(name)?;
        let out = std::process::Command::new(prog)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn live(&self) -> bool {
        self.live
    }
}

/// The shell fallback's captured output.
#[derive(Debug, Default)]
pub(crate) struct ShellSource {
    pub(crate) files: BTreeMap<String, String>,
    pub(crate) links: BTreeMap<String, String>,
    pub(crate) existing: BTreeSet<String>,
    pub(crate) commands: BTreeMap<String, String>,
}

impl Source for ShellSource {
    fn read(&self, path: &str) -> Option<String> {
        self.files.get(path).cloned()
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let names: BTreeSet<String> = self
            .files
            .keys()
            .chain(self.links.keys())
            .chain(self.existing.iter())
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .map(str::to_string)
            .collect();
        names.into_iter().collect()
    }

    fn exists(&self, path: &str) -> bool {
        let prefix = format!("{path}/");
        self.existing.contains(path)
            || self.files.contains_key(path)
            || self.links.contains_key(path)
            || self
                .files
                .keys()
                .chain(self.existing.iter())
                .any(|p| p.starts_with(&prefix))
    }

    fn link_name(&self, path: &str) -> Option<String> {
        self.links
            .get(path)
            .and_then(|t| t.rsplit('/').next())
            .map(str::to_string)
    }

    fn link_target(&self, path: &str) -> Option<String> {
        self.links.get(path).cloned()
    }

    fn command(&self, name: &str) -> Option<String> {
        self.commands.get(name).cloned()
    }

    fn live(&self) -> bool {
        false
    }
}
