//! `ferry license` subcommands: the vendor side (keygen, issue) and the site side (request,
//! activate, inspect, verify, status). Formats and rules: docs/license-format.md.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `ferry license ...`
#[derive(Debug, Subcommand)]
pub enum LicenseCmd {
    /// Vendor: make an Ed25519 issuer key pair (PREFIX, mode 0600, and PREFIX.pub).
    Keygen(KeygenArgs),
    /// Site: fingerprint the hosts and write an activation request for the vendor.
    Request(RequestArgs),
    /// Vendor: turn a request and a spec into a signed, encrypted license file.
    Issue(IssueArgs),
    /// Site: verify a license and install it with fresh clock and replay guards.
    Activate(ActivateArgs),
    /// Show what a license file holds (decrypted when this site can open it).
    Inspect(InspectArgs),
    /// Site: check a license against this site; exit 0 only when it is valid.
    Verify(VerifyArgs),
    /// Site: what is licensed, what is used, days left, and what to do.
    Status(StatusArgs),
}

/// `ferry license keygen`
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the private key to PREFIX and the public key to PREFIX.pub.
    #[arg(short, long, value_name = "PREFIX")]
    pub output: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}

/// Which site to look at: this machine or an inventory, and where its license state lives.
#[derive(Debug, Args)]
pub struct SiteArgs {
    /// Fingerprint the machine ferry runs on.
    #[arg(
        long,
        conflicts_with = "inventory",
        required_unless_present = "inventory"
    )]
    pub local: bool,
    /// Fingerprint every host of this inventory.
    #[arg(short, long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// With -i: ferry's known_hosts file [default: ~/.ferry/known_hosts].
    #[arg(long, value_name = "PATH", requires = "inventory")]
    pub known_hosts: Option<PathBuf>,
    /// With -i: the license state directory on every host.
    #[arg(long, value_name = "DIR", requires = "inventory", default_value = ferry_license::DEFAULT_STATE_DIR)]
    pub host_state_dir: PathBuf,
    /// With --local: read machine identity and devices under this root instead of /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// License state directory (activation records, installed license, guards).
    #[arg(long, value_name = "DIR", env = "FERRY_STATE_DIR", default_value = ferry_license::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Use this time (YYYY-MM-DD or Unix seconds) instead of the clock (for tests).
    #[arg(long, hide = true, env = "FERRY_LICENSE_NOW")]
    pub now: Option<String>,
}

/// `ferry license request`
#[derive(Debug, Args)]
pub struct RequestArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Write the request file here (mode 0600: it carries the activation secret).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Also print the request as a QR code for a phone to carry.
    #[arg(long)]
    pub qr: bool,
}

/// `ferry license issue`
#[derive(Debug, Args)]
#[command(override_usage = "ferry license issue --request REQ --spec SPEC --key KEY -o FILE")]
pub struct IssueArgs {
    /// The site's request file.
    #[arg(long, value_name = "FILE")]
    pub request: PathBuf,
    /// What to grant (TOML: customer, expires, max_nodes, ...).
    #[arg(long, value_name = "FILE")]
    pub spec: PathBuf,
    /// The vendor's private issuer key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Write the license file here.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// `ferry license activate`
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The license file from the vendor.
    pub license: PathBuf,
    /// Trusted vendor public key (repeat for rotated keys); pinned for later checks.
    #[arg(long, value_name = "FILE", required = true)]
    pub pubkey: Vec<PathBuf>,
    #[command(flatten)]
    pub site: SiteArgs,
}

/// `ferry license inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The license file.
    pub license: PathBuf,
    /// Trusted vendor public key (default: the keys pinned at activation).
    #[arg(long, value_name = "FILE")]
    pub pubkey: Vec<PathBuf>,
    /// License state directory holding the activation record.
    #[arg(long, value_name = "DIR", env = "FERRY_STATE_DIR", default_value = ferry_license::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ferry license verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The license file.
    pub license: PathBuf,
    /// Trusted vendor public key (default: the keys pinned at activation).
    #[arg(long, value_name = "FILE")]
    pub pubkey: Vec<PathBuf>,
    #[command(flatten)]
    pub site: SiteArgs,
}

/// `ferry license status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Trusted vendor public key (default: the keys pinned at activation).
    #[arg(long, value_name = "FILE")]
    pub pubkey: Vec<PathBuf>,
    #[command(flatten)]
    pub site: SiteArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}
