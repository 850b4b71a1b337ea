//! The baseline resources. `system` holds the kernel, network and identity settings;
//! `software` what is installed from the bundle and the services that run.

pub mod containerd;
pub mod default_route;
pub mod dns;
pub mod gpu;
pub mod hostname;
pub mod hosts_file;
pub mod limits;
pub mod marker;
pub mod modules;
pub mod packages;
pub mod software;
pub mod swap;
pub mod sysctl;
pub mod system;
pub mod timesync;
