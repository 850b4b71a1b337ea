//! Runs a parsed command line. One submodule per area, each taking its cmdline structs.

use std::process::ExitCode;

use crate::cmdline::{Cli, Command};

mod agent;
mod ansible;
mod app;
mod bundle;
pub(crate) mod host;
mod install;
pub(crate) mod inventory;
mod key;
mod license;
pub(crate) mod output;
pub(crate) mod progress;
mod registry;

pub(crate) use bundle::human;
pub(crate) mod reach;

/// Dispatches to the area that owns the subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bundle(cmd) => bundle::run(cmd),
        Command::Registry(cmd) => registry::run(cmd),
        Command::Key(cmd) => key::run(cmd),
        Command::App(cmd) => app::run(cmd),
        Command::License(cmd) => license::run(cmd),
        Command::Inventory(cmd) => inventory::run(cmd),
        Command::Install(args) => install::run(args),
        Command::Validate(args) => host::validate(args),
        Command::Plan(args) => host::plan(args),
        Command::Apply(args) => host::apply(args),
        Command::Rollback(args) => host::rollback(args),
        Command::Reset(args) => host::reset(args),
        Command::Agent(args) => agent::run(args),
    }
}
