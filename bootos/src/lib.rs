//! The host OS layer: idempotent resources (observe, diff, apply, revert) for a host
//! baseline. Later, the bootable appliance image and PXE.
