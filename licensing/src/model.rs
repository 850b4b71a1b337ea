//! The license model: what a vendor grants (the payload inside the encrypted license), the
//! issue spec a vendor writes, and the usage a site reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{LicenseError, Result};
use crate::file::Alg;
use crate::fingerprint::Fingerprint;
use crate::time::{parse_date, start_of_day, DAY};

/// What a license allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entitlements {
    /// Maximum nodes in the cluster.
    pub max_nodes: u32,
    /// Maximum GPUs in the cluster; `None` is unlimited.
    pub max_gpus: Option<u32>,
    /// Named modules with their values (`true`, a count, a tier name...).
    pub modules: BTreeMap<String, serde_json::Value>,
}

/// The decrypted license payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    /// License id (`lic-` and 16 hex digits).
    pub id: String,
    /// Customer name.
    pub customer: String,
    /// Product, `ferry` by default.
    pub product: String,
    /// Edition, `standard` by default.
    pub edition: String,
    /// What is granted.
    pub entitlements: Entitlements,
    /// Unix seconds when the vendor issued it.
    pub issued: i64,
    /// First valid second.
    pub not_before: i64,
    /// First second after the last valid day.
    pub expires: i64,
    /// Days after `expires` during which the license still works, with a warning.
    pub grace_days: u32,
    /// Monotonic per customer: a lower sequence than the installed one is refused.
    pub sequence: u64,
    /// Issuer key id.
    pub issuer: String,
    /// The request this license answers.
    pub request: String,
    /// The licensed hosts' fingerprint.
    pub fingerprint: Fingerprint,
}

impl Entitlements {
    /// Whether the license grants module `name`: it is listed with a value that is not `false`,
    /// `0`, `""` or `null` (`true`, a count, a tier name all grant it).
    pub fn grants(&self, name: &str) -> bool {
        match self.modules.get(name) {
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => false,
            Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
            Some(serde_json::Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }

    /// The modules granted, by name.
    pub fn granted(&self) -> Vec<&str> {
        self.modules
            .keys()
            .filter(|k| self.grants(k))
            .map(String::as_str)
            .collect()
    }
}

impl License {
    /// The end of the grace period (first second the license no longer works).
    pub fn grace_end(&self) -> i64 {
        self.expires
            .saturating_add(i64::from(self.grace_days) * DAY)
    }
}

/// What a site uses, to check against the entitlements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Nodes in the cluster.
    pub nodes: u32,
    /// GPUs across the cluster.
    pub gpus: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    customer: String,
    expires: String,
    max_nodes: u32,
    max_gpus: Option<u32>,
    product: Option<String>,
    edition: Option<String>,
    not_before: Option<String>,
    grace_days: Option<u32>,
    sequence: Option<u64>,
    alg: Option<String>,
    #[serde(default)]
    modules: BTreeMap<String, toml::Value>,
}

/// A vendor's description of the license to issue (TOML, see docs/license-format.md).
#[derive(Debug, Clone, PartialEq)]
pub struct IssueSpec {
    /// Customer name.
    pub customer: String,
    /// First second after the last valid day.
    pub expires: i64,
    /// First valid second; `None` is the start of the issue day.
    pub not_before: Option<i64>,
    /// Grace period in days.
    pub grace_days: u32,
    /// Product name.
    pub product: String,
    /// Edition name.
    pub edition: String,
    /// Entitlements.
    pub entitlements: Entitlements,
    /// Sequence; `None` is the issue time in Unix seconds.
    pub sequence: Option<u64>,
    /// Cipher.
    pub alg: Alg,
}

impl IssueSpec {
    /// Parses and validates a TOML spec. Unknown keys are refused.
    pub fn from_toml(text: &str) -> Result<Self> {
        let raw: RawSpec =
            toml::from_str(text).map_err(|e| LicenseError::Spec(e.message().to_owned()))?;
        let date = |key: &str, v: &str| {
            parse_date(v).ok_or_else(|| {
                LicenseError::Spec(format!("`{key}` = \"{v}\" is not a date like 2027-12-31"))
            })
        };
        if raw.customer.trim().is_empty() {
            return Err(LicenseError::Spec("`customer` is empty".into()));
        }
        if raw.max_nodes == 0 {
            return Err(LicenseError::Spec("`max_nodes` must be at least 1".into()));
        }
        let expires = date("expires", &raw.expires)? + DAY;
        let not_before = raw
            .not_before
            .as_deref()
            .map(|v| date("not_before", v))
            .transpose()?;
        if let Some(nb) = not_before {
            if nb >= expires {
                return Err(LicenseError::Spec("`not_before` is after `expires`".into()));
            }
        }
        let alg = match raw.alg.as_deref() {
            None => Alg::XChaCha20Poly1305,
            Some(a) => Alg::parse(a)?,
        };
        let modules = raw
            .modules
            .into_iter()
            .map(|(k, v)| {
                let json = serde_json::to_value(&v)
                    .map_err(|e| LicenseError::Spec(format!("module `{k}`: {e}")))?;
                Ok((k, json))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            customer: raw.customer,
            expires,
            not_before,
            grace_days: raw.grace_days.unwrap_or(14),
            product: raw.product.unwrap_or_else(|| "ferry".into()),
            edition: raw.edition.unwrap_or_else(|| "standard".into()),
            entitlements: Entitlements {
                max_nodes: raw.max_nodes,
                max_gpus: raw.max_gpus,
                modules,
            },
            sequence: raw.sequence,
            alg,
        })
    }

    /// Builds the payload for one request, issued at `now` by key `issuer`.
    pub fn license_for(
        &self,
        request_id: &str,
        fingerprint: &Fingerprint,
        issuer: &str,
        now: i64,
    ) -> Result<License> {
        let mut id = [0u8; 8];
        crate::random(&mut id)?;
        Ok(License {
            id: format!("lic-{}", hex::encode(id)),
            customer: self.customer.clone(),
            product: self.product.clone(),
            edition: self.edition.clone(),
            entitlements: self.entitlements.clone(),
            issued: now,
            not_before: self.not_before.unwrap_or_else(|| start_of_day(now)),
            expires: self.expires,
            grace_days: self.grace_days,
            sequence: self.sequence.unwrap_or(u64::try_from(now).unwrap_or(0)),
            issuer: issuer.to_owned(),
            request: request_id.to_owned(),
            fingerprint: fingerprint.clone(),
        })
    }
}

#[cfg(test)]
mod grants_tests {
    use super::Entitlements;

    #[test]
    fn a_module_is_granted_by_any_value_but_false_zero_empty_or_null() {
        let modules = serde_json::json!({
            "mcd": true, "seats": 5, "tier": "gold", "off": false, "none": 0,
            "blank": "", "null": null, "list": ["a"]
        });
        let e = Entitlements {
            max_nodes: 1,
            max_gpus: None,
            modules: serde_json::from_value(modules).unwrap_or_default(),
        };
        for m in ["mcd", "seats", "tier", "list"] {
            assert!(e.grants(m), "{m}");
        }
        for m in ["off", "none", "blank", "null", "absent"] {
            assert!(!e.grants(m), "{m}");
        }
        assert_eq!(e.granted(), ["list", "mcd", "seats", "tier"]);
    }
}
