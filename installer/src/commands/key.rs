//! Runs `ferry key` subcommands.

use std::process::ExitCode;

use anyhow::Context;
use ferry_bundle::SigningKey;

use crate::cmdline::key::KeyCmd;

/// Runs one `ferry key` subcommand.
pub fn run(cmd: KeyCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCmd::Generate(args) => {
            let key = SigningKey::generate().context("generating a key")?;
            let public = key
                .write_pair(&args.output)
                .context("writing the key pair")?;
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
