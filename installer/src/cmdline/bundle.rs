//! `ferry bundle` subcommands.

use clap::Subcommand;

/// `ferry bundle ...`
#[derive(Debug, Subcommand)]
pub enum BundleCmd {}
