//! The agent: `ferry agent` runs on a target host and answers line-delimited JSON requests on
//! stdin/stdout (facts, stat, put, get, the relay's serve and fetch, exit). [`serve`] is the agent's side, [`Client`] the
//! controller's, generic over async streams so it runs over an SSH channel or a child's pipes.
//! The wire format is documented in [`protocol`].

mod client;
pub mod protocol;
mod server;

pub use client::Client;
pub use protocol::{
    PutDone, RelayFetched, RelayServing, RemoteError, StatResult, PROTOCOL_VERSION,
};
pub use server::serve;

impl From<std::io::Error> for AgentError {
    // Not `#[from]`: that would also make the I/O error the `source()`, and error chains would
    // print it twice (it is in the message already).
    fn from(e: std::io::Error) -> Self {
        AgentError::Io(e)
    }
}

/// The agent session failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Reading or writing the channel failed.
    #[error("agent channel: {0}")]
    Io(std::io::Error),
    /// The other side sent something that is not the protocol.
    #[error("agent protocol: {0}")]
    Protocol(String),
    /// The agent ended before saying hello (it could not start).
    #[error(
        "the agent did not start (no hello); it printed: {output:?}; fall back to shell facts"
    )]
    NoHello {
        /// What it printed instead, if anything.
        output: String,
    },
    /// The agent speaks another protocol version.
    #[error("the agent speaks protocol {agent}, this ferry speaks {ours}: use the same ferry build on both sides")]
    Version {
        /// The agent's version.
        agent: u32,
        /// Ours.
        ours: u32,
    },
    /// The agent refused or failed one request; the session is still usable.
    #[error("agent {what}: {}", error.message)]
    Remote {
        /// The verb.
        what: &'static str,
        /// The agent's error.
        error: RemoteError,
    },
    /// The agent closed the channel while a request was pending.
    #[error("the agent closed the channel")]
    Closed,
}
