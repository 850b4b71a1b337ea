//! `ferry`: the one binary. It builds bundles, installs sites, and runs as the agent on target
//! hosts. Parsing lives in `cmdline`, each area's logic in `commands`; library crates do the work.

mod cmdline;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmdline::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // The whole chain, one layer per context: "building bundle: reading item x: ...".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
