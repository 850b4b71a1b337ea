//! `ferry license` subcommands.

use clap::Subcommand;

/// `ferry license ...`
#[derive(Debug, Subcommand)]
pub enum LicenseCmd {}
