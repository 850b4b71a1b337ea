//! Settings of `k3s server` / `k3s agent`, read the way k3s reads them: flags of the subcommand's
//! table (the same names, aliases and environment variables as k3s v1.31), preceded by the keys of
//! `config.yaml` and `config.yaml.d/*.yaml` (merged in file-name order, `key+` appends), so the
//! command line wins. A config key the subcommand does not know is skipped with k3s's warning; an
//! unknown flag on the command line is refused as k3s (urfave/cli) refuses it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a flag takes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// `--flag` or `--flag=false`.
    Bool,
    /// One value; the last given wins.
    Str,
    /// Repeatable; every value kept.
    Slice,
    /// An integer.
    Int,
    /// A Go duration (`5m0s`).
    Duration,
}

/// One flag of k3s's table.
pub struct Flag {
    /// Name, then aliases (`token`, `t`).
    pub names: &'static [&'static str],
    /// What it takes.
    pub kind: Kind,
    /// The environment variable k3s reads it from when it is not given.
    pub env: Option<&'static str>,
    /// Whether the stand-in acts on it (others are accepted, logged as ignored).
    pub modelled: bool,
}

const fn f(names: &'static [&'static str], kind: Kind, modelled: bool) -> Flag {
    Flag {
        names,
        kind,
        env: None,
        modelled,
    }
}

const fn fe(names: &'static [&'static str], kind: Kind, env: &'static str, modelled: bool) -> Flag {
    Flag {
        names,
        kind,
        env: Some(env),
        modelled,
    }
}

use Kind::{Bool, Duration as Dur, Int, Slice, Str};

/// Flags every subcommand has (k3s's log.go).
const COMMON: &[Flag] = &[
    fe(&["config", "c"], Str, "K3S_CONFIG_FILE", true),
    fe(&["debug"], Bool, "K3S_DEBUG", true),
    f(&["v"], Int, false),
    f(&["vmodule"], Str, false),
    f(&["log", "l"], Str, true),
    f(&["alsologtostderr"], Bool, true),
];

/// Node flags shared by server and agent (k3s's agent.go).
const NODE: &[Flag] = &[
    fe(&["node-name"], Str, "K3S_NODE_NAME", true),
    f(&["with-node-id"], Bool, false),
    f(&["node-label"], Slice, true),
    f(&["node-taint"], Slice, true),
    f(&["image-credential-provider-bin-dir"], Str, false),
    f(&["image-credential-provider-config"], Str, false),
    fe(&["selinux"], Bool, "K3S_SELINUX", false),
    fe(&["lb-server-port"], Int, "K3S_LB_SERVER_PORT", false),
    f(&["protect-kernel-defaults"], Bool, false),
    f(&["container-runtime-endpoint"], Str, true),
    f(&["default-runtime"], Str, false),
    f(&["image-service-endpoint"], Str, false),
    f(&["pause-image"], Str, false),
    f(&["snapshotter"], Str, false),
    f(&["private-registry"], Str, true),
    f(&["disable-default-registry-endpoint"], Bool, false),
    f(&["airgap-extra-registry"], Slice, false),
    f(&["node-ip", "i"], Slice, true),
    f(&["bind-address"], Str, true),
    f(&["node-external-ip"], Slice, true),
    f(&["node-internal-dns"], Slice, false),
    f(&["node-external-dns"], Slice, false),
    fe(&["resolv-conf"], Str, "K3S_RESOLV_CONF", false),
    f(&["flannel-iface"], Str, false),
    f(&["flannel-conf"], Str, false),
    f(&["flannel-cni-conf"], Str, false),
    fe(&["vpn-auth"], Str, "K3S_VPN_AUTH", false),
    fe(&["vpn-auth-file"], Str, "K3S_VPN_AUTH_FILE", false),
    f(&["kubelet-arg"], Slice, true),
    f(&["kube-proxy-arg"], Slice, false),
    f(&["enable-pprof"], Bool, false),
    f(&["rootless"], Bool, false),
    f(&["prefer-bundled-bin"], Bool, false),
    f(&["docker"], Bool, false),
];

/// Flags only `k3s agent` has.
const AGENT_ONLY: &[Flag] = &[
    fe(&["token", "t"], Str, "K3S_TOKEN", true),
    fe(&["token-file"], Str, "K3S_TOKEN_FILE", true),
    fe(&["server", "s"], Str, "K3S_URL", true),
    fe(&["data-dir", "d"], Str, "K3S_DATA_DIR", true),
    f(&["disable-apiserver-lb"], Bool, false),
];

