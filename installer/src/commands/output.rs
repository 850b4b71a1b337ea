//! Writing a command's output files (`-o`), under one rule for every command that follows it:
//! an existing file is never replaced unless `--force` is given; with `--force` it is replaced
//! atomically (a symlink at the path is replaced, never written through). Either way a file
//! appears whole or not at all. Documented in docs/license-format.md ("Output files").

use std::path::Path;

use anyhow::{bail, Result};

/// Fails when `path` exists (a dangling link counts) and `force` is not set; `what` names the
/// kind of file in the message ("a key", "a license"). Call it before any slow or irreversible
/// work, so a refused run changes nothing.
pub fn refuse_existing(path: &Path, what: &str, force: bool) -> Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        bail!("{}", exists_message(path, what));
    }
    Ok(())
}

fn exists_message(path: &Path, what: &str) -> String {
    format!(
        "{}: already exists; will not overwrite {what} without --force (or choose another -o)",
        path.display()
    )
}

/// Writes `data` to `path` with `mode` under the rule above. A file that appears at `path`
/// after [`refuse_existing`] and before this write is still not replaced without `force`.
pub fn write(path: &Path, data: &[u8], mode: u32, what: &str, force: bool) -> Result<()> {
    let written = if force {
        ferry_license::write_atomic(path, data, mode)
    } else {
        ferry_license::write_new(path, data, mode)
    };
    match written {
        Err(ferry_license::LicenseError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            bail!("{}", exists_message(path, what))
        }
        other => Ok(other?),
    }
}
