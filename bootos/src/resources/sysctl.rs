//! Kernel settings: set now with `sysctl -w` and kept for boot in one drop-in,
//! `/etc/sysctl.d/90-ferry.conf` (systemd-sysctl applies it after systemd-modules-load, so
//! keys from modules such as br_netfilter exist by then). A key the kernel does not have fails
//! the apply with a line naming it and the usual cause, never silently.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::shell_quote;
use serde::{Deserialize, Serialize};

use crate::host::{FileState, Host};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError};

/// The drop-in ferry owns.
pub const DROPIN: &str = "/etc/sysctl.d/90-ferry.conf";

/// Kernel settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctl {
    /// Key (`net.ipv4.ip_forward`) to value.
    pub settings: BTreeMap<String, String>,
}

/// What [`Sysctl::observe`] finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlState {
    /// The drop-in as it was.
    pub dropin: FileState,
    /// Each key's running value; `None` when the kernel has no such key.
    pub runtime: BTreeMap<String, Option<String>>,
}

/// A value as the kernel prints it and as a file gives it compare equal once whitespace is
/// one space (`net.ipv4.tcp_rmem` prints tabs).
pub fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why `key` cannot be a sysctl key, or `None`.
pub fn invalid_key(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("an empty key".into());
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/*".contains(*c)))
    {
        return Some(format!("key '{key}' contains '{c}'"));
    }
    None
}

/// The drop-in's content.
pub fn render_dropin(settings: &BTreeMap<String, String>) -> String {
    let mut out = String::from("# Managed by ferry: kernel settings for the cluster.\n");
    for (k, v) in settings {
        out.push_str(&format!("{k} = {}\n", normalize(v)));
    }
    out
}

/// The script printing `key<TAB>set<TAB>value` or `key<TAB>missing` for each key.
fn read_script<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let mut s = String::new();
    for k in keys {
        let q = shell_quote(k);
        s.push_str(&format!(
            "if v=$(sysctl -n -- {q} 2>/dev/null); then printf '%s\\tset\\t%s\\n' {q} \"$(printf '%s' \"$v\" | tr '\\t\\n' '  ')\"; else printf '%s\\tmissing\\n' {q}; fi\n"
        ));
    }
    s
}

/// Parses [`read_script`]'s output.
pub fn parse_runtime(out: &str) -> BTreeMap<String, Option<String>> {
    let mut map = BTreeMap::new();
    for line in out.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(k), Some(status)) = (parts.next(), parts.next()) else {
            continue;
        };
        let v = match status {
            "set" => Some(normalize(parts.next().unwrap_or_default())),
            _ => None,
        };
        map.insert(k.to_string(), v);
    }
    map
}

/// Parses the apply script's failure lines (`key<TAB>message`) into one error line that
/// says what to do.
pub fn explain_failures(out: &str) -> Option<String> {
    let mut missing = Vec::new();
    let mut other = Vec::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let (k, msg) = line.split_once('\t').unwrap_or((line, ""));
        if msg.starts_with("missing") {
            missing.push(k.to_string());
        } else {
            other.push(format!("{k} ({})", msg.trim()));
        }
    }
    if missing.is_empty() && other.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        let bridge = missing.iter().any(|k| k.starts_with("net.bridge."));
        parts.push(format!(
            "the kernel has no {} {}: the module that provides {} is not loaded{}",
            if missing.len() == 1 { "key" } else { "keys" },
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" },
            if bridge {
                " (net.bridge.* comes with br_netfilter: add it to the modules)"
            } else {
                " (add it to the modules, or drop the setting)"
            }
        ));
    }
    if !other.is_empty() {
        parts.push(format!("the kernel refused {}", other.join(", ")));
    }
    Some(format!("sysctl: {}", parts.join("; ")))
}

#[async_trait]
impl Resource for Sysctl {
    type State = SysctlState;

    fn id(&self) -> String {
        "sysctl".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        // RedHat reads /etc/sysctl.d the same way; enabled there once tested.
        os::require(facts, "sysctl", &[Family::Debian])?;
        for (k, v) in &self.settings {
            if let Some(why) = invalid_key(k) {
                return Err(format!("sysctl: {why}; fix the setting in the answer file"));
            }
            if v.contains('\n') || normalize(v).is_empty() {
                return Err(format!(
                    "sysctl: the value of {k} is empty or has a line break; fix it in the answer file"
                ));
            }
        }
        Ok(())
    }

    fn reads(&self) -> Vec<String> {
        vec![DROPIN.to_string()]
    }

    fn probes(&self) -> Vec<String> {
        vec![read_script(self.settings.keys())]
    }

    async fn observe(&self, host: &dyn Host) -> Result<SysctlState, ResourceError> {
        let dropin = host.read_file(DROPIN).await?;
        let out = host.run_ok(&read_script(self.settings.keys())).await?;
        Ok(SysctlState {
            dropin,
            runtime: parse_runtime(&out),
        })
    }

    fn diff(&self, observed: &SysctlState) -> Vec<Change> {
        let mut out = Vec::new();
        let want = render_dropin(&self.settings);
        if observed.dropin.text() != Some(want.as_str()) {
            let from = if observed.dropin.exists() {
                "differs"
            } else {
                "absent"
            };
            out.push(Change::new(
                DROPIN,
                from,
                format!("{} settings", self.settings.len()),
            ));
        }
        for (k, v) in &self.settings {
            let v = normalize(v);
            match observed.runtime.get(k).cloned().flatten() {
                Some(now) if now == v => {}
                Some(now) => out.push(Change::new(k, now, v)),
                None => out.push(Change::new(k, "no such key yet", v)),
            }
        }
        out
    }

    async fn apply(&self, host: &dyn Host, _observed: &SysctlState) -> Result<(), ResourceError> {
        host.write_file(DROPIN, render_dropin(&self.settings).as_bytes(), 0o644)
            .await?;
        // Every key is set, not only those the observation found different: the modules
        // resource may have run after it, creating keys that were missing then.
        let mut script = String::new();
        for (k, v) in &self.settings {
            let (qk, kv) = (
                shell_quote(k),
                shell_quote(&format!("{k}={}", normalize(v))),
            );
            script.push_str(&format!(
                "if ! sysctl -n -- {qk} >/dev/null 2>&1; then printf '%s\\tmissing\\n' {qk}; \
                 elif ! e=$(sysctl -w -- {kv} 2>&1 >/dev/null); then printf '%s\\t%s\\n' {qk} \"$(echo \"$e\" | head -n 1)\"; fi\n"
            ));
        }
        let out = host.run_ok(&script).await?;
        match explain_failures(&out) {
            Some(line) => Err(ResourceError::Refused(line)),
            None => Ok(()),
        }
    }

    async fn revert(&self, host: &dyn Host, before: &SysctlState) -> Result<(), ResourceError> {
        host.restore_file(DROPIN, &before.dropin).await?;
        // Keys that did not exist before need nothing: they leave with their module.
        let mut script = String::new();
        for (k, v) in &before.runtime {
            if let Some(v) = v {
                let (qk, kv) = (shell_quote(k), shell_quote(&format!("{k}={v}")));
                script.push_str(&format!(
                    "if sysctl -n -- {qk} >/dev/null 2>&1; then sysctl -q -w -- {kv}; fi\n"
                ));
            }
        }
        if !script.is_empty() {
            host.run_ok(&format!("set -e\n{script}")).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn res() -> Sysctl {
        Sysctl {
            settings: [
                ("net.ipv4.ip_forward", "1"),
                ("net.bridge.bridge-nf-call-iptables", "1"),
                ("net.ipv4.tcp_rmem", "4096 131072  6291456"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    #[test]
    fn parses_values_and_missing_keys() {
        let out = "net.ipv4.ip_forward\tset\t0\nnet.bridge.bridge-nf-call-iptables\tmissing\n\
                   net.ipv4.tcp_rmem\tset\t4096 131072 6291456 \n";
        let m = parse_runtime(out);
        assert_eq!(m["net.ipv4.ip_forward"], Some("0".into()));
        assert_eq!(m["net.bridge.bridge-nf-call-iptables"], None);
        assert_eq!(m["net.ipv4.tcp_rmem"], Some("4096 131072 6291456".into()));
    }

    #[test]
    fn diff_is_empty_when_already_set() {
        let r = res();
        let state = SysctlState {
            dropin: FileState::present(render_dropin(&r.settings), 0o644),
            runtime: parse_runtime(
                "net.ipv4.ip_forward\tset\t1\nnet.bridge.bridge-nf-call-iptables\tset\t1\n\
                 net.ipv4.tcp_rmem\tset\t4096\t131072\t6291456\n",
            ),
        };
        assert_eq!(r.diff(&state), vec![]);
    }

    #[test]
    fn diff_lists_the_file_and_each_key_that_differs() {
        let r = res();
        let state = SysctlState {
            dropin: FileState::absent(),
            runtime: parse_runtime(
                "net.ipv4.ip_forward\tset\t0\nnet.bridge.bridge-nf-call-iptables\tmissing\n\
                 net.ipv4.tcp_rmem\tset\t4096 131072 6291456\n",
            ),
        };
        assert_eq!(
            r.diff(&state),
            vec![
                Change::new(DROPIN, "absent", "3 settings"),
                Change::new("net.bridge.bridge-nf-call-iptables", "no such key yet", "1"),
                Change::new("net.ipv4.ip_forward", "0", "1"),
            ]
        );
    }

    #[test]
    fn a_missing_bridge_key_names_br_netfilter() {
        let line = explain_failures("net.bridge.bridge-nf-call-iptables\tmissing\n").unwrap();
        assert_eq!(
            line,
            "sysctl: the kernel has no key net.bridge.bridge-nf-call-iptables: the module that \
             provides it is not loaded (net.bridge.* comes with br_netfilter: add it to the modules)"
        );
        let line =
            explain_failures("vm.x\tsysctl: setting key \"vm.x\": Invalid argument\n").unwrap();
        assert!(line.contains("refused vm.x (sysctl: setting key"), "{line}");
        assert_eq!(explain_failures(""), None);
    }

    #[test]
    fn the_dropin_has_one_line_a_key_in_order() {
        assert_eq!(
            render_dropin(&res().settings),
            "# Managed by ferry: kernel settings for the cluster.\n\
             net.bridge.bridge-nf-call-iptables = 1\nnet.ipv4.ip_forward = 1\n\
             net.ipv4.tcp_rmem = 4096 131072 6291456\n"
        );
    }

    #[test]
    fn refuses_keys_that_would_break_the_file() {
        assert!(invalid_key("net.ipv4.ip_forward").is_none());
        assert!(invalid_key("a=b").is_some());
        assert!(invalid_key("a b").is_some());
        let mut r = res();
        r.settings.insert("vm.x".into(), "1\nvm.y = 2".into());
        let mut f = Facts::default();
        f.os.id = "debian".into();
        assert!(r.supports(&f).unwrap_err().contains("line break"));
    }
}
