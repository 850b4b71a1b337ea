//! The bundle served as the site's registry during `ferry apply`, so the nodes pull their
//! images the way containerd is meant to get them, and the jump host's link carries the bundle
//! once (to the first server) instead of every image once per node.
//!
//! Three steps, each a resource: `registry` on the first server (ferry's binary, the bundle's
//! files, the signer's key and a serving certificate under [`DIR`], each named by its digest
//! so a re-run finds them again; the unit `ferry-registry` running `ferry registry serve` on the
//! server's site address); `registry-mirror` on every node (the site CA, and a hosts.toml per
//! registry the images came from naming the served bundle as the only place to get them); and
//! the images step pulling through that mirror ([`ImageSource::Mirror`]). k3s's
//! registries.yaml names the same mirror ([`registries_yaml`]).
//!
//! The site CA is made once per site on the jump host (`~/.ferry/clusters/NAME/registry/`), and
//! its key never leaves it: the server gets a serving certificate issued from it. A cluster of
//! one node, or a bundle whose images the registry cannot all serve by name, keeps the import
//! path ([`ImageSource::Import`]); the plan says which one each node takes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_bootos::{Change, FileState, Host, Resource, ResourceError};
use ferry_bundle::read::Layout;
use ferry_inventory::facts::Facts;
use ferry_inventory::remote::AgentBinary;
use ferry_inventory::ssh::shell_quote;
use ferry_inventory::transfer::LocalFile;
use serde::{Deserialize, Serialize};

use super::bundle::{ClusterBundle, ImageRef};
use crate::config::InstallConfig;

/// The port the registry listens on, on the first server's site address.
pub const PORT: u16 = 5000;
/// Where the registry's files live on the first server.
pub const DIR: &str = "/var/lib/ferry/registry";
/// Its systemd unit.
pub const UNIT: &str = "ferry-registry";
/// The registry's step id (first server).
pub const SERVER_ID: &str = "registry";
/// The mirror settings' step id (every node).
pub const MIRROR_ID: &str = "registry-mirror";
/// Where each node keeps the site CA its containerd trusts for the registry.
pub const NODE_CA: &str = "/etc/ferry/registry-ca.pem";
/// containerd's registry host directory (`ctr --hosts-dir`, CRI's `config_path`): the
/// baseline's containerd step points the CRI plugin at it.
pub use ferry_bootos::resources::containerd::HOSTS_DIR;
/// How long the registry may take to answer after its start.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Where a node's images come from, as the plan shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum ImageSource {
    /// Each image streamed from the jump host into `ctr images import`.
    #[default]
    Import,
    /// Pulled by name through the mirror: the bundle served on the first server.
    Mirror {
        /// `ADDR:PORT` of the registry.
        endpoint: String,
        /// The server running it.
        server: String,
    },
}

impl ImageSource {
    /// For the plan: how the image arrives.
    pub fn describe(&self) -> String {
        match self {
            ImageSource::Import => "imported from the jump host".to_string(),
            ImageSource::Mirror { server, .. } => {
                format!("pulled from the registry on {server}")
            }
        }
    }
}

/// The registry host an image name comes from (`docker.io/demo/app:1` → `docker.io`).
pub fn registry_host(name: &str) -> &str {
    name.split_once('/').map_or("docker.io", |(h, _)| h)
}

