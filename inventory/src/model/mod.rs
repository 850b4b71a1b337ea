//! The inventory: hosts, groups, roles and credentials, read from a strict TOML file and checked
//! as a whole. [`Inventory::targets`] turns it into [`Target`]s ready for SSH.
//!
//! docs/inventory.md describes the file for its users, with examples a test loads.
//!
//! The minimal file is a list of `[[hosts]]` with `name`, `address`, optional `port` (22),
//! `user` and `key` or `password_env`. Every key (unknown keys are errors):
//!
//! - `[defaults]`: `port`, `user`, the credential and sudo keys below, `bastion`.
//! - `[vars]`: free inventory-wide variables.
//! - `[[hosts]]`: `name`, `address`, `port`, `user`; one credential: `key` (with optional
//!   `key_passphrase_env` or `key_passphrase = "prompt"`), `password_env` or
//!   `password = "prompt"`; `sudo` = `"none"` | `"passwordless"` | `"password"` with
//!   `sudo_password_env` or `sudo_password = "prompt"`; `bastion` (another host's name);
//!   `roles` (`server`, `agent`, `gpu`, `bastion` or free words not close to those); `groups`; `cluster`;
//!   `labels`; `vars`.
//!   A host's own credential (or sudo) keys replace the defaults' as a whole.
//! - `[[groups]]`: `name`, `hosts`, and `roles`, `bastion`, `cluster`, `labels`, `vars` that
//!   every member takes (a host's own bastion, labels and vars win; clusters must agree).

pub mod check;
mod error;
pub mod raw;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use error::{InventoryError, Problem};
use raw::{RawGroup, RawHost, RawInventory};

use crate::secrets::{PromptRequest, SecretKind, SecretSource};
use crate::target::{Auth, Secret, Sudo, Target};

/// Where a secret comes from. The inventory never holds a secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// An environment variable of that name.
    Env(String),
    /// Ask the user.
    Prompt,
}

/// How a host is logged into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A private key file, with where its passphrase comes from if it has one.
    Key {
        /// The key file as written (`~` and relative paths are resolved by `targets`).
        path: PathBuf,
        /// The passphrase's source.
        passphrase: Option<SecretRef>,
    },
    /// A password.
    Password(SecretRef),
}

/// How a host becomes root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SudoSpec {
    /// No sudo.
    #[default]
    None,
    /// `sudo -n`.
    Passwordless,
    /// sudo with a password from this source.
    Password(SecretRef),
}

/// A host's role. `server`, `agent`, `gpu` and `bastion` have meaning to ferry; other words are
/// free labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Runs the cluster's control plane.
    Server,
    /// Runs workloads.
    Agent,
    /// Has GPUs to set up.
    Gpu,
    /// A jump host. With no other role it is only tunnelled through: see
    /// [`Host::is_jump_only`].
    Bastion,
    /// Any other word.
    Other(String),
}

impl Role {
    /// Parses a role word.
    pub fn parse(word: &str) -> Role {
        match word {
            "server" => Role::Server,
            "agent" => Role::Agent,
            "gpu" => Role::Gpu,
            "bastion" => Role::Bastion,
            other => Role::Other(other.to_string()),
        }
    }

