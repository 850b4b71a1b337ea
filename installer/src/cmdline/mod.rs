//! The command line as data: every subcommand and option is a clap derive struct here.
//! Logic takes these structs, never raw arguments. One submodule per area.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod agent;
pub mod ansible;
pub mod app;
pub mod bundle;
pub mod host;
pub mod install;
pub mod inventory;
pub mod key;
pub mod license;
pub mod registry;

/// ferry delivers a private AI platform to air-gapped sites.
#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    max_term_width = 80,
    about = "Install a private AI platform on sites with no network: pack everything into \
             one signed bundle on a connected machine, carry it over, then set up the \
             site's hosts from it over SSH.",
    after_help = "On site, `ferry install` walks through everything in a terminal UI. Or step
by step, in this order:
  ferry inventory check -i inventory.toml   can every host be reached?
  ferry validate --answers site.toml        is the answer file right? (offline)
  ferry plan --answers site.toml            what would change? (changes nothing)
  ferry apply --answers site.toml           change it; a failed host rolls back

`ferry COMMAND --help` tells more about each command."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, verify, inspect and extract air-gap bundles.
    #[command(subcommand)]
    Bundle(bundle::BundleCmd),
    /// Serve a bundle's images to the nodes as a read-only registry.
    #[command(subcommand)]
    Registry(registry::RegistryCmd),
    /// Manage signing keys.
    #[command(subcommand)]
    Key(key::KeyCmd),
    /// Pack and inspect signed app packages (the apps a bundle delivers).
    #[command(subcommand)]
    App(app::AppCmd),
    /// Vendor and site license operations.
    #[command(subcommand)]
    License(license::LicenseCmd),
    /// Check hosts, gather facts, import Ansible inventories.
    #[command(subcommand)]
    Inventory(inventory::InventoryCmd),
    /// The install wizard (a terminal UI), or the same install from an answer file.
    Install(install::InstallArgs),
    /// Check an answer file offline and show what it means.
    Validate(host::ValidateArgs),
    /// Show what initializing the hosts would change (changes nothing).
    Plan(host::PlanArgs),
    /// Initialize the hosts: apply the plan, rolling a failed host back.
    Apply(host::ApplyArgs),
    /// Undo the changes of an earlier `ferry apply` run.
    Rollback(host::RollbackArgs),
    /// Take k3s off the cluster's hosts (or one host), as k3s's uninstall script does.
    Reset(host::ResetArgs),
    /// Run as the agent on a target host (started by ferry over SSH).
    #[command(hide = true)]
    Agent(agent::AgentArgs),
}

/// How to reach the hosts (shared by inventory and host commands; the inventory comes from
/// `--inventory` or from the answer file).
#[derive(Debug, Clone, clap::Args)]
pub struct ReachArgs {
    /// ferry's known_hosts file [default: ~/.ferry/known_hosts].
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,
    /// Seconds to wait for a host's SSH answer (per attempt).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// Seconds one remote command may take (a streaming one: stay silent) before ferry stops
    /// it and names it; steps known to be long set their own.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub command_timeout: u64,
    /// Refuse hosts whose key is not in known_hosts yet; accept them with `ferry inventory
    /// trust` after checking. Without it, a new host's key is recorded and printed.
    #[arg(long)]
    pub strict_host_keys: bool,
    /// Connection attempts on transient errors (refused, reset, timeout).
    #[arg(long, default_value_t = 2)]
    pub attempts: u32,
    /// Hosts worked on at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub parallel: usize,
    /// The folder holding one directory per run (logs, journal), each made by ferry inside
    /// it; the folder itself is left as it is [default: ~/.ferry/runs].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Push this ferry binary to gather facts with the agent (`self` for the running one);
    /// without it, facts come from a shell script and nothing is left on the hosts.
    #[arg(long, value_name = "BINARY")]
    pub agent: Option<PathBuf>,
    /// With --agent, a file several hosts need leaves the jump host once and is relayed host
    /// to host when sending it to each would put at least this many MiB more over the jump
    /// host's link; smaller files are sent to each host directly (the relay costs seconds
    /// of its own).
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub relay_min_mib: u64,
}
