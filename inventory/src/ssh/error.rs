//! What can go wrong on the way to and on a host. Every message names the host and what to do.

use std::path::PathBuf;

use super::known_hosts::KnownHostsError;

/// SSH session errors.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// TCP connection failed (refused, unreachable, reset).
    #[error(
        "{host}: cannot connect to {addr}: {cause}; check the address, the port and that sshd runs"
    )]
    Connect {
        /// Host name.
        host: String,
        /// address:port.
        addr: String,
        /// The cause (in the message, not a `source()`: chains print each cause once).
        cause: std::io::Error,
    },
    /// No connection or no SSH answer within the timeout.
    #[error(
        "{host}: no SSH answer from {addr} within {secs}s; check the address, firewall and sshd"
    )]
    Timeout {
        /// Host name.
        host: String,
        /// address:port.
        addr: String,
        /// The timeout.
        secs: u64,
    },
    /// The SSH protocol failed (handshake, connection lost).
    #[error(
        "{host}: SSH connection to {addr} failed: {cause}; check that an SSH server answers \
         on that address and port (ssh -v -p PORT USER@ADDRESS)"
    )]
    Protocol {
        /// Host name.
        host: String,
        /// address:port.
        addr: String,
        /// The cause (in the message, not a `source()`: chains print each cause once).
        cause: Box<russh::Error>,
    },
    /// The host key is not the recorded one, or the file is unusable.
    #[error("{host}: {cause}")]
    HostKey {
        /// Host name.
        host: String,
        /// The cause (in the message, not a `source()`: chains print each cause once).
        cause: KnownHostsError,
    },
    /// Strict host key checking met a host whose key is not recorded.
    #[error(
        "{host}: host key of {entry} is not known yet (offered {key}) and strict host key \
         checking refuses unknown keys; compare it with the host's own (`ssh-keygen -lf \
         /etc/ssh/ssh_host_ed25519_key.pub` on its console), then accept it with: \
         ferry inventory trust {host} -i INVENTORY"
    )]
    UnknownHostKey {
        /// Host name.
        host: String,
        /// The known_hosts entry name.
        entry: String,
        /// The offered key: `ED25519 SHA256:...`.
        key: String,
    },
    /// The host offered a certificate instead of a plain key.
    #[error("{host}: the host offered an SSH certificate; ferry pins plain host keys only")]
    HostCertificate {
        /// Host name.
        host: String,
    },
    /// The server rejected the credentials.
    #[error("{host}: authentication as {user} rejected ({method}); check the user and {hint}")]
    AuthRejected {
        /// Host name.
        host: String,
        /// Login user.
        user: String,
        /// What was tried.
        method: String,
        /// What to check.
        hint: String,
    },
    /// Authentication did not finish in time.
    #[error("{host}: authentication did not finish within {secs}s")]
    AuthTimeout {
        /// Host name.
        host: String,
        /// The timeout.
        secs: u64,
    },
    /// The private key file is unusable.
    #[error("{host}: cannot use private key {path}: {reason}")]
    Key {
        /// Host name.
        host: String,
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The jump host could not be reached or could not open a tunnel.
    #[error("{host}: through jump host {bastion}: {reason}")]
    Bastion {
        /// Host name.
        host: String,
        /// Jump host name.
        bastion: String,
        /// Why.
        reason: String,
    },
    /// A channel (command) failed at the SSH level.
    #[error("{host}: running `{command}`: {cause}")]
    Channel {
        /// Host name.
        host: String,
        /// The command.
        command: String,
        /// The cause (in the message, not a `source()`: chains print each cause once).
        cause: Box<russh::Error>,
    },
    /// A command held a NUL byte: no command line can carry one (the remote shell would read
    /// up to it and drop the rest), so it is refused before anything is sent.
    #[error(
        "{host}: refused to send a command holding a NUL byte (a value quoted into it has one; \
         check the inventory and configuration values it names): {command:?}"
    )]
    NulInCommand {
        /// Host name.
        host: String,
        /// The command.
        command: String,
    },
    /// The connection dropped while a command ran.
    #[error("{host}: connection lost while running `{command}`")]
    ConnectionLost {
        /// Host name.
        host: String,
        /// The command.
        command: String,
    },
    /// sudo rejected the password.
    #[error(
        "{host}: sudo rejected the password of {user}; check the sudo password in the inventory"
    )]
    SudoPasswordWrong {
        /// Host name.
        host: String,
        /// Login user.
        user: String,
    },
    /// sudo refused for another reason (not in sudoers, password needed, ...).
    #[error("{host}: sudo refused for {user}: {message}")]
    SudoRefused {
        /// Host name.
        host: String,
        /// Login user.
        user: String,
        /// What sudo said.
        message: String,
    },
    /// A command exited with a failure.
    #[error("{host}: `{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// Host name.
        host: String,
        /// The command.
        command: String,
        /// Exit status or signal.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// A command did not finish within its deadline, or went silent for that long.
    #[error(
        "{host}: `{command}` {} {secs}s (ferry's deadline for one command); ferry stopped \
         waiting and closed its channel, the command may still run there. Look on the host at \
         what it waits for (`ps -ef --forest`: a lock, a prompt, a hung mount){}; if the step \
         is only slow, raise the deadline (--command-timeout SECS)",
        if *.silent { "printed nothing and read nothing for" } else { "did not finish within" },
        .log.as_ref().map(|l| format!(" and at its output in {}", l.display())).unwrap_or_default()
    )]
    CommandTimeout {
        /// Host name.
        host: String,
        /// The command.
        command: String,
        /// The deadline.
        secs: u64,
        /// True when the bound was on silence (a streaming command), false when on the total.
        silent: bool,
        /// The host log holding the command's output.
        log: Option<PathBuf>,
    },
    /// A command printed more than [`super::EXEC_OUTPUT_LIMIT`] for `exec`.
    #[error(
        "{host}: `{command}` printed more than {limit} bytes; ferry stopped it (stream large \
         output with spawn instead of exec)"
    )]
    OutputTooLarge {
        /// Host name.
        host: String,
        /// The command.
        command: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The per-host log could not be written.
    #[error("{host}: writing host log {path}: {cause}")]
    Log {
        /// Host name.
        host: String,
        /// The log file.
        path: PathBuf,
        /// The cause (in the message, not a `source()`: chains print each cause once).
        cause: std::io::Error,
    },
}

