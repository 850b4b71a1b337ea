//! Ansible's variable precedence flattened onto ferry hosts: `all`, then groups from the
//! shallowest to the deepest (by name within a depth), then the host's own variables.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ferry_inventory::model::raw::{RawGroup, RawHost, RawInventory};
use ferry_inventory::Inventory;
use serde_json::Value;

use super::{AnsibleError, Import, ImportOptions, Note, Parsed};

/// Where a variable's value was set, to name the environment variable that replaces a password.
#[derive(Debug, Clone)]
enum Origin {
    Group(String),
    Host(String),
}

impl Origin {
    fn env_name(&self, what: &str) -> String {
        let name = match self {
            Origin::Group(g) | Origin::Host(g) => g,
        };
        let upper: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("FERRY_{upper}_{what}")
    }

    fn describe(&self) -> String {
        match self {
            Origin::Group(g) => format!("group `{g}`"),
            Origin::Host(_) => "the host".into(),
        }
    }
}

type Vars = BTreeMap<String, (Value, Origin)>;

/// Connection variables ferry reads; everything else named `ansible_*` is noted.
const CONNECTION_VARS: &[&str] = &[
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_ssh_pass",
    "ansible_password",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_become",
    "ansible_become_method",
    "ansible_become_user",
    "ansible_become_pass",
    "ansible_become_password",
    "ansible_sudo_pass",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_connection",
];

struct Notes(Vec<Note>);

impl Notes {
    fn add(&mut self, subject: &str, item: &str, reason: impl Into<String>) {
        self.0.push(Note {
            subject: subject.to_string(),
            item: item.to_string(),
            reason: reason.into(),
        });
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() != Some(0),
        Value::String(s) => matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "yes" | "y" | "on" | "1"
        ),
        _ => false,
    }
}

fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(o) => toml::Value::Table(
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect(),
        ),
    })
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A `[user@]host[:port]` jump parsed from `ansible_ssh_common_args`.
#[derive(Debug, Clone, PartialEq)]
struct Jump {
    user: Option<String>,
    host: String,
    port: Option<u16>,
}

fn parse_jump_spec(spec: &str) -> Option<Jump> {
    let spec = spec.trim().trim_start_matches("ssh://");
    let (user, rest) = match spec.rsplit_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, spec),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse().ok()?)),
        None => (rest, None),
    };
    (!host.is_empty()).then(|| Jump {
        user,
        host: host.to_string(),
        port,
    })
}

/// Finds a simple jump host in ssh arguments: `-J x`, `-o ProxyJump=x`, or a ProxyCommand of the
/// form `ssh -W %h:%p [-p port] [user@]host`. `Err` says why the arguments cannot be carried.
fn parse_jump(args: &str) -> Result<Option<Jump>, String> {
    let words = shell_words(args);
    let mut i = 0;
    let mut jump = None;
    let mut rest = Vec::new();
    while i < words.len() {
        let w = &words[i];
        let opt_value = |i: usize| words.get(i + 1).cloned();
        let spec = if w == "-J" {
            i += 1;
            opt_value(i - 1)
        } else if w == "-o" {
            i += 1;
            let o = opt_value(i - 1).unwrap_or_default();
            let (k, v) = o
                .split_once('=')
                .or_else(|| o.split_once(' '))
                .unwrap_or((o.as_str(), ""));
            match k.to_ascii_lowercase().as_str() {
                "proxyjump" => Some(v.to_string()),
                "proxycommand" => Some(proxy_command(v)?),
                _ => {
                    // The option's name only: its value may be a secret.
                    rest.push(format!("-o {}", plain(k)));
                    None
                }
            }
        } else if let Some(v) = w.strip_prefix("-oProxyJump=") {
            Some(v.to_string())
        } else if let Some(v) = w.strip_prefix("-oProxyCommand=") {
            Some(proxy_command(v)?)
        } else {
            // Flags by name only; other words (flag values) may be secrets.
            rest.push(match w.strip_prefix('-') {
                Some(_) => plain(flag_name(w)),
                None => "…".to_string(),
            });
            None
        };
        if let Some(spec) = spec {
            if spec.contains(',') {
                return Err(format!(
                    "multi-hop jump `{spec}` is not carried over; chain bastions by hand"
                ));
            }
            jump = Some(
                parse_jump_spec(&spec)
                    .ok_or_else(|| format!("jump `{spec}` is not [user@]host[:port]"))?,
            );
        }
        i += 1;
    }
    if !rest.is_empty() {
        return Err(format!(
            "ssh options `{}` are not carried over",
            rest.join(" ")
        ));
    }
    Ok(jump)
}

