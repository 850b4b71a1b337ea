//! Host initialization: `ferry validate`, `ferry plan`, `ferry apply` and `ferry rollback`,
//! all driven by one answer file.

use std::path::PathBuf;

use super::ReachArgs;

/// `ferry validate`
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The answer file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub answers: PathBuf,
}

/// `ferry plan`
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The answer file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub answers: PathBuf,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Take over this host even though it belongs to another cluster (repeat per host).
    #[arg(long, value_name = "HOST")]
    pub force: Vec<String>,
    /// How to reach the hosts.
    #[command(flatten)]
    pub reach: ReachArgs,
}

/// `ferry apply`
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The answer file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub answers: PathBuf,
    /// Leave a failed host as it is (undo later with `ferry rollback`).
    #[arg(long)]
    pub no_rollback: bool,
    /// Take over this host even though it belongs to another cluster (repeat per host).
    #[arg(long, value_name = "HOST")]
    pub force: Vec<String>,
    /// Print one JSON document at the end (progress lines go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Break the host locks a dead run left (its id is in the refusal), after confirming.
    #[arg(long, value_name = "RUN-ID")]
    pub break_lock: Option<String>,
    /// How to reach the hosts.
    #[command(flatten)]
    pub reach: ReachArgs,
}

/// `ferry rollback`
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The run to undo (`ferry apply` printed it: `run: 20250101-120000-abcd`).
    #[arg(long, value_name = "RUN-ID")]
    pub run: String,
    /// The answer file (TOML) the run used; it names the inventory.
    #[arg(short, long, value_name = "FILE")]
    pub answers: PathBuf,
    /// Only this host (repeat per host) [default: every host of the run].
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// Break the host locks a dead run left (its id is in the refusal), after confirming.
    #[arg(long, value_name = "RUN-ID")]
    pub break_lock: Option<String>,
    /// How to reach the hosts.
    #[command(flatten)]
    pub reach: ReachArgs,
}

/// `ferry reset`
#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// The answer file (TOML) of the cluster.
    #[arg(short, long, value_name = "FILE")]
    pub answers: PathBuf,
    /// Only this host (repeat per host) [default: every host of the cluster]. The node is not
    /// deleted from the cluster: do `k3s kubectl delete node HOST` on a server first.
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// Do it (without it, reset only says what it would remove, and exits 2).
    #[arg(long)]
    pub yes: bool,
    /// How to reach the hosts.
    #[command(flatten)]
    pub reach: ReachArgs,
}
