//! Runs `ferry inventory` subcommands.

use std::process::ExitCode;

use crate::cmdline::inventory::InventoryCmd;

/// Runs one `ferry inventory` subcommand.
pub fn run(cmd: InventoryCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        InventoryCmd::ImportAnsible(args) => super::ansible::import(args),
    }
}
