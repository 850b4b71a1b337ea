//! `ferry key` subcommands.

use clap::Subcommand;

/// `ferry key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCmd {}
