//! Log lines in k3s's (logrus) text form on stderr, which systemd sends to the journal, and to
//! `--log FILE` when given; plus systemd's readiness notification (`Type=notify`).

use std::io::Write;
use std::sync::Mutex;

static LOG_FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);
static DEBUG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends log lines to `path` too (k3s's `--log`), and turns on debug lines when asked.
pub fn init(path: Option<&str>, debug: bool) {
    DEBUG.store(debug, std::sync::atomic::Ordering::Relaxed);
    if let Some(p) = path {
        if let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            if let Ok(mut slot) = LOG_FILE.lock() {
                *slot = Some(f);
            }
        }
    }
}

fn line(level: &str, msg: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let text = format!(
        "time=\"{now}\" level={level} msg=\"{}\"\n",
        msg.replace('"', "\\\"")
    );
    let _ = std::io::stderr().write_all(text.as_bytes());
    if let Ok(mut slot) = LOG_FILE.lock() {
        if let Some(f) = slot.as_mut() {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

/// An info line.
pub fn info(msg: impl AsRef<str>) {
    line("info", msg.as_ref());
}

/// A warning line.
pub fn warn(msg: impl AsRef<str>) {
    line("warning", msg.as_ref());
}

/// An error line.
pub fn error(msg: impl AsRef<str>) {
    line("error", msg.as_ref());
}

/// A debug line (only with `--debug`).
pub fn debug(msg: impl AsRef<str>) {
    if DEBUG.load(std::sync::atomic::Ordering::Relaxed) {
        line("debug", msg.as_ref());
    }
}

/// Tells systemd the service is up (`READY=1` to `$NOTIFY_SOCKET`), as k3s does once it serves.
pub fn notify_ready() {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            warn(format!("systemd notify: {e}"));
            return;
        }
    };
    let sent = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| sock.send_to_addr(b"READY=1\n", &addr))
    } else {
        sock.send_to(b"READY=1\n", &path)
    };
    match sent {
        Ok(_) => debug("told systemd READY=1"),
        Err(e) => warn(format!("systemd notify to {path}: {e}")),
    }
}