/// Flags only `k3s server` has (k3s's server.go).
const SERVER_ONLY: &[Flag] = &[
    f(&["https-listen-port"], Int, true),
    f(&["advertise-address"], Str, true),
    f(&["advertise-port"], Int, false),
    f(&["tls-san"], Slice, true),
    f(&["tls-san-security"], Bool, false),
    fe(&["data-dir", "d"], Str, "K3S_DATA_DIR", true),
    f(&["cluster-cidr"], Slice, true),
    f(&["service-cidr"], Slice, true),
    f(&["service-node-port-range"], Str, false),
    f(&["cluster-dns"], Slice, true),
    f(&["cluster-domain"], Str, true),
    f(&["flannel-backend"], Str, false),
    f(&["flannel-ipv6-masq"], Bool, false),
    f(&["flannel-external-ip"], Bool, false),
    f(&["egress-selector-mode"], Str, false),
    f(&["servicelb-namespace"], Str, false),
    fe(
        &["write-kubeconfig", "o"],
        Str,
        "K3S_KUBECONFIG_OUTPUT",
        true,
    ),
    fe(&["write-kubeconfig-mode"], Str, "K3S_KUBECONFIG_MODE", true),
    fe(
        &["write-kubeconfig-group"],
        Str,
        "K3S_KUBECONFIG_GROUP",
        false,
    ),
    f(&["helm-job-image"], Str, false),
    fe(&["token", "t"], Str, "K3S_TOKEN", true),
    fe(&["token-file"], Str, "K3S_TOKEN_FILE", true),
    fe(&["agent-token"], Str, "K3S_AGENT_TOKEN", true),
    fe(&["agent-token-file"], Str, "K3S_AGENT_TOKEN_FILE", true),
    fe(&["server", "s"], Str, "K3S_URL", true),
    fe(&["cluster-init"], Bool, "K3S_CLUSTER_INIT", true),
    fe(&["cluster-reset"], Bool, "K3S_CLUSTER_RESET", false),
    f(&["cluster-reset-restore-path"], Str, false),
    f(&["kube-apiserver-arg"], Slice, false),
    f(&["etcd-arg"], Slice, false),
    f(&["kube-controller-manager-arg"], Slice, true),
    f(&["kube-scheduler-arg"], Slice, false),
    f(&["kube-cloud-controller-manager-arg"], Slice, false),
    f(&["kine-tls"], Bool, false),
    fe(
        &["datastore-endpoint"],
        Str,
        "K3S_DATASTORE_ENDPOINT",
        false,
    ),
    fe(&["datastore-cafile"], Str, "K3S_DATASTORE_CAFILE", false),
    fe(
        &["datastore-certfile"],
        Str,
        "K3S_DATASTORE_CERTFILE",
        false,
    ),
    fe(&["datastore-keyfile"], Str, "K3S_DATASTORE_KEYFILE", false),
    f(&["etcd-expose-metrics"], Bool, false),
    f(&["etcd-disable-snapshots"], Bool, false),
    f(&["etcd-snapshot-name"], Str, false),
    f(&["etcd-snapshot-schedule-cron"], Str, false),
    f(&["etcd-snapshot-retention"], Int, false),
    f(&["etcd-snapshot-dir"], Str, false),
    f(&["etcd-snapshot-compress"], Bool, false),
    f(&["etcd-s3"], Bool, false),
    f(&["etcd-s3-endpoint"], Str, false),
    f(&["etcd-s3-endpoint-ca"], Str, false),
    f(&["etcd-s3-skip-ssl-verify"], Bool, false),
    fe(&["etcd-s3-access-key"], Str, "AWS_ACCESS_KEY_ID", false),
    fe(&["etcd-s3-secret-key"], Str, "AWS_SECRET_ACCESS_KEY", false),
    f(&["etcd-s3-bucket"], Str, false),
    f(&["etcd-s3-region"], Str, false),
    f(&["etcd-s3-folder"], Str, false),
    f(&["etcd-s3-proxy"], Str, false),
    f(&["etcd-s3-config-secret"], Str, false),
    f(&["etcd-s3-insecure"], Bool, false),
    f(&["etcd-s3-timeout"], Dur, false),
    f(&["default-local-storage-path"], Str, false),
    f(&["disable"], Slice, true),
    f(&["disable-scheduler"], Bool, false),
    f(&["disable-cloud-controller"], Bool, false),
    f(&["disable-kube-proxy"], Bool, false),
    f(&["disable-network-policy"], Bool, false),
    f(&["disable-helm-controller"], Bool, false),
    f(&["disable-apiserver"], Bool, false),
    f(&["disable-controller-manager"], Bool, false),
    f(&["disable-etcd"], Bool, false),
    f(&["embedded-registry"], Bool, true),
    f(&["supervisor-metrics"], Bool, false),
    fe(
        &["system-default-registry"],
        Str,
        "K3S_SYSTEM_DEFAULT_REGISTRY",
        false,
    ),
    f(&["secrets-encryption"], Bool, false),
    f(&["disable-agent"], Bool, true),
    f(&["kube-controller-arg"], Slice, false),
    f(&["kube-cloud-controller-arg"], Slice, false),
];

