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
    raise_open_file_limit();
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

/// A run keeps a session (a socket) and a log file open per host: 500 hosts need more than
/// the 1024 open files a login shell usually starts with. The soft limit goes up to the hard
/// one, which any process may do; where that fails, ferry runs as before and the error that
/// the limit causes names the file it could not open.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        // An unlimited hard limit still stops at the kernel's nr_open (1048576 by default).
        let want = hard.min(1 << 20);
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
}
