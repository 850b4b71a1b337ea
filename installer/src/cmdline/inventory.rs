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
    /// Record the host keys of hosts not yet known (after checking their fingerprints), for
    /// runs with --strict-host-keys.
    Trust(TrustArgs),
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

/// `ferry inventory trust`
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["hosts", "all"]))]
pub struct TrustArgs {
    /// The inventory file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// The hosts whose keys to record (inventory names).
    #[arg(value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Every host of the inventory.
    #[arg(long, conflicts_with = "hosts")]
    pub all: bool,
    /// Record the key only if it has this fingerprint (`SHA256:...`, as `ssh-keygen -lf`
    /// prints it on the host's console); one HOST only.
    #[arg(long, value_name = "SHA256")]
    pub fingerprint: Option<String>,
    /// How to reach the hosts (jump hosts must be trusted first, or in the same run).
    #[command(flatten)]
    pub reach: ReachArgs,
}
