//! Every way a license operation can fail. Each message names the cause and what to do next.

use std::path::PathBuf;

/// An error from the licensing crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LicenseError {
    /// The file has no content at all.
    #[error("{what} is empty: copy the whole file again")]
    Empty {
        /// What kind of file was expected.
        what: &'static str,
    },
    /// The first line is not the expected BEGIN line.
    #[error("not a {what}: the first line must be `-----BEGIN {label}-----`{found}")]
    NotArmored {
        /// What kind of file was expected.
        what: &'static str,
        /// The armor label that was expected.
        label: &'static str,
        /// A hint about what was found instead (may be empty).
        found: String,
    },
    /// The END line is missing.
    #[error("{what} is truncated: the line `-----END {label}-----` is missing; copy the whole file again")]
    Truncated {
        /// What kind of file was expected.
        what: &'static str,
        /// The armor label that was expected.
        label: &'static str,
    },
    /// The armor checksum does not match the body.
    #[error("{what} was changed or damaged: its checksum does not match its contents; use the original file as ferry wrote it")]
    Checksum {
        /// What kind of file was checked.
        what: &'static str,
    },
    /// The armored body or its JSON is malformed.
    #[error("{what} is damaged: {detail}; use the original file as ferry wrote it")]
    Malformed {
        /// What kind of file was parsed.
        what: &'static str,
        /// What exactly is wrong.
        detail: String,
    },
    /// A format version this ferry does not know.
    #[error("{what} has format version {version}, this ferry reads version 1: update ferry")]
    UnsupportedVersion {
        /// What kind of file was parsed.
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// An algorithm name that is not one of the pinned ones.
    #[error("unknown license algorithm `{0}`: this ferry accepts only `ed25519+xchacha20poly1305` and `ed25519+aes-256-gcm`; ask the vendor to reissue with one of them")]
    UnknownAlg(String),
    /// The license names an issuer key that is not one this ferry trusts.
    #[error("license is signed by issuer key {kid}, which is not a vendor key built into this ferry (it trusts: {trusted}): it was not issued by the vendor; ask the vendor for a license")]
    UntrustedKey {
        /// The key id the license names.
        kid: String,
        /// The trusted key ids, comma separated.
        trusted: String,
    },
    /// `--pubkey` named a key that is not built into this ferry.
    #[error("public key {kid} is not a vendor key built into this ferry (built in: {built_in}); --pubkey can only choose among those: leave it out, or name one of them")]
    NotBuiltIn {
        /// The key id offered.
        kid: String,
        /// The built-in key ids, comma separated.
        built_in: String,
    },
    /// The Ed25519 signature does not verify.
    #[error("license signature is invalid: the file was changed after the vendor signed it, or signed by another key posing as {kid}; ask the vendor for the original file")]
    BadSignature {
        /// The key id the license names.
        kid: String,
    },
    /// No activation record exists for the request the license answers.
    #[error("license answers activation request {request}, which was not made on this site ({path} does not exist): it belongs to another site, or this site's license state was lost; run `ferry license request` and ask the vendor for a license for that request")]
    NoActivation {
        /// The request id the license names.
        request: String,
        /// Where the activation record was looked for.
        path: PathBuf,
    },
    /// The payload does not decrypt with this site's activation secret.
    #[error("license cannot be decrypted with this site's activation secret for request {request}: it was issued for another site; ask the vendor for a license for this site's request")]
    Decrypt {
        /// The request id the license names.
        request: String,
    },
    /// The hardware does not match the licensed fingerprint.
    #[error("license is for other hardware: {detail}; if hardware was replaced, run `ferry license request` and ask the vendor for a new license")]
    OtherHardware {
        /// Which hosts failed to match and how.
        detail: String,
    },
    /// The license is expired and its grace period is over.
    #[error("license {id} expired on {expired} and its {grace_days}-day grace period ended on {grace_end}; ask the vendor for a renewal")]
    Expired {
        /// License id.
        id: String,
        /// Last valid day (YYYY-MM-DD).
        expired: String,
        /// Grace days.
        grace_days: u32,
        /// Day the grace ended (YYYY-MM-DD).
        grace_end: String,
    },
    /// The license is not valid yet.
    #[error("license {id} is not valid before {not_before} (today is {today}); install it on or after that day, or check this machine's clock")]
    NotYetValid {
        /// License id.
        id: String,
        /// First valid day.
        not_before: String,
        /// Today's date as seen by this machine.
        today: String,
    },
    /// The clock is earlier than the highest time seen on this site, beyond the tolerance.
    #[error("the clock was set back: it says {now}, but this site has already seen {high_water}; set the clock to the correct time (UTC), or, if it is correct and was once set ahead, run `ferry license request` and activate the vendor's license for that request, which resets this guard")]
    ClockRollback {
        /// The current time (RFC 3339, UTC).
        now: String,
        /// The highest time seen (RFC 3339, UTC).
        high_water: String,
    },
    /// An older license than the installed one.
    #[error("license {id} has sequence {got}, older than the installed license {installed_id} (sequence {installed}): an older license cannot replace a newer one; install the newest license from the vendor")]
    Replay {
        /// The offered license id.
        id: String,
        /// Its sequence.
        got: u64,
        /// The installed license id.
        installed_id: String,
        /// The installed sequence.
        installed: u64,
    },
    /// More nodes in use than licensed.
    #[error("{used} nodes are in use but the license allows {max}; remove nodes or ask the vendor for a license with more nodes")]
    TooManyNodes {
        /// Nodes in use.
        used: u32,
        /// Nodes allowed.
        max: u32,
    },
    /// More GPUs in use than licensed.
    #[error("{used} GPUs are in use but the license allows {max}; remove GPUs or ask the vendor for a license with more GPUs")]
    TooManyGpus {
        /// GPUs in use.
        used: u32,
        /// GPUs allowed.
        max: u32,
    },
    /// A guard (guard.json or the guard inside an activation record) fails its MAC or is unreadable.
    #[error("license state in {path} is damaged or was edited ({detail}); re-activate with a new license from the vendor: run `ferry license request` and activate the license issued for it")]
    GuardTampered {
        /// The file holding the guard.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Part of the license state was removed, or its copies disagree.
    #[error("license state in {path} is missing or incomplete ({detail}); re-activate with a new license from the vendor: run `ferry license request` and activate the license issued for it")]
    StateMissing {
        /// The state directory.
        path: PathBuf,
        /// What is missing or disagrees.
        detail: String,
    },
    /// No license is installed.
    #[error("no license is installed in {0}; run `ferry license activate LICENSE`")]
    NotInstalled(PathBuf),
    /// The issue spec is invalid.
    #[error("license spec is invalid: {0}")]
    Spec(String),
    /// A key file is invalid.
    #[error("{0}")]
    Key(String),
    /// The system random source failed.
    #[error("the system random number source failed: {0}")]
    Random(String),
    /// Reading or writing a file failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done ("reading", "writing").
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = LicenseError> = std::result::Result<T, E>;
