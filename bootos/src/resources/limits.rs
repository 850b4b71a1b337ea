//! Process limits, in the two places they come from: pam_limits for login sessions
//! (`/etc/security/limits.d/90-ferry.conf`) and systemd's defaults for services
//! (`/etc/systemd/system.conf.d/90-ferry.conf`, `DefaultLimitNOFILE`). systemd re-reads
//! system.conf on `daemon-reload` (since v222), so the heavier `daemon-reexec` is not needed;
//! services started before keep their limits until restarted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use serde::{Deserialize, Serialize};

use crate::host::{FileState, Host};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError};

/// pam_limits' drop-in.
pub const PAM_DROPIN: &str = "/etc/security/limits.d/90-ferry.conf";
/// systemd's drop-in.
pub const SYSTEMD_DROPIN: &str = "/etc/systemd/system.conf.d/90-ferry.conf";

/// Process limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Open files.
    pub nofile: u64,
    /// Processes per user, if set.
    pub nproc: Option<u64>,
}

/// What [`Limits::observe`] finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsState {
    /// pam_limits' drop-in as it was.
    pub pam: FileState,
    /// systemd's drop-in as it was.
    pub systemd: FileState,
    /// The service manager's defaults now (`DefaultLimitNOFILE` ... from `systemctl show`).
    pub manager: BTreeMap<String, String>,
}

/// pam_limits' file. `*` does not cover root in pam_limits, so root has its own lines.
pub fn render_pam(l: &Limits) -> String {
    let mut out = String::from("# Managed by ferry: limits for the cluster's workloads.\n");
    let mut items = vec![("nofile", l.nofile)];
    if let Some(n) = l.nproc {
        items.push(("nproc", n));
    }
    for who in ["*", "root"] {
        for (item, v) in &items {
            for kind in ["soft", "hard"] {
                out.push_str(&format!("{who}\t{kind}\t{item}\t{v}\n"));
            }
        }
    }
    out
}

/// systemd's file.
pub fn render_systemd(l: &Limits) -> String {
    let mut out =
        String::from("# Managed by ferry: limits for the cluster's services.\n[Manager]\n");
    out.push_str(&format!("DefaultLimitNOFILE={}\n", l.nofile));
    if let Some(n) = l.nproc {
        out.push_str(&format!("DefaultLimitNPROC={n}\n"));
    }
    out
}

/// The manager's values these limits set, as `systemctl show` prints them.
fn wanted_manager(l: &Limits) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("DefaultLimitNOFILE".to_string(), l.nofile.to_string());
    m.insert("DefaultLimitNOFILESoft".to_string(), l.nofile.to_string());
    if let Some(n) = l.nproc {
        m.insert("DefaultLimitNPROC".to_string(), n.to_string());
        m.insert("DefaultLimitNPROCSoft".to_string(), n.to_string());
    }
    m
}

/// Parses `Key=value` lines.
pub fn parse_show(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

const SHOW: &str = "systemctl show -p DefaultLimitNOFILE -p DefaultLimitNOFILESoft \
                    -p DefaultLimitNPROC -p DefaultLimitNPROCSoft";

#[async_trait]
impl Resource for Limits {
    type State = LimitsState;

    fn id(&self) -> String {
        "limits".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        // RedHat has the same pam_limits and systemd files; enabled there once tested.
        os::require(facts, "limits", &[Family::Debian])?;
        if self.nofile == 0 || self.nproc == Some(0) {
            return Err(
                "limits: a limit of 0 would stop every process; fix it in the answer file".into(),
            );
        }
        Ok(())
    }

    fn reads(&self) -> Vec<String> {
        vec![PAM_DROPIN.to_string(), SYSTEMD_DROPIN.to_string()]
    }

    fn probes(&self) -> Vec<String> {
        vec![SHOW.to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<LimitsState, ResourceError> {
        Ok(LimitsState {
            pam: host.read_file(PAM_DROPIN).await?,
            systemd: host.read_file(SYSTEMD_DROPIN).await?,
            manager: parse_show(&host.run_ok(SHOW).await?),
        })
    }

    fn diff(&self, observed: &LimitsState) -> Vec<Change> {
        let mut out = Vec::new();
        for (path, have, want) in [
            (PAM_DROPIN, &observed.pam, render_pam(self)),
            (SYSTEMD_DROPIN, &observed.systemd, render_systemd(self)),
        ] {
            if have.text() != Some(want.as_str()) {
                let from = if have.exists() { "differs" } else { "absent" };
                out.push(Change::new(path, from, format!("nofile {}", self.nofile)));
            }
        }
        for (k, v) in wanted_manager(self) {
            let now = observed
                .manager
                .get(&k)
                .map(String::as_str)
                .unwrap_or("unknown");
            if now != v {
                out.push(Change::new(format!("systemd {k}"), now, v));
            }
        }
        out
    }

    async fn apply(&self, host: &dyn Host, _observed: &LimitsState) -> Result<(), ResourceError> {
        host.write_file(PAM_DROPIN, render_pam(self).as_bytes(), 0o644)
            .await?;
        host.write_file(SYSTEMD_DROPIN, render_systemd(self).as_bytes(), 0o644)
            .await?;
        host.run_ok("systemctl daemon-reload").await?;
        Ok(())
    }

    async fn revert(&self, host: &dyn Host, before: &LimitsState) -> Result<(), ResourceError> {
        host.restore_file(PAM_DROPIN, &before.pam).await?;
        host.restore_file(SYSTEMD_DROPIN, &before.systemd).await?;
        host.run_ok("systemctl daemon-reload").await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn res() -> Limits {
        Limits {
            nofile: 1_048_576,
            nproc: None,
        }
    }

    #[test]
    fn diff_is_empty_when_already_set() {
        let r = res();
        let s = LimitsState {
            pam: FileState::present(render_pam(&r), 0o644),
            systemd: FileState::present(render_systemd(&r), 0o644),
            manager: parse_show(
                "DefaultLimitNOFILE=1048576\nDefaultLimitNOFILESoft=1048576\n\
                 DefaultLimitNPROC=3646\nDefaultLimitNPROCSoft=3646\n",
            ),
        };
        assert!(r.diff(&s).is_empty());
    }

    #[test]
    fn diff_shows_files_and_the_managers_default() {
        let s = LimitsState {
            pam: FileState::absent(),
            systemd: FileState::absent(),
            manager: parse_show("DefaultLimitNOFILE=524288\nDefaultLimitNOFILESoft=1024\n"),
        };
        assert_eq!(
            res().diff(&s),
            vec![
                Change::new(PAM_DROPIN, "absent", "nofile 1048576"),
                Change::new(SYSTEMD_DROPIN, "absent", "nofile 1048576"),
                Change::new("systemd DefaultLimitNOFILE", "524288", "1048576"),
                Change::new("systemd DefaultLimitNOFILESoft", "1024", "1048576"),
            ]
        );
    }

    #[test]
    fn root_gets_its_own_lines() {
        let p = render_pam(&Limits {
            nofile: 65536,
            nproc: Some(4096),
        });
        assert!(p.contains("*\tsoft\tnofile\t65536\n"));
        assert!(p.contains("root\thard\tnofile\t65536\n"));
        assert!(p.contains("root\tsoft\tnproc\t4096\n"));
        assert_eq!(p.lines().count(), 1 + 8);
    }
}
