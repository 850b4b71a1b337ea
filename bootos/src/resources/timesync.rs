//! Time sync with chrony for a site without internet time: the time source serves its own
//! clock (`local stratum 8`, or an upstream the site has) to the members, every other host
//! follows only the source, and a follower is checked to be within the skew limit after.
//!
//! The distro's `pool`/`server`/`peer`/`sourcedir` lines in chrony.conf are commented out
//! (`#ferry: ` in front), so no host keeps polling internet servers it cannot reach and a
//! follower cannot pick anything but the source; revert puts the saved file back. ferry's own
//! lines go to `/etc/chrony/conf.d/ferry.conf` when chrony.conf reads that directory
//! (bookworm: `confdir /etc/chrony/conf.d`), else into a marked block in chrony.conf itself.
//! RedHat differs only in names: `/etc/chrony.conf`, unit `chronyd`, no confdir (the block).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use serde::{Deserialize, Serialize};

use crate::baseline::{HostContext, TimeConfig};
use crate::host::{FileState, Host};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError};

use super::software::ServiceState;

/// The distro's chrony configuration.
pub const CHRONY_CONF: &str = "/etc/chrony/chrony.conf";
/// ferry's drop-in, read through chrony.conf's `confdir`.
pub const FERRY_CONF: &str = "/etc/chrony/conf.d/ferry.conf";
const CONF_DIR: &str = "/etc/chrony/conf.d";
const UNIT: &str = "chrony";
const DISABLED: &str = "#ferry: ";
const BEGIN: &str = "# BEGIN ferry time sync";
const END: &str = "# END ferry time sync";
/// How long a follower may take, by default, to select the source and come within the limit.
pub const CHECK_TIMEOUT_SECS: u64 = 60;

/// The resource's id (and its `kind` in plans and journals).
pub const ID: &str = "timesync";

fn default_check_timeout() -> u64 {
    CHECK_TIMEOUT_SECS
}

/// What a host does in the site's time sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeRole {
    /// Serves time to the members.
    Source {
        /// Addresses allowed to ask (the other members).
        allow: Vec<String>,
        /// Servers the source itself follows, if the site has any.
        upstream: Vec<String>,
    },
    /// Follows the source only.
    Follower {
        /// The source's address.
        source: String,
    },
}

/// chrony set up for this host's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSync {
    /// Source or follower.
    pub role: TimeRole,
    /// Largest offset from the source accepted after sync (followers), in milliseconds.
    pub max_skew_ms: u64,
    /// How long a follower may take to select the source and come within the limit.
    #[serde(default = "default_check_timeout")]
    pub check_timeout_secs: u64,
}

/// What `observe` finds: the two files, chrony's presence and its service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSyncState {
    /// chrony.conf.
    pub chrony_conf: FileState,
    /// ferry's drop-in.
    pub ferry_conf: FileState,
    /// chronyd is installed.
    pub installed: bool,
    /// The chrony service.
    pub service: ServiceState,
}

