//! The DNS resolver. Where systemd-resolved runs (`/etc/resolv.conf` points at its stub), a
//! drop-in `/etc/systemd/resolved.conf.d/90-ferry.conf` and a restart; writing resolv.conf
//! there would be undone by resolved. Otherwise `/etc/resolv.conf` itself, replacing a symlink
//! (resolvconf's) with a file; revert puts the symlink back.

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use serde::{Deserialize, Serialize};

use crate::host::{FileState, Host};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError};

const RESOLV: &str = "/etc/resolv.conf";
/// The resolved drop-in ferry owns.
pub const RESOLVED_DROPIN: &str = "/etc/systemd/resolved.conf.d/90-ferry.conf";

/// Resolver settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in order.
    pub nameservers: Vec<String>,
    /// Search domains.
    pub search: Vec<String>,
}

/// What [`Dns::observe`] finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsState {
    /// systemd-resolved is running and resolv.conf points at it.
    pub resolved: bool,
    /// `/etc/resolv.conf`'s symlink target, when it is one.
    pub resolv_link: Option<String>,
    /// `/etc/resolv.conf` (followed through a symlink).
    pub resolv_conf: FileState,
    /// The resolved drop-in.
    pub dropin: FileState,
}

/// resolv.conf's content.
pub fn render_resolv_conf(dns: &Dns) -> String {
    let mut out = String::from("# Managed by ferry: the cluster's resolver settings.\n");
    for n in &dns.nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !dns.search.is_empty() {
        out.push_str(&format!("search {}\n", dns.search.join(" ")));
    }
    out
}

/// The resolved drop-in's content.
pub fn render_resolved(dns: &Dns) -> String {
    let mut out = String::from("# Managed by ferry: the cluster's resolver settings.\n[Resolve]\n");
    out.push_str(&format!("DNS={}\n", dns.nameservers.join(" ")));
    if !dns.search.is_empty() {
        out.push_str(&format!("Domains={}\n", dns.search.join(" ")));
    }
    out
}

/// Whether a resolv.conf symlink target is systemd-resolved's.
pub fn is_resolved_link(target: &str) -> bool {
    target.contains("/run/systemd/resolve/") || target.ends_with("systemd/resolve/stub-resolv.conf")
}

/// Why the settings cannot be written, or `None`.
pub fn invalid(dns: &Dns) -> Option<String> {
    if dns.nameservers.is_empty() {
        return Some("no name servers".into());
    }
    // glibc reads the first three (MAXNS); more would silently do nothing.
    if dns.nameservers.len() > 3 {
        return Some(format!(
            "{} name servers: the resolver uses at most 3",
            dns.nameservers.len()
        ));
    }
    if let Some(n) = dns
        .nameservers
        .iter()
        .find(|n| n.parse::<std::net::IpAddr>().is_err())
    {
        return Some(format!("name server '{n}' is not an IP address"));
    }
    if let Some(d) = dns
        .search
        .iter()
        .find(|d| super::hostname::invalid_hostname(d).is_some())
    {
        return Some(format!("search domain '{d}' is not a domain name"));
    }
    None
}

impl Dns {
    fn wanted(&self, resolved: bool) -> (&'static str, String) {
        if resolved {
            (RESOLVED_DROPIN, render_resolved(self))
        } else {
            (RESOLV, render_resolv_conf(self))
        }
    }
}

#[async_trait]
impl Resource for Dns {
    type State = DnsState;

    fn id(&self) -> String {
        "dns".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        // RedHat: NetworkManager rewrites resolv.conf; it needs its own path (nmcli), not yet.
        os::require(facts, "DNS resolver", &[Family::Debian])?;
        match invalid(self) {
            Some(why) => Err(format!("dns: {why}; fix it in the answer file")),
            None => Ok(()),
        }
    }

