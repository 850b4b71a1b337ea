//! `ferry inventory` subcommands.

use clap::Subcommand;

/// `ferry inventory ...`
#[derive(Debug, Subcommand)]
pub enum InventoryCmd {
    /// Convert an Ansible inventory (INI or YAML) into a ferry inventory.
    ImportAnsible(super::ansible::ImportAnsibleArgs),
}
