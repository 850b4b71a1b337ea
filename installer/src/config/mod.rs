//! The answer file: a strict TOML file (unknown keys refused, kebab-case) read into a raw
//! struct, then turned into the validated [`InstallConfig`] by `TryFrom`, where every
//! cross-field check lives. Plan, apply and rollback only ever see an `InstallConfig`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ferry_bootos::baseline::{DefaultRouteFix, DnsConfig, GpuPolicy, LimitsConfig, TimeConfig};
use ferry_bootos::{BaselineConfig, Member};
use ferry_inventory::{Inventory, Role};
use serde::{Deserialize, Serialize};

use crate::apps::health::GpuUnavailable;

mod check;
pub mod cluster;
use cluster::RawCluster;
pub use cluster::{ClusterSettings, Distribution, RollbackPolicy};

/// The answer file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAnswers {
    inventory: PathBuf,
    bundle: Option<PathBuf>,
    bundle_pubkey: Option<PathBuf>,
    cluster: RawCluster,
    #[serde(default)]
    baseline: RawBaseline,
    #[serde(default)]
    preflight: RawPreflight,
    #[serde(default)]
    ssh: RawSsh,
    #[serde(default)]
    apps: AppsConfig,
    license: Option<RawLicense>,
}

/// `[license]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLicense {
    /// None: no license yet (the section only says where the activation record is kept, as
    /// the wizard writes it between exporting the request and receiving the license).
    file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    host_state_dir: Option<PathBuf>,
}

/// `[license]`: the site's license, activated on every host by `ferry apply` before the apps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LicenseConfig {
    /// The license file from the vendor (resolved against the answer file's directory).
    pub file: PathBuf,
    /// The jump host's license state, holding the activation record `ferry license request`
    /// kept [FERRY_STATE_DIR, or /var/lib/ferry/license].
    pub state_dir: PathBuf,
    /// Where every host keeps its copy [/var/lib/ferry/license].
    pub host_state_dir: PathBuf,
}

/// `[apps]`: what `ferry app deploy` gives the packages at this site.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AppsConfig {
    /// The site's domain: web components answer under it (`${site.domain}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Seconds a deploy may take to become healthy before it is rolled back [300].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// The node that keeps stateful components' local volumes [the first server].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_node: Option<String>,
    /// Whether a deploy may end with GPU components waiting for a GPU node [fail].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_unavailable: Option<GpuUnavailable>,
    /// The bundle's packages `ferry apply` deploys, by name [every package of the bundle;
    /// `[]`: none].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Vec<String>>,
    /// Parameter values per package: `[apps.values.NAME]`, `PARAM = value`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

