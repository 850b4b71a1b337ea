//! The host OS layer: idempotent resources (observe, diff, apply, revert) for a host's
//! baseline — hostname, hosts file, sysctl, kernel modules, swap, time sync, DNS, limits,
//! the offline package repository, the container runtime, GPU drivers. It knows hosts through
//! the [`host::Host`] trait only; plans, journals and rollback live in the installer. Later:
//! the bootable appliance image and PXE.

pub mod baseline;
pub mod host;
pub mod os;
pub mod resource;
pub mod resources;
pub mod spec;
pub mod tree;

pub use baseline::{resources_for, BaselineConfig, HostContext, Member};
pub use host::{
    CmdOutput, DataOutput, Effect, FileBytes, FileState, Host, HostError, InstalledPackage, Kept,
    Prefetched, SshHost,
};
pub use resource::{Change, DynResource, Resource, ResourceError, Upload};
pub use spec::ResourceSpec;
