//! What the wizard is building: the answer file as a TOML document (keys the wizard does not
//! show are kept as found, so `--edit` loses nothing) and the inventory it names. Saving writes
//! both; checking runs the very code `ferry validate` runs, so every message is the same.
//! Secrets typed in the wizard stay in memory: the files name environment variables only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ferry_inventory::model::raw::{RawHost, RawInventory};
use ferry_inventory::{PromptRequest, Secret, SecretSource};

use crate::config::InstallConfig;

/// The answer file and inventory being edited.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Where the answer file is saved.
    pub answers_path: PathBuf,
    /// The answer file as a document.
    pub answers: toml::Table,
    /// The inventory (hosts, and whatever else the file held).
    pub inventory: RawInventory,
    /// Secrets typed in the wizard, by the environment variable the inventory names for them.
    /// Never written anywhere.
    pub secrets: BTreeMap<String, Secret>,
}

/// The inventory file name a new answer file names.
pub const DEFAULT_INVENTORY: &str = "inventory.toml";

impl Draft {
    /// A new answer file at `answers_path` naming `inventory.toml` beside it.
    pub fn new(answers_path: PathBuf) -> Draft {
        let mut answers = toml::Table::new();
        answers.insert("inventory".into(), DEFAULT_INVENTORY.into());
        let mut cluster = toml::Table::new();
        cluster.insert("name".into(), "".into());
        answers.insert("cluster".into(), cluster.into());
        Draft {
            answers_path,
            answers,
            inventory: RawInventory::default(),
            secrets: BTreeMap::new(),
        }
    }

