//! k3s's documented fix for a host without a default route (an air-gapped host often has
//! none, and k3s will not start without one): a dummy interface `ferry0` holding
//! 203.0.113.254/31 (TEST-NET-3, never routed) with a default route via 203.0.113.255 at
//! metric 1000, so a real default route added later always wins. What reaches it is dropped
//! by the dummy device. Kept across boots by systemd-networkd `.netdev`/`.network` files;
//! hosts managed by ifupdown or NetworkManager are refused for now with a line saying so.

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use serde::{Deserialize, Serialize};

use crate::host::{FileState, Host};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError};

/// The interface's name.
pub const IFACE: &str = "ferry0";
/// The networkd netdev file.
pub const NETDEV: &str = "/etc/systemd/network/90-ferry0.netdev";
/// The networkd network file.
pub const NETWORK: &str = "/etc/systemd/network/90-ferry0.network";
const ADDRESS: &str = "203.0.113.254/31";
const GATEWAY: &str = "203.0.113.255";

/// Adds the dummy interface and its default route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRoute {}

/// What [`DefaultRoute::observe`] finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRouteState {
    /// The netdev file as it was.
    pub netdev: FileState,
    /// The network file as it was.
    pub network: FileState,
    /// Whether `ferry0` existed.
    pub link: bool,
    /// Whether the default route via `ferry0` existed.
    pub route: bool,
}

/// The netdev file.
pub fn render_netdev() -> String {
    format!(
        "# Managed by ferry: a dummy interface for the air-gap default route.\n\
         [NetDev]\nName={IFACE}\nKind=dummy\n"
    )
}

/// The network file.
pub fn render_network() -> String {
    format!(
        "# Managed by ferry: k3s needs a default route; this one leads nowhere.\n\
         [Match]\nName={IFACE}\n\n[Network]\nAddress={ADDRESS}\nConfigureWithoutCarrier=yes\n\n\
         [Route]\nGateway={GATEWAY}\nGatewayOnLink=yes\nMetric=1000\n"
    )
}

/// Whether the host has a default route that is not ours (IPv4; k3s's node-IP pick needs
/// one of the cluster's family).
pub fn has_other_default_route(facts: &Facts) -> bool {
    facts
        .default_routes
        .iter()
        .any(|r| r.family == "ipv4" && r.interface != IFACE)
}

const ROUTE_CHECK: &str = "ip -4 route show default dev ferry0 2>/dev/null | grep -q .";

async fn wait_for_route(host: &dyn Host) -> Result<bool, ResourceError> {
    // networkd configures the link asynchronously after `networkctl reload`.
    let script = format!(
        "i=0; while [ $i -lt 30 ]; do if {ROUTE_CHECK}; then exit 0; fi; sleep 0.5; i=$((i+1)); done; exit 1"
    );
    Ok(host.run(&script).await?.success())
}

#[async_trait]
impl Resource for DefaultRoute {
    type State = DefaultRouteState;

    fn id(&self) -> String {
        "default-route".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        // RedHat: the same would be a NetworkManager dummy connection (nmcli); not yet.
        os::require(facts, "the default-route fix", &[Family::Debian])
    }

