//! `ferry key` subcommands.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `ferry key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Make an Ed25519 key pair for signing bundles: PREFIX (private, mode 0600) and PREFIX.pub.
    Generate(GenerateArgs),
}

/// `ferry key generate`
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Write the private key to PREFIX and the public key to PREFIX.pub.
    #[arg(short, long, value_name = "PREFIX")]
    pub output: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}
