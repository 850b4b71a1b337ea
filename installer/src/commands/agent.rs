//! Runs the agent on a target host.

use std::process::ExitCode;

use crate::cmdline::agent::AgentArgs;

/// Serves the agent protocol on stdin/stdout.
pub fn run(_args: AgentArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the agent is not built yet")
}
