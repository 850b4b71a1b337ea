//! containerd: installed from ferry's repository when its binary is missing, given the
//! default configuration when it has none, its CRI plugin told to read registry hosts from
//! [`HOSTS_DIR`] (where the cluster phase names the site registry as every registry's mirror:
//! without it a kubelet's pull ignores that directory and tries the internet), enabled and
//! running, and checked with `ctr version` (which talks to it through its socket). Revert stops and disables it as it was, puts the
//! configuration back, and purges what the install added. RedHat differs only in the install
//! (see `packages`); the unit and paths are the same.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use serde::{Deserialize, Serialize};

use crate::host::{FileState, Host};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError};

use super::packages::{self, RepoRef};
use super::software::ServiceState;

/// containerd's configuration file.
pub const CONFIG: &str = "/etc/containerd/config.toml";
/// containerd's registry host directory (`ctr --hosts-dir`, the CRI registry's `config_path`).
pub const HOSTS_DIR: &str = "/etc/containerd/certs.d";
const UNIT: &str = "containerd";
/// The directory containerd's CRI plugin makes at its first start (for CNI configurations).
const CNI_CONF_DIR: &str = "/etc/cni/net.d";

/// containerd installed and running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Containerd {
    /// The package to install when the binary is missing (`containerd`).
    pub package: String,
    /// ferry's repository, if the bundle has one.
    pub repo: Option<RepoRef>,
}

/// What `containerd` finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerdState {
    /// The `containerd` binary is there.
    pub installed: bool,
    /// Packages present before, when the binary was missing (what an install adds is
    /// removed on revert, see `packages::undo_install`); empty when it was installed.
    pub packages_before: BTreeSet<String>,
    /// Packages with only configuration files left before, when the binary was missing.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub config_only_before: BTreeSet<String>,
    /// The service.
    pub service: ServiceState,
    /// The configuration file.
    pub config: FileState,
    /// [`CNI_CONF_DIR`] and its parents that did not exist, innermost first: removed on revert
    /// while still empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_missing: Vec<String>,
}

/// Whether a TOML table header (`[plugins."io.containerd.grpc.v1.cri".registry]`) names the
/// CRI plugin's registry table: containerd 1.x's (config version 2) or 2.x's (version 3).
fn is_cri_registry(header: &str) -> bool {
    let name: String = header
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | ' '))
        .collect();
    matches!(
        name.as_str(),
        "plugins.io.containerd.grpc.v1.cri.registry"
            | "plugins.io.containerd.cri.v1.images.registry"
    )
}

/// `config` with the CRI registry's `config_path` set to [`HOSTS_DIR`], when it is empty or
/// missing there (a missing registry table, as in the file Debian's package ships, is added
/// at the end, named for the file's `version`: 2 for containerd 1.x, 3 for 2.x); `None` when
/// nothing is to change: a `config_path` already set (ferry's, or an admin's own, which
/// stays), a configuration with the older per-registry tables (`registry.mirrors."…"`,
/// `registry.configs."…"`), which containerd refuses beside a `config_path`, or one whose
/// layout ferry does not edit (no `version`, a registry given as a dotted key or inline
/// table). Only that one line, or that one table, changes.
pub fn with_hosts_dir(config: &str) -> Option<String> {
    let legacy = config.lines().any(|l| {
        let l = l.trim();
        l.starts_with('[')
            && ["registry.mirrors.", "registry.configs."]
                .iter()
                .any(|t| l.replace(['"', '\'', ' '], "").contains(t))
    });
    if legacy {
        return None;
    }
    let lines: Vec<&str> = config.lines().collect();
    let Some(header) = lines.iter().position(|l| {
        let t = l.trim_start();
        t.starts_with('[') && !t.starts_with("[[") && is_cri_registry(t)
    }) else {
        return with_registry_table(config);
    };
    let end = lines[header + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |p| header + 1 + p);
    let indent: String = lines[header]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let line = format!("{indent}  config_path = \"{HOSTS_DIR}\"");
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match (header + 1..end).find(|&i| {
        let t = lines[i].trim_start();
        t.starts_with("config_path") && t["config_path".len()..].trim_start().starts_with('=')
    }) {
        Some(i) => {
            let value = lines[i].split_once('=').map_or("", |(_, v)| v.trim());
            if !matches!(value, "\"\"" | "''") {
                return None;
            }
            out[i] = line;
        }
        None => out.insert(header + 1, line),
    }
    let mut text = out.join("\n");
    if config.ends_with('\n') {
        text.push('\n');
    }
    Some(text)
}

