//! Runs `ferry key` subcommands.

use std::process::ExitCode;

use crate::cmdline::key::KeyCmd;

/// Runs one `ferry key` subcommand.
pub fn run(cmd: KeyCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