/// The subcommand whose flag table applies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Command {
    /// `k3s server`.
    Server,
    /// `k3s agent`.
    Agent,
}

impl Command {
    fn tables(self) -> [&'static [Flag]; 3] {
        match self {
            Command::Server => [COMMON, SERVER_ONLY, NODE],
            Command::Agent => [COMMON, AGENT_ONLY, NODE],
        }
    }

    /// The flag named `name` (or alias) in this subcommand's table.
    pub fn flag(self, name: &str) -> Option<&'static Flag> {
        self.tables()
            .into_iter()
            .flat_map(|t| t.iter())
            .find(|f| f.names.contains(&name))
    }
}

/// Where k3s looks for its config file when none is named.
pub const DEFAULT_CONFIG: &str = "/etc/rancher/k3s/config.yaml";

/// Flags whose values k3s splits at commas (`tls-san: a,b` is two names).
const SPLIT_AT_COMMAS: &[&str] = &[
    "tls-san",
    "cluster-cidr",
    "service-cidr",
    "cluster-dns",
    "node-ip",
    "node-external-ip",
    "disable",
];

/// The settings of one run: every flag given (canonical name → values in order).
#[derive(Debug, Default)]
pub struct Settings {
    values: BTreeMap<&'static str, Vec<String>>,
    /// Warnings to log (skipped config keys, flags the stand-in does not model).
    pub warnings: Vec<String>,
}

/// Why the settings could not be read; the message is k3s's where k3s has one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An unknown flag on the command line.
    #[error("Incorrect Usage: flag provided but not defined: -{0}")]
    UnknownFlag(String),
    /// A flag that takes a value was given none.
    #[error("Incorrect Usage: flag needs an argument: -{0}")]
    MissingValue(String),
    /// A value that does not fit the flag.
    #[error("Incorrect Usage: invalid value {value:?} for flag -{flag}: {why}")]
    BadValue {
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// A config file that cannot be read or parsed.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
}

/// Reads the settings of `command` from `args` (the arguments after the subcommand) and the
/// config files, as k3s does.
pub fn load(command: Command, args: &[String]) -> Result<Settings, ConfigError> {
    let config_path = config_file_named(args);
    let mut warnings = Vec::new();
    let mut from_files = Vec::new();
    // As in k3s, a config file that does not exist (named or not) is no error.
    if let Some(path) = &config_path {
        match read_config_files(Path::new(path)) {
            Ok(Some(args)) => {
                for arg in args {
                    let name = arg
                        .trim_start_matches('-')
                        .split('=')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    if command.flag(&name).is_some() {
                        from_files.push(arg);
                    } else {
                        warnings.push(format!(
                            "Unknown flag --{name} found in config.yaml, skipping"
                        ));
                    }
                }
            }
            Ok(None) => {}
            Err(e) => return Err(e),
        }
    }
    let mut all = from_files;
    all.extend(args.iter().cloned());
    let mut settings = parse_flags(command, &all)?;
    settings.warnings.splice(0..0, warnings);
    // Environment variables stand in for flags not given.
    for table in command.tables() {
        for flag in table {
            let name = flag.names[0];
            if settings.values.contains_key(name) {
                continue;
            }
            if let Some(value) = flag.env.and_then(|e| std::env::var(e).ok()) {
                if !value.is_empty() {
                    settings.values.insert(name, vec![value]);
                }
            }
        }
    }
    for (name, _) in settings.values.iter() {
        if let Some(flag) = command.flag(name) {
            if !flag.modelled {
                settings.warnings.push(format!(
                    "--{name} is accepted but not modelled by the k3s stand-in; ignored"
                ));
            }
        }
    }
    Ok(settings)
}

