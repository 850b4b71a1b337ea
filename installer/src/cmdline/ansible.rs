//! Options for Ansible compatibility commands.

use std::path::PathBuf;

/// `ferry inventory import-ansible`
#[derive(Debug, clap::Args)]
pub struct ImportAnsibleArgs {
    /// The Ansible inventory (INI or YAML; the format is taken from the extension or content).
    pub input: PathBuf,
    /// Where to write the ferry inventory (default: print it).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Login user for hosts without `ansible_user` (Ansible uses the local user).
    #[arg(long, env = "USER", default_value = "root")]
    pub default_user: String,
    /// Key file for hosts without a key or password.
    #[arg(long, default_value = "~/.ssh/id_rsa")]
    pub default_key: String,
    /// Print what was not carried over as JSON on stdout (needs -o for the inventory).
    #[arg(long)]
    pub json: bool,
}