/// `config` with a CRI registry table naming [`HOSTS_DIR`] added at its end (a TOML table may
/// come anywhere after its parent's), when the file says its version and gives the registry
/// nowhere else.
fn with_registry_table(config: &str) -> Option<String> {
    let mut version = None;
    for l in config.lines() {
        let t = l.trim();
        if t.starts_with('#') {
            continue;
        }
        if let Some(v) = t.strip_prefix("version").map(str::trim_start) {
            if let Some(v) = v.strip_prefix('=') {
                version = Some(v.trim().to_string());
            }
        }
        // `registry = {…}` or `registry.config_path = …` inside the CRI table: a second
        // definition would stop containerd from starting.
        if !t.starts_with('[') && t.starts_with("registry") {
            return None;
        }
    }
    let table = match version.as_deref() {
        Some("2") => "[plugins.\"io.containerd.grpc.v1.cri\".registry]",
        Some("3") => "[plugins.'io.containerd.cri.v1.images'.registry]",
        _ => return None,
    };
    let mut text = config.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "\n# ferry: the CRI plugin reads registry hosts (mirrors) from here.\n{table}\n  config_path = \"{HOSTS_DIR}\"\n"
    ));
    Some(text)
}

#[async_trait]
impl Resource for Containerd {
    type State = ContainerdState;

    fn id(&self) -> String {
        "containerd".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        os::require(facts, "containerd", &[Family::Debian])
    }

