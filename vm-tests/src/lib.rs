//! Real Linux hosts for tests: qemu VMs booted from a debootstrapped base image, on a
//! private bridge, with faults that can be injected for real.