    /// The answer file at `path` and its inventory (`--edit`). A file that is not TOML is
    /// refused; one that is TOML but not valid is opened, so the wizard can fix it.
    pub fn open(path: &Path) -> anyhow::Result<Draft> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading answer file {}; give the answer file's path with --answers",
                path.display()
            )
        })?;
        let answers: toml::Table = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message().trim()))?;
        let mut d = Draft {
            answers_path: path.to_path_buf(),
            answers,
            inventory: RawInventory::default(),
            secrets: BTreeMap::new(),
        };
        let inv = d.inventory_path();
        if inv.is_file() {
            let text = std::fs::read_to_string(&inv)
                .with_context(|| format!("reading inventory {}", inv.display()))?;
            d.inventory = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", inv.display(), e.message().trim()))?;
        }
        Ok(d)
    }

    /// The answer file's directory: relative paths in it are taken from there.
    pub fn base(&self) -> &Path {
        self.answers_path.parent().unwrap_or(Path::new(""))
    }

    /// The inventory file, resolved as `ferry validate` resolves it.
    pub fn inventory_path(&self) -> PathBuf {
        let rel = self
            .answers
            .get("inventory")
            .and_then(|v| v.as_str())
            .unwrap_or(DEFAULT_INVENTORY);
        self.base().join(rel)
    }

    /// The value at a dotted key (`cluster.name`).
    pub fn get(&self, key: &str) -> Option<&toml::Value> {
        let mut parts = key.split('.');
        let mut v = self.answers.get(parts.next()?)?;
        for p in parts {
            v = v.as_table()?.get(p)?;
        }
        Some(v)
    }

    /// The value at a dotted key as text for a field (`""` when unset; lists comma separated).
    pub fn get_text(&self, key: &str) -> String {
        match self.get(key) {
            None => String::new(),
            Some(toml::Value::String(s)) => s.clone(),
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(", "),
            Some(v) => v.to_string(),
        }
    }

    /// Sets (or with `None` removes) the value at a dotted key, making tables on the way. An
    /// emptied table is removed with its last key.
    pub fn set(&mut self, key: &str, value: Option<toml::Value>) {
        fn walk(t: &mut toml::Table, parts: &[&str], value: Option<toml::Value>) {
            match parts {
                [] => {}
                [last] => match value {
                    Some(v) => {
                        t.insert((*last).to_string(), v);
                    }
                    None => {
                        t.remove(*last);
                    }
                },
                [first, rest @ ..] => {
                    if value.is_none() && !t.contains_key(*first) {
                        return;
                    }
                    let entry = t
                        .entry((*first).to_string())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    if !entry.is_table() {
                        *entry = toml::Value::Table(toml::Table::new());
                    }
                    if let Some(inner) = entry.as_table_mut() {
                        walk(inner, rest, value);
                        // `[cluster]` stays even when emptied: the answer file requires it.
                        if inner.is_empty() && *first != "cluster" {
                            t.remove(*first);
                        }
                    }
                }
            }
        }
        let parts: Vec<&str> = key.split('.').collect();
        walk(&mut self.answers, &parts, value);
    }

    /// Sets a text field: empty removes the key (the default applies).
    pub fn set_text(&mut self, key: &str, text: &str) {
        let t = text.trim();
        self.set(
            key,
            (!t.is_empty()).then(|| toml::Value::String(t.to_string())),
        );
    }

    /// Sets a whole-number field: empty removes the key; text that is not a number is kept
    /// as text, for the check to name with its own message.
    pub fn set_integer(&mut self, key: &str, text: &str) {
        let t = text.trim();
        self.set(
            key,
            (!t.is_empty()).then(|| {
                t.parse::<i64>()
                    .map(toml::Value::Integer)
                    .unwrap_or_else(|_| toml::Value::String(t.to_string()))
            }),
        );
    }

    /// Sets a list field from comma-separated text: empty removes the key.
    pub fn set_list(&mut self, key: &str, text: &str) {
        let items: Vec<toml::Value> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| toml::Value::String(s.to_string()))
            .collect();
        self.set(
            key,
            (!items.is_empty()).then_some(toml::Value::Array(items)),
        );
    }

    /// The hosts, in file order.
    pub fn hosts(&self) -> &[RawHost] {
        &self.inventory.hosts
    }

    /// The answer file's text.
    pub fn answers_text(&self) -> anyhow::Result<String> {
        let body = toml::to_string_pretty(&self.answers).context("writing the answer file")?;
        Ok(format!(
            "# Written by `ferry install`. Check it with `ferry validate --answers {}`;\n\
             # install from it unattended with `ferry install --answers {} --yes`.\n\
             # Secrets are never written here: the inventory names environment variables.\n\n{body}",
            self.answers_path.display(),
            self.answers_path.display()
        ))
    }

    /// The inventory's text.
    pub fn inventory_text(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(&self.inventory).context("writing the inventory")
    }

    /// Writes the inventory, then the answer file, each replaced whole or not at all.
    /// Returns both paths.
    pub fn save(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        let inv = self.inventory_path();
        ferry_license::write_atomic(&inv, self.inventory_text()?.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", inv.display()))?;
        ferry_license::write_atomic(&self.answers_path, self.answers_text()?.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", self.answers_path.display()))?;
        Ok((self.answers_path.clone(), inv))
    }

    /// Checks the draft exactly as `ferry validate` checks the saved files: both are written
    /// to `scratch` (a private directory of the wizard's) and loaded by `InstallConfig::load`;
    /// the message then names the real files. The check reads the files the draft names
    /// (bundle, keys), so relative paths are first made absolute against the real answer
    /// file's and inventory's directories, never the scratch one.
    pub fn validate(&self, scratch: &Path) -> Result<InstallConfig, String> {
        let answers = scratch.join("site.toml");
        let inventory = scratch.join(DEFAULT_INVENTORY);
        let mut doc = self.answers.clone();
        doc.insert("inventory".into(), inventory.display().to_string().into());
        for key in ["bundle", "bundle-pubkey"] {
            if let Some(p) = doc.get(key).and_then(|v| v.as_str()) {
                let real = self.base().join(p).display().to_string();
                doc.insert(key.into(), real.into());
            }
        }
        let inv_base = self.inventory_path();
        let inv_base = inv_base.parent().unwrap_or(Path::new(""));
        let mut inv = self.inventory.clone();
        let real = |k: &mut Option<String>| {
            if let Some(p) = k.as_mut().filter(|p| !p.starts_with('~')) {
                *p = inv_base.join(&*p).display().to_string();
            }
        };
        real(&mut inv.defaults.key);
        inv.hosts.iter_mut().for_each(|h| real(&mut h.key));
        let write = || -> anyhow::Result<()> {
            std::fs::write(&inventory, toml::to_string_pretty(&inv)?)?;
            std::fs::write(&answers, toml::to_string_pretty(&doc)?)?;
            Ok(())
        };
        if let Err(e) = write() {
            return Err(format!(
                "checking the answers in {}: {e:#}",
                scratch.display()
            ));
        }
        InstallConfig::load(&answers)
            .and_then(|cfg| {
                crate::commands::host::check_offline(&cfg, &answers)?;
                Ok(cfg)
            })
            .map_err(|e| {
                format!("{e:#}")
                    .replace(
                        &answers.display().to_string(),
                        &self.answers_path.display().to_string(),
                    )
                    .replace(
                        &inventory.display().to_string(),
                        &self.inventory_path().display().to_string(),
                    )
            })
    }

    /// Where secrets come from while the wizard runs: the environment, then what was typed.
    /// A secret the inventory marks `"prompt"` cannot be asked for over the wizard's screen.
    pub fn secret_source(&self) -> WizardSecrets {
        WizardSecrets {
            typed: self.secrets.clone(),
        }
    }
}

/// The environment, then secrets typed in the wizard (by variable name).
#[derive(Clone)]
pub struct WizardSecrets {
    typed: BTreeMap<String, Secret>,
}

impl SecretSource for WizardSecrets {
    fn env(&self, var: &str) -> Option<Secret> {
        std::env::var(var)
            .ok()
            .map(Secret::new)
            .or_else(|| self.typed.get(var).cloned())
    }

    fn prompt(&self, request: &PromptRequest) -> Result<Secret, String> {
        Err(format!(
            "the {} is marked \"prompt\", which the wizard cannot ask for; name an environment \
             variable instead (password_env) on the Hosts screen",
            request.kind.describe()
        ))
    }
}

/// The key an answer-file message is about: `site.toml: cluster.name: is empty` and
/// `site.toml:8:9: apps.timeout: expected a whole number` give the key,
/// `site.toml: [apps.values.shop]: ...` gives `[apps.values.shop]`; a TOML syntax error
/// (`site.toml:3:1: expected ...`) gives `None`.
pub fn message_key<'a>(message: &'a str, answers: &Path) -> Option<&'a str> {
    let rest = message.strip_prefix(&answers.display().to_string())?;
    // `:LINE:COLUMN`, when the message has one.
    let rest = rest.trim_start_matches(|c: char| c == ':' || c.is_ascii_digit());
    let rest = rest.strip_prefix(' ')?;
    let key = rest.split(':').next()?;
    (!key.is_empty() && !key.contains(' ')).then_some(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn host(name: &str, roles: &[&str]) -> RawHost {
        RawHost {
            name: name.into(),
            address: "10.0.0.1".into(),
            user: Some("root".into()),
            key: Some("/k".into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..RawHost::default()
        }
    }

    #[test]
    fn messages_are_ferry_validates_naming_the_real_files() {
        let d = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let mut draft = Draft::new(d.path().join("site.toml"));
        draft.inventory.hosts.push(host("a", &["server"]));
        // A key beside the files, named relative to them: found there, not in `scratch`.
        std::fs::write(d.path().join("k"), "a private key\n").unwrap();
        draft.inventory.hosts[0].key = Some("k".into());
        let err = draft.validate(scratch.path()).unwrap_err();
        let want = format!(
            "{}: cluster.name: is empty; name the cluster (name = \"site-a\")",
            d.path().join("site.toml").display()
        );
        assert_eq!(err, want);
        assert_eq!(message_key(&err, &draft.answers_path), Some("cluster.name"));

        draft.set_text("cluster.name", "prod");
        draft.save().unwrap();
        let saved = InstallConfig::load(&draft.answers_path).unwrap();
        let checked = draft.validate(scratch.path()).unwrap();
        assert_eq!(saved.cluster.name, checked.cluster.name);
        assert_eq!(saved.members, checked.members);
    }

    #[test]
    fn a_message_names_its_key_with_or_without_a_line_and_column() {
        let a = Path::new("/x/site.toml");
        let key = |m: &'static str| message_key(m, a);
        assert_eq!(
            key("/x/site.toml: cluster.name: is empty"),
            Some("cluster.name")
        );
        assert_eq!(
            key("/x/site.toml:8:9: apps.timeout: expected a whole number like 2, found \"x\""),
            Some("apps.timeout")
        );
        assert_eq!(
            key(
                "/x/site.toml: [apps.values.shop]: app shop: parameter replicas is of type integer"
            ),
            Some("[apps.values.shop]")
        );
        assert_eq!(key("/x/site.toml:3:1: expected `=`, found newline"), None);
        assert_eq!(key("/y/other.toml: cluster.name: is empty"), None);
    }

    #[test]
    fn set_removes_empty_values_and_their_tables_but_keeps_cluster() {
        let mut draft = Draft::new(PathBuf::from("/x/site.toml"));
        draft.set_list("baseline.time.upstream", "ntp1, 10.0.0.9,");
        assert_eq!(draft.get_text("baseline.time.upstream"), "ntp1, 10.0.0.9");
        draft.set_list("baseline.time.upstream", " ");
        assert!(draft.get("baseline").is_none());
        draft.set_text("cluster.name", "");
        assert!(draft.answers.contains_key("cluster"));
        assert_eq!(draft.inventory_path(), PathBuf::from("/x/inventory.toml"));
    }
}
