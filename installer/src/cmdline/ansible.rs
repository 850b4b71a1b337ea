//! Options for Ansible compatibility commands.

/// `ferry inventory import-ansible`
#[derive(Debug, clap::Args)]
pub struct ImportAnsibleArgs {}
