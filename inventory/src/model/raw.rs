//! The inventory file exactly as written: serde structs that reject unknown keys. Nothing is
//! checked across fields here; `Inventory::try_from` does that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    /// Settings every host takes unless it sets its own.
    #[serde(default, skip_serializing_if = "RawDefaults::is_empty")]
    pub defaults: RawDefaults,
    /// Inventory-wide variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, toml::Value>,
    /// The hosts.
    #[serde(default)]
    pub hosts: Vec<RawHost>,
    /// Named sets of hosts that share roles, a bastion, a cluster or variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<RawGroup>,
}

/// `[defaults]`: connection settings shared by all hosts.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// SSH port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Login user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Private key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Environment variable holding the key's passphrase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_passphrase_env: Option<String>,
    /// `"prompt"`: ask for the key's passphrase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_passphrase: Option<String>,
    /// Environment variable holding the login password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// `"prompt"`: ask for the login password. Clear-text values are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `"none"`, `"passwordless"` or `"password"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo: Option<String>,
    /// Environment variable holding the sudo password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo_password_env: Option<String>,
    /// `"prompt"`: ask for the sudo password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo_password: Option<String>,
    /// Jump host, by host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bastion: Option<String>,
}

impl RawDefaults {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One `[[hosts]]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// Unique name.
    pub name: String,
    /// Address or DNS name.
    pub address: String,
    /// SSH port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Login user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Private key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Environment variable holding the key's passphrase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_passphrase_env: Option<String>,
    /// `"prompt"`: ask for the key's passphrase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_passphrase: Option<String>,
    /// Environment variable holding the login password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// `"prompt"`: ask for the login password. Clear-text values are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `"none"`, `"passwordless"` or `"password"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo: Option<String>,
    /// Environment variable holding the sudo password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo_password_env: Option<String>,
    /// `"prompt"`: ask for the sudo password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo_password: Option<String>,
    /// Jump host, by host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bastion: Option<String>,
    /// Roles: `server`, `agent`, `gpu` or free words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Groups this host belongs to (besides groups that list it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The cluster this host belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Free key/value labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Host variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, toml::Value>,
}

/// One `[[groups]]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// Unique group name.
    pub name: String,
    /// Member host names (hosts may also name the group themselves).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Roles every member takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Jump host for members that do not set their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bastion: Option<String>,
    /// The cluster every member belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Labels every member takes (a host's own labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Group variables (a host's own variables win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, toml::Value>,
}
