//! `ferry app` subcommands.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `ferry app ...`
#[derive(Debug, Subcommand)]
pub enum AppCmd {
    /// Pack an app directory (app.yaml and the files it names) into a signed .fap file.
    Pack(PackArgs),
    /// Show what an app package holds and who signed it.
    Inspect(AppInspectArgs),
}

/// `ferry app pack`
#[derive(Debug, Args)]
pub struct PackArgs {
    /// The directory holding app.yaml.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The package file to write [default: NAME-VERSION.fap in the current directory].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Private key to sign the package with (from `ferry key generate`).
    #[arg(long, value_name = "KEY", env = "FERRY_SIGN_KEY")]
    pub sign_key: PathBuf,
    /// Replace OUT when it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ferry app inspect`
#[derive(Debug, Args)]
pub struct AppInspectArgs {
    /// The package (NAME-VERSION.fap).
    pub package: PathBuf,
    /// Check the signature with the vendor's public key as well.
    #[arg(long, value_name = "PUBKEY")]
    pub pubkey: Option<PathBuf>,
    /// Print app.yaml's content and the package's files as JSON.
    #[arg(long)]
    pub json: bool,
}