/// The registry hosts of `images`, sorted, each once.
pub fn registry_hosts(images: &[ImageRef]) -> Vec<String> {
    images
        .iter()
        .map(|i| registry_host(&i.name).to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// containerd's directory for `host` under [`HOSTS_DIR`] (`registry.example:5000` as it is:
/// containerd looks the host up by its name with the port).
pub fn hosts_toml_path(host: &str) -> String {
    format!("{HOSTS_DIR}/{host}/hosts.toml")
}

/// hosts.toml for one registry the images came from: the served bundle is its mirror and also
/// its server, so containerd tries nothing else.
pub fn hosts_toml(registry: &str, endpoint: &str, server: &str) -> String {
    format!(
        "# Written by ferry: images of {registry} come from the bundle, served by the site \
         registry on {server}.\n\
         # The mirror is also the server, so containerd tries no other place.\n\
         server = \"https://{endpoint}\"\n\
         ca = \"{NODE_CA}\"\n\
         \n\
         [host.\"https://{endpoint}\"]\n  \
         capabilities = [\"pull\", \"resolve\"]\n  \
         ca = \"{NODE_CA}\"\n"
    )
}

/// k3s's registries.yaml naming the served bundle as the mirror of every registry the images
/// came from; every other registry goes to a closed local port (nothing else is reached).
pub fn registries_yaml(registries: &[String], endpoint: &str, server: &str) -> String {
    let mut y = format!(
        "# Written by ferry: an air-gapped site. Images come from the bundle, served by the\n\
         # site registry on {server} (https://{endpoint}); no other registry is ever reached.\n\
         mirrors:\n"
    );
    for r in registries {
        y.push_str(&format!(
            "  \"{r}\":\n    endpoint:\n      - \"https://{endpoint}\"\n"
        ));
    }
    y.push_str("  \"*\":\n    endpoint:\n      - \"http://127.0.0.1:1\"\n");
    y.push_str(&format!(
        "configs:\n  \"{endpoint}\":\n    tls:\n      ca_file: \"{NODE_CA}\"\n"
    ));
    y
}

/// The unit that runs the registry.
pub fn unit_file(binary: &str, bundle: &str, pubkey: &str, endpoint: &str, tls: &str) -> String {
    format!(
        "# Written by ferry: the bundle served as the site's registry (docs/registry.md).\n\
         [Unit]\n\
         Description=ferry bundle registry (the nodes' image mirror)\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         ExecStart={binary} registry serve {bundle} --pubkey {pubkey} --listen {endpoint} \
         --tls-cert {tls}/server.pem --tls-key {tls}/server.key\n\
         Restart=always\n\
         RestartSec=2s\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

fn unit_path() -> String {
    format!("/etc/systemd/system/{UNIT}.service")
}

/// Where a file the registry runs from comes from, on the jump host.
#[derive(Clone)]
enum Source {
    /// A local file (the binary, a bundle file), uploaded resumably.
    File(PathBuf),
    /// Small content (a key, a certificate), written with its mode.
    Bytes(Vec<u8>, u32),
}

/// One file the registry runs from.
#[derive(Clone)]
struct ToSend {
    path: String,
    what: String,
    source: Source,
}

/// The registry as the jump host prepares it: where it runs, the files it runs from, the CA.
pub struct SiteRegistry {
    /// The first server, which runs it.
    pub server: String,
    /// `ADDR:PORT` it listens on.
    pub endpoint: String,
    /// The site CA's certificate (PEM), which every node trusts.
    pub ca_pem: String,
    sends: Vec<ToSend>,
    unit: String,
}

impl std::fmt::Debug for SiteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No key material: the serving key is among the sends.
        f.debug_struct("SiteRegistry")
            .field("server", &self.server)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(16)]
}

/// The directory on the jump host holding the site CA of cluster `name`.
pub fn ca_dir(home: &Path, name: &str) -> PathBuf {
    home.join("clusters").join(name).join("registry")
}

/// Whether the apply serves the bundle as a registry, and why not when it does not.
pub fn why_not(cfg: &InstallConfig, bundle: &ClusterBundle) -> Option<String> {
    if cfg.cluster.settings.images.is_import() {
        return Some("[cluster] images = \"import\" (the default)".into());
    }
    if cfg.members.len() < 2 {
        return Some("a cluster of one node imports its images".into());
    }
    if bundle.images.is_empty() {
        return Some("the bundle has no images".into());
    }
    let catalog = ferry_registry::Catalog::of(bundle.bundle());
    let served: BTreeSet<String> = catalog
        .images()
        .iter()
        .filter(|i| i.tag.is_some())
        .map(|i| ferry_bundle::image::normalize_reference(&i.reference))
        .collect();
    let missing: Vec<&str> = bundle
        .images
        .iter()
        .filter(|i| !served.contains(&i.name))
        .map(|i| i.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "the registry cannot serve {} by name",
            missing.join(", ")
        ));
    }
    None
}

/// What a plan shows for the site CA's files while apply has yet to make them: every node's
/// copy and the serving certificate then differ from what the hosts have.
const NOT_MADE_YET: &str = "(the site CA, made by ferry apply)\n";

