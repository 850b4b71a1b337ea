//! Runs `ferry bundle` subcommands.

use std::process::ExitCode;

use crate::cmdline::bundle::BundleCmd;

/// Runs one `ferry bundle` subcommand.
pub fn run(cmd: BundleCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
