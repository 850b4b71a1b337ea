//! Real Linux hosts for tests: qemu VMs booted from a debootstrapped base image, on a
//! private bridge, with faults that can be injected for real.
//!
//! ```no_run
//! use vm_tests::{Testbed, VmSpec};
//! let bed = Testbed::start(3, &VmSpec::default())?;
//! let out = bed.vm(0).ssh("hostname")?;
//! assert_eq!(out.stdout_str().trim(), "vm0");
//! # Ok::<(), vm_tests::TestbedError>(())
//! ```
//!
//! What it owns: the base image (built once by `image/recipe.sh`, cached by a hash of the recipe
//! and the mirror), one bridge, one tap and one qcow2 overlay per VM, and the qemu processes.
//! What it must not do: touch any process or link it did not create, or give the VMs a route out.
//! Tests call [`start_or_skip`] so that a machine without qemu, root or a bridge says so in one
//! loud line, and fails when `CI=true`.

mod error;
mod image;
mod net;
mod prepared;
mod qmp;
mod snapshot;
mod testbed;
mod vm;

pub use error::TestbedError;
pub use image::{BaseImage, RECIPE};
pub use prepared::Preparation;
pub use testbed::{start_or_skip, start_prepared_or_skip, Testbed};
pub use vm::{Accel, NetemSide, SshOutput, User, Vm, VmSpec, USERS};

/// Whether tests run in CI (`CI=true`), where a testbed that cannot start is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