/// Prepares the registry for `cfg`'s apply: the site CA (made once, kept under `home`) and a
/// serving certificate for the first server's address, ferry's binary (`agent`, else the one
/// running) and the bundle's files. `Ok(None)` when the images are imported instead. `make`
/// is for apply: a plan (`make` false) reads the CA and certificate when they are there and
/// fit, and otherwise shows them as changes, never writing under `home`.
pub async fn prepare(
    cfg: &InstallConfig,
    bundle: &ClusterBundle,
    home: &Path,
    agent: Option<&AgentBinary>,
    make: bool,
) -> anyhow::Result<Option<SiteRegistry>> {
    use anyhow::Context as _;
    if let Some(why) = why_not(cfg, bundle) {
        tracing::info!("images imported, not pulled: {why}");
        return Ok(None);
    }
    let Some(first) = cfg.members.iter().find(|m| m.server) else {
        return Ok(None);
    };
    let endpoint = if first.address.contains(':') {
        format!("[{}]:{PORT}", first.address)
    } else {
        format!("{}:{PORT}", first.address)
    };
    let dir = ca_dir(home, &cfg.cluster.name);
    let names = std::slice::from_ref(&first.address);
    let (ca_pem, cert, key) = if make {
        let tls = ferry_registry::tls::site_tls(&dir, names)
            .with_context(|| format!("the site registry's CA in {}", dir.display()))?;
        drop(tls);
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .with_context(|| format!("reading {}", dir.join(name).display()))
        };
        let ca_pem = String::from_utf8_lossy(&read(ferry_registry::tls::CA_CERT)?).into_owned();
        let cert = read(ferry_registry::tls::SERVER_CERT)?;
        let key = read(ferry_registry::tls::SERVER_KEY)?;
        (ca_pem, cert, key)
    } else {
        match ferry_registry::tls::existing(&dir, names) {
            Some((ca, cert, key)) => (ca, cert.into_bytes(), key.into_bytes()),
            None => (
                NOT_MADE_YET.to_string(),
                NOT_MADE_YET.as_bytes().to_vec(),
                Vec::new(),
            ),
        }
    };

    let binary = match agent {
        Some(a) => a.clone(),
        None => AgentBinary::current()
            .await
            .context("reading ferry's own binary for the registry")?,
    };
    let bin = binary.file();
    let bin_path = format!("{DIR}/ferry-{}", short(&bin.sha256));

    let b = bundle.bundle();
    let id = ferry_bundle::Digest::of(b.manifest_bytes()).hex();
    let bdir = format!("{DIR}/bundle-{}", short(&id));
    let mut sends = vec![ToSend {
        path: bin_path.clone(),
        what: "ferry's binary, to run the registry".into(),
        source: Source::File(bin.path.clone()),
    }];
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".into())
    };
    let size_of = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let bundle_arg = match b.layout() {
        Layout::Single(p) => {
            let remote = format!("{bdir}/{}", file_name(p));
            sends.push(ToSend {
                path: remote.clone(),
                what: format!("the bundle ({} MiB)", size_of(p) >> 20),
                source: Source::File(p.clone()),
            });
            remote
        }
        Layout::Split {
            index_path, index, ..
        } => {
            let remote = format!("{bdir}/{}", file_name(index_path));
            let beside = index_path.parent().unwrap_or(Path::new("."));
            sends.push(ToSend {
                path: remote.clone(),
                what: "the bundle's parts index".into(),
                source: Source::File(index_path.clone()),
            });
            for part in &index.parts {
                sends.push(ToSend {
                    path: format!("{bdir}/{}", part.file),
                    what: format!("a part of the bundle ({} MiB)", part.size >> 20),
                    source: Source::File(beside.join(&part.file)),
                });
            }
            remote
        }
    };
    let pubkey = std::fs::read(
        cfg.bundle
            .as_ref()
            .map(|r| r.pubkey.clone())
            .unwrap_or_default(),
    )
    .context("reading bundle-pubkey for the registry")?;
    let pub_path = format!("{bdir}/signer.pub");
    sends.push(ToSend {
        path: pub_path.clone(),
        what: "the bundle signer's key".into(),
        source: Source::Bytes(pubkey, 0o644),
    });
    let tls_dir = format!(
        "{DIR}/tls-{}",
        short(&ferry_bundle::Digest::of(&cert).hex())
    );
    sends.push(ToSend {
        path: format!("{tls_dir}/server.pem"),
        what: "the serving certificate (from the site CA)".into(),
        source: Source::Bytes(cert, 0o644),
    });
    sends.push(ToSend {
        path: format!("{tls_dir}/server.key"),
        what: "its key".into(),
        source: Source::Bytes(key, 0o600),
    });
    let unit = unit_file(&bin_path, &bundle_arg, &pub_path, &endpoint, &tls_dir);
    Ok(Some(SiteRegistry {
        server: first.name.clone(),
        endpoint,
        ca_pem,
        sends,
        unit,
    }))
}