/// The config file to read (k3s: `K3S_CONFIG_FILE`, then `--config`/`-c`, else the default).
fn config_file_named(args: &[String]) -> Option<String> {
    if let Ok(v) = std::env::var("K3S_CONFIG_FILE") {
        if !v.is_empty() {
            return Some(v);
        }
    }
    for (i, arg) in args.iter().enumerate() {
        for name in ["--config", "-config", "-c", "--c"] {
            if arg == name {
                return args.get(i + 1).cloned();
            }
            if let Some(v) = arg.strip_prefix(&format!("{name}=")) {
                return Some(v.to_string());
            }
        }
    }
    Some(DEFAULT_CONFIG.to_string())
}

/// The drop-ins of `base`: `base.d/*.yaml|*.yml`, in file-name order.
fn drop_ins(base: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let dir = PathBuf::from(format!("{}.d", base.display()));
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError::File {
                path: dir,
                why: e.to_string(),
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| {
            let n = p.to_string_lossy().to_lowercase();
            n.ends_with(".yaml") || n.ends_with(".yml")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The config file and its drop-ins flattened to `--key=value` arguments, in the order keys were
/// first seen; `None` when neither the file nor any drop-in exists.
pub fn read_config_files(base: &Path) -> Result<Option<Vec<String>>, ConfigError> {
    let mut files = drop_ins(base)?;
    if base.exists() {
        files.insert(0, base.to_path_buf());
    } else if files.is_empty() {
        return Ok(None);
    }
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| ConfigError::File {
            path: file.clone(),
            why: e.to_string(),
        })?;
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::File {
                path: file.clone(),
                why: e.to_string(),
            })?;
        let map = match doc {
            serde_yaml_ng::Value::Mapping(m) => m,
            serde_yaml_ng::Value::Null => continue,
            _ => {
                return Err(ConfigError::File {
                    path: file,
                    why: "not a map of flag names to values".into(),
                })
            }
        };
        for (k, v) in map {
            let key = scalar_text(&k);
            let append = key.ends_with('+');
            let key = key.trim_end_matches('+').to_string();
            if !values.contains_key(&key) {
                order.push(key.clone());
            }
            let new_values: Vec<String> = match &v {
                serde_yaml_ng::Value::Sequence(items) => items.iter().map(scalar_text).collect(),
                other => vec![scalar_text(other)],
            };
            match values.get_mut(&key) {
                Some(old) if append => {
                    old.extend(new_values.into_iter().filter(|s| !s.trim().is_empty()))
                }
                _ => {
                    values.insert(key, new_values);
                }
            }
        }
    }
    let mut args = Vec::new();
    for key in order {
        let prefix = if key.chars().count() == 1 { "-" } else { "--" };
        for v in &values[&key] {
            args.push(format!("{prefix}{key}={v}"));
        }
    }
    Ok(Some(args))
}

/// A YAML scalar as Go's `convert.ToString` renders it.
fn scalar_text(v: &serde_yaml_ng::Value) -> String {
    match v {
        serde_yaml_ng::Value::String(s) => s.clone(),
        serde_yaml_ng::Value::Bool(b) => b.to_string(),
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        serde_yaml_ng::Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Parses flag arguments as Go's flag package does (`-x`, `--x`, `--x=v`, `--x v`).
fn parse_flags(command: Command, args: &[String]) -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            settings.warnings.push(format!(
                "argument {arg:?} is not a flag; k3s takes no arguments here; ignored"
            ));
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = command
            .flag(name)
            .ok_or_else(|| ConfigError::UnknownFlag(name.to_string()))?;
        let canonical = flag.names[0];
        let value = match (flag.kind, inline) {
            (Kind::Bool, Some(v)) => match v.as_str() {
                "true" | "1" | "t" | "T" | "TRUE" | "True" => "true".to_string(),
                "false" | "0" | "f" | "F" | "FALSE" | "False" | "" => "false".to_string(),
                _ => {
                    return Err(ConfigError::BadValue {
                        flag: name.into(),
                        value: v,
                        why: "parse error".into(),
                    })
                }
            },
            (Kind::Bool, None) => "true".to_string(),
            (_, Some(v)) => v,
            (_, None) => {
                let v = args
                    .get(i)
                    .ok_or_else(|| ConfigError::MissingValue(name.to_string()))?;
                i += 1;
                v.clone()
            }
        };
        match flag.kind {
            Kind::Int => {
                value.parse::<i64>().map_err(|e| ConfigError::BadValue {
                    flag: name.into(),
                    value: value.clone(),
                    why: e.to_string(),
                })?;
            }
            Kind::Duration => {
                parse_go_duration(&value).ok_or_else(|| ConfigError::BadValue {
                    flag: name.into(),
                    value: value.clone(),
                    why: "time: invalid duration".into(),
                })?;
            }
            _ => {}
        }
        let entry = settings.values.entry(canonical).or_default();
        if flag.kind == Kind::Slice {
            entry.push(value);
        } else {
            *entry = vec![value];
        }
    }
    Ok(settings)
}