    /// The role's word.
    pub fn as_str(&self) -> &str {
        match self {
            Role::Server => "server",
            Role::Agent => "agent",
            Role::Gpu => "gpu",
            Role::Bastion => "bastion",
            Role::Other(s) => s,
        }
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One host, with everything it takes from `[defaults]` and its groups already applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Host {
    /// Unique name.
    pub name: String,
    /// Address or DNS name.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// How to log in.
    pub credential: Credential,
    /// How to become root.
    pub sudo: SudoSpec,
    /// The jump host's name, if any.
    pub bastion: Option<String>,
    /// Roles, own and from groups, sorted.
    pub roles: Vec<Role>,
    /// Groups the host is in, sorted.
    pub groups: Vec<String>,
    /// The cluster, own or from a group.
    pub cluster: Option<String>,
    /// Labels, from groups then the host's own.
    pub labels: BTreeMap<String, String>,
    /// Variables: inventory, then groups in name order, then the host's own.
    pub vars: BTreeMap<String, toml::Value>,
}

impl Host {
    /// Whether the host has this role.
    pub fn has_role(&self, role: &Role) -> bool {
        self.roles.contains(role)
    }

    /// Whether the host is only a jump host (`roles = ["bastion"]` and nothing else): other
    /// hosts are reached through it and `inventory check` checks it, but it is no cluster
    /// member, so plan and apply never set it up.
    pub fn is_jump_only(&self) -> bool {
        self.roles == [Role::Bastion]
    }
}

/// A named set of hosts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Unique name.
    pub name: String,
    /// Members, sorted.
    pub hosts: Vec<String>,
    /// Roles the members take.
    pub roles: Vec<Role>,
    /// Bastion for members without their own.
    pub bastion: Option<String>,
    /// Cluster of the members.
    pub cluster: Option<String>,
}

/// A checked inventory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inventory {
    /// Inventory-wide variables.
    pub vars: BTreeMap<String, toml::Value>,
    hosts: Vec<Host>,
    groups: Vec<Group>,
    /// The file as written, for writing it back.
    #[serde(skip)]
    raw: RawInventory,
    /// Directory relative key paths are resolved against.
    #[serde(skip)]
    base_dir: Option<PathBuf>,
}

impl Inventory {
    /// Reads and checks an inventory file. Relative key paths are taken from its directory.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|cause| InventoryError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let mut inv = Self::from_toml_str(&text, &path.display().to_string())?;
        inv.base_dir = path.parent().map(Path::to_path_buf);
        Ok(inv)
    }

    /// Parses and checks inventory text; `origin` names it in errors (a file name).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Inventory, InventoryError> {
        let raw: RawInventory = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            InventoryError::Syntax {
                origin: origin.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        Inventory::try_from(raw).map_err(|problem| InventoryError::Invalid {
            origin: origin.to_string(),
            problem,
        })
    }

    /// The file as written (what `to_toml_string` writes).
    pub fn raw(&self) -> &RawInventory {
        &self.raw
    }

    /// Writes the inventory back as TOML; reading the result gives the same inventory.
    pub fn to_toml_string(&self) -> Result<String, InventoryError> {
        toml::to_string_pretty(&self.raw).map_err(|e| InventoryError::Write(e.to_string()))
    }

    /// Sets the directory relative key paths are resolved against.
    pub fn set_base_dir(&mut self, dir: impl Into<PathBuf>) {
        self.base_dir = Some(dir.into());
    }

    /// All hosts, in file order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// All groups, in file order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The host of that name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Hosts with a role, in file order.
    pub fn hosts_with_role<'a>(&'a self, role: &'a Role) -> impl Iterator<Item = &'a Host> + 'a {
        self.hosts.iter().filter(move |h| h.has_role(role))
    }

    /// Every host resolved for SSH, in file order, bastion chains included. Secrets are looked
    /// up once per host and secret, even when a host is the bastion of many.
    pub fn targets(&self, secrets: &dyn SecretSource) -> Result<Vec<Target>, InventoryError> {
        let mut resolver = Resolver::new(self, secrets);
        self.hosts
            .iter()
            .map(|h| resolver.target(&h.name))
            .collect()
    }

    /// One host resolved for SSH, with its bastion chain.
    pub fn target(&self, name: &str, secrets: &dyn SecretSource) -> Result<Target, InventoryError> {
        Resolver::new(self, secrets).target(name)
    }

    /// The private key file a host logs in with, resolved as for SSH (`~` and paths relative
    /// to the inventory's directory); `None` for password logins.
    pub fn key_file(&self, host: &Host) -> Option<PathBuf> {
        match &host.credential {
            Credential::Key { path, .. } => Some(self.resolve_path(path)),
            Credential::Password(_) => None,
        }
    }

    fn resolve_path(&self, path: &Path) -> PathBuf {
        if let Ok(rest) = path.strip_prefix("~") {
            if let Some(home) = std::env::var_os("HOME") {
                return PathBuf::from(home).join(rest);
            }
        }
        match &self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

/// Builds targets, memoizing hosts (a bastion is resolved once) and secrets.
struct Resolver<'a> {
    inv: &'a Inventory,
    secrets: &'a dyn SecretSource,
    done: HashMap<String, Target>,
}