impl SiteRegistry {
    /// How the nodes get their images from it.
    pub fn source(&self) -> ImageSource {
        ImageSource::Mirror {
            endpoint: self.endpoint.clone(),
            server: self.server.clone(),
        }
    }

    /// The first server's step.
    pub fn server_step(self: &Arc<Self>) -> RegistryServer {
        RegistryServer {
            node: self.server.clone(),
            endpoint: self.endpoint.clone(),
            files: self
                .sends
                .iter()
                .map(|s| ServedFile {
                    path: s.path.clone(),
                    what: s.what.clone(),
                })
                .collect(),
            unit: self.unit.clone(),
            runtime: Some(self.clone()),
        }
    }

    /// Every node's mirror settings for `images`.
    pub fn mirror_step(&self, images: &[ImageRef]) -> Mirror {
        let mut files = vec![(NODE_CA.to_string(), self.ca_pem.clone())];
        for r in registry_hosts(images) {
            files.push((
                hosts_toml_path(&r),
                hosts_toml(&r, &self.endpoint, &self.server),
            ));
        }
        Mirror {
            endpoint: self.endpoint.clone(),
            server: self.server.clone(),
            files,
        }
    }
}

/// A file the registry runs from, as plans and journals show it (never its content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedFile {
    /// Where it goes on the server.
    pub path: String,
    /// What it is.
    pub what: String,
}

/// The registry on the first server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RegistryServer {
    /// The server.
    pub node: String,
    /// `ADDR:PORT`.
    pub endpoint: String,
    /// What it runs from, each under a name of its content.
    pub files: Vec<ServedFile>,
    /// The unit file.
    pub unit: String,
    /// The files' sources; absent when rebuilt from a journal.
    #[serde(skip)]
    pub runtime: Option<Arc<SiteRegistry>>,
}

/// What the first server has of the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServerState {
    /// The unit file.
    pub unit: FileState,
    /// Which of the files are there.
    pub present: Vec<String>,
    /// `systemctl is-active`.
    pub active: bool,
    /// `systemctl is-enabled`.
    pub enabled: bool,
    /// [`DIR`] and its parents that did not exist.
    pub missing_dirs: Vec<String>,
}