fn proxy_command(cmd: &str) -> Result<String, String> {
    let words = shell_words(cmd);
    // Errors name the program and flags only: a ProxyCommand may carry a password
    // (`sshpass -p ...`).
    if words.first().map(String::as_str) != Some("ssh") || !words.iter().any(|w| w == "-W") {
        let program = words
            .first()
            .map(|w| w.rsplit('/').next().unwrap_or(w))
            .unwrap_or("");
        return Err(format!(
            "ProxyCommand running {} is not `ssh -W %h:%p host`",
            plain_or_dots(program)
        ));
    }
    let mut port = None;
    let mut host = None;
    let mut i = 1;
    while i < words.len() {
        match words[i].as_str() {
            "-W" => i += 1,
            "-p" => {
                port = words.get(i + 1).cloned();
                i += 1;
            }
            "-q" => {}
            w if w.starts_with('-') => {
                return Err(format!(
                    "ProxyCommand option {} is not carried over",
                    plain_or_dots(flag_name(w))
                ))
            }
            w => host = Some(w.to_string()),
        }
        i += 1;
    }
    let host = host.ok_or_else(|| "ProxyCommand `ssh -W` names no host".to_string())?;
    Ok(match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// The name of a command-line flag without any value glued to it: `-ifile` is `-i`,
/// `--opt=v` is `--opt`.
fn flag_name(w: &str) -> &str {
    if w.starts_with("--") {
        w.split('=').next().unwrap_or(w)
    } else {
        w.get(..2).unwrap_or(w)
    }
}

const SECRET_DROPPED: &str =
    "its name says it holds a secret; not written to the inventory, provide it another way";

/// Whether a (non-`ansible_`) variable's name says it holds a secret: its value is then not
/// written to the inventory file.
fn secret_name(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    [
        "pass",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// `s` in backquotes if it is a plain name (an option or program name), else `…`.
fn plain_or_dots(s: &str) -> String {
    match plain(s).as_str() {
        "…" => "…".to_string(),
        p => format!("`{p}`"),
    }
}

/// `s` if it is a plain name (an option or program name), else `…`.
fn plain(s: &str) -> String {
    if !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        s.to_string()
    } else {
        "…".to_string()
    }
}

fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                any = true;
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() || any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() || any {
        out.push(cur);
    }
    out
}

pub(crate) fn convert(
    parsed: Parsed,
    file: &str,
    options: &ImportOptions,
) -> Result<Import, AnsibleError> {
    let shape = |message: String| AnsibleError::Shape {
        file: file.to_string(),
        message,
    };
    let mut notes = Notes(Vec::new());
    let groups: HashMap<&str, &super::GroupDef> =
        parsed.groups.iter().map(|g| (g.name.as_str(), g)).collect();

    // Parents of each group, and depth (all = 0).
    let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
    for g in &parsed.groups {
        for c in &g.children {
            parents.entry(c.as_str()).or_default().push(&g.name);
        }
    }
    fn depth<'a>(
        g: &'a str,
        parents: &HashMap<&'a str, Vec<&'a str>>,
        seen: &mut Vec<&'a str>,
    ) -> Result<usize, String> {
        if g == "all" {
            return Ok(0);
        }
        if seen.contains(&g) {
            seen.push(g);
            return Err(format!(
                "groups form a loop through `children`: {}",
                seen.join(" -> ")
            ));
        }
        seen.push(g);
        let mut d = 1;
        for p in parents.get(g).into_iter().flatten() {
            d = d.max(depth(p, parents, seen)? + 1);
        }
        seen.pop();
        Ok(d)
    }
    let mut depths: HashMap<&str, usize> = HashMap::new();
    for g in &parsed.groups {
        depths.insert(
            &g.name,
            depth(&g.name, &parents, &mut Vec::new()).map_err(shape)?,
        );
    }

    // Every group a host is in, directly or through children.
    let mut member_of: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for g in &parsed.groups {
        for h in &g.hosts {
            let mut stack = vec![g.name.as_str()];
            while let Some(cur) = stack.pop() {
                if member_of.entry(h).or_default().insert(cur) {
                    stack.extend(parents.get(cur).into_iter().flatten().copied());
                }
            }
        }
    }

    let all_vars: Vec<(String, Value)> = groups
        .get("all")
        .map(|g| g.vars.clone())
        .unwrap_or_default();
    let mut raw = RawInventory::default();
    for (k, v) in &all_vars {
        if k.starts_with("ansible_") {
            continue;
        }
        if secret_name(k) {
            notes.add("inventory", k, SECRET_DROPPED);
        } else {
            match to_toml(v) {
                Some(t) => {
                    raw.vars.insert(k.clone(), t);
                }
                None => notes.add("inventory", k, "empty value dropped"),
            }
        }
    }

    let mut env_names = EnvNames::new("PASSWORD");
    let mut sudo_env_names = EnvNames::new("SUDO_PASSWORD");
    let mut jumps: Vec<(String, Jump, RawHost)> = Vec::new();
    for name in &parsed.hosts {
        let subject = format!("host {name}");
        let mut in_groups: Vec<&str> = member_of
            .get(name.as_str())
            .map(|s| s.iter().copied().filter(|g| *g != "all").collect())
            .unwrap_or_default();
        in_groups.sort_by_key(|g| (depths.get(g).copied().unwrap_or(1), *g));
        let mut vars: Vars = BTreeMap::new();
        let layers = std::iter::once("all")
            .chain(in_groups.iter().copied())
            .filter_map(|g| {
                groups
                    .get(g)
                    .map(|def| (Origin::Group(g.to_string()), &def.vars))
            });
        for (origin, vs) in layers {
            for (k, v) in vs {
                vars.insert(k.clone(), (v.clone(), origin.clone()));
            }
        }
        for (k, v) in parsed.host_vars.get(name).into_iter().flatten() {
            vars.insert(k.clone(), (v.clone(), Origin::Host(name.clone())));
        }
        // Templates cannot be evaluated here.
        vars.retain(|k, (v, _)| {
            let templated = as_text(v).contains("{{");
            if templated {
                notes.add(
                    &subject,
                    k,
                    "templated value (Jinja/vault) not evaluated; set it by hand",
                );
            }
            !templated
        });
        // The value, where it was set, and the variable's name as written (notes name it).
        let get = |keys: &[&str]| {
            keys.iter().find_map(|k| {
                vars.get(*k)
                    .map(|(v, o)| (v.clone(), o.clone(), (*k).to_string()))
            })
        };

        let mut host = RawHost {
            name: sanitize(name),
            address: get(&["ansible_host", "ansible_ssh_host"])
                .map(|(v, ..)| as_text(&v))
                .unwrap_or_else(|| name.clone()),
            ..RawHost::default()
        };
        if host.name != *name {
            notes.add(
                &subject,
                "name",
                format!(
                    "renamed to `{}` (ferry names use letters, digits, . - _)",
                    host.name
                ),
            );
        }
        if let Some((v, _, var)) = get(&["ansible_port", "ansible_ssh_port"]) {
            match as_text(&v).trim().parse::<u16>() {
                Ok(22) => {}
                Ok(p) if p > 0 => host.port = Some(p),
                // Guessing 22 would reach another sshd, or none, without saying why.
                _ => {
                    return Err(shape(format!(
                        "host {name}: {var}=`{}` is not a port (1 to 65535); fix it in the \
                         Ansible inventory",
                        as_text(&v)
                    )))
                }
            }
        }
        host.user = Some(match get(&["ansible_user", "ansible_ssh_user"]) {
            Some((v, ..)) => as_text(&v),
            None => {
                notes.add(
                    &subject,
                    "ansible_user",
                    format!("not set; `{}` used", options.default_user),
                );
                options.default_user.clone()
            }
        });
        let key = get(&["ansible_ssh_private_key_file", "ansible_private_key_file"]);
        let password = get(&["ansible_ssh_pass", "ansible_password"]);
        match (key, password) {
            (Some((k, ..)), pw) => {
                host.key = Some(as_text(&k));
                if let Some((_, _, var)) = pw {
                    notes.add(&subject, &var, "a key is also given; ferry logs in with the key, the password is not written");
                }
            }
            (None, Some((value, origin, written))) => {
                let var = env_names.name(&as_text(&value), &origin);
                notes.add(
                    &subject,
                    &written,
                    format!("clear-text password (from {}) not written; export {var} before running ferry", origin.describe()),
                );
                host.password_env = Some(var);
            }
            (None, None) => {
                notes.add(
                    &subject,
                    "ansible_ssh_private_key_file",
                    format!("no key or password; `{}` used", options.default_key),
                );
                host.key = Some(options.default_key.clone());
            }
        }
        let become_ = get(&["ansible_become"]).is_some_and(|(v, ..)| truthy(&v));
        let become_pass = get(&[
            "ansible_become_pass",
            "ansible_become_password",
            "ansible_sudo_pass",
        ]);
        if become_ {
            if let Some((m, ..)) = get(&["ansible_become_method"]) {
                if as_text(&m) != "sudo" {
                    notes.add(
                        &subject,
                        "ansible_become_method",
                        format!("`{}` is not supported; ferry uses sudo", as_text(&m)),
                    );
                }
            }
            if let Some((u, ..)) = get(&["ansible_become_user"]) {
                if as_text(&u) != "root" {
                    notes.add(
                        &subject,
                        "ansible_become_user",
                        format!("`{}` dropped; ferry becomes root", as_text(&u)),
                    );
                }
            }
            match become_pass {
                Some((value, origin, written)) => {
                    let var = sudo_env_names.name(&as_text(&value), &origin);
                    notes.add(
                        &subject,
                        &written,
                        format!("clear-text sudo password (from {}) not written; export {var} before running ferry", origin.describe()),
                    );
                    host.sudo = Some("password".into());
                    host.sudo_password_env = Some(var);
                }
                None => host.sudo = Some("passwordless".into()),
            }
        } else {
            if let Some((_, _, written)) = become_pass {
                notes.add(
                    &subject,
                    &written,
                    "ansible_become is off; sudo password ignored",
                );
            }
            if host.user.as_deref() != Some("root") {
                notes.add(
                    &subject,
                    "ansible_become",
                    format!(
                        "off and the user `{}` is not root: ferry needs root, so its preflight \
                         will block this host; set ansible_become=true (sudo) or log in as root",
                        host.user.as_deref().unwrap_or_default()
                    ),
                );
            }
        }
        if let Some((c, ..)) = get(&["ansible_connection"]) {
            let c = as_text(&c);
            if !matches!(c.as_str(), "ssh" | "smart" | "paramiko") {
                notes.add(
                    &subject,
                    "ansible_connection",
                    format!("`{c}` is not SSH; ferry will still use SSH"),
                );
            }
        }
        for arg in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
            if let Some((v, ..)) = get(&[arg]) {
                match parse_jump(&as_text(&v)) {
                    Ok(Some(j)) => jumps.push((host.name.clone(), j, host.clone())),
                    Ok(None) => {}
                    Err(why) => notes.add(&subject, arg, why),
                }
            }
        }
        for (k, (v, _)) in &vars {
            if k.starts_with("ansible_") {
                if !CONNECTION_VARS.contains(&k.as_str()) {
                    notes.add(&subject, k, "not used by ferry; dropped");
                }
                continue;
            }
            if secret_name(k) {
                notes.add(&subject, k, SECRET_DROPPED);
                continue;
            }
            match to_toml(v) {
                Some(t) if raw.vars.get(k) != Some(&t) => {
                    host.vars.insert(k.clone(), t);
                }
                Some(_) => {}
                None => notes.add(&subject, k, "empty value dropped"),
            }
        }
        raw.hosts.push(host);
    }

    // Jump hosts: an inventory host with that name or address, else a new host entry. One that
    // is in no group of its own is only tunnelled through: `roles = ["bastion"]` keeps it out
    // of the cluster (plan and apply never set it up).
    let grouped = |h: &str| {
        member_of
            .get(h)
            .is_some_and(|gs| gs.iter().any(|g| *g != "all" && *g != "ungrouped"))
    };
    let mut jump_only: BTreeSet<String> = BTreeSet::new();
    for (host_name, jump, referrer) in jumps {
        let port = jump.port.unwrap_or(22);
        let existing = raw
            .hosts
            .iter()
            .find(|h| {
                (h.name == jump.host || h.address == jump.host) && h.port.unwrap_or(22) == port
            })
            .map(|h| h.name.clone());
        let bastion = match existing {
            Some(b) => {
                let original = parsed.hosts.iter().find(|h| sanitize(h) == b);
                if !original.is_some_and(|h| grouped(h)) {
                    jump_only.insert(b.clone());
                }
                b
            }
            None => {
                let plain = sanitize(&jump.host);
                let name = if raw.hosts.iter().any(|h| h.name == plain) {
                    format!("jump-{plain}")
                } else {
                    plain
                };
                if !raw.hosts.iter().any(|h| h.name == name) {
                    notes.add(
                        &format!("host {name}"),
                        "bastion",
                        format!("added for the jump host of `{host_name}`, with its credentials; check them"),
                    );
                    raw.hosts.push(RawHost {
                        name: name.clone(),
                        address: jump.host.clone(),
                        port: jump.port.filter(|p| *p != 22),
                        user: jump.user.clone().or(referrer.user.clone()),
                        key: referrer.key.clone(),
                        password_env: referrer.password_env.clone(),
                        ..RawHost::default()
                    });
                }
                jump_only.insert(name.clone());
                name
            }
        };
        if let Some(h) = raw.hosts.iter_mut().find(|h| h.name == host_name) {
            h.bastion = Some(bastion);
        }
    }
    for h in raw.hosts.iter_mut().filter(|h| jump_only.contains(&h.name)) {
        h.roles = vec![BASTION_ROLE.to_string()];
        let subject = format!("host {}", h.name);
        notes.add(
            &subject,
            "roles",
            "jump host in no group: written with roles = [\"bastion\"], so ferry only tunnels \
             through it and never sets it up; put it in a group to make it a cluster member",
        );
    }

    // Groups: members flattened through children; `all` and `ungrouped` are implicit.
    for g in &parsed.groups {
        if g.name == "all" || g.name == "ungrouped" {
            continue;
        }
        let mut hosts: Vec<String> = parsed
            .hosts
            .iter()
            .filter(|h| {
                member_of
                    .get(h.as_str())
                    .is_some_and(|s| s.contains(g.name.as_str()))
            })
            .map(|h| sanitize(h))
            .collect();
        hosts.dedup();
        if hosts.is_empty() {
            notes.add(&format!("group {}", g.name), "hosts", "empty group dropped");
            continue;
        }
        let name = sanitize(&g.name);
        if name != g.name {
            notes.add(
                &format!("group {}", g.name),
                "name",
                format!("renamed to `{name}`"),
            );
        }
        let role = role_for_group(&g.name);
        if role.is_none() {
            notes.add(
                &format!("group {}", g.name),
                "roles",
                "its name maps to no ferry role (server, agent, gpu, bastion); its hosts take \
                 roles from their other groups only: add `roles` to the group by hand if it \
                 needs one",
            );
        }
        raw.groups.push(RawGroup {
            roles: role.into_iter().map(String::from).collect(),
            name,
            hosts,
            ..RawGroup::default()
        });
    }
    // Agents and GPU hosts need a server in their cluster (the inventory refuses them without
    // one): with no control-plane group, their roles are dropped, and said so.
    if !raw
        .groups
        .iter()
        .any(|g| g.roles.iter().any(|r| r == "server"))
    {
        for g in &mut raw.groups {
            let dropped: Vec<String> = g
                .roles
                .iter()
                .filter(|r| *r == "agent" || *r == "gpu")
                .cloned()
                .collect();
            if dropped.is_empty() {
                continue;
            }
            g.roles.retain(|r| r != "agent" && r != "gpu");
            notes.add(
                &format!("group {}", g.name),
                "roles",
                format!(
                    "role {} dropped: no group maps to the server role (k8s_master, masters, \
                     kube_control_plane, servers, ...), and agent and GPU hosts need a server; \
                     add roles = [\"server\"] to the control-plane hosts, then {} back",
                    dropped.join(" and "),
                    dropped.join(" and ")
                ),
            );
        }
    }
    hoist_shared_settings(&mut raw);

    let inventory = Inventory::try_from(raw).map_err(|problem| AnsibleError::Invalid {
        file: file.to_string(),
        problem,
    })?;
    // A jump host only tunnelled through needs no root: no note asking for it.
    notes.0.retain(|n| {
        let host = n.subject.strip_prefix("host ").map(sanitize);
        let jump_only = host
            .and_then(|h| inventory.host(&h))
            .is_some_and(|h| h.is_jump_only());
        !(jump_only && n.item == "ansible_become")
    });
    Ok(Import {
        inventory,
        not_carried_over: notes.0,
    })
}

