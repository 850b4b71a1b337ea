//! Hardware fingerprints: per host, salted hashes of machine-id, DMI product UUID, disk serials
//! and MACs, and the tolerant match rule of docs/license-format.md. Callers gather the plain
//! components; this module never reads a machine.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The plain identifiers of one host, as gathered on it. Never leaves the site in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostComponents {
    /// Host name, for messages only (not part of the match).
    pub name: String,
    /// `/etc/machine-id`.
    pub machine_id: Option<String>,
    /// DMI product UUID (`/sys/class/dmi/id/product_uuid`).
    pub product_uuid: Option<String>,
    /// Serial numbers of physical disks.
    pub disk_serials: Vec<String>,
    /// MAC addresses of physical network interfaces.
    pub macs: Vec<String>,
}

/// One host's hashed components.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFingerprint {
    /// Host name, for messages only.
    pub name: String,
    /// Hashed machine-id.
    pub machine_id: Option<String>,
    /// Hashed product UUID.
    pub product_uuid: Option<String>,
    /// Hashed disk serials, sorted.
    pub disks: Vec<String>,
    /// Hashed MACs, sorted.
    pub macs: Vec<String>,
}

/// A site's fingerprint: the salt and every host's hashed components.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// 16 random bytes, base64.
    pub salt: String,
    /// One entry per host.
    pub hosts: Vec<HostFingerprint>,
}

fn hash_component(salt: &[u8], kind: &str, value: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(salt)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(kind.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..10])
}

fn normalise(value: &str) -> Option<String> {
    let v = value.trim().to_ascii_lowercase();
    (!v.is_empty()).then_some(v)
}

fn normalise_mac(value: &str) -> Option<String> {
    let v = normalise(value)?.replace('-', ":");
    // All-zero MACs belong to no hardware.
    (v != "00:00:00:00:00:00").then_some(v)
}

impl HostFingerprint {
    /// Hashes `components` under `salt`.
    pub fn new(salt: &[u8], c: &HostComponents) -> Self {
        let hash_all = |kind: &str, values: &[String], norm: fn(&str) -> Option<String>| {
            let mut out: Vec<String> = values
                .iter()
                .filter_map(|v| norm(v))
                .map(|v| hash_component(salt, kind, &v))
                .collect();
            out.sort();
            out.dedup();
            out
        };
        Self {
            name: c.name.clone(),
            machine_id: c
                .machine_id
                .as_deref()
                .and_then(normalise)
                .map(|v| hash_component(salt, "machine-id", &v)),
            product_uuid: c
                .product_uuid
                .as_deref()
                .and_then(normalise)
                .map(|v| hash_component(salt, "product-uuid", &v)),
            disks: hash_all("disk", &c.disk_serials, normalise),
            macs: hash_all("mac", &c.macs, normalise_mac),
        }
    }

    /// Scores `current` against this (licensed) host: (score, possible), in tenths of a point.
    /// Weights: machine-id 30, product UUID 30, disks 20 × share present, MACs 20 × share present.
    pub fn score(&self, current: &HostFingerprint) -> Match {
        let mut m = Match::default();
        let mut single = |licensed: &Option<String>, cur: &Option<String>| -> bool {
            if let Some(l) = licensed {
                m.possible += 30;
                if cur.as_ref() == Some(l) {
                    m.score += 30;
                    return true;
                }
            }
            false
        };
        let id = single(&self.machine_id, &current.machine_id);
        let uuid = single(&self.product_uuid, &current.product_uuid);
        m.identity = id || uuid;
        for (licensed, cur) in [(&self.disks, &current.disks), (&self.macs, &current.macs)] {
            if !licensed.is_empty() {
                let present = licensed.iter().filter(|l| cur.contains(l)).count() as u32;
                m.possible += 20;
                m.score += 20 * present / licensed.len() as u32;
            }
        }
        m
    }
}

/// The result of matching one licensed host against one current host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Match {
    /// Points scored, in tenths.
    pub score: u32,
    /// Points possible, in tenths.
    pub possible: u32,
    /// Whether machine-id or product UUID matched.
    pub identity: bool,
}

impl Match {
    /// The rule: at least 70% of the possible points and machine-id or product UUID matching.
    pub fn accepted(&self) -> bool {
        self.possible > 0 && self.identity && self.score * 10 >= self.possible * 7
    }
}

impl Fingerprint {
    /// Hashes every host's components under a salt.
    pub fn new(salt: &[u8; 16], hosts: &[HostComponents]) -> Self {
        Self {
            salt: STANDARD.encode(salt),
            hosts: hosts
                .iter()
                .map(|h| HostFingerprint::new(salt, h))
                .collect(),
        }
    }

    /// SHA-256("ferry-fingerprint v1\0" || canonical JSON), the value mixed into the payload key.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"ferry-fingerprint v1\0");
        // Serialising plain strings and vectors cannot fail.
        h.update(serde_json::to_vec(self).unwrap_or_default());
        h.finalize().into()
    }

    /// Matches the current hosts against this (licensed) fingerprint. A site matches when a
    /// strict majority of licensed hosts each match a distinct current host. The error text says
    /// which licensed hosts were not found and how close the best candidate came.
    pub fn matches(&self, current: &[HostComponents]) -> std::result::Result<(), String> {
        let Ok(salt) = STANDARD.decode(&self.salt) else {
            return Err("the licensed fingerprint has no valid salt".into());
        };
        let current: Vec<HostFingerprint> = current
            .iter()
            .map(|c| HostFingerprint::new(&salt, c))
            .collect();
        let mut used = vec![false; current.len()];
        let mut matched = 0usize;
        let mut missing = Vec::new();
        for licensed in &self.hosts {
            let best = current
                .iter()
                .enumerate()
                .filter(|(i, _)| !used[*i])
                .map(|(i, c)| (i, licensed.score(c)))
                .max_by_key(|(_, m)| (m.accepted(), m.score));
            match best {
                Some((i, m)) if m.accepted() => {
                    used[i] = true;
                    matched += 1;
                }
                Some((i, m)) => missing.push(format!(
                    "licensed host `{}` best matches `{}` at {}% (needs 70% with machine-id or product UUID matching{})",
                    licensed.name,
                    current[i].name,
                    m.score * 100 / m.possible.max(1),
                    if m.identity { "" } else { "; neither matches" }
                )),
                None => missing.push(format!("licensed host `{}` has no candidate", licensed.name)),
            }
        }
        if !self.hosts.is_empty() && matched * 2 > self.hosts.len() {
            Ok(())
        } else if self.hosts.is_empty() {
            Err("the license names no hosts".into())
        } else {
            Err(format!(
                "{} of {} licensed hosts found: {}",
                matched,
                self.hosts.len(),
                missing.join("; ")
            ))
        }
    }
}
