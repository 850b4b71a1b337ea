//! The verification pipeline, pure: signature, decryption, fingerprint, clock, dates, sequence,
//! usage — in that order, the first failure being the error (docs/license-format.md).

use crate::error::{LicenseError, Result};
use crate::file::LicenseFile;
use crate::fingerprint::HostComponents;
use crate::keys::TrustRoot;
use crate::model::{License, Usage};
use crate::request::ActivationRequest;
use crate::time::{format_date, format_time, DAY};

/// How far the clock may be behind the highest time seen before it counts as set back: 48 hours.
/// A clock that was wrong by less (a time zone taken for UTC, a day typed wrong) and is then
/// corrected goes on working; the most it can stretch a license is these two days, once, since
/// the highest time seen never goes down. A clock that was further ahead needs the vendor's reset
/// (a license for a request made after the guards last moved, docs/license-format.md).
pub const CLOCK_TOLERANCE_SECS: i64 = 48 * 3600;

/// What the site looks like now.
#[derive(Debug, Clone)]
pub struct SiteFacts {
    /// Every host's plain fingerprint components.
    pub hosts: Vec<HostComponents>,
    /// Nodes and GPUs in use.
    pub usage: Usage,
    /// The current time, Unix seconds.
    pub now: i64,
}

/// The guards kept on the site (already MAC-checked): what a license is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guards {
    /// Id of the installed license (empty when none was ever installed).
    pub license: String,
    /// Highest sequence ever installed.
    pub sequence: u64,
    /// Highest time ever seen.
    pub high_water: i64,
    /// The clock guard is waived: the license answers a request made after the guards last
    /// moved, so the vendor issued it knowing the site as it stands (how a site whose clock was
    /// once set far ahead is reset). The sequence guard still holds.
    pub clock_reset: bool,
}

/// Something a valid license wants a person to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Expired, but within its grace period.
    InGrace {
        /// Last valid day.
        expired: String,
        /// Whole days until the grace period ends.
        days_left: i64,
    },
    /// Expires within 30 days.
    ExpiresSoon {
        /// Whole days left.
        days_left: i64,
    },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::InGrace { expired, days_left } => write!(
                f,
                "license expired on {expired}; it keeps working for {days_left} more days of grace: install a renewal now"
            ),
            Notice::ExpiresSoon { days_left } => {
                write!(f, "license expires in {days_left} days: ask the vendor for a renewal")
            }
        }
    }
}

/// A license that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The decrypted license.
    pub license: License,
    /// Whole days until expiry (negative within grace).
    pub days_left: i64,
    /// Things to tell a person.
    pub notices: Vec<Notice>,
}

/// Signature, then decryption: the license content, trusted but not yet checked against the site.
pub fn open(
    file: &LicenseFile,
    trusted: &TrustRoot,
    activation: &ActivationRequest,
) -> Result<License> {
    file.verify_signature(trusted)?;
    file.decrypt(activation)
}

/// Checks an opened license against the site and the guards (`None` when nothing is installed).
pub fn check(license: License, site: &SiteFacts, guards: Option<&Guards>) -> Result<Verified> {
    license
        .fingerprint
        .matches(&site.hosts)
        .map_err(|detail| LicenseError::OtherHardware { detail })?;
    let now = site.now;
    if let Some(g) = guards {
        if !g.clock_reset && now < g.high_water.saturating_sub(CLOCK_TOLERANCE_SECS) {
            return Err(LicenseError::ClockRollback {
                now: format_time(now),
                high_water: format_time(g.high_water),
            });
        }
    }
    if now < license.not_before {
        return Err(LicenseError::NotYetValid {
            id: license.id,
            not_before: format_date(license.not_before),
            today: format_date(now),
        });
    }
    if now >= license.grace_end() {
        return Err(LicenseError::Expired {
            id: license.id.clone(),
            expired: format_date(license.expires.saturating_sub(1)),
            grace_days: license.grace_days,
            grace_end: format_date(license.grace_end()),
        });
    }
    if let Some(g) = guards {
        if license.sequence < g.sequence {
            return Err(LicenseError::Replay {
                id: license.id,
                got: license.sequence,
                installed_id: g.license.clone(),
                installed: g.sequence,
            });
        }
    }
    let e = &license.entitlements;
    if site.usage.nodes > e.max_nodes {
        return Err(LicenseError::TooManyNodes {
            used: site.usage.nodes,
            max: e.max_nodes,
        });
    }
    if let Some(max) = e.max_gpus {
        if site.usage.gpus > max {
            return Err(LicenseError::TooManyGpus {
                used: site.usage.gpus,
                max,
            });
        }
    }
    let days_left = license.expires.saturating_sub(now).div_euclid(DAY);
    let mut notices = Vec::new();
    if now >= license.expires {
        notices.push(Notice::InGrace {
            expired: format_date(license.expires.saturating_sub(1)),
            days_left: license
                .grace_end()
                .saturating_sub(now)
                .saturating_add(DAY - 1)
                .div_euclid(DAY),
        });
    } else if days_left < 30 {
        notices.push(Notice::ExpiresSoon { days_left });
    }
    Ok(Verified {
        license,
        days_left,
        notices,
    })
}
