//! The per-host log: every command ferry runs on a host and everything it prints, appended to
//! `RUN_DIR/HOST.log`. Only commands and their output go here; what ferry sends on stdin (sudo
//! passwords, file contents) never does, and neither does the stdout of channels opened with
//! [`super::Session::spawn_unlogged`] (the agent protocol, facts): for those only byte counts.
//! The directory is created 0700 and the logs 0600: commands and their output can still name
//! things only the host's admins should read.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::SshError;

/// An open host log.
#[derive(Debug)]
pub(crate) struct HostLog {
    host: String,
    path: PathBuf,
    file: Mutex<File>,
}

impl HostLog {
    /// Opens (appends to) `dir/HOST.log`.
    pub(crate) fn open(dir: &Path, host: &str) -> Result<Self, SshError> {
        // Host names are inventory names: keep them from escaping the directory.
        let safe: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{safe}.log"));
        let err = |cause| SshError::Log {
            host: host.to_string(),
            path: path.clone(),
            cause,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
        // A run directory that existed before (given by the user) is tightened too.
        let meta = fs::metadata(dir).map_err(err)?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
        // An older log left with wider permissions is tightened as well.
        let meta = file.metadata().map_err(err)?;
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(err)?;
        }
        Ok(Self {
            host: host.to_string(),
            path,
            file: Mutex::new(file),
        })
    }

    /// The log file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records that a command starts.
    pub(crate) fn command(&self, id: u64, command: &str) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.write(format!("\n[{secs}] #{id} $ {command}\n").as_bytes());
    }

    /// Appends output of command `id` (`out` or `err`).
    pub(crate) fn output(&self, id: u64, stream: &str, data: &[u8]) {
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(format!("#{id} {stream}| ").as_bytes());
        buf.extend_from_slice(data);
        if !data.ends_with(b"\n") {
            buf.push(b'\n');
        }
        self.write(&buf);
    }

    /// Records how a command ended.
    pub(crate) fn exit(&self, id: u64, how: &str) {
        self.write(format!("#{id} exit {how}\n").as_bytes());
    }

    fn write(&self, data: &[u8]) {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_all(data) {
            // A log that cannot be written must not stop an install; say so once per write.
            tracing::warn!(host = %self.host, path = %self.path.display(), "host log: {e}");
        }
    }
}
