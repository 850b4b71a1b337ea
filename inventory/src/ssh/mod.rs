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

/// Quotes `s` as one word for a POSIX shell, through shlex: one audited function, which also
/// quotes what bash and zsh read specially (`{`, `!`, `^`, non-ASCII blanks) since a login shell
/// may be either. A NUL byte cannot be part of a command line; it is passed through here and
/// refused where every command leaves for the host (`Session` quotes the whole command with
/// `shlex::try_quote` and fails with [`SshError::NulInCommand`]), so each caller gets the error
/// however its command was built, and the many quoting sites stay infallible.
pub fn shell_quote(s: &str) -> String {
    shlex::Quoter::new()
        .allow_nul(true)
        .quote(s)
        // NUL is the only error shlex has, and it is allowed above.
        .map_or_else(|_| String::new(), |q| q.into_owned())
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
        assert_eq!(shell_quote("it's"), r#""it's""#);
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    /// Each word comes back from a real `sh` exactly as it went in.
    #[test]
    fn sh_reads_back_every_quoted_word_unchanged() {
        let words = [
            "",
            "plain",
            "a b",
            "it's",
            "$(rm -rf /)",
            "`id`",
            "back\\slash",
            "\"double\"",
            "{a,b}",
            "*?[x]~#",
            "k=v,w%",
            "!bang ^caret",
            "tab\there\nnewline",
            "é\u{a0}ü",
            "'$mixed' \"`both`\"",
        ];
        let script: String = words
            .iter()
            .map(|w| format!("printf '%s\\0' {}\n", shell_quote(w)))
            .collect();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}");
        let back: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .split_terminator('\0')
            .collect();
        assert_eq!(back, words, "{script}");
    }
}
