//! What can be wrong with an inventory: each message names the host, group or key at fault
//! and says what to change.

use std::path::PathBuf;

/// Loading, checking or resolving an inventory failed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read.
    #[error("reading inventory {path}: {cause}; check the path")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, not a `source()`: chains print each cause once).
        cause: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown or mistyped key.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// File name or other origin.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// The file parses but its content does not hold together.
    #[error("{origin}: {problem}")]
    Invalid {
        /// File name or other origin.
        origin: String,
        /// What is wrong.
        problem: Problem,
    },
    /// A secret named by an environment variable is missing.
    #[error("host `{host}`: environment variable `{var}` (the {what}) is not set; export it or use a prompt")]
    MissingEnv {
        /// Host whose secret it is.
        host: String,
        /// The variable.
        var: String,
        /// What the secret is for.
        what: &'static str,
    },
    /// Asking for a secret failed.
    #[error("host `{host}`: could not ask for the {what}: {reason}")]
    Prompt {
        /// Host whose secret it is.
        host: String,
        /// What the secret is for.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A host name asked for is not in the inventory.
    #[error("no host named `{0}` in the inventory")]
    UnknownHost(String),
    /// Writing the inventory as TOML failed.
    #[error("writing the inventory as TOML: {0}")]
    Write(String),
}

/// A cross-field problem in an inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A name is empty or has characters other than letters, digits, `.`, `-`, `_`.
    #[error("{kind} name `{name}` is not valid: use letters, digits, `.`, `-` and `_`")]
    BadName {
        /// `host` or `group`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// Two hosts share a name.
    #[error("two hosts are named `{0}`; host names must be unique")]
    DuplicateName(String),
    /// Two groups share a name.
    #[error("two groups are named `{0}`; group names must be unique")]
    DuplicateGroup(String),
    /// Two hosts share address and port.
    #[error("hosts `{first}` and `{second}` both use {address} port {port}; each host needs its own address")]
    DuplicateAddress {
        /// The first host.
        first: String,
        /// The second host.
        second: String,
        /// The shared address.
        address: String,
        /// The shared port.
        port: u16,
    },
    /// A host has an empty address.
    #[error("host `{0}` has no address")]
    NoAddress(String),
    /// An address that is no IP address or host name.
    #[error("host `{host}`: address \"{address}\" {why}")]
    BadAddress {
        /// The host.
        host: String,
        /// The address as written.
        address: String,
        /// What is wrong and what to write.
        why: String,
    },
    /// A role word that is a slip of a known role.
    #[error("{whose}: role `{role}` is not known; did you mean `{meant}`? (roles: server, agent, gpu, bastion, or a free label not close to them)")]
    UnknownRole {
        /// `host \`x\`` or `group \`y\``.
        whose: String,
        /// The word as written.
        role: String,
        /// The role it was likely meant as.
        meant: &'static str,
    },
    /// Port 0.
    #[error("host `{0}` has port 0; use a port from 1 to 65535")]
    BadPort(String),
    /// No user on the host nor in `[defaults]`.
    #[error("host `{0}` has no user: set `user` on the host or in [defaults]")]
    NoUser(String),
    /// No credentials on the host nor in `[defaults]`.
    #[error("host `{0}` has no credentials: set `key`, `password_env` or `password = \"prompt\"`")]
    NoAuth(String),
    /// More than one credential.
    #[error("host `{0}` sets more than one of `key`, `password_env` and `password`; keep one")]
    TwoAuths(String),
    /// A clear-text password in the file.
    #[error("host `{host}`: `{key}` may only be \"prompt\"; never write a password into the inventory, use `{key}_env`")]
    ClearTextSecret {
        /// The host (or `[defaults]`).
        host: String,
        /// The key.
        key: &'static str,
    },
    /// A key passphrase without a key.
    #[error("host `{0}` sets a key passphrase but no `key`")]
    PassphraseWithoutKey(String),
    /// Both `_env` and prompt for the same secret.
    #[error("host `{host}` sets both `{key}_env` and `{key}`; keep one")]
    TwoSources {
        /// The host.
        host: String,
        /// The key.
        key: &'static str,
    },
    /// `sudo` has a value other than the three known.
    #[error("host `{host}`: sudo = \"{value}\" is not known; use \"none\", \"passwordless\" or \"password\"")]
    BadSudo {
        /// The host.
        host: String,
        /// The value.
        value: String,
    },
    /// `sudo = "password"` without a password source.
    #[error("host `{0}` has sudo = \"password\" but no `sudo_password_env` or `sudo_password = \"prompt\"`")]
    SudoWithoutPassword(String),
    /// A sudo password with `sudo = "none"` or `"passwordless"`.
    #[error("host `{host}` has sudo = \"{sudo}\" and a sudo password; drop one")]
    SudoPasswordUnused {
        /// The host.
        host: String,
        /// The sudo mode.
        sudo: String,
    },
    /// A group lists a host that does not exist.
    #[error("group `{group}` lists host `{host}`, which is not in the inventory")]
    UnknownMember {
        /// The group.
        group: String,
        /// The missing host.
        host: String,
    },
    /// A host names a group that does not exist.
    #[error("host `{host}` names group `{group}`, which is not in the inventory")]
    UnknownGroup {
        /// The host.
        host: String,
        /// The missing group.
        group: String,
    },
    /// A group without members.
    #[error("group `{0}` has no hosts; add hosts or remove it")]
    EmptyGroup(String),
    /// A bastion that is not a host of the inventory.
    #[error(
        "host `{host}` goes through bastion `{bastion}`, which is not a host in the inventory"
    )]
    UnknownBastion {
        /// The host.
        host: String,
        /// The missing bastion.
        bastion: String,
    },
    /// Bastions that lead back to where they started.
    #[error("bastions form a loop: {}", chain.join(" -> "))]
    BastionLoop {
        /// The hosts on the loop, first repeated at the end.
        chain: Vec<String>,
    },
    /// Two groups give a host different bastions.
    #[error("host `{host}` gets bastion `{first}` and `{second}` from its groups; set `bastion` on the host")]
    TwoBastions {
        /// The host.
        host: String,
        /// One bastion.
        first: String,
        /// The other.
        second: String,
    },
    /// A host in two clusters.
    #[error(
        "host `{host}` is in two clusters, `{first}` and `{second}`; a host belongs to one cluster"
    )]
    TwoClusters {
        /// The host.
        host: String,
        /// One cluster.
        first: String,
        /// The other.
        second: String,
    },
    /// A role that other roles need has no hosts.
    #[error("role `{role}` has no hosts in {cluster} but {needed_by} needs one")]
    RoleWithoutHosts {
        /// The role.
        role: String,
        /// The cluster (or "the inventory").
        cluster: String,
        /// Which host needs it.
        needed_by: String,
    },
}
