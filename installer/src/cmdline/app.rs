//! `ferry app` subcommands.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ReachArgs;

/// `ferry app ...`
#[derive(Debug, Subcommand)]
pub enum AppCmd {
    /// Pack an app directory (app.yaml and the files it names) into a signed .fap file.
    Pack(PackArgs),
    /// Show what an app package holds and who signed it.
    Inspect(AppInspectArgs),
    /// Show the Kubernetes objects a package becomes with a site's values (secrets hidden).
    Render(RenderArgs),
    /// Deploy packages to the cluster; one that does not become healthy is rolled back.
    Deploy(DeployArgs),
    /// The apps deployed on the cluster.
    List(ClusterArgs),
    /// An app's components and whether each is healthy.
    Status(AppArgs),
    /// An app's revisions.
    History(AppArgs),
    /// Put an earlier revision of an app back.
    Rollback(AppRollbackArgs),
    /// Remove an app and its revisions from the cluster.
    Remove(AppArgs),
}

/// The cluster app commands work on: the answer file's, over SSH to its first server.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The answer file (TOML) of the cluster.
    #[arg(short, long, value_name = "FILE")]
    pub answers: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// How to reach the hosts.
    #[command(flatten)]
    pub reach: ReachArgs,
}

/// `ferry app deploy`
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The packages (NAME-VERSION.fap), deployed in dependency order.
    #[arg(value_name = "APP.fap", required_unless_present = "all")]
    pub packages: Vec<PathBuf>,
    /// Every package of the answer file's bundle.
    #[arg(long, conflicts_with = "packages")]
    pub all: bool,
    /// The vendor's public key [default: the answer file's bundle-pubkey].
    #[arg(long, value_name = "PUBKEY")]
    pub pubkey: Option<PathBuf>,
    /// Seconds each package may take to become healthy [default: [apps] timeout, or 300].
    #[arg(long, value_name = "SECS")]
    pub wait_timeout: Option<u64>,
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `ferry app status | history | remove`
#[derive(Debug, Args)]
pub struct AppArgs {
    /// The app's name.
    pub app: String,
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `ferry app rollback`
#[derive(Debug, Args)]
pub struct AppRollbackArgs {
    /// The app's name.
    pub app: String,
    /// The revision to put back [default: the one before the current].
    #[arg(long, value_name = "REV")]
    pub to: Option<u32>,
    /// Seconds it may take to become healthy [default: [apps] timeout, or 300].
    #[arg(long, value_name = "SECS")]
    pub wait_timeout: Option<u64>,
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
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
