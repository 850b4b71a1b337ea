//! Runs a parsed command line. One submodule per area, each taking its cmdline structs.

use std::process::ExitCode;

use crate::cmdline::{Cli, Command};

mod agent;
mod ansible;
mod bundle;
mod inventory;
mod key;
mod license;

/// Dispatches to the area that owns the subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bundle(cmd) => bundle::run(cmd),
        Command::Key(cmd) => key::run(cmd),
        Command::License(cmd) => license::run(cmd),
        Command::Inventory(cmd) => inventory::run(cmd),
        Command::Agent(args) => agent::run(args),
    }
}
