//! The command line as data: every subcommand and option is a clap derive struct here.
//! Logic takes these structs, never raw arguments. One submodule per area.

use clap::{Parser, Subcommand};

pub mod agent;
pub mod ansible;
pub mod bundle;
pub mod inventory;
pub mod key;
pub mod license;

/// ferry delivers a private AI platform to air-gapped sites.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, max_term_width = 80)]
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
    /// Manage signing keys.
    #[command(subcommand)]
    Key(key::KeyCmd),
    /// Vendor and site license operations.
    #[command(subcommand)]
    License(license::LicenseCmd),
    /// Check hosts, gather facts, import Ansible inventories.
    #[command(subcommand)]
    Inventory(inventory::InventoryCmd),
    /// Run as the agent on a target host (started by ferry over SSH).
    #[command(hide = true)]
    Agent(agent::AgentArgs),
}