impl Settings {
    /// The value of a single-valued flag.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value of a repeatable flag (split at commas where k3s splits them).
    pub fn list(&self, name: &str) -> Vec<String> {
        let values = self.values.get(name).cloned().unwrap_or_default();
        if SPLIT_AT_COMMAS.contains(&name) {
            values
                .iter()
                .flat_map(|v| v.split(','))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            values
        }
    }

    /// Whether a boolean flag is on.
    pub fn bool(&self, name: &str) -> bool {
        self.str(name) == Some("true")
    }

    /// An integer flag, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.str(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// `NAME=VALUE` from a repeatable `--component-arg` flag (`kubelet-arg`), last one wins.
    pub fn component_arg(&self, flag: &str, name: &str) -> Option<String> {
        self.list(flag).iter().rev().find_map(|a| {
            let a = a.trim_start_matches('-');
            a.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_string)
        })
    }

    /// The data directory (`--data-dir`, default /var/lib/rancher/k3s).
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.str("data-dir").unwrap_or("/var/lib/rancher/k3s"))
    }
}

/// Parses a Go duration (`1m30s`, `500ms`, `10s`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("k3s-standin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn drop_ins_override_and_plus_keys_append() {
        let d = scratch("dropins");
        write(
            &d,
            "config.yaml",
            "node-label:\n  - a=1\ntoken: one\ncluster-init: true\n",
        );
        write(
            &d,
            "config.yaml.d/10-x.yaml",
            "node-label+:\n  - b=2\ntoken: two\n",
        );
        write(&d, "config.yaml.d/20-y.yml", "node-label+: c=3\n");
        write(&d, "config.yaml.d/30-ignored.txt", "token: three\n");
        let args = read_config_files(&d.join("config.yaml")).unwrap().unwrap();
        assert_eq!(
            args,
            [
                "--node-label=a=1",
                "--node-label=b=2",
                "--node-label=c=3",
                "--token=two",
                "--cluster-init=true"
            ]
        );
    }

    #[test]
    fn a_plain_key_in_a_drop_in_replaces_the_list() {
        let d = scratch("replace");
        write(&d, "config.yaml", "tls-san: [a, b]\n");
        write(&d, "config.yaml.d/1.yaml", "tls-san: [c]\n");
        let args = read_config_files(&d.join("config.yaml")).unwrap().unwrap();
        assert_eq!(args, ["--tls-san=c"]);
    }

    #[test]
    fn command_line_wins_over_the_file_and_unknown_keys_are_skipped() {
        let d = scratch("cli");
        write(
            &d,
            "config.yaml",
            "token: file\nno-such-key: 1\ncluster-cidr: 10.1.0.0/16\ntls-san: a,b\n",
        );
        let cfg = d.join("config.yaml").display().to_string();
        let s = load(
            Command::Agent,
            &[
                "--config".into(),
                cfg.clone(),
                "--token".into(),
                "cli".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.str("token"), Some("cli"));
        assert!(s
            .warnings
            .iter()
            .any(|w| w == "Unknown flag --no-such-key found in config.yaml, skipping"));
        // An agent does not know server keys either: skipped the same way.
        assert!(s
            .warnings
            .iter()
            .any(|w| w == "Unknown flag --cluster-cidr found in config.yaml, skipping"));
        let s = load(Command::Server, &["-c".into(), cfg]).unwrap();
        assert_eq!(s.list("tls-san"), ["a", "b"]);
        assert_eq!(s.list("cluster-cidr"), ["10.1.0.0/16"]);
    }

    #[test]
    fn an_unknown_flag_on_the_command_line_is_refused() {
        let e = load(Command::Server, &["--no-such-flag".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Incorrect Usage: flag provided but not defined: -no-such-flag"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("x"), None);
    }
}
