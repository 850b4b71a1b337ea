//! The host's name: `/etc/hostname` (what it boots with) and the running name (what it has
//! now). The `127.0.1.1` line Debian keeps in `/etc/hosts` is left alone: the hosts-file
//! block lists this host under its new name, which is what makes the name resolve.

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::shell_quote;
use serde::{Deserialize, Serialize};

use crate::host::{FileState, Host};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError};

const ETC_HOSTNAME: &str = "/etc/hostname";

/// Names the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hostname {
    /// The name it gets (the inventory name).
    pub name: String,
}

/// What [`Hostname::observe`] finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostnameState {
    /// `/etc/hostname` as it was.
    pub etc_hostname: FileState,
    /// The running name (`/proc/sys/kernel/hostname`).
    pub running: String,
}

/// Why `name` cannot be a host name (RFC 1123: dot-separated labels of letters, digits and
/// inner hyphens, 63 characters a label, 253 in all), or `None` when it can.
pub fn invalid_hostname(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > 253 {
        return Some(format!(
            "it is {} characters long (at most 253)",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (two dots, or a dot at an end)".into());
        }
        if label.len() > 63 {
            return Some(format!("label '{label}' is longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label '{label}' starts or ends with '-'"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "it contains '{c}' (only letters, digits, '-' and '.')"
            ));
        }
    }
    None
}

/// The name `/etc/hostname` gives: its first non-comment word.
pub fn parse_etc_hostname(content: &str) -> Option<&str> {
    content
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
}

#[async_trait]
impl Resource for Hostname {
    type State = HostnameState;

    fn id(&self) -> String {
        "hostname".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        // RedHat keeps the name the same way (/etc/hostname, hostnamectl); enabled once a
        // RedHat host is tested.
        os::require(facts, "hostname", &[Family::Debian])?;
        match invalid_hostname(&self.name) {
            Some(why) => Err(format!(
                "'{}' cannot be a host name: {why}; rename the host in the inventory",
                self.name
            )),
            None => Ok(()),
        }
    }

    fn reads(&self) -> Vec<String> {
        vec![ETC_HOSTNAME.to_string()]
    }

    fn probes(&self) -> Vec<String> {
        vec!["cat /proc/sys/kernel/hostname".to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<HostnameState, ResourceError> {
        let etc_hostname = host.read_file(ETC_HOSTNAME).await?;
        let running = host.run_ok("cat /proc/sys/kernel/hostname").await?;
        Ok(HostnameState {
            etc_hostname,
            running: running.trim().to_string(),
        })
    }

    fn diff(&self, observed: &HostnameState) -> Vec<Change> {
        let mut out = Vec::new();
        let boot = observed.etc_hostname.text();
        if boot.and_then(parse_etc_hostname) != Some(self.name.as_str()) {
            let from = match boot {
                None => "absent".to_string(),
                Some(c) => parse_etc_hostname(c).unwrap_or("empty").to_string(),
            };
            out.push(Change::new(ETC_HOSTNAME, from, &self.name));
        }
        if observed.running != self.name {
            out.push(Change::new(
                "hostname (running)",
                &observed.running,
                &self.name,
            ));
        }
        out
    }

    async fn apply(&self, host: &dyn Host, observed: &HostnameState) -> Result<(), ResourceError> {
        if let Some(why) = invalid_hostname(&self.name) {
            return Err(ResourceError::Refused(format!(
                "'{}' cannot be a host name: {why}; rename the host in the inventory",
                self.name
            )));
        }
        let mode = observed.etc_hostname.mode.unwrap_or(0o644);
        host.write_file(ETC_HOSTNAME, format!("{}\n", self.name).as_bytes(), mode)
            .await?;
        set_running(host, &self.name).await
    }

    async fn revert(&self, host: &dyn Host, before: &HostnameState) -> Result<(), ResourceError> {
        host.restore_file(ETC_HOSTNAME, &before.etc_hostname)
            .await?;
        if !before.running.is_empty() {
            set_running(host, &before.running).await?;
        }
        Ok(())
    }
}

/// Sets the running name. hostnamectl's transient name keeps systemd-hostnamed in step when
/// it runs; without it (no D-Bus, a minimal host) the kernel's name is written directly.
async fn set_running(host: &dyn Host, name: &str) -> Result<(), ResourceError> {
    let n = shell_quote(name);
    host.run_ok(&format!(
        "hostnamectl --transient set-hostname {n} 2>/dev/null || printf '%s' {n} > /proc/sys/kernel/hostname"
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn state(etc: Option<&str>, running: &str) -> HostnameState {
        HostnameState {
            etc_hostname: FileState {
                content: etc.map(|e| crate::host::FileBytes(e.into())),
                mode: etc.map(|_| 0o644),
                ..FileState::absent()
            },
            running: running.into(),
        }
    }

    fn want(name: &str) -> Hostname {
        Hostname { name: name.into() }
    }

    #[test]
    fn diff_is_empty_when_already_set() {
        assert!(want("node-1")
            .diff(&state(Some("node-1\n"), "node-1"))
            .is_empty());
    }

    #[test]
    fn diff_names_both_the_boot_and_running_name() {
        let d = want("node-1").diff(&state(Some("debian\n"), "debian"));
        assert_eq!(
            d,
            vec![
                Change::new("/etc/hostname", "debian", "node-1"),
                Change::new("hostname (running)", "debian", "node-1"),
            ]
        );
        let d = want("node-1").diff(&state(None, "node-1"));
        assert_eq!(d, vec![Change::new("/etc/hostname", "absent", "node-1")]);
    }

    #[test]
    fn reads_the_first_name_in_etc_hostname() {
        assert_eq!(
            parse_etc_hostname("# set by cloud-init\n\nweb1 \n"),
            Some("web1")
        );
        assert_eq!(parse_etc_hostname("\n"), None);
    }

    #[test]
    fn refuses_names_a_resolver_would_not_take() {
        assert_eq!(invalid_hostname("node-1.site.example"), None);
        assert!(invalid_hostname("").is_some());
        assert!(invalid_hostname("node_1").unwrap().contains("'_'"));
        assert!(invalid_hostname("-node").is_some());
        assert!(invalid_hostname("a..b").is_some());
        assert!(invalid_hostname(&"a".repeat(64)).is_some());
        assert!(invalid_hostname("node 1").is_some());
        let mut f = Facts::default();
        f.os.id = "debian".into();
        let e = want("bad_name").supports(&f).unwrap_err();
        assert!(e.contains("rename the host in the inventory"), "{e}");
    }
}