impl RegistryServer {
    async fn wait_serving(&self, host: &dyn Host) -> Result<(), ResourceError> {
        let (addr, port) = self
            .endpoint
            .rsplit_once(':')
            .map(|(a, p)| (a.trim_matches(['[', ']']).to_string(), p.to_string()))
            .unwrap_or_default();
        let probe = format!(
            "systemctl is-active --quiet {UNIT} && timeout 2 bash -c ': </dev/tcp/{addr}/{port}'"
        );
        let start = Instant::now();
        loop {
            if host.run(&probe).await?.success() {
                return Ok(());
            }
            if start.elapsed() > START_TIMEOUT {
                let log = host
                    .run(&format!(
                        "journalctl -u {UNIT} -n 5 --no-pager -o cat 2>/dev/null | grep -v '^$'"
                    ))
                    .await?
                    .stdout;
                let tail: Vec<&str> = log.lines().collect();
                return Err(ResourceError::Check(format!(
                    "the registry on {} does not answer on {} {}s after its start (last log: \
                     {}); fix: see `journalctl -u {UNIT}` there",
                    self.node,
                    self.endpoint,
                    START_TIMEOUT.as_secs(),
                    tail.join(" / ")
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[async_trait]
impl Resource for RegistryServer {
    type State = ServerState;

    fn id(&self) -> String {
        SERVER_ID.to_string()
    }

    fn supports(&self, _facts: &Facts) -> Result<(), String> {
        Ok(())
    }

    async fn observe(&self, host: &dyn Host) -> Result<ServerState, ResourceError> {
        let mut probe = String::from(":");
        for f in &self.files {
            let p = shell_quote(&f.path);
            probe.push_str(&format!("; [ -f {p} ] && printf '%s\\n' {p}"));
        }
        probe.push_str("; true");
        let present: Vec<String> = host
            .run_ok(&probe)
            .await?
            .lines()
            .map(str::to_string)
            .collect();
        let state = |verb: &str| format!("systemctl {verb} --quiet {UNIT} 2>/dev/null");
        Ok(ServerState {
            unit: host.read_file(&unit_path()).await?,
            present,
            active: host.run(&state("is-active")).await?.success(),
            enabled: host.run(&state("is-enabled")).await?.success(),
            missing_dirs: host.missing_dirs(DIR).await?,
        })
    }

    fn diff(&self, s: &ServerState) -> Vec<Change> {
        let mut out: Vec<Change> = self
            .files
            .iter()
            .filter(|f| !s.present.contains(&f.path))
            .map(|f| Change::new(&f.path, "absent", &f.what))
            .collect();
        if s.unit.bytes() != Some(self.unit.as_bytes()) {
            out.push(Change::new(
                unit_path(),
                if s.unit.exists() { "differs" } else { "absent" },
                format!("serves the bundle on https://{}", self.endpoint),
            ));
        }
        if !s.active || !s.enabled {
            out.push(Change::new(
                format!("service {UNIT}"),
                if s.active { "active" } else { "inactive" },
                "enabled, active",
            ));
        }
        out
    }

    async fn apply(&self, host: &dyn Host, s: &ServerState) -> Result<(), ResourceError> {
        let rt = self.runtime.as_ref().ok_or_else(|| {
            ResourceError::Refused("the bundle is not open (a step rebuilt from a journal)".into())
        })?;
        let mut changed = false;
        for f in self.files.iter().filter(|f| !s.present.contains(&f.path)) {
            let send = rt.sends.iter().find(|x| x.path == f.path).ok_or_else(|| {
                ResourceError::Refused(format!("no source for {} on the jump host", f.path))
            })?;
            match &send.source {
                Source::File(local) => {
                    let mode = if f.path.starts_with(&format!("{DIR}/ferry-")) {
                        0o755
                    } else {
                        0o644
                    };
                    // Through upload_from: the run records what it wrote and shows the
                    // bytes as they move (a bundle of gigabytes takes a while).
                    let file = LocalFile::open(local)
                        .await
                        .map_err(ferry_bootos::HostError::from)?;
                    host.upload_from(&file, &f.path, mode).await?;
                }
                Source::Bytes(b, mode) => host.write_file(&f.path, b, *mode).await?,
            }
            changed = true;
        }
        if s.unit.bytes() != Some(self.unit.as_bytes()) {
            host.write_file(&unit_path(), self.unit.as_bytes(), 0o644)
                .await?;
            changed = true;
        }
        let verb = if changed || !s.active {
            "restart"
        } else {
            "start"
        };
        host.run_ok(&format!(
            "systemctl daemon-reload && systemctl enable --quiet {UNIT} && systemctl {verb} {UNIT}"
        ))
        .await?;
        self.wait_serving(host).await
    }

    async fn revert(&self, host: &dyn Host, before: &ServerState) -> Result<(), ResourceError> {
        if !before.active {
            host.run(&format!("systemctl stop {UNIT} 2>/dev/null; true"))
                .await?;
        }
        if !before.enabled {
            host.run(&format!(
                "systemctl disable --quiet {UNIT} 2>/dev/null; true"
            ))
            .await?;
        }
        host.restore_file(&unit_path(), &before.unit).await?;
        let ours: Vec<String> = self
            .files
            .iter()
            .filter(|f| !before.present.contains(&f.path))
            .map(|f| shell_quote(&f.path))
            .collect();
        if !ours.is_empty() {
            host.run_ok(&format!("rm -f {}", ours.join(" "))).await?;
        }
        // The content-named directories the run made, when nothing else is in them.
        let dirs: BTreeSet<String> = self
            .files
            .iter()
            .filter_map(|f| f.path.rsplit_once('/').map(|(d, _)| d.to_string()))
            .filter(|d| d != DIR)
            .collect();
        for d in dirs {
            host.run(&format!("rmdir {} 2>/dev/null; true", shell_quote(&d)))
                .await?;
        }
        host.remove_empty_dirs(&before.missing_dirs).await?;
        host.run(&format!(
            "systemctl daemon-reload; systemctl reset-failed {UNIT} 2>/dev/null; true"
        ))
        .await?;
        if before.active {
            host.run_ok(&format!("systemctl restart {UNIT}")).await?;
        }
        Ok(())
    }
}

/// A node's mirror settings: the site CA and one hosts.toml per registry the images came
/// from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Mirror {
    /// `ADDR:PORT` of the registry.
    pub endpoint: String,
    /// The server running it.
    pub server: String,
    /// `(path, content)`: the CA first, then the hosts.toml files.
    pub files: Vec<(String, String)>,
}

/// What a node has of the mirror settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorState {
    /// Each file, in the order of [`Mirror::files`].
    pub files: Vec<FileState>,
}

#[async_trait]
impl Resource for Mirror {
    type State = MirrorState;

    fn id(&self) -> String {
        MIRROR_ID.to_string()
    }

    fn supports(&self, _facts: &Facts) -> Result<(), String> {
        Ok(())
    }

    async fn observe(&self, host: &dyn Host) -> Result<MirrorState, ResourceError> {
        let mut files = Vec::new();
        for (path, _) in &self.files {
            files.push(host.read_file(path).await?);
        }
        Ok(MirrorState { files })
    }

    fn diff(&self, s: &MirrorState) -> Vec<Change> {
        self.files
            .iter()
            .zip(&s.files)
            .filter(|((_, want), have)| have.bytes() != Some(want.as_bytes()))
            .map(|((path, _), have)| {
                let to = if path == NODE_CA {
                    "the site registry's CA".to_string()
                } else {
                    format!(
                        "mirror https://{} (the bundle, on {})",
                        self.endpoint, self.server
                    )
                };
                Change::new(path, if have.exists() { "differs" } else { "absent" }, to)
            })
            .collect()
    }

    async fn apply(&self, host: &dyn Host, s: &MirrorState) -> Result<(), ResourceError> {
        for ((path, want), have) in self.files.iter().zip(&s.files) {
            if have.bytes() != Some(want.as_bytes()) {
                host.write_file(path, want.as_bytes(), 0o644).await?;
            }
        }
        Ok(())
    }

    async fn revert(&self, host: &dyn Host, before: &MirrorState) -> Result<(), ResourceError> {
        // The hosts.toml files first: their directories go before the CA's.
        for ((path, _), was) in self.files.iter().zip(&before.files).rev() {
            host.restore_file(path, was).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn images_come_from_their_registry_host() {
        assert_eq!(registry_host("docker.io/demo/app:1"), "docker.io");
        assert_eq!(
            registry_host("registry.local:5000/a/b@sha256:ab"),
            "registry.local:5000"
        );
        assert_eq!(
            hosts_toml_path("registry.local:5000"),
            "/etc/containerd/certs.d/registry.local:5000/hosts.toml"
        );
    }

    /// The files a site of two registries gets, compared with installer/tests/data/registry/
    /// (`FERRY_UPDATE_GOLDEN=1` writes them anew; review the diff).
    #[test]
    fn renders_the_mirror_settings_and_the_unit_as_the_golden_files_say() {
        let images = vec![
            ImageRef {
                item: "app".into(),
                name: "docker.io/demo/app:1".into(),
                digest: "sha256:aa".into(),
            },
            ImageRef {
                item: "tool".into(),
                name: "registry.example:5000/team/tool:2".into(),
                digest: "sha256:bb".into(),
            },
        ];
        let hosts = registry_hosts(&images);
        assert_eq!(hosts, ["docker.io", "registry.example:5000"]);
        let endpoint = "10.0.0.5:5000";
        let rendered = [
            (
                "docker.io.hosts.toml",
                hosts_toml("docker.io", endpoint, "vm0"),
            ),
            ("registries.yaml", registries_yaml(&hosts, endpoint, "vm0")),
            (
                "ferry-registry.service",
                unit_file(
                    "/var/lib/ferry/registry/ferry-0123456789abcdef",
                    "/var/lib/ferry/registry/bundle-fedcba9876543210/site.ferry",
                    "/var/lib/ferry/registry/bundle-fedcba9876543210/signer.pub",
                    endpoint,
                    "/var/lib/ferry/registry/tls-00112233445566ff",
                ),
            ),
        ];
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/registry");
        for (name, text) in rendered {
            let path = dir.join(name);
            if std::env::var_os("FERRY_UPDATE_GOLDEN").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                text,
                want,
                "{} differs from what is rendered",
                path.display()
            );
        }
        // What containerd and k3s read must parse as TOML and YAML.
        let toml: toml::Value = toml::from_str(&hosts_toml("docker.io", endpoint, "vm0")).unwrap();
        assert_eq!(toml["server"].as_str(), Some("https://10.0.0.5:5000"));
        assert_eq!(
            toml["host"]["https://10.0.0.5:5000"]["capabilities"],
            toml::Value::Array(vec!["pull".into(), "resolve".into()])
        );
        let yaml: serde_json::Value =
            serde_yaml_ng::from_str(&registries_yaml(&hosts, endpoint, "vm0")).unwrap();
        assert_eq!(
            yaml["mirrors"]["registry.example:5000"]["endpoint"][0],
            "https://10.0.0.5:5000"
        );
        assert_eq!(yaml["configs"]["10.0.0.5:5000"]["tls"]["ca_file"], NODE_CA);
    }
}