impl AppsConfig {
    fn is_default(&self) -> bool {
        self == &AppsConfig::default()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSsh {
    strict_host_keys: Option<bool>,
}

/// How hosts are reached, beyond the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SshConfig {
    /// Refuse hosts whose key is not recorded yet (as `--strict-host-keys`).
    pub strict_host_keys: bool,
}

impl SshConfig {
    fn is_default(&self) -> bool {
        self == &SshConfig::default()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBaseline {
    hostname: Option<bool>,
    hosts_file: Option<bool>,
    /// Values as text or numbers (`"262144"` or `262144`).
    sysctl: Option<BTreeMap<String, toml::Value>>,
    modules: Option<Vec<String>>,
    swap_off: Option<bool>,
    dns: Option<RawDns>,
    limits: Option<RawLimits>,
    default_route: Option<DefaultRouteFix>,
    packages: Option<Vec<String>>,
    container_runtime: Option<bool>,
    gpu: Option<GpuPolicy>,
    time: Option<RawTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDns {
    nameservers: Vec<String>,
    #[serde(default)]
    search: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    nofile: u64,
    nproc: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTime {
    enabled: Option<bool>,
    source: Option<String>,
    upstream: Option<Vec<String>>,
    max_skew_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPreflight {
    min_cpus: Option<usize>,
    min_memory_mib: Option<u64>,
    min_disk_gib: Option<u64>,
    max_clock_skew_secs: Option<f64>,
    ports: Option<Vec<u16>>,
}

/// The checks run on every host before anything changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightConfig {
    /// Fewest logical CPUs.
    pub min_cpus: usize,
    /// Least total memory, MiB.
    pub min_memory_mib: u64,
    /// Least free space on the file system holding `/var/lib`, GiB.
    pub min_disk_gib: u64,
    /// Largest clock difference from the median of all hosts, seconds.
    pub max_clock_skew_secs: f64,
    /// TCP ports that must be free (servers: all; agents: those not of the control plane).
    pub ports: Vec<u16>,
}

impl Default for PreflightConfig {
    fn default() -> Self {
        Self {
            min_cpus: 2,
            min_memory_mib: 1800,
            min_disk_gib: 10,
            max_clock_skew_secs: 5.0,
            ports: vec![6443, 10250, 2379, 2380],
        }
    }
}

/// The signed bundle the baseline's software comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleRef {
    /// The bundle file (or split bundle name).
    pub path: PathBuf,
    /// The vendor's public key that must have signed it.
    pub pubkey: PathBuf,
}

/// The cluster the hosts are prepared for.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterIdentity {
    /// Its name.
    pub name: String,
    /// Its id, written in every host's marker. When the answer file gives none, a new random
    /// id until `ferry plan`/`apply` resolve it from the hosts' markers
    /// (`engine::guard::resolve_cluster_id`): never one derived from the name, so two clusters
    /// with the same name never take each other's hosts for their own.
    pub id: String,
    /// Whether `id` comes from the answer file.
    pub id_given: bool,
    /// The distribution and its settings (`distribution = "none"`: the baseline only).
    pub settings: ClusterSettings,
}

impl ClusterIdentity {
    /// Whether ferry installs a Kubernetes distribution on the hosts.
    pub fn installs(&self) -> bool {
        self.settings.distribution != Distribution::None
    }
}

impl Serialize for ClusterIdentity {
    /// `{"name": .., "id": ..}`, the id `null` when the answer file gives none (it is resolved
    /// against the hosts at plan time).
    /// The settings follow when a distribution is installed.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            name: &'a str,
            id: Option<&'a str>,
            #[serde(flatten, skip_serializing_if = "Option::is_none")]
            settings: Option<&'a ClusterSettings>,
        }
        Shown {
            name: &self.name,
            id: self.id_given.then_some(self.id.as_str()),
            settings: self.installs().then_some(&self.settings),
        }
        .serialize(s)
    }
}

/// A validated answer file: everything plan, apply and rollback need.
#[derive(Debug, Clone, Serialize)]
pub struct InstallConfig {
    /// The inventory file, resolved against the answer file's directory.
    pub inventory_path: PathBuf,
    /// The inventory.
    #[serde(skip)]
    pub inventory: Inventory,
    /// Every host as a cluster member, in inventory order.
    pub members: Vec<Member>,
    /// The bundle, if any.
    pub bundle: Option<BundleRef>,
    /// The cluster.
    pub cluster: ClusterIdentity,
    /// The baseline; `time.source` is always resolved to a member.
    pub baseline: BaselineConfig,
    /// Preflight thresholds.
    pub preflight: PreflightConfig,
    /// `[ssh]`: shown only when set.
    #[serde(skip_serializing_if = "SshConfig::is_default")]
    pub ssh: SshConfig,
    /// `[apps]`: shown only when set.
    #[serde(skip_serializing_if = "AppsConfig::is_default")]
    pub apps: AppsConfig,
    /// `[license]`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<LicenseConfig>,
}

impl InstallConfig {
    /// Reads and checks the answer file at `path` and the inventory it names.
    pub fn load(path: &Path) -> anyhow::Result<InstallConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "reading answer file {}: {e}; give the answer file's path with --answers",
                path.display()
            )
        })?;
        let raw: RawAnswers = toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            anyhow::anyhow!("{}:{line}:{col}: {}", path.display(), check::toml_error(&e))
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Located { raw, base }
            .try_into()
            .map_err(|e: anyhow::Error| anyhow::anyhow!("{}: {e:#}", path.display()))
    }

    /// The member serving time, when time sync is managed.
    pub fn time_source(&self) -> Option<&Member> {
        if !self.baseline.time.enabled {
            return None;
        }
        let name = self.baseline.time.source.as_deref()?;
        self.members.iter().find(|m| m.name == name)
    }
}

/// The raw answers with the directory relative paths are taken from.
struct Located<'a> {
    raw: RawAnswers,
    base: &'a Path,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count() + 1)
        .unwrap_or(1);
    (line, col)
}