    fn reads(&self) -> Vec<String> {
        vec![NETDEV.to_string(), NETWORK.to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<DefaultRouteState, ResourceError> {
        let link = host
            .run(&format!("ip link show dev {IFACE} >/dev/null 2>&1"))
            .await?
            .success();
        let route = host.run(ROUTE_CHECK).await?.success();
        Ok(DefaultRouteState {
            netdev: host.read_file(NETDEV).await?,
            network: host.read_file(NETWORK).await?,
            link,
            route,
        })
    }

    fn diff(&self, observed: &DefaultRouteState) -> Vec<Change> {
        let mut out = Vec::new();
        for (path, have, want) in [
            (NETDEV, &observed.netdev, render_netdev()),
            (NETWORK, &observed.network, render_network()),
        ] {
            if have.text() != Some(want.as_str()) {
                let from = if have.exists() { "differs" } else { "absent" };
                out.push(Change::new(path, from, "ferry0, kept at boot"));
            }
        }
        if !observed.link {
            out.push(Change::new(
                format!("interface {IFACE}"),
                "absent",
                format!("dummy, {ADDRESS}"),
            ));
        }
        if !observed.route {
            out.push(Change::new(
                "default route",
                "none",
                format!("via {GATEWAY} dev {IFACE} metric 1000"),
            ));
        }
        out
    }

    async fn apply(
        &self,
        host: &dyn Host,
        _observed: &DefaultRouteState,
    ) -> Result<(), ResourceError> {
        let networkd = host
            .run("systemctl is-active --quiet systemd-networkd")
            .await?
            .success();
        if !networkd {
            return Err(ResourceError::Refused(
                "the default-route fix needs systemd-networkd, which is not running here; add \
                 a default route to the host's network configuration (any gateway on a \
                 local interface will do), or set default_route = \"skip\""
                    .into(),
            ));
        }
        host.write_file(NETDEV, render_netdev().as_bytes(), 0o644)
            .await?;
        host.write_file(NETWORK, render_network().as_bytes(), 0o644)
            .await?;
        host.run_ok("networkctl reload").await?;
        if !wait_for_route(host).await? {
            let status = host
                .run(&format!("networkctl status {IFACE} 2>&1 | tail -n 5"))
                .await?
                .stdout;
            return Err(ResourceError::Check(format!(
                "systemd-networkd did not bring up the default route on {IFACE} within 15 s: {}",
                status.trim().replace('\n', " / ")
            )));
        }
        Ok(())
    }

    async fn revert(
        &self,
        host: &dyn Host,
        before: &DefaultRouteState,
    ) -> Result<(), ResourceError> {
        host.restore_file(NETDEV, &before.netdev).await?;
        host.restore_file(NETWORK, &before.network).await?;
        // networkd never deletes a netdev whose file went away: that is ours to do.
        if !before.link {
            host.run_ok(&format!(
                "if ip link show dev {IFACE} >/dev/null 2>&1; then ip link del dev {IFACE}; fi"
            ))
            .await?;
        }
        host.run_ok("if systemctl is-active --quiet systemd-networkd; then networkctl reload; fi")
            .await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ferry_inventory::facts::Route;

    fn done() -> DefaultRouteState {
        DefaultRouteState {
            netdev: FileState::present(render_netdev(), 0o644),
            network: FileState::present(render_network(), 0o644),
            link: true,
            route: true,
        }
    }

    #[test]
    fn diff_is_empty_when_already_set() {
        assert!(DefaultRoute {}.diff(&done()).is_empty());
    }

    #[test]
    fn diff_lists_files_link_and_route() {
        let s = DefaultRouteState {
            netdev: FileState::absent(),
            network: FileState::absent(),
            link: false,
            route: false,
        };
        let d = DefaultRoute {}.diff(&s);
        assert_eq!(d.len(), 4);
        assert_eq!(
            d[3],
            Change::new(
                "default route",
                "none",
                "via 203.0.113.255 dev ferry0 metric 1000"
            )
        );
        // After a reboot without networkd bringing it up, only the live part shows.
        let mut s = done();
        s.route = false;
        assert_eq!(DefaultRoute {}.diff(&s).len(), 1);
    }

    #[test]
    fn only_a_route_of_our_own_counts_as_missing() {
        let mut f = Facts::default();
        assert!(!has_other_default_route(&f));
        f.default_routes.push(Route {
            family: "ipv4".into(),
            interface: IFACE.into(),
            gateway: Some(GATEWAY.into()),
        });
        assert!(!has_other_default_route(&f));
        f.default_routes.push(Route {
            family: "ipv6".into(),
            interface: "eth0".into(),
            gateway: None,
        });
        assert!(!has_other_default_route(&f));
        f.default_routes.push(Route {
            family: "ipv4".into(),
            interface: "eth0".into(),
            gateway: Some("10.0.0.1".into()),
        });
        assert!(has_other_default_route(&f));
    }

    #[test]
    fn the_files_say_what_k3s_documents() {
        let n = render_network();
        assert!(n.contains("Address=203.0.113.254/31\n"));
        assert!(n.contains("Gateway=203.0.113.255\n"));
        assert!(n.contains("Metric=1000\n"));
        assert!(render_netdev().contains("Kind=dummy\n"));
    }
}
