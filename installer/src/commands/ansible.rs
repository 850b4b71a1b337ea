//! Runs Ansible compatibility commands.

use std::process::ExitCode;

use crate::cmdline::ansible::ImportAnsibleArgs;

/// `ferry inventory import-ansible`
pub fn import(_args: ImportAnsibleArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("importing Ansible inventories is not built yet")
}
