//! `ferry registry` subcommands.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `ferry registry ...`
#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Serve a bundle's images as a read-only registry (the nodes' containerd mirror).
    Serve(ServeArgs),
}

/// `ferry registry serve`
#[derive(Debug, Args)]
#[command(
    after_help = "Each image is served under its name without the registry host \
(docker.io/library/busybox:1.36 as library/busybox:1.36), which is what a containerd mirror \
for docker.io asks for, and under its full name too. docs/registry.md has the hosts.toml and \
registries.yaml that point the nodes at it."
)]
pub struct ServeArgs {
    /// The bundle (its file, or NAME / NAME.parts of a split bundle).
    pub bundle: PathBuf,
    /// The signer's public key: the signature is checked before anything is served.
    #[arg(long, value_name = "PUBKEY")]
    pub pubkey: PathBuf,
    /// The address and port to listen on (0.0.0.0: every address of this machine; port 0:
    /// any free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:5000")]
    pub listen: String,
    /// Serve HTTPS with the site CA kept in DIR (ca.pem, ca.key, server.pem, server.key),
    /// each made when missing; the nodes trust DIR/ca.pem.
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// A name or address the serving certificate covers, instead of the default: the listen
    /// address, or every address of this machine and its host name (repeat for several).
    #[arg(long = "tls-name", value_name = "NAME", requires = "tls_dir")]
    pub tls_names: Vec<String>,
    /// Serve HTTPS with this serving certificate (PEM), issued elsewhere from the site CA
    /// (what `ferry apply` runs on the first server; the CA's key stays on the jump host).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_dir"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}