impl<'a> Resolver<'a> {
    fn new(inv: &'a Inventory, secrets: &'a dyn SecretSource) -> Self {
        Self {
            inv,
            secrets,
            done: HashMap::new(),
        }
    }

    fn target(&mut self, name: &str) -> Result<Target, InventoryError> {
        if let Some(t) = self.done.get(name) {
            return Ok(t.clone());
        }
        let host = self
            .inv
            .host(name)
            .ok_or_else(|| InventoryError::UnknownHost(name.to_string()))?;
        // Validation has ruled out loops, so this recursion ends.
        let bastion = match &host.bastion {
            Some(b) => Some(Box::new(self.target(b)?)),
            None => None,
        };
        let auth = match &host.credential {
            Credential::Key { path, passphrase } => Auth::Key {
                path: self.inv.resolve_path(path),
                passphrase: match passphrase {
                    Some(r) => Some(self.secret(host, r, SecretKind::KeyPassphrase)?),
                    None => None,
                },
            },
            Credential::Password(r) => {
                Auth::Password(self.secret(host, r, SecretKind::LoginPassword)?)
            }
        };
        let sudo = match &host.sudo {
            SudoSpec::None => Sudo::None,
            SudoSpec::Passwordless => Sudo::Passwordless,
            SudoSpec::Password(r) => {
                Sudo::Password(self.secret(host, r, SecretKind::SudoPassword)?)
            }
        };
        let target = Target {
            name: host.name.clone(),
            address: host.address.clone(),
            port: host.port,
            user: host.user.clone(),
            auth,
            sudo,
            bastion,
        };
        self.done.insert(name.to_string(), target.clone());
        Ok(target)
    }

    fn secret(
        &self,
        host: &Host,
        source: &SecretRef,
        kind: SecretKind,
    ) -> Result<Secret, InventoryError> {
        match source {
            SecretRef::Env(var) => {
                self.secrets
                    .env(var)
                    .ok_or_else(|| InventoryError::MissingEnv {
                        host: host.name.clone(),
                        var: var.clone(),
                        what: kind.describe(),
                    })
            }
            SecretRef::Prompt => {
                let request = PromptRequest {
                    host: host.name.clone(),
                    user: host.user.clone(),
                    kind,
                };
                self.secrets
                    .prompt(&request)
                    .map_err(|reason| InventoryError::Prompt {
                        host: host.name.clone(),
                        what: kind.describe(),
                        reason,
                    })
            }
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count() + 1)
        .unwrap_or(1);
    (line, column)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Credential keys of one place (a host or `[defaults]`).
struct AuthKeys<'a> {
    key: &'a Option<String>,
    key_passphrase_env: &'a Option<String>,
    key_passphrase: &'a Option<String>,
    password_env: &'a Option<String>,
    password: &'a Option<String>,
}

impl AuthKeys<'_> {
    fn any(&self) -> bool {
        self.key.is_some() || self.password_env.is_some() || self.password.is_some()
    }
}

struct SudoKeys<'a> {
    sudo: &'a Option<String>,
    sudo_password_env: &'a Option<String>,
    sudo_password: &'a Option<String>,
}

impl SudoKeys<'_> {
    fn any(&self) -> bool {
        self.sudo.is_some() || self.sudo_password_env.is_some() || self.sudo_password.is_some()
    }
}

fn secret_ref(
    who: &str,
    env: &Option<String>,
    prompt: &Option<String>,
    key: &'static str,
) -> Result<Option<SecretRef>, Problem> {
    match (env, prompt) {
        (Some(_), Some(_)) => Err(Problem::TwoSources {
            host: who.to_string(),
            key,
        }),
        (Some(var), None) => Ok(Some(SecretRef::Env(var.clone()))),
        (None, Some(p)) if p == "prompt" => Ok(Some(SecretRef::Prompt)),
        (None, Some(_)) => Err(Problem::ClearTextSecret {
            host: who.to_string(),
            key,
        }),
        (None, None) => Ok(None),
    }
}

