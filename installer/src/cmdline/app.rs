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
    /// Show the Kubernetes objects a package becomes with a site's values (secrets hidden).
    Render(RenderArgs),
}

/// `ferry app render`
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The package (NAME-VERSION.fap).
    pub package: PathBuf,
    /// Check the signature with the vendor's public key as well.
    #[arg(long, value_name = "PUBKEY")]
    pub pubkey: Option<PathBuf>,
    /// The site's domain (`${site.domain}`; web components answer under it).
    #[arg(long, value_name = "DOMAIN", default_value = "example.local")]
    pub domain: String,
    /// A parameter's value (not for secrets: a command line is visible to other users).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// A parameter's value read from a file (its first line), for secrets.
    #[arg(long = "set-file", value_name = "NAME=PATH")]
    pub set_file: Vec<String>,
    /// The node that keeps stateful components' local volumes.
    #[arg(long, value_name = "NODE", default_value = "node-1")]
    pub node: String,
    /// Print the objects as JSON instead of YAML documents.
    #[arg(long)]
    pub json: bool,
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
