//! The vm-tests testbed seen through ferry: a VM as an inventory entry, a [`Target`], or an
//! SSH session with ferry's own client, so tests of host resources and of the `ferry` CLI
//! reach real VMs the way an install does.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_inventory::ssh::{Session, SessionOptions};
use ferry_inventory::{Auth, Sudo, Target};
use vm_tests::{Testbed, Vm};

/// The VM as root with the testbed's key.
pub fn target(vm: &Vm) -> Target {
    Target {
        name: vm.name().to_string(),
        address: vm.address().to_string(),
        port: vm.ssh_port(),
        user: "root".into(),
        auth: Auth::Key {
            path: vm.private_key().to_path_buf(),
            passphrase: None,
        },
        sudo: Sudo::None,
        bastion: None,
    }
}

/// Session options with a known_hosts file under `dir` (trust on first use there) and
/// per-host logs in `dir/runs`.
pub fn session_options(dir: &Path) -> SessionOptions {
    let mut opts = SessionOptions::new(dir.join("known_hosts"));
    opts.connect_timeout = Duration::from_secs(20);
    opts.run_dir = Some(dir.join("runs"));
    opts
}

/// A ferry SSH session to the VM as root.
pub async fn session(vm: &Vm, dir: &Path) -> Arc<Session> {
    match Session::connect(&target(vm), &session_options(dir)).await {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("connecting to {} with ferry's client: {e}", vm.name()),
    }
}

/// An inventory (TOML) with every VM of the bed as root with the testbed key; the first
/// `servers` VMs get the `server` role, the others `agent`.
pub fn inventory_toml(bed: &Testbed, servers: usize) -> String {
    let mut out = String::new();
    for (i, vm) in bed.vms().iter().enumerate() {
        let role = if i < servers { "server" } else { "agent" };
        out.push_str(&format!(
            "[[hosts]]\nname = \"{}\"\naddress = \"{}\"\nport = {}\nuser = \"root\"\nkey = \"{}\"\nroles = [\"{role}\"]\n\n",
            vm.name(),
            vm.address(),
            vm.ssh_port(),
            vm.private_key().display()
        ));
    }
    out
}
