//! The baseline resources. `system` holds the kernel, network and identity settings;
//! `software` what is installed from the bundle and the services that run.

pub mod containerd;
pub mod gpu;
pub mod marker;
pub mod packages;
pub mod software;
pub mod system;
pub mod timesync;
