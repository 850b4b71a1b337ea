//! Options of the hidden `ferry agent` subcommand.

/// `ferry agent`: serve the agent protocol on stdin/stdout.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {}
