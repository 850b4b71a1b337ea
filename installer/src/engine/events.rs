//! What the engine reports while it works. The engine never prints: the CLI turns these into
//! lines (or JSON), and the TUI will draw the same events.

use std::sync::Arc;

/// One progress event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A host's facts and measurements are in.
    HostSurveyed {
        /// The host.
        host: String,
        /// Seconds it took.
        seconds: f64,
    },
    /// A host could not be reached or surveyed.
    HostUnreachable {
        /// The host.
        host: String,
        /// Why (one line).
        reason: String,
    },
    /// A resource was applied on a host.
    Applied {
        /// The host.
        host: String,
        /// The resource id.
        resource: String,
        /// Seconds it took.
        seconds: f64,
    },
    /// Applying a resource failed.
    ApplyFailed {
        /// The host.
        host: String,
        /// The resource id.
        resource: String,
        /// Why (one line).
        error: String,
    },
    /// A resource was reverted.
    Reverted {
        /// The host.
        host: String,
        /// The resource id.
        resource: String,
        /// Seconds it took.
        seconds: f64,
    },
    /// Reverting a resource failed.
    RevertFailed {
        /// The host.
        host: String,
        /// The resource id.
        resource: String,
        /// Why (one line).
        error: String,
    },
    /// A resource waits for another host (see `apply::Gates`).
    Waiting {
        /// The host.
        host: String,
        /// The resource id.
        resource: String,
        /// What it waits for.
        on: String,
    },
    /// Bytes sent to a host by a step (at most once a second while they move, and once when
    /// the stream ends).
    Transferred {
        /// The host.
        host: String,
        /// The resource id.
        resource: String,
        /// What moves (`bundle item k3s: k3s/k3s`, `ctr -n k8s.io images import -`).
        what: String,
        /// Bytes sent so far (for a resumed upload, from the start of the file).
        bytes: u64,
        /// Bytes in all, when known.
        total: Option<u64>,
        /// The stream ended.
        done: bool,
    },
    /// A line of a long step's progress (`mcd-web 1.2.0: waiting until healthy`).
    Progress {
        /// The host it runs on.
        host: String,
        /// The step.
        resource: String,
        /// What it is doing.
        message: String,
    },
    /// Something worth telling that changes no outcome.
    Warning {
        /// The host.
        host: String,
        /// What.
        message: String,
    },
}

/// Where events go; called from many tasks at once.
pub type Sink = Arc<dyn Fn(Event) + Send + Sync>;

/// A sink that drops everything.
#[cfg(test)]
pub fn quiet() -> Sink {
    Arc::new(|_| {})
}

/// The first line of an error chain: events and journal lines are one line each.
pub fn one_line(e: &dyn std::fmt::Display) -> String {
    let s = format!("{e:#}");
    s.lines().next().unwrap_or_default().trim().to_string()
}