fn credential(who: &str, k: &AuthKeys<'_>) -> Result<Option<Credential>, Problem> {
    let password = secret_ref(who, k.password_env, k.password, "password")?;
    let passphrase = secret_ref(
        who,
        k.key_passphrase_env,
        k.key_passphrase,
        "key_passphrase",
    )?;
    match (k.key, password) {
        (Some(_), Some(_)) => Err(Problem::TwoAuths(who.to_string())),
        (Some(path), None) => Ok(Some(Credential::Key {
            path: PathBuf::from(path),
            passphrase,
        })),
        (None, pw) if passphrase.is_some() => {
            let _ = pw;
            Err(Problem::PassphraseWithoutKey(who.to_string()))
        }
        (None, Some(pw)) => Ok(Some(Credential::Password(pw))),
        (None, None) => Ok(None),
    }
}

fn sudo_spec(who: &str, k: &SudoKeys<'_>) -> Result<SudoSpec, Problem> {
    let password = secret_ref(who, k.sudo_password_env, k.sudo_password, "sudo_password")?;
    match (k.sudo.as_deref(), password) {
        (None, None) | (Some("none"), None) => Ok(SudoSpec::None),
        (Some("passwordless"), None) => Ok(SudoSpec::Passwordless),
        (None | Some("password"), Some(r)) => Ok(SudoSpec::Password(r)),
        (Some("password"), None) => Err(Problem::SudoWithoutPassword(who.to_string())),
        (Some(mode @ ("none" | "passwordless")), Some(_)) => Err(Problem::SudoPasswordUnused {
            host: who.to_string(),
            sudo: mode.to_string(),
        }),
        (Some(other), _) => Err(Problem::BadSudo {
            host: who.to_string(),
            value: other.to_string(),
        }),
    }
}

fn host_auth_keys(h: &RawHost) -> AuthKeys<'_> {
    AuthKeys {
        key: &h.key,
        key_passphrase_env: &h.key_passphrase_env,
        key_passphrase: &h.key_passphrase,
        password_env: &h.password_env,
        password: &h.password,
    }
}

fn host_sudo_keys(h: &RawHost) -> SudoKeys<'_> {
    SudoKeys {
        sudo: &h.sudo,
        sudo_password_env: &h.sudo_password_env,
        sudo_password: &h.sudo_password,
    }
}

/// Refuses a role word that is a slip of a known role (see [`check::role_meant`]).
fn check_role_words(whose: &str, words: &[String]) -> Result<(), Problem> {
    for w in words {
        if let Some(meant) = check::role_meant(w) {
            return Err(Problem::UnknownRole {
                whose: whose.to_string(),
                role: w.clone(),
                meant,
            });
        }
    }
    Ok(())
}

fn roles(words: &[String]) -> Vec<Role> {
    let set: BTreeSet<Role> = words.iter().map(|w| Role::parse(w)).collect();
    set.into_iter().collect()
}

impl TryFrom<RawInventory> for Inventory {
    type Error = Problem;

