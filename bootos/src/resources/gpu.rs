//! The NVIDIA driver from the bundle, for hosts whose facts show an NVIDIA GPU and no driver or
//! an older one. The package is NVIDIA's `.run` installer (`NVIDIA-Linux-<arch>-<version>.run`):
//! sent to `/var/lib/ferry/drivers/<sha256>/`, run with `--silent`, and verified with
//! `nvidia-smi` reporting the expected version. Revert uninstalls it (`nvidia-installer
//! --uninstall --silent`) when the host had no driver before; an older driver it replaced
//! cannot come back from the bundle, so revert says so instead of leaving the host without one.
//! The `.run` contract is the same on RedHat (it builds the module against the running kernel).

use std::cmp::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::shell_quote;
use ferry_inventory::transfer::LocalFile;
use serde::{Deserialize, Serialize};

use crate::baseline::LocalDriver;
use crate::host::Host;
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError, Upload};

use super::software::compare_versions;

/// Where driver packages are kept on hosts, one directory per package sha256.
pub const DRIVER_ROOT: &str = "/var/lib/ferry/drivers";
/// The change a driver install shows (and whose apply sends the package).
const CHANGE: &str = "NVIDIA driver";

/// The NVIDIA driver installed from the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDriver {
    /// The driver package on the jump host.
    pub driver: LocalDriver,
}

/// What `gpu-driver` finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuState {
    /// The driver version `nvidia-smi` (or the loaded module) reports; `None` without one.
    pub version: Option<String>,
    /// The running kernel (`uname -r`).
    pub kernel: String,
    /// `nvidia-installer` was there (an install that failed before `nvidia-smi` worked still
    /// leaves it, and revert must then uninstall).
    #[serde(default)]
    pub installer: bool,
}

/// Reads the version `nvidia-smi --query-gpu=driver_version --format=csv,noheader` printed
/// (one line per GPU; the first counts), else the loaded module's from
/// `/proc/driver/nvidia/version`.
pub fn parse_driver_version(smi: &str, proc_version: &str) -> Option<String> {
    let looks_like = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.');
    if let Some(v) = smi.lines().next().map(str::trim).filter(|v| looks_like(v)) {
        return Some(v.to_string());
    }
    proc_version
        .lines()
        .find(|l| l.starts_with("NVRM version"))
        .and_then(|l| l.split("Kernel Module").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|v| looks_like(v))
        .map(str::to_string)
}

impl GpuDriver {
    fn file_name(&self) -> String {
        self.driver
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("NVIDIA-Linux-{}.run", self.driver.version))
    }

    /// The directory the package is sent to on hosts.
    pub fn remote_dir(&self) -> String {
        format!(
            "{DRIVER_ROOT}/{}",
            super::packages::path_name(&self.driver.sha256)
        )
    }

    fn kernel_refusal(&self, kernel: &str) -> Option<String> {
        if self.driver.kernels.is_empty() || self.driver.kernels.iter().any(|k| k == kernel) {
            return None;
        }
        Some(format!(
            "the bundle's NVIDIA driver {} is built for kernel(s) {}; this host runs {kernel}: \
             add {kernel} to the driver's kernels in bundle.toml and rebuild, or boot one of \
             those kernels",
            self.driver.version,
            self.driver.kernels.join(", ")
        ))
    }

    async fn has_installer(host: &dyn Host) -> Result<bool, ResourceError> {
        Ok(host.run("command -v nvidia-installer").await?.success())
    }

    async fn read_version(host: &dyn Host) -> Result<Option<String>, ResourceError> {
        let out = host
            .run(
                "nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null; \
                 echo '--- proc'; cat /proc/driver/nvidia/version 2>/dev/null; true",
            )
            .await?;
        let (smi, proc_version) = out
            .stdout
            .split_once("--- proc")
            .unwrap_or((out.stdout.as_str(), ""));
        Ok(parse_driver_version(smi, proc_version))
    }
}

#[async_trait]
impl Resource for GpuDriver {
    type State = GpuState;

    fn id(&self) -> String {
        "gpu-driver".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        os::require(
            facts,
            "the NVIDIA driver install",
            &[Family::Debian, Family::RedHat],
        )?;
        match self.kernel_refusal(&facts.kernel) {
            Some(why) if !facts.kernel.is_empty() => Err(why),
            _ => Ok(()),
        }
    }

    async fn observe(&self, host: &dyn Host) -> Result<GpuState, ResourceError> {
        let kernel = host.run_ok("uname -r").await?.trim().to_string();
        Ok(GpuState {
            version: Self::read_version(host).await?,
            kernel,
            installer: Self::has_installer(host).await?,
        })
    }

    fn diff(&self, observed: &GpuState) -> Vec<Change> {
        let want = &self.driver.version;
        match &observed.version {
            // Never a downgrade: a newer driver put there by hand stays.
            Some(v) if compare_versions(v, want) != Ordering::Less => Vec::new(),
            Some(v) => vec![Change::new(CHANGE, v.clone(), want.clone())],
            None => vec![Change::new(CHANGE, "absent", want.clone())],
        }
    }

