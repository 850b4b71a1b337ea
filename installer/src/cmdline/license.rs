//! `ferry license` subcommands: the vendor side (keygen, issue) and the site side (request,
//! activate, inspect, verify, status). Formats and rules: docs/license-format.md.

use std::path::PathBuf;

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, Subcommand};

/// `ferry license ...`
#[derive(Debug, Subcommand)]
pub enum LicenseCmd {
    /// Vendor: make an Ed25519 issuer key pair (PREFIX, mode 0600, and PREFIX.pub).
    Keygen(KeygenArgs),
    /// Show the vendor keys this ferry accepts licenses from (built in; no other is accepted).
    Keys,
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
    /// License state directory (activation records, installed license, guards).
    #[arg(long, value_name = "DIR", env = "FERRY_STATE_DIR", default_value = ferry_license::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub hooks: TestHooks,
}

/// What only a test build of ferry takes (ferry-license's `testing` feature, which ferry's own
/// tests turn on): `--now` / `FERRY_LICENSE_NOW`, a chosen time, and `--root`, a fixture machine
/// root. A release build has neither option: its checks read the real clock and the real machine,
/// so no operator can choose the time or the hardware a license is checked against.
#[derive(Debug, Clone)]
pub struct TestHooks {
    /// The time to use instead of the clock (YYYY-MM-DD or Unix seconds).
    pub now: Option<String>,
    /// With --local: where to read machine identity and devices instead of /.
    pub root: PathBuf,
}

impl Default for TestHooks {
    fn default() -> Self {
        Self {
            now: None,
            root: PathBuf::from("/"),
        }
    }
}

// Written by hand rather than derived: the options exist only when the build says so, which a
// derive's `#[cfg]` cannot express (the feature belongs to ferry-license, not to this crate).
impl FromArgMatches for TestHooks {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut hooks = Self::default();
        hooks.update_from_arg_matches(m)?;
        Ok(hooks)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        if ferry_license::TEST_BUILD {
            if let Some(now) = m.get_one::<String>("now") {
                self.now = Some(now.clone());
            }
            if let Some(root) = m.get_one::<PathBuf>("root") {
                self.root = root.clone();
            }
        }
        Ok(())
    }
}

impl Args for TestHooks {
    fn augment_args(cmd: Command) -> Command {
        if !ferry_license::TEST_BUILD {
            return cmd;
        }
        cmd.arg(
            Arg::new("now")
                .long("now")
                .value_name("TIME")
                .env("FERRY_LICENSE_NOW")
                .hide(true)
                .help("Test builds: use this time (YYYY-MM-DD or Unix seconds), not the clock"),
        )
        .arg(
            Arg::new("root")
                .long("root")
                .value_name("DIR")
                .value_parser(clap::value_parser!(PathBuf))
                .hide(true)
                .help("Test builds: with --local, read the machine under DIR instead of /"),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// `ferry license request`
#[derive(Debug, Args)]
pub struct RequestArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Write the request file here (mode 0600: it carries the activation secret).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Also print the request as a QR code for a phone to carry.
    #[arg(long)]
    pub qr: bool,
}

/// `ferry license issue`
#[derive(Debug, Args)]
#[command(
    override_usage = "ferry license issue --request REQ --spec SPEC --key KEY -o FILE [--force]"
)]
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
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `ferry license activate`
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The license file from the vendor.
    pub license: PathBuf,
    /// Accept only this built-in vendor key (a .pub file or key id; repeatable)
    /// [default: every vendor key built into ferry].
    #[arg(long, value_name = "KEY")]
    pub pubkey: Vec<PathBuf>,
    #[command(flatten)]
    pub site: SiteArgs,
}

/// `ferry license inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The license file.
    pub license: PathBuf,
    /// Accept only this built-in vendor key (a .pub file or key id; repeatable)
    /// [default: every vendor key built into ferry].
    #[arg(long, value_name = "KEY")]
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
    /// Accept only this built-in vendor key (a .pub file or key id; repeatable)
    /// [default: every vendor key built into ferry].
    #[arg(long, value_name = "KEY")]
    pub pubkey: Vec<PathBuf>,
    #[command(flatten)]
    pub site: SiteArgs,
}

/// `ferry license status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Accept only this built-in vendor key (a .pub file or key id; repeatable)
    /// [default: every vendor key built into ferry].
    #[arg(long, value_name = "KEY")]
    pub pubkey: Vec<PathBuf>,
    #[command(flatten)]
    pub site: SiteArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}
