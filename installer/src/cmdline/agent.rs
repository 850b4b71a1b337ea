//! Options of the hidden `ferry agent` subcommand.

use std::path::PathBuf;

/// `ferry agent`: serve the agent protocol on stdin/stdout.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Serve files and facts under this directory instead of `/` (tests).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
}
