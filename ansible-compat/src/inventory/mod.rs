//! Importing an Ansible inventory (INI or YAML) as a ferry [`Inventory`]. Connection variables
//! become host settings; what cannot be carried over (clear-text passwords, templates, unknown
//! `ansible_*` variables, multi-hop jumps) is listed as [`Note`]s, never silently dropped.
//! Passwords are never written: they become `*_env` variables the note names.

mod convert;
mod ini;
mod pattern;
mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ferry_inventory::{Inventory, Problem};
use serde::Serialize;
use serde_json::Value;

pub use pattern::{expand as expand_pattern, MAX_HOSTS_PER_PATTERN};

/// Reading or converting an Ansible inventory failed.
#[derive(Debug, thiserror::Error)]
pub enum AnsibleError {
    /// The file could not be read.
    #[error("reading {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, not a `source()`: chains print each cause once).
        cause: std::io::Error,
    },
    /// A syntax error at a line.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Valid YAML (or INI) that is not an inventory's shape.
    #[error("{file}: {message}")]
    Shape {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The hosts do not make a valid ferry inventory (e.g. two hosts with one address).
    #[error("{file}: the imported inventory is not valid: {problem}")]
    Invalid {
        /// The file.
        file: String,
        /// What ferry's checks said.
        problem: Problem,
    },
}

/// The two inventory formats Ansible reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `[group]` sections and `host key=value` lines.
    Ini,
    /// A mapping of groups with `hosts`, `vars`, `children`.
    Yaml,
}

impl Format {
    /// Picks the format from the file name, else from the content.
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => Format::Yaml,
            Some("ini" | "cfg") => Format::Ini,
            _ => {
                let first = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'));
                match first {
                    Some(l) if l == "---" || (l.ends_with(':') && !l.starts_with('[')) => {
                        Format::Yaml
                    }
                    _ => Format::Ini,
                }
            }
        }
    }
}

/// Choices for what Ansible leaves implicit.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The user for hosts without `ansible_user` (Ansible uses the local user).
    pub default_user: String,
    /// The key for hosts without a key or password (OpenSSH's default key).
    pub default_key: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            default_user: "root".into(),
            default_key: "~/.ssh/id_rsa".into(),
        }
    }
}

/// One thing that was not carried over as written, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// `host NAME`, `group NAME` or `inventory`.
    pub subject: String,
    /// The variable or item concerned.
    pub item: String,
    /// What happened instead.
    pub reason: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.subject, self.item, self.reason)
    }
}

/// The result of an import.
#[derive(Debug, Clone, Serialize)]
pub struct Import {
    /// The ferry inventory.
    pub inventory: Inventory,
    /// What was not carried over as written.
    pub not_carried_over: Vec<Note>,
}

/// Notes that say the same thing (item and reason) about several subjects, said once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoteGroup {
    /// Every subject the note is about (`host a`, `host b`, ...), in the order met.
    pub subjects: Vec<String>,
    /// The variable or item concerned.
    pub item: String,
    /// What happened instead.
    pub reason: String,
}

impl fmt::Display for NoteGroup {
    /// `host a: item: reason`, or `23 hosts (a, b, c, and 20 more): item: reason`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 3;
        match self.subjects.as_slice() {
            [one] => write!(f, "{one}: {}: {}", self.item, self.reason),
            many => {
                let kind = many[0].split_once(' ').map_or("", |(k, _)| k);
                let same_kind = many
                    .iter()
                    .all(|s| s.split_once(' ').map(|(k, _)| k) == Some(kind));
                let names: Vec<&str> = many
                    .iter()
                    .map(|s| match s.split_once(' ') {
                        Some((_, n)) if same_kind => n,
                        _ => s.as_str(),
                    })
                    .collect();
                let mut list = names[..names.len().min(SHOWN)].join(", ");
                if names.len() > SHOWN {
                    list.push_str(&format!(", and {} more", names.len() - SHOWN));
                }
                let what = if same_kind && !kind.is_empty() {
                    format!("{} {kind}s", many.len())
                } else {
                    format!("{} items", many.len())
                };
                write!(f, "{what} ({list}): {}: {}", self.item, self.reason)
            }
        }
    }
}

impl Import {
    /// The notes with those that say the same thing about several hosts (or groups) merged,
    /// in the order first met: 23 hosts sharing one password give one line, not 23.
    pub fn grouped_notes(&self) -> Vec<NoteGroup> {
        let mut groups: Vec<NoteGroup> = Vec::new();
        for n in &self.not_carried_over {
            match groups
                .iter_mut()
                .find(|g| g.item == n.item && g.reason == n.reason)
            {
                Some(g) => g.subjects.push(n.subject.clone()),
                None => groups.push(NoteGroup {
                    subjects: vec![n.subject.clone()],
                    item: n.item.clone(),
                    reason: n.reason.clone(),
                }),
            }
        }
        groups
    }
}

/// Reads and converts an Ansible inventory file.
pub fn import_file(path: &Path, options: &ImportOptions) -> Result<Import, AnsibleError> {
    let text = std::fs::read_to_string(path).map_err(|cause| AnsibleError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    let format = Format::detect(path, &text);
    import_str(&text, format, &path.display().to_string(), options)
}

/// Converts Ansible inventory text; `file` names it in errors.
pub fn import_str(
    text: &str,
    format: Format,
    file: &str,
    options: &ImportOptions,
) -> Result<Import, AnsibleError> {
    let parsed = match format {
        Format::Ini => ini::parse(text, file)?,
        Format::Yaml => yaml::parse(text, file)?,
    };
    convert::convert(parsed, file, options)
}

/// An inventory as Ansible reads it, before conversion.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// Hosts in order of first appearance.
    hosts: Vec<String>,
    /// Each host's own variables, in order (later wins).
    host_vars: HashMap<String, Vec<(String, Value)>>,
    /// Groups in order of first appearance.
    groups: Vec<GroupDef>,
}

#[derive(Debug, Default)]
pub(crate) struct GroupDef {
    name: String,
    hosts: Vec<String>,
    children: Vec<String>,
    vars: Vec<(String, Value)>,
}

impl Parsed {
    /// The group of that name, created if new.
    fn group(&mut self, name: &str) -> &mut GroupDef {
        let pos = match self.groups.iter().position(|g| g.name == name) {
            Some(p) => p,
            None => {
                self.groups.push(GroupDef {
                    name: name.to_string(),
                    ..GroupDef::default()
                });
                self.groups.len() - 1
            }
        };
        &mut self.groups[pos]
    }

    fn add_host(&mut self, group: &str, host: &str, mut vars: Vec<(String, Value)>) {
        // `host:port`, as Ansible allows (a bare IPv6 address has more than one colon).
        let host = match host.split_once(':') {
            Some((name, port))
                if !port.contains(':')
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                vars.insert(
                    0,
                    ("ansible_port".to_string(), Value::String(port.to_string())),
                );
                name
            }
            _ => host,
        };
        if !self.host_vars.contains_key(host) {
            self.hosts.push(host.to_string());
        }
        self.host_vars
            .entry(host.to_string())
            .or_default()
            .extend(vars);
        let g = self.group(group);
        if !g.hosts.iter().any(|h| h == host) {
            g.hosts.push(host.to_string());
        }
    }
}
