//! Runs `ferry key` subcommands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ferry_bundle::SigningKey;

use crate::cmdline::key::KeyCmd;
use crate::commands::output;

/// Runs one `ferry key` subcommand.
pub fn run(cmd: KeyCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCmd::Generate(args) => {
            let public = PathBuf::from(format!("{}.pub", args.output.display()));
            for p in [&args.output, &public] {
                output::refuse_existing(p, "a key", args.force)?;
            }
            let key = SigningKey::generate().context("generating a key")?;
            if args.force {
                write_pair_replacing(&key, &args.output, &public)?;
            } else {
                key.write_pair(&args.output)
                    .context("writing the key pair")?;
            }
            println!(
                "wrote {} (private, mode 0600) and {} (key id {})",
                args.output.display(),
                public.display(),
                key.public().key_id()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `--force`: the pair is written into a fresh private directory beside PREFIX, then each file is
/// renamed over its path, so an existing key (or a symlink planted at its path) is replaced
/// whole, never written through.
fn write_pair_replacing(key: &SigningKey, prefix: &Path, public: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = prefix
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut suffix = [0u8; 8];
    getrandom::getrandom(&mut suffix)
        .map_err(|e| anyhow::anyhow!("choosing a temporary name: {e}"))?;
    let name: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".ferry-key-{name}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| {
        let tmp_key = tmp.join("key");
        key.write_pair(&tmp_key).context("writing the key pair")?;
        std::fs::rename(&tmp_key, prefix)
            .with_context(|| format!("replacing {}", prefix.display()))?;
        std::fs::rename(tmp.join("key.pub"), public)
            .with_context(|| format!("replacing {}", public.display()))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