/// The role of a jump host that is only tunnelled through (see [`ferry_inventory::Host`]).
const BASTION_ROLE: &str = "bastion";

/// Well-known group names of k3s-ansible, Kubespray and common playbooks, mapped to ferry
/// roles (`-` and `_` are the same here).
fn role_for_group(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().replace('-', "_").as_str() {
        "server" | "servers" | "master" | "masters" | "k8s_master" | "k8s_masters"
        | "kube_master" | "kube_masters" | "kube_control_plane" | "control_plane"
        | "control_planes" => Some("server"),
        "agent" | "agents" | "node" | "nodes" | "worker" | "workers" | "kube_node"
        | "kube_nodes" | "k8s_node" | "k8s_nodes" | "k8s_worker" | "k8s_workers" => Some("agent"),
        "gpu" | "gpus" | "gpu_node" | "gpu_nodes" => Some("gpu"),
        // Kubespray's group for its jump host.
        "bastion" | "bastions" => Some(BASTION_ROLE),
        _ => None,
    }
}

/// Names the environment variables that replace clear-text passwords: hosts given the same
/// password share one variable, named after the group (or host) that first set it.
struct EnvNames {
    what: &'static str,
    /// Each password seen, with its variable (values never leave this struct).
    by_value: HashMap<String, String>,
    used: BTreeSet<String>,
}