    fn reads(&self) -> Vec<String> {
        vec![RESOLV.to_string(), RESOLVED_DROPIN.to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<DnsState, ResourceError> {
        let link = host
            .run_ok(&format!("readlink {RESOLV} || true"))
            .await?
            .trim()
            .to_string();
        let active = host
            .run("systemctl is-active --quiet systemd-resolved")
            .await?
            .success();
        let resolv_link = (!link.is_empty()).then_some(link);
        let resolved = active && resolv_link.as_deref().is_some_and(is_resolved_link);
        Ok(DnsState {
            resolved,
            resolv_link,
            resolv_conf: host.read_file(RESOLV).await?,
            dropin: host.read_file(RESOLVED_DROPIN).await?,
        })
    }

    fn diff(&self, observed: &DnsState) -> Vec<Change> {
        let (path, want) = self.wanted(observed.resolved);
        let have = if observed.resolved {
            &observed.dropin
        } else {
            &observed.resolv_conf
        };
        // A symlink (resolvconf's) is replaced even when its target reads the same: that
        // target is rewritten by its owner.
        let link = !observed.resolved && observed.resolv_link.is_some();
        if have.text() == Some(want.as_str()) && !link {
            return Vec::new();
        }
        let from = match (
            have.bytes().map(String::from_utf8_lossy),
            &observed.resolv_link,
        ) {
            (_, Some(t)) if link => format!("symlink to {t}"),
            (None, _) => "absent".to_string(),
            (Some(c), _) => {
                let servers: Vec<&str> = c
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix("nameserver"))
                    .map(str::trim)
                    .collect();
                if servers.is_empty() {
                    "differs".to_string()
                } else {
                    format!("nameserver {}", servers.join(" "))
                }
            }
        };
        vec![Change::new(
            path,
            from,
            format!("nameserver {}", self.nameservers.join(" ")),
        )]
    }

    async fn apply(&self, host: &dyn Host, observed: &DnsState) -> Result<(), ResourceError> {
        if let Some(why) = invalid(self) {
            return Err(ResourceError::Refused(format!(
                "dns: {why}; fix it in the answer file"
            )));
        }
        let (path, want) = self.wanted(observed.resolved);
        if observed.resolved {
            // Host::write_file makes the drop-in directory 0755: resolved reads its
            // configuration as its own user.
            host.write_file(path, want.as_bytes(), 0o644).await?;
            host.run_ok("systemctl restart systemd-resolved").await?;
        } else {
            // write_file renames over the path: a symlink is replaced, not followed.
            host.write_file(path, want.as_bytes(), 0o644).await?;
        }
        Ok(())
    }

    async fn revert(&self, host: &dyn Host, before: &DnsState) -> Result<(), ResourceError> {
        host.restore_file(RESOLVED_DROPIN, &before.dropin).await?;
        match &before.resolv_link {
            Some(target) => {
                let t = ferry_inventory::ssh::shell_quote(target);
                host.run_ok(&format!("ln -sfn {t} {RESOLV}")).await?;
            }
            None => host.restore_file(RESOLV, &before.resolv_conf).await?,
        }
        if before.resolved {
            host.run_ok("systemctl restart systemd-resolved").await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn res() -> Dns {
        Dns {
            nameservers: vec!["10.0.0.53".into(), "10.0.0.54".into()],
            search: vec!["site.example".into()],
        }
    }

    fn file(c: &str) -> FileState {
        FileState::present(c, 0o644)
    }

    fn plain(resolv: &str) -> DnsState {
        DnsState {
            resolved: false,
            resolv_link: None,
            resolv_conf: file(resolv),
            dropin: FileState::absent(),
        }
    }

    #[test]
    fn diff_is_empty_when_already_set() {
        let r = res();
        assert!(r.diff(&plain(&render_resolv_conf(&r))).is_empty());
        let s = DnsState {
            resolved: true,
            resolv_link: Some("../run/systemd/resolve/stub-resolv.conf".into()),
            resolv_conf: file("nameserver 127.0.0.53\n"),
            dropin: file(&render_resolved(&r)),
        };
        assert!(r.diff(&s).is_empty());
    }

    #[test]
    fn diff_shows_the_old_servers() {
        let d = res().diff(&plain("nameserver 192.168.1.1\nsearch home\n"));
        assert_eq!(
            d,
            vec![Change::new(
                "/etc/resolv.conf",
                "nameserver 192.168.1.1",
                "nameserver 10.0.0.53 10.0.0.54"
            )]
        );
    }

    #[test]
    fn a_resolvconf_symlink_is_replaced_even_when_it_reads_the_same() {
        let r = res();
        let mut s = plain(&render_resolv_conf(&r));
        s.resolv_link = Some("/run/resolvconf/resolv.conf".into());
        assert_eq!(r.diff(&s)[0].from, "symlink to /run/resolvconf/resolv.conf");
    }

    #[test]
    fn writes_resolved_and_resolv_conf_syntax() {
        assert_eq!(
            render_resolved(&res()),
            "# Managed by ferry: the cluster's resolver settings.\n[Resolve]\n\
             DNS=10.0.0.53 10.0.0.54\nDomains=site.example\n"
        );
        assert_eq!(
            render_resolv_conf(&res()),
            "# Managed by ferry: the cluster's resolver settings.\n\
             nameserver 10.0.0.53\nnameserver 10.0.0.54\nsearch site.example\n"
        );
        assert!(is_resolved_link("../run/systemd/resolve/stub-resolv.conf"));
        assert!(!is_resolved_link("/run/resolvconf/resolv.conf"));
    }

    #[test]
    fn refuses_settings_the_resolver_would_ignore() {
        let mut r = res();
        r.nameservers = vec!["1.1.1.1".into(); 4];
        assert!(invalid(&r).unwrap().contains("at most 3"));
        r.nameservers = vec!["dns.example".into()];
        assert!(invalid(&r).unwrap().contains("not an IP address"));
        r.nameservers.clear();
        assert!(invalid(&r).is_some());
    }
}