/// What the time source lets ask for time: each network of its own (a NIC's address and
/// prefix) that holds a member, and a member outside all of them by its address. A host added
/// later on the same network is served without the source's configuration changing (adding a
/// node changes only that node), and nothing off the members' networks is served.
fn allowed(ctx: &HostContext<'_>) -> Vec<String> {
    use std::net::IpAddr;
    let nets: Vec<(IpAddr, u8, String)> = ctx
        .facts
        .nics
        .iter()
        .filter(|n| n.name != "lo" && n.name != super::default_route::IFACE)
        .flat_map(|n| n.addresses.iter())
        .filter_map(|a| {
            let (ip, len) = a.split_once('/')?;
            let ip: IpAddr = ip.parse().ok()?;
            let len: u8 = len.parse().ok()?;
            let net = network(ip, len)?;
            Some((net, len, format!("{net}/{len}")))
        })
        .collect();
    let mut out: Vec<String> = ctx
        .members
        .iter()
        .filter(|m| m.name != ctx.member.name)
        .map(|m| {
            let inside = m.address.parse::<IpAddr>().ok().and_then(|ip| {
                nets.iter()
                    .filter(|(net, len, _)| network(ip, *len) == Some(*net))
                    .max_by_key(|(_, len, _)| *len)
            });
            match inside {
                Some((_, _, cidr)) => cidr.clone(),
                None => m.address.clone(),
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The network address of `ip` under a prefix of `len` bits (`None` for a length too long).
fn network(ip: std::net::IpAddr, len: u8) -> Option<std::net::IpAddr> {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            Some(IpAddr::V4((u32::from(v4) & mask).into()))
        }
        IpAddr::V6(v6) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            Some(IpAddr::V6((u128::from(v6) & mask).into()))
        }
        _ => None,
    }
}

impl TimeSync {
    /// The time sync for `ctx`'s host; `None` when time sync is off or there is no source.
    pub fn for_host(cfg: &TimeConfig, ctx: &HostContext<'_>) -> Option<TimeSync> {
        if !cfg.enabled {
            return None;
        }
        let source = ctx.time_source?;
        let role = if source.name == ctx.member.name {
            TimeRole::Source {
                allow: allowed(ctx),
                upstream: cfg.upstream.clone(),
            }
        } else {
            TimeRole::Follower {
                source: source.address.clone(),
            }
        };
        Some(TimeSync {
            role,
            max_skew_ms: cfg.max_skew_ms,
            check_timeout_secs: CHECK_TIMEOUT_SECS,
        })
    }

    /// ferry's chrony lines for this role.
    pub fn ferry_lines(&self) -> String {
        let mut s =
            String::from("# Written by ferry: the cluster's time sync (no internet time).\n");
        match &self.role {
            TimeRole::Source { allow, upstream } => {
                s.push_str("# This host is the site's time source: when no upstream answers it\n");
                s.push_str("# serves its own clock to the members.\n");
                s.push_str("local stratum 8\n");
                for a in allow {
                    s.push_str(&format!("allow {a}\n"));
                }
                for u in upstream {
                    s.push_str(&format!("server {u} iburst\n"));
                }
            }
            TimeRole::Follower { source } => {
                s.push_str("# Follow the site's time source only.\n");
                s.push_str(&format!("server {source} iburst\n"));
            }
        }
        // A clock far off (a host that sat powered off, a wrong BIOS clock) is stepped at
        // start instead of slewed for hours.
        s.push_str("makestep 1 3\n");
        s
    }

    /// chrony.conf and ferry.conf as wanted, given chrony.conf as found (`None`: leave
    /// ferry.conf as it is, the lines are in chrony.conf's block).
    pub fn render(&self, chrony_conf: &str) -> (String, Option<String>) {
        let confdir = reads_conf_dir(chrony_conf);
        let mut main = String::new();
        let mut in_block = false;
        for line in chrony_conf.lines() {
            if line == BEGIN {
                in_block = true;
                continue;
            }
            if line == END {
                in_block = false;
                continue;
            }
            if in_block {
                continue;
            }
            let first = line.split_whitespace().next().unwrap_or("");
            if matches!(first, "pool" | "server" | "peer" | "sourcedir") {
                main.push_str(DISABLED);
            }
            main.push_str(line);
            main.push('\n');
        }
        if confdir {
            (main, Some(self.ferry_lines()))
        } else {
            main.push_str(BEGIN);
            main.push('\n');
            main.push_str(&self.ferry_lines());
            main.push_str(END);
            main.push('\n');
            (main, None)
        }
    }

    fn describe(&self) -> String {
        match &self.role {
            TimeRole::Source { allow, upstream } if upstream.is_empty() => {
                format!("serves {}, local clock", allow.join(" "))
            }
            TimeRole::Source { allow, upstream } => format!(
                "serves {}, follows {}",
                allow.join(" "),
                upstream.join(", ")
            ),
            TimeRole::Follower { source } => format!("follows {source} only"),
        }
    }

    async fn check_follower(&self, host: &dyn Host, source: &str) -> Result<(), ResourceError> {
        let started = Instant::now();
        loop {
            let out = host
                .run("chronyc -n sources 2>&1; echo '--- tracking'; chronyc -n tracking 2>&1")
                .await?;
            let (sources, tracking) = out
                .stdout
                .split_once("--- tracking")
                .unwrap_or((out.stdout.as_str(), ""));
            let selected = selected_source(sources);
            let last = match (selected.as_deref(), parse_tracking(tracking)) {
                // By address when the source was given as one; a name shows as its address.
                (Some(s), Some(t))
                    if s == source || source.parse::<std::net::IpAddr>().is_err() =>
                {
                    if t.offset_ms.abs() <= self.max_skew_ms as f64 {
                        return Ok(());
                    }
                    format!(
                        "offset from {source} is {:.1} ms (limit {} ms)",
                        t.offset_ms, self.max_skew_ms
                    )
                }
                (Some(s), _) => format!("chrony selected {s}, not {source}"),
                (None, _) => format!("chrony has not selected {source} yet"),
            };
            if started.elapsed() > Duration::from_secs(self.check_timeout_secs) {
                return Err(ResourceError::Check(format!(
                    "{}: time did not follow {source} within {} s: {last}; check that {source} \
                     runs chrony as the time source (it is set up first) and that UDP port 123 \
                     from this host to it is open (`chronyc -n sources` shows what chrony sees)",
                    host.name(),
                    self.check_timeout_secs
                )));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

fn reads_conf_dir(chrony_conf: &str) -> bool {
    chrony_conf.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("confdir") && w.any(|d| d.trim_end_matches('/') == CONF_DIR)
    })
}

/// The source chrony selected (`^*` in `chronyc -n sources`), by address.
pub fn selected_source(sources: &str) -> Option<String> {
    sources.lines().find_map(|l| {
        let l = l.trim_start();
        l.strip_prefix("^*")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    })
}

/// What `chronyc tracking` says about the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracking {
    /// `Reference ID` (`0A000001 (10.0.0.1)`).
    pub reference: String,
    /// The system clock's offset from NTP time in milliseconds, positive when fast
    /// (`System time : 0.000012 seconds fast of NTP time`).
    pub offset_ms: f64,
    /// `Leap status` is `Normal` (chrony considers the clock synchronized).
    pub synchronized: bool,
}

/// Parses `chronyc tracking`; `None` when it has no `System time` line.
pub fn parse_tracking(text: &str) -> Option<Tracking> {
    let mut reference = String::new();
    let mut offset_ms = None;
    let mut synchronized = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Reference ID" => reference = value.to_string(),
            "System time" => {
                let mut w = value.split_whitespace();
                let secs: f64 = w.next()?.parse().ok()?;
                let _unit = w.next();
                let sign = if w.next() == Some("slow") { -1.0 } else { 1.0 };
                offset_ms = Some(sign * secs * 1000.0);
            }
            "Leap status" => synchronized = value == "Normal",
            _ => {}
        }
    }
    Some(Tracking {
        reference,
        offset_ms: offset_ms?,
        synchronized,
    })
}