    /// Every cross-field check of the inventory lives here.
    fn try_from(raw: RawInventory) -> Result<Inventory, Problem> {
        let d = &raw.defaults;
        let default_auth = credential(
            "[defaults]",
            &AuthKeys {
                key: &d.key,
                key_passphrase_env: &d.key_passphrase_env,
                key_passphrase: &d.key_passphrase,
                password_env: &d.password_env,
                password: &d.password,
            },
        )?;
        let default_sudo_keys = SudoKeys {
            sudo: &d.sudo,
            sudo_password_env: &d.sudo_password_env,
            sudo_password: &d.sudo_password,
        };
        let default_sudo = sudo_spec("[defaults]", &default_sudo_keys)?;

        // Names.
        let mut names = BTreeSet::new();
        for h in &raw.hosts {
            if !valid_name(&h.name) {
                return Err(Problem::BadName {
                    kind: "host",
                    name: h.name.clone(),
                });
            }
            if !names.insert(h.name.as_str()) {
                return Err(Problem::DuplicateName(h.name.clone()));
            }
        }
        let mut group_names = BTreeSet::new();
        for g in &raw.groups {
            if !valid_name(&g.name) {
                return Err(Problem::BadName {
                    kind: "group",
                    name: g.name.clone(),
                });
            }
            if !group_names.insert(g.name.as_str()) {
                return Err(Problem::DuplicateGroup(g.name.clone()));
            }
            check_role_words(&format!("group `{}`", g.name), &g.roles)?;
        }

        // Group membership, both directions.
        let mut members: BTreeMap<&str, BTreeSet<&str>> = raw
            .groups
            .iter()
            .map(|g| (g.name.as_str(), BTreeSet::new()))
            .collect();
        for g in &raw.groups {
            for m in &g.hosts {
                if !names.contains(m.as_str()) {
                    return Err(Problem::UnknownMember {
                        group: g.name.clone(),
                        host: m.clone(),
                    });
                }
                members.entry(&g.name).or_default().insert(m);
            }
        }
        for h in &raw.hosts {
            for g in &h.groups {
                match members.get_mut(g.as_str()) {
                    Some(set) => {
                        set.insert(&h.name);
                    }
                    None => {
                        return Err(Problem::UnknownGroup {
                            host: h.name.clone(),
                            group: g.clone(),
                        })
                    }
                }
            }
        }
        if let Some((g, _)) = members.iter().find(|(_, m)| m.is_empty()) {
            return Err(Problem::EmptyGroup((*g).to_string()));
        }

        // Hosts.
        let mut hosts = Vec::with_capacity(raw.hosts.len());
        let mut addresses: HashMap<(String, u16), &str> = HashMap::new();
        for h in &raw.hosts {
            let my_groups: Vec<&RawGroup> = raw
                .groups
                .iter()
                .filter(|g| members[g.name.as_str()].contains(h.name.as_str()))
                .collect();
            hosts.push(resolve_host(
                h,
                &my_groups,
                &raw,
                &default_auth,
                &default_sudo,
            )?);
            let host = hosts
                .last()
                .ok_or_else(|| Problem::NoAddress(h.name.clone()))?;
            let key = (host.address.to_ascii_lowercase(), host.port);
            if let Some(first) = addresses.insert(key, &h.name) {
                return Err(Problem::DuplicateAddress {
                    first: first.to_string(),
                    second: h.name.clone(),
                    address: host.address.clone(),
                    port: host.port,
                });
            }
        }

        check_bastions(&hosts)?;
        check_roles(&hosts)?;

        let groups = raw
            .groups
            .iter()
            .map(|g| Group {
                name: g.name.clone(),
                hosts: members[g.name.as_str()]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                roles: roles(&g.roles),
                bastion: g.bastion.clone(),
                cluster: g.cluster.clone(),
            })
            .collect();

        Ok(Inventory {
            vars: raw.vars.clone(),
            hosts,
            groups,
            raw,
            base_dir: None,
        })
    }
}

