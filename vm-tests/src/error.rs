//! The one error type of the testbed: each message names the cause and what to do.

use std::path::PathBuf;

/// Why a testbed could not be started, or a VM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// This machine cannot run VMs at all (no root, no qemu, no debootstrap, no bridge).
    /// Tests treat this as "skip" outside CI and as a failure in CI.
    #[error("VM testbed unavailable on this machine: {0}")]
    Unavailable(String),

    /// Building the base image failed.
    #[error("building the VM base image failed ({cause}); see {log} for the debootstrap output")]
    ImageBuild {
        /// What went wrong.
        cause: String,
        /// The build log.
        log: PathBuf,
    },

    /// A command the testbed runs on the machine (ip, tc, qemu-img, ssh) failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its standard error, trimmed.
        stderr: String,
    },

    /// A VM did not answer SSH in time, or its qemu exited while booting.
    #[error(
        "VM {vm} did not come up: {cause}; its serial console ({console}) ends with:\n{console_tail}"
    )]
    Boot {
        /// VM name.
        vm: String,
        /// What was observed.
        cause: String,
        /// Path of the full console log.
        console: PathBuf,
        /// The last lines of the console log.
        console_tail: String,
    },

    /// qemu's control socket refused a command.
    #[error("QMP command `{command}` on VM {vm} failed: {message}")]
    Qmp {
        /// VM name.
        vm: String,
        /// QMP command name.
        command: String,
        /// qemu's error text.
        message: String,
    },

    /// An operation needs the VM running (or stopped) and it is not.
    #[error("VM {vm}: {message}")]
    State {
        /// VM name.
        vm: String,
        /// What is wrong.
        message: String,
    },

    /// No free testbed slot (bridge name and subnet) is left.
    #[error("all {0} testbed slots (bridges fvbrN, subnets 10.203.N.0/24) are in use; wait for other test runs to finish")]
    NoSlot(u8),

    /// A local file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the testbed was doing.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl TestbedError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestbedError {
        let what = what.into();
        move |source| TestbedError::Io { what, source }
    }
}
