//! Runs the agent on a target host: the protocol on stdin/stdout, nothing else on stdout.

use std::process::ExitCode;

use anyhow::Context;

use crate::cmdline::agent::AgentArgs;

/// Serves the agent protocol on stdin/stdout until `exit` or end of input.
pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    ferry_inventory::agent::serve(stdin, stdout, &args.root)
        .context("serving the agent protocol")?;
    Ok(ExitCode::SUCCESS)
}