impl SshError {
    /// True for errors a retry may cure (refused, reset, timeouts, dropped connections); false for
    /// authentication failures, host key changes and everything else a retry would only repeat.
    pub fn is_transient(&self) -> bool {
        use std::io::ErrorKind::*;
        match self {
            SshError::Connect { cause, .. } => matches!(
                cause.kind(),
                ConnectionRefused | ConnectionReset | ConnectionAborted | TimedOut | Interrupted
            ),
            SshError::Timeout { .. } | SshError::ConnectionLost { .. } => true,
            SshError::Protocol { cause, .. } => matches!(
                **cause,
                russh::Error::Disconnect
                    | russh::Error::HUP
                    | russh::Error::ConnectionTimeout
                    | russh::Error::KeepaliveTimeout
                    | russh::Error::IO(_)
                    | russh::Error::ChannelOpenFailure(_)
            ),
            SshError::Bastion { .. } => true,
            _ => false,
        }
    }

    /// The host name the error is about.
    pub fn host(&self) -> &str {
        match self {
            SshError::Connect { host, .. }
            | SshError::Timeout { host, .. }
            | SshError::Protocol { host, .. }
            | SshError::HostKey { host, .. }
            | SshError::UnknownHostKey { host, .. }
            | SshError::HostCertificate { host }
            | SshError::AuthRejected { host, .. }
            | SshError::AuthTimeout { host, .. }
            | SshError::Key { host, .. }
            | SshError::Bastion { host, .. }
            | SshError::Channel { host, .. }
            | SshError::ConnectionLost { host, .. }
            | SshError::NulInCommand { host, .. }
            | SshError::SudoPasswordWrong { host, .. }
            | SshError::SudoRefused { host, .. }
            | SshError::CommandFailed { host, .. }
            | SshError::OutputTooLarge { host, .. }
            | SshError::CommandTimeout { host, .. }
            | SshError::Log { host, .. } => host,
        }
    }
}