/// A new cluster id: `ferry-` and 16 random hex digits. Random, not derived from the name:
/// later runs find it in the hosts' markers (see `engine::guard::resolve_cluster_id`).
pub fn new_cluster_id() -> String {
    let mut r = [0u8; 8];
    if getrandom::getrandom(&mut r).is_err() {
        // No randomness from the OS: time and process still make it unique to this run.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        r = (t ^ u64::from(std::process::id()).rotate_left(32)).to_be_bytes();
    }
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("ferry-{hex}")
}

fn bail(key: &str, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{key}: {msg}")
}

fn plain_word(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

impl TryFrom<Located<'_>> for InstallConfig {
    type Error = anyhow::Error;

    fn try_from(loc: Located<'_>) -> anyhow::Result<InstallConfig> {
        let Located { raw, base } = loc;
        let inventory_path = base.join(&raw.inventory);
        let inventory = Inventory::load(&inventory_path).map_err(|e| bail("inventory", e))?;
        if inventory.hosts().is_empty() {
            return Err(bail(
                "inventory",
                format!("{} lists no hosts; add [[hosts]]", inventory_path.display()),
            ));
        }
        let members: Vec<Member> = inventory
            .hosts()
            .iter()
            // A jump host only tunnelled through is no member: nothing is set up on it.
            .filter(|h| !h.is_jump_only())
            .map(|h| Member {
                name: h.name.clone(),
                address: h.address.clone(),
                server: h.has_role(&Role::Server),
            })
            .collect();
        if members.is_empty() {
            return Err(bail(
                "inventory",
                "every host is a jump host only (roles = [\"bastion\"]): nothing to set up; \
                 give the cluster's hosts other roles",
            ));
        }

        let bundle = match (raw.bundle, raw.bundle_pubkey) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(bail(
                    "bundle-pubkey",
                    "required when `bundle` is set; add bundle-pubkey = \"<vendor key>.pub\" \
                     (the public key the bundle was signed with)",
                ))
            }
            (None, Some(_)) => {
                return Err(bail(
                    "bundle-pubkey",
                    "set without `bundle`; add bundle = \"<file>.ferry\" or remove the key",
                ))
            }
            (Some(b), Some(k)) => Some(BundleRef {
                path: base.join(b),
                pubkey: base.join(k),
            }),
        };

        let name = raw.cluster.name.trim().to_string();
        if !plain_word(&name, &['-', '_', '.']) && !name.is_empty() {
            return Err(bail(
                "cluster.name",
                format!("{name:?} may hold only letters, digits, '-', '_' and '.' (it names a directory)"),
            ));
        }
        if name.is_empty() {
            return Err(bail(
                "cluster.name",
                "is empty; name the cluster (name = \"site-a\")",
            ));
        }
        let id_given = raw.cluster.id.is_some();
        let id = match raw.cluster.id.clone() {
            Some(id) if !plain_word(&id, &['-', '_', '.']) => {
                return Err(bail(
                    "cluster.id",
                    format!("{id:?} may hold only letters, digits, '-', '_' and '.'; remove it to use the default"),
                ))
            }
            Some(id) => id,
            None => new_cluster_id(),
        };

        let settings = cluster::settings(&raw.cluster, &inventory)?;
        if settings.distribution != Distribution::None && bundle.is_none() {
            return Err(bail(
                "cluster.distribution",
                "k3s comes from the bundle: set `bundle` and `bundle-pubkey` (a bundle built \
                 with a [k3s] section), or remove `distribution` for the baseline only",
            ));
        }
        let baseline = baseline(raw.baseline, &members)?;
        let packages = baseline.packages.join(", ");
        if !packages.is_empty() && bundle.is_none() {
            return Err(bail(
                "baseline.packages",
                format!(
                    "{packages}: packages come from the bundle and none is set; set `bundle` \
                     and `bundle-pubkey`, or remove the packages"
                ),
            ));
        }
        let preflight = preflight(raw.preflight)?;

        // The files it names, once everything written in it holds together.
        check::key_files(&inventory, &inventory_path)?;
        let bundle_facts = bundle.as_ref().map(check::bundle).transpose()?;
        if !packages.is_empty() && bundle_facts.is_some_and(|f| !f.os_packages) {
            return Err(bail(
                "baseline.packages",
                format!(
                    "{packages}: the bundle holds no os-packages repository; build one with \
                     [[os_packages]] in its bundle.toml, or remove the packages"
                ),
            ));
        }
        let license = raw
            .license
            .and_then(|l| Some((l.file.clone()?, l)))
            .map(|(file, l)| license(&file, l, base))
            .transpose()?;
        Ok(InstallConfig {
            inventory_path,
            inventory,
            members,
            bundle,
            cluster: ClusterIdentity {
                name,
                id,
                id_given,
                settings,
            },
            baseline,
            preflight,
            ssh: SshConfig {
                strict_host_keys: raw.ssh.strict_host_keys.unwrap_or(false),
            },
            apps: raw.apps,
            license,
        })
    }
}