fn resolve_host(
    h: &RawHost,
    groups: &[&RawGroup],
    raw: &RawInventory,
    default_auth: &Option<Credential>,
    default_sudo: &SudoSpec,
) -> Result<Host, Problem> {
    if h.address.trim().is_empty() {
        return Err(Problem::NoAddress(h.name.clone()));
    }
    check::address(&h.address).map_err(|why| Problem::BadAddress {
        host: h.name.clone(),
        address: h.address.clone(),
        why,
    })?;
    check_role_words(&format!("host `{}`", h.name), &h.roles)?;
    let port = h.port.or(raw.defaults.port).unwrap_or(22);
    if port == 0 {
        return Err(Problem::BadPort(h.name.clone()));
    }
    let user = h
        .user
        .clone()
        .or_else(|| raw.defaults.user.clone())
        .ok_or_else(|| Problem::NoUser(h.name.clone()))?;

    // A host's own credential keys replace the defaults as a whole, never mix with them.
    let keys = host_auth_keys(h);
    let credential =
        if keys.any() || h.key_passphrase.is_some() || h.key_passphrase_env.is_some() {
            credential(&h.name, &keys)?
        } else {
            default_auth.clone()
        }
        .ok_or_else(|| Problem::NoAuth(h.name.clone()))?;
    let sudo_keys = host_sudo_keys(h);
    let sudo = if sudo_keys.any() {
        sudo_spec(&h.name, &sudo_keys)?
    } else {
        default_sudo.clone()
    };

    // Cluster: the host's own and every group's must agree.
    let mut cluster: Option<&String> = h.cluster.as_ref();
    for c in groups.iter().filter_map(|g| g.cluster.as_ref()) {
        match cluster {
            Some(first) if first != c => {
                return Err(Problem::TwoClusters {
                    host: h.name.clone(),
                    first: first.clone(),
                    second: c.clone(),
                })
            }
            _ => cluster = Some(c),
        }
    }

    // Bastion: own, else one agreed by the groups, else the default (never the host itself).
    let bastion = match &h.bastion {
        Some(b) => Some(b.clone()),
        None => {
            let mut from_groups: Option<&String> = None;
            for b in groups.iter().filter_map(|g| g.bastion.as_ref()) {
                match from_groups {
                    Some(first) if first != b => {
                        return Err(Problem::TwoBastions {
                            host: h.name.clone(),
                            first: first.clone(),
                            second: b.clone(),
                        })
                    }
                    _ => from_groups = Some(b),
                }
            }
            from_groups
                .or(raw.defaults.bastion.as_ref())
                .filter(|b| **b != h.name)
                .cloned()
        }
    };

    let mut role_words: Vec<String> = h.roles.clone();
    let mut labels = BTreeMap::new();
    let mut vars = raw.vars.clone();
    for g in groups {
        role_words.extend(g.roles.iter().cloned());
        labels.extend(g.labels.clone());
        vars.extend(g.vars.clone());
    }
    labels.extend(h.labels.clone());
    vars.extend(h.vars.clone());

    let mut group_names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    group_names.sort();

    Ok(Host {
        name: h.name.clone(),
        address: h.address.clone(),
        port,
        user,
        credential,
        sudo,
        bastion,
        roles: roles(&role_words),
        groups: group_names,
        cluster: cluster.cloned(),
        labels,
        vars,
    })
}

fn check_bastions(hosts: &[Host]) -> Result<(), Problem> {
    let by_name: HashMap<&str, &Host> = hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    for h in hosts {
        let mut chain = vec![h.name.clone()];
        let mut cur = h;
        while let Some(b) = &cur.bastion {
            let next = by_name
                .get(b.as_str())
                .ok_or_else(|| Problem::UnknownBastion {
                    host: cur.name.clone(),
                    bastion: b.clone(),
                })?;
            if let Some(pos) = chain.iter().position(|n| n == b) {
                let mut looped = chain[pos..].to_vec();
                looped.push(b.clone());
                return Err(Problem::BastionLoop { chain: looped });
            }
            chain.push(b.clone());
            cur = next;
        }
    }
    Ok(())
}

/// Agents and GPU hosts need a server in their cluster.
fn check_roles(hosts: &[Host]) -> Result<(), Problem> {
    let mut clusters: BTreeMap<Option<&str>, Vec<&Host>> = BTreeMap::new();
    for h in hosts {
        clusters.entry(h.cluster.as_deref()).or_default().push(h);
    }
    for (cluster, members) in clusters {
        if members.iter().any(|h| h.has_role(&Role::Server)) {
            continue;
        }
        if let Some(h) = members
            .iter()
            .find(|h| h.has_role(&Role::Agent) || h.has_role(&Role::Gpu))
        {
            return Err(Problem::RoleWithoutHosts {
                role: "server".into(),
                cluster: match cluster {
                    Some(c) => format!("cluster `{c}`"),
                    None => "the inventory".into(),
                },
                needed_by: format!("host `{}`", h.name),
            });
        }
    }
    Ok(())
}