    fn reads(&self) -> Vec<String> {
        vec![CONFIG.to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<ContainerdState, ResourceError> {
        let installed = host.run("command -v containerd").await?.success();
        let before = if installed {
            packages::PackagesState::default()
        } else {
            packages::dpkg_state(host).await?
        };
        Ok(ContainerdState {
            installed,
            packages_before: before.present,
            config_only_before: before.config_only,
            service: ServiceState::observe(host, UNIT).await?,
            config: host.read_file(CONFIG).await?,
            cni_missing: host.missing_dirs(CNI_CONF_DIR).await?,
        })
    }

    fn diff(&self, observed: &ContainerdState) -> Vec<Change> {
        let mut out = Vec::new();
        if !observed.installed {
            let to = match &self.repo {
                Some(r) => format!("package {} from the bundle ({})", self.package, r.distro),
                None => "refused: the bundle has no OS package repository".to_string(),
            };
            out.push(Change::new("containerd", "not installed", to));
        }
        match observed.config.text() {
            _ if !observed.config.exists() => out.push(Change::new(
                CONFIG,
                "absent",
                format!("containerd's default, registry hosts in {HOSTS_DIR}"),
            )),
            Some(text) if with_hosts_dir(text).is_some() => out.push(Change::new(
                format!("{CONFIG}: CRI registry config_path"),
                "not set",
                HOSTS_DIR,
            )),
            _ => {}
        }
        let want = ServiceState {
            enabled: true,
            active: true,
        };
        if observed.service != want {
            out.push(Change::new(
                "containerd service",
                observed.service.describe(),
                want.describe(),
            ));
        }
        out
    }

    async fn apply(
        &self,
        host: &dyn Host,
        observed: &ContainerdState,
    ) -> Result<(), ResourceError> {
        if !observed.installed {
            let Some(repo) = &self.repo else {
                return Err(ResourceError::Refused(format!(
                    "{}: containerd is not installed and the bundle has no OS package \
                     repository to install it from: add containerd to bundle.toml's \
                     [[os_packages]] and rebuild",
                    host.name()
                )));
            };
            packages::install(host, std::slice::from_ref(&self.package), repo).await?;
        }
        // Through write_file, so the run records what it wrote (see `Effect::Wrote`). The
        // restart below makes containerd read it.
        if !observed.config.exists() {
            let default = host.run_ok("containerd config default").await?;
            let config = with_hosts_dir(&default).unwrap_or(default);
            host.write_file(CONFIG, config.as_bytes(), 0o644).await?;
        } else if let Some(config) = observed.config.text().and_then(with_hosts_dir) {
            host.write_file(CONFIG, config.as_bytes(), 0o644).await?;
        }
        observed.service.start(host, UNIT).await?;
        let started = Instant::now();
        loop {
            let out = host.run("ctr version").await?;
            if out.success() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(ResourceError::Check(format!(
                    "{}: containerd does not answer on its socket 30 s after start (`ctr \
                     version`: {}); see `journalctl -u {UNIT}`",
                    host.name(),
                    out.stderr.trim()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn revert(&self, host: &dyn Host, before: &ContainerdState) -> Result<(), ResourceError> {
        if before.installed {
            before.service.restore(host, UNIT).await?;
        } else {
            host.run(&format!("systemctl disable --now --quiet {UNIT}"))
                .await?;
        }
        host.restore_file(CONFIG, &before.config).await?;
        if !before.installed {
            let dpkg = packages::PackagesState {
                present: before.packages_before.clone(),
                config_only: before.config_only_before.clone(),
            };
            packages::undo_install(host, &dpkg).await?;
        }
        host.remove_empty_dirs(&before.cni_missing).await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_stopped_containerd_needs_config_and_start() {
        let c = Containerd {
            package: "containerd".into(),
            repo: None,
        };
        let s = ContainerdState {
            installed: true,
            packages_before: BTreeSet::new(),
            config_only_before: BTreeSet::new(),
            service: ServiceState::default(),
            config: FileState::absent(),
            cni_missing: Vec::new(),
        };
        let d = c.diff(&s);
        let whats: Vec<&str> = d.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(whats, [CONFIG, "containerd service"]);
        assert_eq!(d[1].from, "disabled, inactive");
        assert_eq!(d[1].to, "enabled, active");
    }

    /// The CRI part of `containerd config default` as containerd 1.6.20 (Debian 12) writes it.
    const V2: &str = r#"version = 2

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    enable_selinux = false

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""

      [plugins."io.containerd.grpc.v1.cri".registry.auths]

      [plugins."io.containerd.grpc.v1.cri".registry.configs]

      [plugins."io.containerd.grpc.v1.cri".registry.headers]

      [plugins."io.containerd.grpc.v1.cri".registry.mirrors]

    [plugins."io.containerd.grpc.v1.cri".x509_key_pair_streaming]
      tls_cert_file = ""
"#;

    #[test]
    fn the_default_config_gets_the_hosts_dir_and_only_that_line_changes() {
        let out = with_hosts_dir(V2).unwrap();
        let changed: Vec<(&str, &str)> = V2
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            [(
                "      config_path = \"\"",
                "      config_path = \"/etc/containerd/certs.d\""
            )]
        );
        assert_eq!(out.lines().count(), V2.lines().count());
        assert!(out.ends_with('\n'));
        // Idempotent: a second run finds nothing to change.
        assert_eq!(with_hosts_dir(&out), None);
    }

    /// The file Debian 12's containerd package ships: no registry table at all.
    const DEBIAN: &str = r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"#;

    #[test]
    fn debians_shipped_config_gets_a_registry_table_added_at_its_end() {
        let out = with_hosts_dir(DEBIAN).unwrap();
        assert!(out.starts_with(DEBIAN), "{out}");
        assert_eq!(
            &out[DEBIAN.len()..],
            "\n# ferry: the CRI plugin reads registry hosts (mirrors) from here.\n\
             [plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
        );
        assert_eq!(with_hosts_dir(&out), None);
    }

    #[test]
    fn an_admins_path_and_the_older_mirror_tables_are_left_alone() {
        let own = V2.replace("config_path = \"\"", "config_path = \"/srv/hosts\"");
        assert_eq!(with_hosts_dir(&own), None);
        let legacy = format!(
            "{V2}\n      [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"site.example\"]\n        endpoint = [\"https://10.0.0.5\"]\n"
        );
        assert_eq!(with_hosts_dir(&legacy), None);
        // containerd 2.x's table, single-quoted, without the key: it is added.
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n[plugins.x]\n";
        assert_eq!(
            with_hosts_dir(v3).unwrap(),
            "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = \"/etc/containerd/certs.d\"\n[plugins.x]\n"
        );
        // No version: not a layout ferry edits.
        assert_eq!(with_hosts_dir("[plugins]\n"), None);
        // A registry given inline inside the CRI table: not added twice.
        let inline = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  registry = { config_path = \"\" }\n";
        assert_eq!(with_hosts_dir(inline), None);
    }

    #[test]
    fn a_state_with_an_empty_config_path_plans_the_change() {
        let c = Containerd {
            package: "containerd".into(),
            repo: None,
        };
        let s = ContainerdState {
            installed: true,
            packages_before: BTreeSet::new(),
            config_only_before: BTreeSet::new(),
            service: ServiceState {
                enabled: true,
                active: true,
            },
            config: FileState::present(V2, 0o644),
            cni_missing: Vec::new(),
        };
        let d = c.diff(&s);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].to, HOSTS_DIR);
        let done = ContainerdState {
            config: FileState::present(with_hosts_dir(V2).unwrap(), 0o644),
            ..s
        };
        assert!(c.diff(&done).is_empty());
    }

    /// This machine's own containerd, when it has one, reads the edited default (and Debian's
    /// shipped file) and reports the path (`containerd config dump` loads the file as the daemon does).
    #[test]
    fn a_real_containerd_reads_the_edited_configs() {
        let Ok(out) = std::process::Command::new("containerd")
            .args(["config", "default"])
            .output()
        else {
            return;
        };
        let default = String::from_utf8(out.stdout).unwrap();
        let Some(edited) = with_hosts_dir(&default) else {
            // containerd 2.x already names the directory by default.
            assert!(default.contains(HOSTS_DIR), "{default}");
            return;
        };
        let d = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("default", edited),
            ("debian", with_hosts_dir(DEBIAN).unwrap()),
        ] {
            let file = d.path().join(format!("{name}.toml"));
            std::fs::write(&file, &text).unwrap();
            let dump = std::process::Command::new("containerd")
                .arg("--config")
                .arg(&file)
                .args(["config", "dump"])
                .output()
                .unwrap();
            let got = String::from_utf8_lossy(&dump.stdout);
            assert!(
                dump.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&dump.stderr)
            );
            assert!(
                got.contains(&format!("config_path = \"{HOSTS_DIR}\"")),
                "{name}: {got}"
            );
        }
    }
}
