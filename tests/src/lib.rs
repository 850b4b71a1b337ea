//! Shared harness for ferry's cross-crate tests: real OpenSSH servers and a real Docker engine,
//! started by the tests themselves on private sockets and loopback ports.

pub mod docker;
pub mod sshd;