impl EnvNames {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            by_value: HashMap::new(),
            used: BTreeSet::new(),
        }
    }

    fn name(&mut self, value: &str, origin: &Origin) -> String {
        if let Some(name) = self.by_value.get(value) {
            return name.clone();
        }
        let own = origin.env_name(self.what);
        let mut name = own.clone();
        let mut n = 2;
        // Another password from a place already named (a host var beside a group's): apart.
        while self.used.contains(&name) {
            name = format!("{own}_{n}");
            n += 1;
        }
        self.used.insert(name.clone());
        self.by_value.insert(value.to_string(), name.clone());
        name
    }
}

/// Settings most hosts share go once into `[defaults]`: the login credential, the user and
/// sudo, each the most common one when two hosts or more share it. The other hosts keep their
/// own (a host's own credential or sudo keys replace the defaults' as a whole); a host without
/// sudo then says `sudo = "none"`, or it would take the defaults'.
fn hoist_shared_settings(raw: &mut RawInventory) {
    type Cred = (Option<String>, Option<String>, Option<String>);
    let cred = |h: &RawHost| -> Cred {
        (
            h.key.clone(),
            h.key_passphrase_env.clone(),
            h.password_env.clone(),
        )
    };
    if let Some(shared) = most_common(raw.hosts.iter().map(cred)) {
        raw.defaults.key = shared.0.clone();
        raw.defaults.key_passphrase_env = shared.1.clone();
        raw.defaults.password_env = shared.2.clone();
        for h in raw.hosts.iter_mut().filter(|h| cred(h) == shared) {
            h.key = None;
            h.key_passphrase_env = None;
            h.password_env = None;
        }
    }
    if let Some(user) = most_common(raw.hosts.iter().map(|h| h.user.clone())) {
        for h in raw.hosts.iter_mut().filter(|h| h.user == user) {
            h.user = None;
        }
        raw.defaults.user = user;
    }
    let sudo = |h: &RawHost| (h.sudo.clone(), h.sudo_password_env.clone());
    if let Some(shared) = most_common(raw.hosts.iter().map(sudo)) {
        for h in &mut raw.hosts {
            if sudo(h) == shared {
                h.sudo = None;
                h.sudo_password_env = None;
            } else if h.sudo.is_none() {
                h.sudo = Some("none".into());
            }
        }
        raw.defaults.sudo = shared.0;
        raw.defaults.sudo_password_env = shared.1;
    }
}

