//! ferry inventory: hosts, groups, roles and credentials; SSH sessions, file transfer and
//! known_hosts; the agent protocol and host facts. It knows nothing of clusters.

pub mod target;

pub use target::{Auth, Secret, Sudo, Target};
