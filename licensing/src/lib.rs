//! ferry licenses: the license model, vendor signing and encryption, air-gapped
//! activation (request/response), hardware fingerprints, verification, clock and replay guards.
//! It stands alone: it never reaches hosts itself; callers hand it fingerprint components.
//! The file format and every rule are specified in docs/license-format.md.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod armor;
mod error;
mod file;
mod fingerprint;
mod keys;
mod model;
mod request;
mod state;
pub mod time;
mod verify;

pub use error::{LicenseError, Result};
pub use file::{issue, Alg, LicenseFile};
pub use fingerprint::{Fingerprint, HostComponents, HostFingerprint, Match};
pub use keys::{IssuerKey, IssuerPublicKey, KeyId, TrustRoot, TEST_BUILD};
pub use model::{Entitlements, IssueSpec, License, Usage};
pub use request::{ActivationRequest, ActivationSecret};
pub use state::{write_atomic, write_new, StateDir, Status, DEFAULT_STATE_DIR};
pub use verify::{check, open, Guards, Notice, SiteFacts, Verified, CLOCK_TOLERANCE_SECS};

/// Fills `buf` from the operating system's random source.
pub(crate) fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| LicenseError::Random(e.to_string()))
}