#[async_trait]
impl Resource for TimeSync {
    type State = TimeSyncState;

    fn id(&self) -> String {
        ID.into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        os::require(facts, "time sync (chrony)", &[Family::Debian])
    }

    fn reads(&self) -> Vec<String> {
        vec![CHRONY_CONF.to_string(), FERRY_CONF.to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<TimeSyncState, ResourceError> {
        let installed = host.run("command -v chronyd").await?.success();
        Ok(TimeSyncState {
            chrony_conf: host.read_file(CHRONY_CONF).await?,
            ferry_conf: host.read_file(FERRY_CONF).await?,
            installed,
            service: ServiceState::observe(host, UNIT).await?,
        })
    }

    fn diff(&self, observed: &TimeSyncState) -> Vec<Change> {
        if !observed.installed {
            return vec![Change::new(
                "chrony",
                "not installed",
                "refused: install chrony",
            )];
        }
        let found = observed.chrony_conf.text().unwrap_or_default().to_string();
        let (main, ferry) = self.render(&found);
        let mut out = Vec::new();
        if main != found {
            let active = found
                .lines()
                .filter(|l| {
                    matches!(
                        l.split_whitespace().next(),
                        Some("pool" | "server" | "peer" | "sourcedir")
                    )
                })
                .count();
            let to = if ferry.is_some() {
                "distro time sources commented out".to_string()
            } else {
                format!("distro time sources commented out; {}", self.describe())
            };
            out.push(Change::new(
                CHRONY_CONF,
                format!("{active} distro time source line(s)"),
                to,
            ));
        }
        if let Some(want) = ferry {
            if observed.ferry_conf.text() != Some(want.as_str()) {
                let from = if observed.ferry_conf.exists() {
                    "other settings"
                } else {
                    "absent"
                };
                out.push(Change::new(FERRY_CONF, from, self.describe()));
            }
        }
        let want = ServiceState {
            enabled: true,
            active: true,
        };
        if observed.service != want {
            out.push(Change::new(
                "chrony service",
                observed.service.describe(),
                want.describe(),
            ));
        }
        out
    }

    async fn apply(&self, host: &dyn Host, observed: &TimeSyncState) -> Result<(), ResourceError> {
        if !observed.installed {
            return Err(ResourceError::Refused(format!(
                "{}: chrony is not installed: install it (Debian package chrony) or add it to \
                 the bundle's OS packages",
                host.name()
            )));
        }
        let found = observed.chrony_conf.editable_text(CHRONY_CONF)?;
        let (main, ferry) = self.render(found);
        if let Some(ferry) = ferry {
            host.write_file(FERRY_CONF, ferry.as_bytes(), 0o644).await?;
        }
        let mode = observed.chrony_conf.mode.unwrap_or(0o644);
        host.write_file(CHRONY_CONF, main.as_bytes(), mode).await?;
        observed.service.start(host, UNIT).await?;
        match &self.role {
            TimeRole::Follower { source } => self.check_follower(host, source).await,
            TimeRole::Source { .. } => {
                // Serving needs only a running chronyd; followers check the time itself.
                let started = Instant::now();
                loop {
                    let out = host.run("chronyc -n tracking").await?;
                    if out.success() && parse_tracking(&out.stdout).is_some() {
                        return Ok(());
                    }
                    if started.elapsed() > Duration::from_secs(20) {
                        return Err(ResourceError::Check(format!(
                            "{}: chronyd does not answer after a restart: {}; see \
                             `journalctl -u {UNIT}`",
                            host.name(),
                            out.stderr.trim()
                        )));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn revert(&self, host: &dyn Host, before: &TimeSyncState) -> Result<(), ResourceError> {
        if !before.installed {
            return Ok(());
        }
        host.restore_file(CHRONY_CONF, &before.chrony_conf).await?;
        host.restore_file(FERRY_CONF, &before.ferry_conf).await?;
        before.service.restore(host, UNIT).await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BOOKWORM: &str = "\
# Welcome to the chrony configuration file.
confdir /etc/chrony/conf.d
pool 2.debian.pool.ntp.org iburst
sourcedir /run/chrony-dhcp
sourcedir /etc/chrony/sources.d
keyfile /etc/chrony/chrony.keys
driftfile /var/lib/chrony/chrony.drift
makestep 1 3
rtcsync
";

    fn source() -> TimeSync {
        TimeSync {
            role: TimeRole::Source {
                allow: vec!["10.0.0.2".into(), "10.0.0.3".into()],
                upstream: vec![],
            },
            max_skew_ms: 500,
            check_timeout_secs: CHECK_TIMEOUT_SECS,
        }
    }

    fn follower() -> TimeSync {
        TimeSync {
            role: TimeRole::Follower {
                source: "10.0.0.1".into(),
            },
            max_skew_ms: 500,
            check_timeout_secs: CHECK_TIMEOUT_SECS,
        }
    }

    #[test]
    fn the_source_serves_the_members_from_its_own_clock() {
        let (main, ferry) = source().render(BOOKWORM);
        let ferry = ferry.unwrap();
        let lines: Vec<&str> = ferry.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "local stratum 8",
                "allow 10.0.0.2",
                "allow 10.0.0.3",
                "makestep 1 3"
            ]
        );
        assert!(main.contains("#ferry: pool 2.debian.pool.ntp.org iburst\n"));
        assert!(main.contains("#ferry: sourcedir /run/chrony-dhcp\n"));
        assert!(main.contains("\nconfdir /etc/chrony/conf.d\n"));
        assert!(main.contains("\nrtcsync\n"));
    }

    #[test]
    fn the_source_allows_its_networks_holding_members_and_others_by_address() {
        use crate::baseline::{Artifacts, Member};
        use ferry_inventory::facts::Nic;
        let facts = Facts {
            nics: vec![
                Nic {
                    name: "ens3".into(),
                    addresses: vec!["10.203.1.10/24".into(), "fe80::1/64".into()],
                    ..Default::default()
                },
                Nic {
                    name: "ferry0".into(),
                    addresses: vec!["203.0.113.254/31".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let member = |name: &str, address: &str| Member {
            name: name.into(),
            address: address.into(),
            server: name == "vm0",
        };
        let mut members = vec![
            member("vm0", "10.203.1.10"),
            member("vm1", "10.203.1.11"),
            member("far", "192.168.5.5"),
            member("odd", "203.0.113.255"),
        ];
        let artifacts = Artifacts::default();
        let allow = |members: &[Member]| {
            allowed(&HostContext {
                member: &members[0],
                facts: &facts,
                members,
                time_source: Some(&members[0]),
                artifacts: &artifacts,
                cluster_id: "c",
                cluster_name: "n",
            })
        };
        let three = allow(&members);
        // ferry0 (the default-route dummy) is no network of the site's.
        assert_eq!(three, ["10.203.1.0/24", "192.168.5.5", "203.0.113.255"]);
        members.push(member("vm3", "10.203.1.13"));
        assert_eq!(
            allow(&members),
            three,
            "a node on the same network changed the source"
        );
    }

    #[test]
    fn a_source_with_an_upstream_follows_it() {
        let mut s = source();
        s.role = TimeRole::Source {
            allow: vec!["10.0.0.2".into()],
            upstream: vec!["192.168.1.1".into()],
        };
        let (_, ferry) = s.render(BOOKWORM);
        assert!(ferry.unwrap().contains("\nserver 192.168.1.1 iburst\n"));
    }

    #[test]
    fn a_follower_follows_only_the_source() {
        let (main, ferry) = follower().render(BOOKWORM);
        let ferry = ferry.unwrap();
        let lines: Vec<&str> = ferry.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["server 10.0.0.1 iburst", "makestep 1 3"]);
        let active_sources = main
            .lines()
            .filter(|l| matches!(l.split_whitespace().next(), Some("pool" | "server")))
            .count();
        assert_eq!(active_sources, 0);
    }

    #[test]
    fn rendering_twice_changes_nothing() {
        for r in [source(), follower()] {
            let (main, _) = r.render(BOOKWORM);
            assert_eq!(r.render(&main).0, main);
        }
    }

    #[test]
    fn without_a_conf_dir_the_lines_go_into_a_block() {
        let old = "server ntp.example.com iburst\ndriftfile /var/lib/chrony/drift\n";
        let (main, ferry) = follower().render(old);
        assert!(ferry.is_none());
        assert!(main.starts_with("#ferry: server ntp.example.com iburst\n"));
        assert!(main.contains(&format!("{BEGIN}\n")));
        assert!(main.contains("\nserver 10.0.0.1 iburst\n"));
        assert_eq!(follower().render(&main).0, main);
    }

    #[test]
    fn reads_tracking_and_the_selected_source() {
        let tracking = "\
Reference ID    : 0ACB0102 (10.203.1.2)
Stratum         : 9
Ref time (UTC)  : Mon Nov 23 19:40:01 2026
System time     : 0.000231480 seconds slow of NTP time
Last offset     : -0.000102442 seconds
RMS offset      : 0.000102442 seconds
Leap status     : Normal
";
        let t = parse_tracking(tracking).unwrap();
        assert_eq!(t.reference, "0ACB0102 (10.203.1.2)");
        assert!((t.offset_ms + 0.231480).abs() < 1e-9, "{}", t.offset_ms);
        assert!(t.synchronized);
        let fast = tracking.replace("0.000231480 seconds slow", "120.5 seconds fast");
        assert!((parse_tracking(&fast).unwrap().offset_ms - 120_500.0).abs() < 1e-6);
        assert!(parse_tracking("506 Cannot talk to daemon").is_none());

        let sources = "\
MS Name/IP address         Stratum Poll Reach LastRx Last sample
===============================================================================
^? 192.168.9.9                   0   6     0     -     +0ns[   +0ns] +/-    0ns
^* 10.203.1.2                    8   6    17     2    -12us[  -40us] +/-  210us
";
        assert_eq!(selected_source(sources).as_deref(), Some("10.203.1.2"));
        assert_eq!(selected_source(&sources.replace("^*", "^+")), None);
    }

    #[test]
    fn diff_names_files_and_service() {
        let observed = TimeSyncState {
            chrony_conf: FileState::present(BOOKWORM, 0o644),
            ferry_conf: FileState::absent(),
            installed: true,
            service: ServiceState {
                enabled: true,
                active: false,
            },
        };
        let d = follower().diff(&observed);
        let whats: Vec<&str> = d.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(whats, [CHRONY_CONF, FERRY_CONF, "chrony service"]);
        assert_eq!(d[0].from, "3 distro time source line(s)");
        assert_eq!(d[1].to, "follows 10.0.0.1 only");

        let f = follower();
        let (main, ferry) = f.render(BOOKWORM);
        let done = TimeSyncState {
            chrony_conf: FileState::present(main, 0o644),
            ferry_conf: FileState {
                content: ferry.map(|f| crate::host::FileBytes(f.into_bytes())),
                mode: Some(0o644),
                ..FileState::absent()
            },
            installed: true,
            service: ServiceState {
                enabled: true,
                active: true,
            },
        };
        assert!(f.diff(&done).is_empty());
    }
}
