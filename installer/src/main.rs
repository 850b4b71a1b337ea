//! `ferry`: the one binary. It builds bundles, installs sites, and runs as the agent on target
//! hosts. Parsing lives in `cmdline`, each area's logic in `commands`; library crates do the work.

mod apps;
mod cluster;
mod cmdline;
mod commands;
mod config;
mod engine;
mod site_license;
mod tui;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    restore_sigpipe();
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

/// `ferry ... | head`: when the reader goes away, end quietly like any Unix tool, instead of
/// panicking on the next `println!` (the Rust runtime ignores SIGPIPE, turning it into EPIPE).
fn restore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: called first thing in main, before any other thread exists, and installs the
    // default disposition (no Rust handler runs in signal context), so nothing can race it.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
