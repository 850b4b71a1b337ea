//! A ferry bundle served as a read-only OCI registry: the OCI Distribution API's pull side
//! (`/v2/`, manifests by tag and digest, blobs with ranges, the catalog and tags lists) read
//! straight out of the bundle or its parts, with no unpacking, every blob checked against its
//! digest as it is read. The nodes' containerd uses it as the mirror of the registries the
//! images came from (docs/registry.md).
//!
//! It serves only what the signed manifest lists and never writes; it knows nothing of hosts or
//! clusters (the installer decides where it runs). [`tls`] makes the site CA its HTTPS uses.

pub mod catalog;
pub mod error;
pub mod server;
pub mod tls;

pub use catalog::{Catalog, Image};
pub use error::RegistryError;
pub use server::{bind, Event, Registry};
