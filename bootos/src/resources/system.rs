//! Kernel, network and identity settings: hostname, /etc/hosts, sysctl, kernel modules, swap,
//! DNS, limits, the default-route fix, and the cluster marker.

use ferry_inventory::facts::FerryMarker;
use serde::{Deserialize, Serialize};

use crate::baseline::{BaselineConfig, DefaultRouteFix, HostContext};
use crate::resource::DynResource;

use super::default_route::{self, DefaultRoute};
use super::dns::Dns;
use super::hostname::Hostname;
use super::hosts_file::{HostsEntry, HostsFile};
use super::limits::Limits;
use super::marker::ClusterMarker;
use super::modules::Modules;
use super::swap::SwapOff;
use super::sysctl::Sysctl;

/// A system resource, as a plan and a journal record it (`kind` names the variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SystemResource {
    /// The host's name.
    Hostname(Hostname),
    /// The cluster's block in /etc/hosts.
    HostsFile(HostsFile),
    /// The dummy interface and default route for a host without one.
    DefaultRoute(DefaultRoute),
    /// Kernel modules.
    Modules(Modules),
    /// Kernel settings.
    Sysctl(Sysctl),
    /// Swap off.
    Swap(SwapOff),
    /// Process limits.
    Limits(Limits),
    /// The DNS resolver.
    Dns(Dns),
    /// The cluster marker.
    ClusterMarker(ClusterMarker),
}

impl SystemResource {
    /// The resource behind the variant.
    pub fn as_dyn(&self) -> &dyn DynResource {
        match self {
            SystemResource::Hostname(r) => r,
            SystemResource::HostsFile(r) => r,
            SystemResource::DefaultRoute(r) => r,
            SystemResource::Modules(r) => r,
            SystemResource::Sysctl(r) => r,
            SystemResource::Swap(r) => r,
            SystemResource::Limits(r) => r,
            SystemResource::Dns(r) => r,
            SystemResource::ClusterMarker(r) => r,
        }
    }

    /// The marker for `ctx`'s host.
    pub fn marker(ctx: &HostContext<'_>) -> SystemResource {
        SystemResource::ClusterMarker(ClusterMarker {
            marker: FerryMarker {
                cluster_id: ctx.cluster_id.to_string(),
                cluster_name: Some(ctx.cluster_name.to_string()),
                role: Some(if ctx.member.server { "server" } else { "agent" }.to_string()),
            },
        })
    }
}

/// The system resources for `ctx`'s host, in apply order (the marker is added by the caller).
/// Identity first (name, then how members find each other), then the network fix, then
/// modules before sysctl (keys such as `net.bridge.*` exist only once br_netfilter is loaded),
/// then swap, limits and DNS, which nothing else here depends on.
pub fn resources(cfg: &BaselineConfig, ctx: &HostContext<'_>) -> Vec<SystemResource> {
    let mut out = Vec::new();
    if cfg.hostname {
        out.push(SystemResource::Hostname(Hostname {
            name: ctx.member.name.clone(),
        }));
    }
    if cfg.hosts_file {
        out.push(SystemResource::HostsFile(HostsFile {
            cluster: ctx.cluster_name.to_string(),
            // The host itself, the servers and the time source: what it talks to. Agents
            // do not list each other, so adding an agent changes no other host.
            entries: ctx
                .members
                .iter()
                .filter(|m| {
                    m.name == ctx.member.name
                        || m.server
                        || ctx.time_source.is_some_and(|t| t.name == m.name)
                })
                .map(|m| HostsEntry {
                    address: m.address.clone(),
                    name: m.name.clone(),
                })
                .collect(),
        }));
    }
    // A host whose only default route is ferry0 keeps the resource, so a second plan shows
    // it unchanged rather than dropping it.
    if cfg.default_route == DefaultRouteFix::Auto
        && !default_route::has_other_default_route(ctx.facts)
    {
        out.push(SystemResource::DefaultRoute(DefaultRoute {}));
    }
    if !cfg.modules.is_empty() {
        out.push(SystemResource::Modules(Modules {
            modules: cfg.modules.clone(),
        }));
    }
    if !cfg.sysctl.is_empty() {
        out.push(SystemResource::Sysctl(Sysctl {
            settings: cfg.sysctl.clone(),
        }));
    }
    if cfg.swap_off {
        out.push(SystemResource::Swap(SwapOff {}));
    }
    if let Some(l) = &cfg.limits {
        out.push(SystemResource::Limits(Limits {
            nofile: l.nofile,
            nproc: l.nproc,
        }));
    }
    if let Some(d) = &cfg.dns {
        out.push(SystemResource::Dns(Dns {
            nameservers: d.nameservers.clone(),
            search: d.search.clone(),
        }));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::baseline::{Artifacts, DnsConfig, Member};
    use ferry_inventory::facts::{Facts, Route};

    fn ids(cfg: &BaselineConfig, facts: &Facts) -> Vec<String> {
        let members = vec![
            Member {
                name: "s1".into(),
                address: "10.0.0.1".into(),
                server: true,
            },
            Member {
                name: "a1".into(),
                address: "10.0.0.2".into(),
                server: false,
            },
        ];
        let artifacts = Artifacts::default();
        let ctx = HostContext {
            member: &members[1],
            facts,
            members: &members,
            time_source: None,
            artifacts: &artifacts,
            cluster_id: "c-1",
            cluster_name: "lab",
        };
        resources(cfg, &ctx)
            .iter()
            .map(|r| r.as_dyn().id())
            .collect()
    }

    #[test]
    fn applies_in_the_documented_order_and_ids_are_unique() {
        let cfg = BaselineConfig {
            dns: Some(DnsConfig {
                nameservers: vec!["10.0.0.53".into()],
                search: vec![],
            }),
            ..BaselineConfig::default()
        };
        let got = ids(&cfg, &Facts::default());
        assert_eq!(
            got,
            vec![
                "hostname",
                "hosts-file",
                "default-route",
                "modules",
                "sysctl",
                "swap",
                "limits",
                "dns"
            ]
        );
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), got.len());
    }

    #[test]
    fn the_route_fix_only_where_no_real_default_route_is() {
        let cfg = BaselineConfig::default();
        let mut facts = Facts::default();
        facts.default_routes.push(Route {
            family: "ipv4".into(),
            interface: "eth0".into(),
            gateway: Some("10.0.0.254".into()),
        });
        assert!(!ids(&cfg, &facts).contains(&"default-route".to_string()));
        let skip = BaselineConfig {
            default_route: DefaultRouteFix::Skip,
            ..BaselineConfig::default()
        };
        assert!(!ids(&skip, &Facts::default()).contains(&"default-route".to_string()));
    }

    #[test]
    fn a_plan_row_round_trips_through_json() {
        let r = SystemResource::Sysctl(Sysctl {
            settings: [("vm.max_map_count".to_string(), "262144".to_string())].into(),
        });
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"kind\":\"sysctl\""), "{json}");
        let back: SystemResource = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        let swap = SystemResource::Swap(SwapOff {});
        let back: SystemResource =
            serde_json::from_str(&serde_json::to_string(&swap).unwrap()).unwrap();
        assert_eq!(back, swap);
    }
}
