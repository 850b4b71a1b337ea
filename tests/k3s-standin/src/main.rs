//! k3s-STAND-IN: an executable that honours k3s's on-host contract (subcommands, flags and
//! config files, token and node-password files, kubeconfig, the API on 6443 with TLS, node
//! registration over the network, air-gap image import into containerd, `k3s kubectl`) so that
//! ferry's cluster phase can be tested for real where no k3s binary can be had. It is not k3s:
//! README.md says what it does for real and what it simplifies.

mod agent;
mod api;
mod client;
mod config;
mod controllers;
mod host;
mod images;
mod ingress;
mod kubectl;
mod kubelet;
mod log;
mod net;
mod pki;
mod resources;
mod server;
mod store;

use std::process::ExitCode;

/// The k3s version the stand-in reports (node kubeletVersion, `/version`, `--version`).
pub const VERSION: &str = "v1.31.4+k3s1";
/// The Go version k3s v1.31.4+k3s1 was built with, as `k3s --version` prints it.
pub const GO_VERSION: &str = "go1.22.9";

fn usage() -> String {
    format!(
        "NAME:\n   k3s - Kubernetes, but small and simple (k3s STAND-IN for ferry's tests)\n\n\
         USAGE:\n   k3s [global options] command [command options] [arguments...]\n\n\
         VERSION:\n   {VERSION} (stand-in)\n\n\
         COMMANDS:\n   server   Run management server\n   agent    Run node agent\n   kubectl  Run kubectl (version, get, apply, delete, create namespace)\n"
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    // install.sh links kubectl to k3s; the binary acts by the name it was called with.
    if argv0 == "kubectl" {
        return ExitCode::from(kubectl::main(&args[1..]) as u8);
    }
    let sub = args.get(1).map(String::as_str).unwrap_or_default();
    match sub {
        "--version" | "-v" | "version" => {
            println!("k3s version {VERSION} (stand-in)");
            println!("go version {GO_VERSION}");
            ExitCode::SUCCESS
        }
        "" | "--help" | "-h" | "help" => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        "kubectl" => ExitCode::from(kubectl::main(&args[2..]) as u8),
        "server" | "agent" => {
            let command = if sub == "server" {
                config::Command::Server
            } else {
                config::Command::Agent
            };
            let settings = match config::load(command, &args[2..]) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(1);
                }
            };
            log::init(settings.str("log"), settings.bool("debug"));
            for w in &settings.warnings {
                log::warn(w);
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    log::error(format!("tokio runtime: {e}"));
                    return ExitCode::from(1);
                }
            };
            let result = rt.block_on(async move {
                match command {
                    config::Command::Server => server::run(settings).await,
                    config::Command::Agent => agent::run_agent(settings).await,
                }
            });
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error(&e);
                    eprintln!("level=fatal msg=\"{e}\"");
                    ExitCode::from(1)
                }
            }
        }
        other => {
            eprintln!(
                "No help topic for '{other}' (the k3s stand-in runs server, agent, kubectl and --version)"
            );
            ExitCode::from(3)
        }
    }
}
