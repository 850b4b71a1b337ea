//! Kernel modules loaded now (`modprobe`) and at every boot (`/etc/modules-load.d/ferry.conf`,
//! read by systemd-modules-load before systemd-sysctl). Revert unloads only the modules this
//! resource loaded, and only best effort: `modprobe -r` refuses a module something now uses
//! (a bridge on br_netfilter, a container on overlay). That is not a rollback failure: the
//! boot file is gone, so the module is not loaded at the next boot, and unloading a module in
//! use would break whatever uses it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::shell_quote;
use serde::{Deserialize, Serialize};

use crate::host::{FileState, Host};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError};

/// The boot file ferry owns.
pub const DROPIN: &str = "/etc/modules-load.d/ferry.conf";

/// Kernel modules to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Modules {
    /// Module names (`overlay`, `br_netfilter`).
    pub modules: Vec<String>,
}

/// What [`Modules::observe`] finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModulesState {
    /// The boot file as it was.
    pub dropin: FileState,
    /// Whether each module was loaded (or built into the kernel).
    pub loaded: BTreeMap<String, bool>,
}

/// Why `name` cannot be a module name, or `None`.
pub fn invalid_module(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an empty module name".into());
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        .map(|c| format!("module name '{name}' contains '{c}'"))
}

/// The boot file's content.
pub fn render_dropin(modules: &[String]) -> String {
    let mut out = String::from("# Managed by ferry: kernel modules for the cluster.\n");
    for m in modules {
        out.push_str(m);
        out.push('\n');
    }
    out
}

/// Parses `name 1` / `name 0` lines.
pub fn parse_loaded(out: &str) -> BTreeMap<String, bool> {
    out.lines()
        .filter_map(|l| {
            let (name, flag) = l.trim().split_once(' ')?;
            Some((name.to_string(), flag == "1"))
        })
        .collect()
}

/// Prints `name 1` when a module is loaded or built in, `name 0` otherwise. `/sys/module`
/// names use `_` where modprobe accepts `-`; built-in modules without parameters show only
/// in `modules.builtin`.
fn loaded_script(modules: &[String]) -> String {
    let mut s = String::from("b=/lib/modules/$(uname -r)/modules.builtin\n");
    for m in modules {
        let q = shell_quote(m);
        let sys = shell_quote(&m.replace('-', "_"));
        s.push_str(&format!(
            "if [ -d /sys/module/{sys} ] || grep -q \"/{sys}.ko\" \"$b\" 2>/dev/null; then echo {q} 1; else echo {q} 0; fi\n"
        ));
    }
    s
}

#[async_trait]
impl Resource for Modules {
    type State = ModulesState;

    fn id(&self) -> String {
        "modules".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        // RedHat uses the same modules-load.d; enabled there once tested.
        os::require(facts, "kernel modules", &[Family::Debian])?;
        for m in &self.modules {
            if let Some(why) = invalid_module(m) {
                return Err(format!("modules: {why}; fix the list in the answer file"));
            }
        }
        Ok(())
    }

    fn reads(&self) -> Vec<String> {
        vec![DROPIN.to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<ModulesState, ResourceError> {
        let dropin = host.read_file(DROPIN).await?;
        let out = host.run_ok(&loaded_script(&self.modules)).await?;
        Ok(ModulesState {
            dropin,
            loaded: parse_loaded(&out),
        })
    }

    fn diff(&self, observed: &ModulesState) -> Vec<Change> {
        let mut out = Vec::new();
        let want = render_dropin(&self.modules);
        if observed.dropin.text() != Some(want.as_str()) {
            let from = if observed.dropin.exists() {
                "differs"
            } else {
                "absent"
            };
            out.push(Change::new(DROPIN, from, self.modules.join(" ")));
        }
        for m in &self.modules {
            if observed.loaded.get(m) != Some(&true) {
                out.push(Change::new(format!("module {m}"), "not loaded", "loaded"));
            }
        }
        out
    }

    async fn apply(&self, host: &dyn Host, observed: &ModulesState) -> Result<(), ResourceError> {
        host.write_file(DROPIN, render_dropin(&self.modules).as_bytes(), 0o644)
            .await?;
        for m in &self.modules {
            if observed.loaded.get(m) == Some(&true) {
                continue;
            }
            let out = host.run(&format!("modprobe -- {}", shell_quote(m))).await?;
            if !out.success() {
                return Err(ResourceError::Refused(format!(
                    "modprobe {m} failed ({}): {}; the running kernel ({}) has no such module \
                     or cannot load it: install its modules package, or reboot into the \
                     installed kernel if it was updated",
                    out.described,
                    out.stderr.trim(),
                    host.run_ok("uname -r").await.unwrap_or_default().trim()
                )));
            }
        }
        Ok(())
    }

    async fn revert(&self, host: &dyn Host, before: &ModulesState) -> Result<(), ResourceError> {
        host.restore_file(DROPIN, &before.dropin).await?;
        let ours: Vec<String> = self
            .modules
            .iter()
            .filter(|m| before.loaded.get(*m) == Some(&false))
            .cloned()
            .collect();
        // Reverse order: a later module may use an earlier one.
        for m in ours.iter().rev() {
            // Best effort, see the module comment: a refusal leaves the module loaded until
            // the next boot.
            host.run(&format!("modprobe -r -- {} 2>/dev/null", shell_quote(m)))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn res() -> Modules {
        Modules {
            modules: vec!["overlay".into(), "br_netfilter".into()],
        }
    }

    #[test]
    fn diff_is_empty_when_already_set() {
        let r = res();
        let s = ModulesState {
            dropin: FileState::present(render_dropin(&r.modules), 0o644),
            loaded: parse_loaded("overlay 1\nbr_netfilter 1\n"),
        };
        assert!(r.diff(&s).is_empty());
    }

    #[test]
    fn diff_names_the_file_and_each_module_not_loaded() {
        let s = ModulesState {
            dropin: FileState::absent(),
            loaded: parse_loaded("overlay 1\nbr_netfilter 0\n"),
        };
        assert_eq!(
            res().diff(&s),
            vec![
                Change::new(DROPIN, "absent", "overlay br_netfilter"),
                Change::new("module br_netfilter", "not loaded", "loaded"),
            ]
        );
    }

    #[test]
    fn the_check_script_looks_under_underscored_names() {
        let s = loaded_script(&["nf-conntrack".into()]);
        assert!(s.contains("/sys/module/nf_conntrack"), "{s}");
        assert!(s.contains("echo nf-conntrack 1"), "{s}");
    }

    #[test]
    fn refuses_a_module_name_that_is_not_one() {
        assert!(invalid_module("br_netfilter").is_none());
        assert!(invalid_module("a;reboot").is_some());
        assert!(invalid_module("").is_some());
    }
}
