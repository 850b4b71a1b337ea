//! Runs `ferry registry serve`: opens the bundle with its signer's key, binds the address,
//! prints what is served where, then serves until interrupted (Ctrl-C or SIGTERM).

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use ferry_bundle::{Bundle, PublicKey};
use ferry_registry::{tls, Event, Registry};

use crate::cmdline::registry::{RegistryCmd, ServeArgs};

/// Runs one `ferry registry` subcommand.
pub fn run(cmd: RegistryCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RegistryCmd::Serve(a) => serve(a),
    }
}

fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let listen = listen_addr(&a.listen)?;
    let key = PublicKey::load(&a.pubkey).context("loading the public key")?;
    let bundle = Bundle::open(&a.bundle, Some(&key)).context("opening the bundle")?;
    let registry = Registry::new(bundle)
        .context("reading the bundle's images")?
        .with_events(|e| match e {
            Event::Refused {
                peer, reason, cut, ..
            } => {
                let how = if cut { "cut off" } else { "refused" };
                eprintln!("warning: {how} a download by {peer}: {reason}");
            }
            Event::Served {
                peer,
                image,
                reference,
            } => eprintln!("served {image} ({reference}) to {}", peer.ip()),
        });
    let issued = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(tls::serving_config(cert, key).context("setting up TLS")?),
        _ => None,
    };
    let tls = match &a.tls_dir {
        Some(dir) => {
            let names = if a.tls_names.is_empty() {
                tls::default_names(listen)
            } else {
                a.tls_names.clone()
            };
            Some(tls::site_tls(dir, &names).context("setting up TLS")?)
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = ferry_registry::bind(listen).await?;
        let bound = listener
            .local_addr()
            .with_context(|| format!("reading the address bound for {listen}"))?;
        report(&registry, &a, bound, tls.as_ref(), issued.is_some());
        let registry = Arc::new(registry);
        let config = tls.map(|t| t.config).or(issued);
        registry.serve(listener, config, stopped()).await;
        eprintln!("stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `ADDR:PORT`, or `HOST:PORT` resolved to its first address.
fn listen_addr(s: &str) -> anyhow::Result<SocketAddr> {
    let bad = || {
        anyhow!(
            "--listen {s:?} is not an address and port: write ADDR:PORT, e.g. 0.0.0.0:5000 or 10.0.0.5:5000 ([::]:5000 for IPv6)"
        )
    };
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    s.to_socket_addrs()
        .map_err(|e| anyhow!("--listen {s:?}: cannot resolve {host}: {e}; give an IP address"))?
        .next()
        .ok_or_else(|| anyhow!("--listen {s:?}: {host} has no address; give an IP address"))
}

fn report(
    registry: &Registry,
    a: &ServeArgs,
    bound: SocketAddr,
    tls: Option<&tls::SiteTls>,
    issued: bool,
) {
    let scheme = if tls.is_some() || issued {
        "https"
    } else {
        "http"
    };
    let images = registry.catalog().images();
    println!(
        "serving {} image{} of {} at {scheme}://{bound}",
        images.len(),
        if images.len() == 1 { "" } else { "s" },
        a.bundle.display()
    );
    for i in images {
        let tag = match &i.tag {
            Some(t) => format!(":{t}"),
            None => format!("@{}", i.manifest),
        };
        println!("  {}{tag}  (as {}{tag})", i.full_name(), i.repository);
    }
    for s in &registry.catalog().skipped {
        eprintln!("warning: {s}");
    }
    if let Some(t) = tls {
        for f in &t.made {
            println!("made {}", f.display());
        }
        println!(
            "TLS for {}; the nodes trust {}",
            t.names.join(", "),
            t.ca_cert.display()
        );
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