    async fn apply(&self, host: &dyn Host, observed: &GpuState) -> Result<(), ResourceError> {
        if let Some(why) = self.kernel_refusal(&observed.kernel) {
            return Err(ResourceError::Refused(format!("{}: {why}", host.name())));
        }
        let remote = format!("{}/{}", self.remote_dir(), self.file_name());
        host.upload(&self.driver.file, &remote, 0o755).await?;
        // NVIDIA's installer logs to /var/log/nvidia-installer.log; its last lines are in the
        // error when it fails.
        host.run_ok(&format!(
            "cd {} && sh ./{} --silent",
            shell_quote(&self.remote_dir()),
            shell_quote(&self.file_name())
        ))
        .await?;
        match Self::read_version(host).await? {
            Some(v) if v == self.driver.version => Ok(()),
            found => Err(ResourceError::Check(format!(
                "{}: after installing NVIDIA driver {}, nvidia-smi reports {}: see \
                 /var/log/nvidia-installer.log on the host (a loaded nouveau module or a \
                 missing kernel build environment are the usual causes)",
                host.name(),
                self.driver.version,
                found.as_deref().unwrap_or("no driver")
            ))),
        }
    }

    /// The package, when it is on the jump host (a step rebuilt from a journal has none).
    fn uploads(&self) -> Vec<Upload> {
        let Ok(meta) = std::fs::metadata(&self.driver.file) else {
            return Vec::new();
        };
        vec![Upload {
            change: CHANGE.into(),
            // Its sha256 is the bundle manifest's, checked when it was extracted.
            source: Arc::new(LocalFile {
                path: self.driver.file.clone(),
                size: meta.len(),
                sha256: self.driver.sha256.clone(),
            }),
        }]
    }

    async fn revert(&self, host: &dyn Host, before: &GpuState) -> Result<(), ResourceError> {
        let now = Self::read_version(host).await?;
        let left_an_installer = !before.installer && Self::has_installer(host).await?;
        if now == before.version && !left_an_installer {
            host.run_ok(&format!("rm -rf {}", shell_quote(&self.remote_dir())))
                .await?;
            return Ok(());
        }
        if let Some(old) = before.version.as_ref().filter(|_| now != before.version) {
            return Err(ResourceError::Refused(format!(
                "{}: NVIDIA driver {old} was replaced by {}; ferry cannot put {old} back (the \
                 bundle holds only the new one): reinstall {old} from its own package if it is \
                 needed, or keep {}",
                host.name(),
                now.as_deref().unwrap_or("nothing"),
                now.as_deref().unwrap_or("none")
            )));
        }
        let run_file = format!("{}/{}", self.remote_dir(), self.file_name());
        host.run_ok(&format!(
            "if command -v nvidia-installer >/dev/null; then nvidia-installer --uninstall --silent; \
             else sh {} --uninstall --silent; fi",
            shell_quote(&run_file)
        ))
        .await?;
        if let Some(v) = Self::read_version(host).await? {
            return Err(ResourceError::Check(format!(
                "{}: nvidia-smi still reports driver {v} after uninstalling it: see \
                 /var/log/nvidia-uninstall.log on the host",
                host.name()
            )));
        }
        host.run_ok(&format!("rm -rf {}", shell_quote(&self.remote_dir())))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn driver(kernels: &[&str]) -> GpuDriver {
        GpuDriver {
            driver: LocalDriver {
                file: "/b/NVIDIA-Linux-x86_64-550.90.07.run".into(),
                sha256: "ab".repeat(32),
                version: "550.90.07".into(),
                kernels: kernels.iter().map(|k| k.to_string()).collect(),
            },
        }
    }

    #[test]
    fn reads_the_version_from_nvidia_smi_or_the_module() {
        assert_eq!(
            parse_driver_version("550.90.07\n550.90.07\n", "").as_deref(),
            Some("550.90.07")
        );
        let proc_v = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 \
                      01:44:30 UTC 2024\nGCC version:  gcc version 12.3.0\n";
        assert_eq!(
            parse_driver_version("", proc_v).as_deref(),
            Some("550.54.14")
        );
        assert_eq!(
            parse_driver_version(
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
                ""
            ),
            None
        );
    }

    #[test]
    fn installs_over_nothing_or_older_never_downgrades() {
        let d = driver(&[]);
        let at = |v: Option<&str>| GpuState {
            version: v.map(str::to_string),
            kernel: "6.1.0-18-amd64".into(),
            installer: v.is_some(),
        };
        assert_eq!(d.diff(&at(None))[0].from, "absent");
        assert_eq!(d.diff(&at(Some("535.104.05")))[0].to, "550.90.07");
        assert!(d.diff(&at(Some("550.90.07"))).is_empty());
        assert!(d.diff(&at(Some("555.42.02"))).is_empty());
    }

    #[test]
    fn refuses_a_kernel_the_driver_was_not_built_for() {
        let mut f = Facts::default();
        f.os.id = "debian".into();
        f.kernel = "6.1.0-18-amd64".into();
        assert!(driver(&[]).supports(&f).is_ok());
        assert!(driver(&["6.1.0-18-amd64"]).supports(&f).is_ok());
        let e = driver(&["5.15.0-105-generic"]).supports(&f).unwrap_err();
        assert!(
            e.contains("built for kernel(s) 5.15.0-105-generic; this host runs 6.1.0-18-amd64"),
            "{e}"
        );
    }
}
