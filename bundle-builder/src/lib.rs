//! The ferry bundle: one signed, content-addressed artifact that carries everything a
//! disconnected site needs. This crate owns the format (manifest, blobs, signature, parts),
//! building, verifying and reading blobs as streams. It knows nothing of hosts or clusters.

pub mod digest;
pub mod image;
pub mod source;

pub use digest::Digest;
pub use source::BlobSource;
