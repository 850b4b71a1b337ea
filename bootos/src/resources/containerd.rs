//! containerd: installed from ferry's repository when its binary is missing, given the
//! default configuration when it has none, enabled and running, and checked with `ctr version`
//! (which talks to it through its socket). Revert stops and disables it as it was, puts the
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

#[async_trait]
impl Resource for Containerd {
    type State = ContainerdState;

    fn id(&self) -> String {
        "containerd".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        os::require(facts, "containerd", &[Family::Debian])
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
        if !observed.config.exists() {
            out.push(Change::new(CONFIG, "absent", "containerd's default"));
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
        if !observed.config.exists() {
            // Through write_file, so the run records what it wrote (see `Effect::Wrote`).
            let default = host.run_ok("containerd config default").await?;
            host.write_file(CONFIG, default.as_bytes(), 0o644).await?;
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
}
