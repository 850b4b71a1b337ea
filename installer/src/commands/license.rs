//! Runs `ferry license` subcommands.

use std::process::ExitCode;

use crate::cmdline::license::LicenseCmd;

/// Runs one `ferry license` subcommand.
pub fn run(cmd: LicenseCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
