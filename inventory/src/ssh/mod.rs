//! SSH sessions to target hosts over russh: host keys checked against ferry's own known_hosts,
//! key / password / keyboard-interactive auth (never an ssh-agent from the environment), sudo
//! with a password fed on stdin, jump hosts through `direct-tcpip` channels, a deadline on every
//! remote call, retries on transient errors only, and every command's output in a per-host log.

mod error;
pub mod known_hosts;
mod log;
pub mod pool;
mod session;

pub use error::SshError;
pub use known_hosts::{Accepted, HostKeyPolicy, KnownHosts, KnownHostsError, Verdict};
pub use pool::Pool;
pub use session::{
    Deadline, Exit, KeyNotice, NewHostKey, Output, RemoteChild, Session, SessionOptions,
    DEFAULT_COMMAND_TIMEOUT, EXEC_OUTPUT_LIMIT,
};

/// Quotes a string for a POSIX shell (single quotes; a `'` becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes_for_a_posix_shell() {
        assert_eq!(shell_quote("/tmp/a.b"), "/tmp/a.b");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
