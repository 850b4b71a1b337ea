//! `ferry inventory` subcommands.

use std::path::PathBuf;

use clap::Subcommand;

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

/// How to reach the hosts (shared by `check` and `facts`).
#[derive(Debug, Clone, clap::Args)]
pub struct ReachArgs {
    /// The inventory file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// ferry's known_hosts file [default: ~/.ferry/known_hosts].
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,
    /// Seconds to wait for a host's SSH answer (per attempt).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// Connection attempts on transient errors (refused, reset, timeout).
    #[arg(long, default_value_t = 2)]
    pub attempts: u32,
    /// Hosts worked on at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub parallel: usize,
    /// Directory for per-host logs [default: ~/.ferry/runs/<command>-<time>].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Push this ferry binary to gather facts with the agent (`self` for the running one);
    /// without it, facts come from a shell script and nothing is left on the hosts.
    #[arg(long, value_name = "BINARY")]
    pub agent: Option<PathBuf>,
}

/// `ferry inventory check`
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
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
    /// How to reach the hosts.
    #[command(flatten)]
    pub reach: ReachArgs,
    /// Print JSON (the only format for now; accepted for scripts that say so).
    #[arg(long)]
    pub json: bool,
}