/// `[license]` with its paths resolved; the file must be there (what it grants is checked by
/// `apps::site::prepare`, with the activation record).
fn license(file: &Path, raw: RawLicense, base: &Path) -> anyhow::Result<LicenseConfig> {
    let file = base.join(file);
    if !file.is_file() {
        return Err(bail(
            "license.file",
            format!(
                "{} is not there; copy the vendor's license file there or fix the path",
                file.display()
            ),
        ));
    }
    let state_dir = raw
        .state_dir
        .map(|d| base.join(d))
        .or_else(|| std::env::var_os("FERRY_STATE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(ferry_license::DEFAULT_STATE_DIR));
    let host_state_dir = raw
        .host_state_dir
        .unwrap_or_else(|| PathBuf::from(ferry_license::DEFAULT_STATE_DIR));
    if !host_state_dir.is_absolute() {
        return Err(bail(
            "license.host-state-dir",
            format!(
                "{} is not an absolute path; write the directory on the hosts, like \"{}\"",
                host_state_dir.display(),
                ferry_license::DEFAULT_STATE_DIR
            ),
        ));
    }
    Ok(LicenseConfig {
        file,
        state_dir,
        host_state_dir,
    })
}

fn baseline(raw: RawBaseline, members: &[Member]) -> anyhow::Result<BaselineConfig> {
    let mut cfg = BaselineConfig::default();
    if let Some(v) = raw.hostname {
        cfg.hostname = v;
    }
    if let Some(v) = raw.hosts_file {
        cfg.hosts_file = v;
    }
    for (k, v) in raw.sysctl.unwrap_or_default() {
        if !plain_word(&k, &['.', '_', '-', '/']) {
            return Err(bail(
                "baseline.sysctl",
                format!("key {k:?} is not a sysctl name (letters, digits, '.', '_', '-', '/'; no spaces)"),
            ));
        }
        let v = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            other => {
                return Err(bail(
                    "baseline.sysctl",
                    format!(
                    "value of {k:?} is {}; write text in quotes or a whole number, like \"262144\"",
                    other.type_str()
                ),
                ))
            }
        };
        if v.trim().is_empty() || v.contains('\n') {
            return Err(bail(
                "baseline.sysctl",
                format!("value of {k:?} must be one non-empty line"),
            ));
        }
        cfg.sysctl.insert(k, v.trim().to_string());
    }
    if let Some(mods) = raw.modules {
        if let Some(m) = mods.iter().find(|m| !plain_word(m, &['_', '-'])) {
            return Err(bail(
                "baseline.modules",
                format!("{m:?} is not a kernel module name (letters, digits, '_', '-')"),
            ));
        }
        cfg.modules = mods;
    }
    if let Some(v) = raw.swap_off {
        cfg.swap_off = v;
    }
    if let Some(dns) = raw.dns {
        if dns.nameservers.is_empty() {
            return Err(bail(
                "baseline.dns.nameservers",
                "is empty; list at least one name server, or remove [baseline.dns] to leave DNS alone",
            ));
        }
        if let Some(bad) = dns
            .nameservers
            .iter()
            .find(|n| n.parse::<IpAddr>().is_err())
        {
            return Err(bail(
                "baseline.dns.nameservers",
                format!("{bad:?} is not an IP address"),
            ));
        }
        if let Some(bad) = dns.search.iter().find(|d| !plain_word(d, &['.', '-'])) {
            return Err(bail(
                "baseline.dns.search",
                format!("{bad:?} is not a domain name"),
            ));
        }
        cfg.dns = Some(DnsConfig {
            nameservers: dns.nameservers,
            search: dns.search,
        });
    }
    if let Some(l) = raw.limits {
        if l.nofile == 0 || l.nproc == Some(0) {
            return Err(bail("baseline.limits", "limits must be above 0"));
        }
        cfg.limits = Some(LimitsConfig {
            nofile: l.nofile,
            nproc: l.nproc,
        });
    }
    if let Some(v) = raw.default_route {
        cfg.default_route = v;
    }
    if let Some(p) = raw.packages {
        if let Some(bad) = p
            .iter()
            .find(|n| !plain_word(n, &['.', '+', '-', ':', '=', '~']))
        {
            return Err(bail(
                "baseline.packages",
                format!("{bad:?} is not a package name (`name` or `name=version`)"),
            ));
        }
        cfg.packages = p;
    }
    if let Some(v) = raw.container_runtime {
        cfg.container_runtime = v;
    }
    if let Some(v) = raw.gpu {
        cfg.gpu = v;
    }
    let mut time = TimeConfig::default();
    if let Some(t) = raw.time {
        if let Some(v) = t.enabled {
            time.enabled = v;
        }
        time.source = t.source;
        time.upstream = t.upstream.unwrap_or_default();
        if let Some(v) = t.max_skew_ms {
            time.max_skew_ms = v;
        }
    }
    for u in &time.upstream {
        ferry_inventory::model::check::address(u)
            .map_err(|why| bail("baseline.time.upstream", format!("\"{u}\" {why}")))?;
    }
    match &time.source {
        Some(s) if !members.iter().any(|m| &m.name == s) => {
            return Err(bail(
                "baseline.time.source",
                format!(
                    "{s:?} is not a host of the inventory; name one of: {}",
                    members
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
        Some(_) => {}
        None => {
            time.source = members
                .iter()
                .find(|m| m.server)
                .or(members.first())
                .map(|m| m.name.clone());
        }
    }
    cfg.time = time;
    Ok(cfg)
}

fn preflight(raw: RawPreflight) -> anyhow::Result<PreflightConfig> {
    let mut p = PreflightConfig::default();
    if let Some(v) = raw.min_cpus {
        p.min_cpus = v;
    }
    if let Some(v) = raw.min_memory_mib {
        p.min_memory_mib = v;
    }
    if let Some(v) = raw.min_disk_gib {
        p.min_disk_gib = v;
    }
    if let Some(v) = raw.max_clock_skew_secs {
        if !(v.is_finite() && v > 0.0) {
            return Err(bail(
                "preflight.max-clock-skew-secs",
                "must be a number of seconds above 0",
            ));
        }
        p.max_clock_skew_secs = v;
    }
    if let Some(ports) = raw.ports {
        if ports.contains(&0) {
            return Err(bail("preflight.ports", "port 0 is not a port; use 1-65535"));
        }
        p.ports = ports;
    }
    Ok(p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(dir: &Path, answers: &str) -> PathBuf {
        std::fs::write(
            dir.join("inventory.toml"),
            "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nuser = \"root\"\nkey = \"k\"\nroles = [\"agent\"]\n\n\
             [[hosts]]\nname = \"b\"\naddress = \"10.0.0.2\"\nuser = \"root\"\nkey = \"k\"\nroles = [\"server\"]\n",
        )
        .unwrap();
        // Only its presence is checked offline.
        std::fs::write(dir.join("k"), "a private key\n").unwrap();
        let p = dir.join("site.toml");
        std::fs::write(&p, answers).unwrap();
        p
    }

    #[test]
    fn defaults_come_from_the_baseline_and_the_first_server_serves_time() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "inventory = \"inventory.toml\"\n[cluster]\nname = \"x\"\n",
        );
        let c = InstallConfig::load(&p).unwrap();
        let mut want = BaselineConfig::default();
        want.time.source = Some("b".into());
        assert_eq!(c.baseline, want);
        assert_eq!(c.time_source().unwrap().name, "b");
        // Random, not derived from the name: two loads (two clusters named x) differ.
        assert!(c.cluster.id.starts_with("ferry-") && c.cluster.id.len() == 22);
        assert!(!c.cluster.id_given);
        assert_ne!(c.cluster.id, InstallConfig::load(&p).unwrap().cluster.id);
    }

    #[test]
    fn sysctl_merges_over_defaults_and_modules_replace() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "inventory = \"inventory.toml\"\n[cluster]\nname = \"x\"\n[baseline]\n\
             sysctl = { \"vm.swappiness\" = \"1\", \"vm.max_map_count\" = \"1\" }\nmodules = [\"overlay\"]\n",
        );
        let c = InstallConfig::load(&p).unwrap();
        assert_eq!(c.baseline.sysctl["vm.swappiness"], "1");
        assert_eq!(c.baseline.sysctl["vm.max_map_count"], "1");
        assert_eq!(c.baseline.sysctl["net.ipv4.ip_forward"], "1");
        assert_eq!(c.baseline.modules, vec!["overlay".to_string()]);
    }
}