/// The value shared by the most items (the first seen on a tie), when at least two share it
/// and it is set.
fn most_common<T: PartialEq + Clone + Default>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: Vec<(T, usize)> = Vec::new();
    for it in items {
        match counts.iter_mut().find(|(v, _)| *v == it) {
            Some((_, n)) => *n += 1,
            None => counts.push((it, 1)),
        }
    }
    let mut best: Option<(T, usize)> = None;
    for (v, n) in counts {
        if v != T::default() && n >= 2 && best.as_ref().is_none_or(|(_, b)| n > *b) {
            best = Some((v, n));
        }
    }
    best.map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_group_name_the_issue_lists_maps_to_its_role() {
        for name in [
            "k8s_master",
            "master",
            "masters",
            "kube_control_plane",
            "control_plane",
            "server",
            "servers",
            "Kube-Control-Plane",
        ] {
            assert_eq!(role_for_group(name), Some("server"), "{name}");
        }
        for name in [
            "node",
            "nodes",
            "worker",
            "workers",
            "kube_node",
            "agent",
            "agents",
        ] {
            assert_eq!(role_for_group(name), Some("agent"), "{name}");
        }
        for name in ["etcd", "all", "ungrouped", "databases"] {
            assert_eq!(role_for_group(name), None, "{name}");
        }
    }

    #[test]
    fn finds_simple_jumps_and_refuses_the_rest() {
        let j = |u: Option<&str>, h: &str, p: Option<u16>| {
            Some(Jump {
                user: u.map(String::from),
                host: h.into(),
                port: p,
            })
        };
        assert_eq!(
            parse_jump("-J ops@bastion:2222").unwrap(),
            j(Some("ops"), "bastion", Some(2222))
        );
        assert_eq!(
            parse_jump("-o ProxyJump=bastion").unwrap(),
            j(None, "bastion", None)
        );
        assert_eq!(
            parse_jump("-o ProxyCommand=\"ssh -W %h:%p -q ops@10.0.0.1\"").unwrap(),
            j(Some("ops"), "10.0.0.1", None)
        );
        assert!(parse_jump("-o ProxyJump=a,b").is_err());
        assert!(parse_jump("-o StrictHostKeyChecking=no").is_err());
        assert_eq!(parse_jump("").unwrap(), None);
    }

    #[test]
    fn variables_named_like_secrets_are_not_written() {
        let text = "[web]\nweb1 ansible_host=10.0.0.1 db_password=hunter2 region=eu\n\
                    [all:vars]\nvault_token=hunter2\nsite=lab\n";
        let import = crate::inventory::import_str(
            text,
            crate::inventory::Format::Ini,
            "hosts.ini",
            &crate::inventory::ImportOptions::default(),
        )
        .unwrap();
        let toml = import.inventory.to_toml_string().unwrap();
        assert!(!toml.contains("hunter2"), "{toml}");
        assert!(toml.contains("region") && toml.contains("site"), "{toml}");
        for item in ["db_password", "vault_token"] {
            assert!(
                import.not_carried_over.iter().any(|n| n.item == item),
                "{item} not listed"
            );
        }
        assert!(!serde_json::to_string(&import).unwrap().contains("hunter2"));
    }

    #[test]
    fn jump_errors_name_options_but_never_their_values() {
        for args in [
            "-o ProxyCommand=\"sshpass -p hunter2 ssh -W %h:%p jump\"",
            "-o ProxyCommand=\"ssh -W %h:%p -i hunter2 -P hunter2 jump\"",
            "-o ProxyCommand=\"ssh -W %h:%p -ohunter2=x jump\"",
            "-o IdentityAgent=hunter2",
            "-i hunter2",
            "-oPassword=hunter2",
        ] {
            let err = parse_jump(args).unwrap_err();
            assert!(!err.contains("hunter2"), "{args}: {err}");
        }
        assert!(parse_jump("-o IdentityAgent=x")
            .unwrap_err()
            .contains("`-o IdentityAgent`"));
        assert!(parse_jump("-o ProxyCommand=\"nc %h %p\"")
            .unwrap_err()
            .contains("`nc`"));
    }
}
