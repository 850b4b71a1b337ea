//! `ferry inventory` subcommands.

use std::path::PathBuf;

use clap::Subcommand;

use super::ReachArgs;

/// `ferry inventory ...`
#[derive(Debug, Subcommand)]
pub enum InventoryCmd {
    /// Convert an Ansible inventory (INI or YAML) into a ferry inventory.
    ImportAnsible(super::ansible::ImportAnsibleArgs),
    /// Reach every host: SSH, auth, sudo, clock skew, facts. Exit 0 only if all pass.
    Check(CheckArgs),
    /// Gather every host's facts.
    Facts(FactsArgs),
}

/// `ferry inventory check`
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The inventory file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// How to reach the hosts.
    #[command(flatten)]
    pub reach: ReachArgs,
    /// Largest clock difference to this machine accepted, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub max_skew: f64,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `ferry inventory facts`
#[derive(Debug, clap::Args)]
pub struct FactsArgs {
    /// The inventory file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// How to reach the hosts.
    #[command(flatten)]
    pub reach: ReachArgs,
    /// Print JSON (the only format for now; accepted for scripts that say so).
    #[arg(long)]
    pub json: bool,
}
