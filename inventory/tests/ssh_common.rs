//! Helpers shared by the ssh_* tests (included with `#[path]`): targets for the harness's
//! users on a real sshd, and session options with a private known_hosts and run dir.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_inventory::ssh::SessionOptions;
use ferry_inventory::{Auth, Secret, Sudo, Target};
use ferry_tests::sshd::{self, Sshd};

/// A target for `user` on `sshd` logging in with the fixture's ed25519 key.
pub fn key_target(name: &str, sshd: &Sshd, user: &str) -> Target {
    Target {
        name: name.into(),
        address: sshd.address.clone(),
        port: sshd.port,
        user: user.into(),
        auth: Auth::Key {
            path: sshd::fixture().keys.ed25519.clone(),
            passphrase: None,
        },
        sudo: Sudo::None,
        bastion: None,
    }
}

/// The password user on `sshd`.
pub fn password_target(name: &str, sshd: &Sshd, password: &str) -> Target {
    Target {
        auth: Auth::Password(Secret::new(password)),
        ..key_target(name, sshd, sshd::PASSWORD_USER)
    }
}

/// Options with the known_hosts and run dir inside `dir`, short timeouts.
pub fn options(dir: &Path) -> SessionOptions {
    let mut o = SessionOptions::new(dir.join("known_hosts"));
    o.connect_timeout = Duration::from_secs(5);
    o.auth_timeout = Duration::from_secs(15);
    o.backoff = Duration::from_millis(100);
    o.run_dir = Some(dir.join("run"));
    o
}

/// The host log of `host` in the run dir of `options(dir)`.
pub fn host_log(dir: &Path, host: &str) -> String {
    std::fs::read_to_string(log_path(dir, host)).unwrap_or_default()
}

/// Where `options(dir)` writes `host`'s log.
pub fn log_path(dir: &Path, host: &str) -> PathBuf {
    dir.join("run").join(format!("{host}.log"))
}
