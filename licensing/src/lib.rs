//! ferry licenses: the license model, vendor signing and encryption, air-gapped
//! activation (request/response), hardware fingerprints, verification, clock and replay guards.
//! It stands alone: it never reaches hosts itself; callers hand it fingerprint components.
