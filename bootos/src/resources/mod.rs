//! The baseline resources. `system` holds the kernel, network and identity settings;
//! `software` what is installed from the bundle and the services that run.

pub mod marker;
pub mod software;
pub mod system;
