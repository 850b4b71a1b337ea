//! The plan: for every host, its status (ready, no changes, blocked, unreachable), why, and
//! the changes its resources would make. Built by the engine, shown by the front end.

use ferry_bootos::ResourceSpec;
use serde::Serialize;

/// Where a host stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostStatus {
    /// Has changes to make.
    Ready,
    /// Already as wanted.
    NoChanges,
    /// A guard or preflight check stops it; `reasons` say why.
    Blocked,
    /// Could not be reached or surveyed.
    Unreachable,
}

/// One row of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    /// The resource id.
    pub resource: String,
    /// What differs.
    pub what: String,
    /// What the host has.
    pub from: String,
    /// What it will have.
    pub to: String,
}

/// One host's plan.
#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    /// Inventory name.
    pub host: String,
    /// Where it stands.
    pub status: HostStatus,
    /// Why it is blocked or unreachable, each `reason; fix: ...`.
    pub reasons: Vec<String>,
    /// Warnings that do not block it.
    pub warnings: Vec<String>,
    /// The changes, in apply order.
    pub changes: Vec<PlannedChange>,
    /// Every resource of the host, in apply order (apply re-observes each).
    #[serde(skip)]
    pub resources: Vec<ResourceSpec>,
    /// The cluster phase's steps, after the baseline's (none without a distribution).
    #[serde(skip)]
    pub cluster: Vec<crate::cluster::ClusterStep>,
}

/// A package `ferry apply` deploys once the cluster is Ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedApp {
    /// The app.
    pub app: String,
    /// Its version.
    pub version: String,
    /// The license module it needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_feature: Option<String>,
}

/// What apply does after the hosts, known from the answer file and the bundle alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SitePlan {
    /// The license activated on every host first: its id, customer and modules, one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The packages, in deploy order (each left alone when the same bytes and values serve).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<PlannedApp>,
}

impl SitePlan {
    /// The plan's lines for these phases (none when there is nothing to do).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(l) = &self.license {
            out.push_str(&format!(
                "license: {l}: activated and copied to every host\n"
            ));
        }
        if !self.apps.is_empty() {
            let list: Vec<String> = self
                .apps
                .iter()
                .map(|a| match &a.license_feature {
                    Some(f) => format!("{} {} (license feature {f})", a.app, a.version),
                    None => format!("{} {}", a.app, a.version),
                })
                .collect();
            out.push_str(&format!(
                "apps, once every node is Ready, in this order: {} (each left as it is when \
                 already serving)\n",
                list.join(", ")
            ));
        }
        out
    }
}

/// The plan of every host.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The cluster phase's shared state (the open bundle, the way to the first server), when
    /// a distribution is installed.
    #[serde(skip)]
    pub cluster: Option<std::sync::Arc<crate::cluster::ClusterRuntime>>,
    /// The cluster's id.
    pub cluster_id: String,
    /// Every host, in inventory order.
    pub hosts: Vec<HostPlan>,
    /// The license and apps, after the hosts.
    #[serde(skip_serializing_if = "SitePlan::is_empty")]
    pub site: SitePlan,
}

impl SitePlan {
    /// Whether apply has nothing to do after the hosts.
    pub fn is_empty(&self) -> bool {
        self == &SitePlan::default()
    }
}

impl Plan {
    /// Hosts with this status.
    pub fn count(&self, status: HostStatus) -> usize {
        self.hosts.iter().filter(|h| h.status == status).count()
    }

    /// Whether no host is blocked or unreachable.
    pub fn all_clear(&self) -> bool {
        self.count(HostStatus::Blocked) == 0 && self.count(HostStatus::Unreachable) == 0
    }

    /// `plan: 3 hosts, 2 to change (14 changes), 1 already done, 0 blocked`.
    pub fn summary_line(&self) -> String {
        let changes: usize = self.hosts.iter().map(|h| h.changes.len()).sum();
        let mut s = format!(
            "plan: {} hosts, {} to change ({changes} changes), {} already done, {} blocked",
            self.hosts.len(),
            self.count(HostStatus::Ready),
            self.count(HostStatus::NoChanges),
            self.count(HostStatus::Blocked),
        );
        let unreachable = self.count(HostStatus::Unreachable);
        if unreachable > 0 {
            s.push_str(&format!(", {unreachable} unreachable"));
        }
        s
    }

    /// The plan as a readable table, then blocked and unreachable hosts with reasons, hosts
    /// without changes, warnings, and the summary line. Above [`SUMMARIZE_ABOVE`] hosts, each
    /// change is one row for all the hosts it is planned on (see [`Plan::render_summarized`]).
    pub fn render(&self) -> String {
        if self.hosts.len() > SUMMARIZE_ABOVE {
            return self.render_summarized();
        }
        let header = ["HOST", "RESOURCE", "WHAT", "FROM", "TO"];
        let rows: Vec<[String; 5]> = self
            .hosts
            .iter()
            .flat_map(|h| {
                h.changes.iter().map(|c| {
                    [
                        h.host.clone(),
                        c.resource.clone(),
                        c.what.clone(),
                        cell(&c.from),
                        cell(&c.to),
                    ]
                })
            })
            .collect();
        let mut out = String::new();
        if !rows.is_empty() {
            out.push_str(&table(&header, &rows));
        }
        for h in &self.hosts {
            match h.status {
                HostStatus::Blocked | HostStatus::Unreachable => push_stopped(&mut out, h),
                HostStatus::NoChanges => out.push_str(&format!("{}: no changes\n", h.host)),
                HostStatus::Ready => {}
            }
        }
        for h in &self.hosts {
            for w in &h.warnings {
                out.push_str(&format!("{}: warning: {w}\n", h.host));
            }
        }
        out.push_str(&self.site.render());
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }
}

impl Plan {
    /// The plan of many hosts, a screen's worth rather than a row per host and change: one row
    /// per resource and what it changes, with how many hosts and, when they differ, the first
    /// host's values; the first [`NAMED_HOSTS`] blocked or unreachable hosts with their
    /// reasons; hosts without changes and identical warnings counted. `--json` has every host.
    pub fn render_summarized(&self) -> String {
        /// One resource's one change on every host it is planned on.
        struct Group<'p> {
            first: &'p str,
            change: &'p PlannedChange,
            hosts: usize,
            alike: bool,
        }
        let mut groups: Vec<Group<'_>> = Vec::new();
        for h in &self.hosts {
            for c in &h.changes {
                let same =
                    |g: &&mut Group<'_>| g.change.resource == c.resource && g.change.what == c.what;
                match groups.iter_mut().find(same) {
                    Some(g) => {
                        g.hosts += 1;
                        g.alike &= g.change.from == c.from && g.change.to == c.to;
                    }
                    None => groups.push(Group {
                        first: &h.host,
                        change: c,
                        hosts: 1,
                        alike: true,
                    }),
                }
            }
        }
        let rows: Vec<[String; 5]> = groups
            .iter()
            .map(|g| {
                let hosts = if g.alike {
                    g.hosts.to_string()
                } else {
                    format!("{} (as on {})", g.hosts, g.first)
                };
                [
                    g.change.resource.clone(),
                    g.change.what.clone(),
                    hosts,
                    cell(&g.change.from),
                    cell(&g.change.to),
                ]
            })
            .collect();
        let mut out = String::new();
        if !rows.is_empty() {
            out.push_str(&table(&["RESOURCE", "WHAT", "HOSTS", "FROM", "TO"], &rows));
        }
        let stopped: Vec<&HostPlan> = self
            .hosts
            .iter()
            .filter(|h| matches!(h.status, HostStatus::Blocked | HostStatus::Unreachable))
            .collect();
        for h in stopped.iter().take(NAMED_HOSTS) {
            push_stopped(&mut out, h);
        }
        if stopped.len() > NAMED_HOSTS {
            out.push_str(&format!(
                "... and {} more blocked or unreachable hosts (`ferry plan --json` lists every \
                 host with its reasons)\n",
                stopped.len() - NAMED_HOSTS
            ));
        }
        let unchanged: Vec<&str> = self
            .hosts
            .iter()
            .filter(|h| h.status == HostStatus::NoChanges)
            .map(|h| h.host.as_str())
            .collect();
        if !unchanged.is_empty() {
            out.push_str(&format!("no changes: {}\n", some_of(&unchanged)));
        }
        let mut warnings: Vec<(&str, Vec<&str>)> = Vec::new();
        for h in &self.hosts {
            for w in &h.warnings {
                match warnings.iter_mut().find(|(t, _)| *t == w.as_str()) {
                    Some((_, hosts)) => hosts.push(&h.host),
                    None => warnings.push((w, vec![&h.host])),
                }
            }
        }
        for (w, hosts) in warnings {
            out.push_str(&format!("warning: {w} ({})\n", some_of(&hosts)));
        }
        out.push_str(&self.site.render());
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }
}

/// Above this many hosts, the plan and the progress of a run are summarized rather than shown
/// host by host.
pub const SUMMARIZE_ABOVE: usize = 20;

/// How many hosts a summary names before it counts the rest.
pub const NAMED_HOSTS: usize = 10;

/// `h1, h2, h3` or `500 hosts: h1, h2, ... h10 and 490 more`.
fn some_of(hosts: &[&str]) -> String {
    if hosts.len() <= NAMED_HOSTS {
        return hosts.join(", ");
    }
    format!(
        "{} hosts: {} and {} more",
        hosts.len(),
        hosts[..NAMED_HOSTS].join(", "),
        hosts.len() - NAMED_HOSTS
    )
}

/// A value shown in one table cell: one line, not too long.
fn cell(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 48 {
        let cut: String = one.chars().take(45).collect();
        format!("{cut}...")
    } else if one.is_empty() {
        "-".into()
    } else {
        one
    }
}

/// Left-aligned columns, two spaces apart, no trailing blanks.
pub fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut width = header.map(|h| h.chars().count());
    for row in rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", s.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `HOST: BLOCKED: reason` (or `UNREACHABLE`), one line per reason of a host that stopped.
fn push_stopped(out: &mut String, h: &HostPlan) {
    let word = if h.status == HostStatus::Blocked {
        "BLOCKED"
    } else {
        "UNREACHABLE"
    };
    for r in &h.reasons {
        out.push_str(&format!("{}: {word}: {r}\n", h.host));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn host(name: &str, status: HostStatus, changes: usize, reasons: &[&str]) -> HostPlan {
        HostPlan {
            host: name.into(),
            status,
            reasons: reasons.iter().map(|s| s.to_string()).collect(),
            warnings: Vec::new(),
            changes: (0..changes)
                .map(|i| PlannedChange {
                    resource: "sysctl".to_string(),
                    what: format!("key.{i}"),
                    from: "absent".into(),
                    to: "1".into(),
                })
                .collect(),
            resources: Vec::new(),
            cluster: Vec::new(),
        }
    }

    #[test]
    fn renders_a_table_then_blocked_and_done_hosts_then_the_count() {
        let plan = Plan {
            cluster: None,
            cluster_id: "ferry-1".into(),
            site: Default::default(),
            hosts: vec![
                host("vm0", HostStatus::NoChanges, 0, &[]),
                host("vm1", HostStatus::Ready, 2, &[]),
                host(
                    "vm2",
                    HostStatus::Blocked,
                    0,
                    &["belongs to another cluster; fix: --force vm2"],
                ),
            ],
        };
        assert_eq!(
            plan.render(),
            "HOST  RESOURCE  WHAT   FROM    TO\n\
             vm1   sysctl    key.0  absent  1\n\
             vm1   sysctl    key.1  absent  1\n\
             vm0: no changes\n\
             vm2: BLOCKED: belongs to another cluster; fix: --force vm2\n\
             plan: 3 hosts, 1 to change (2 changes), 1 already done, 1 blocked\n"
        );
        assert!(!plan.all_clear());
    }

    #[test]
    fn json_has_the_documented_fields() {
        let plan = Plan {
            cluster: None,
            cluster_id: "ferry-1".into(),
            site: Default::default(),
            hosts: vec![
                host("vm1", HostStatus::Ready, 1, &[]),
                host("vm3", HostStatus::Unreachable, 0, &["refused"]),
            ],
        };
        let v = serde_json::to_value(&plan).unwrap();
        assert_eq!(v["cluster_id"], "ferry-1");
        assert_eq!(v["hosts"][0]["status"], "ready");
        assert_eq!(v["hosts"][0]["changes"][0]["resource"], "sysctl");
        assert_eq!(v["hosts"][0]["changes"][0]["from"], "absent");
        assert_eq!(v["hosts"][1]["status"], "unreachable");
        assert_eq!(v["hosts"][1]["reasons"][0], "refused");
        assert!(plan.summary_line().ends_with(", 1 unreachable"));
    }

    #[test]
    fn the_license_and_apps_follow_the_hosts_in_deploy_order() {
        let mut plan = Plan {
            cluster: None,
            cluster_id: "ferry-1".into(),
            site: SitePlan {
                license: Some("lic-1 for Site, grants mcd".into()),
                apps: vec![
                    PlannedApp {
                        app: "base".into(),
                        version: "1.0.0".into(),
                        license_feature: None,
                    },
                    PlannedApp {
                        app: "mcd".into(),
                        version: "2.3.0".into(),
                        license_feature: Some("mcd".into()),
                    },
                ],
            },
            hosts: vec![host("vm0", HostStatus::NoChanges, 0, &[])],
        };
        assert_eq!(
            plan.render(),
            "vm0: no changes\n\
             license: lic-1 for Site, grants mcd: activated and copied to every host\n\
             apps, once every node is Ready, in this order: base 1.0.0, mcd 2.3.0 (license \
             feature mcd) (each left as it is when already serving)\n\
             plan: 1 hosts, 0 to change (0 changes), 1 already done, 0 blocked\n"
        );
        let v = serde_json::to_value(&plan).unwrap();
        assert_eq!(v["site"]["apps"][1]["license_feature"], "mcd");
        plan.site = SitePlan::default();
        assert!(serde_json::to_value(&plan).unwrap().get("site").is_none());
    }

    #[test]
    fn many_hosts_are_one_row_per_change_with_the_odd_ones_named() {
        let mut hosts: Vec<HostPlan> = (0..30)
            .map(|i| {
                let mut h = host(&format!("h{i}"), HostStatus::Ready, 2, &[]);
                // The second change differs on every host.
                h.changes[1].to = format!("h{i}");
                h.warnings.push("clock 2 s ahead".into());
                h
            })
            .collect();
        hosts.push(host("h30", HostStatus::NoChanges, 0, &[]));
        for i in 31..43 {
            hosts.push(host(
                &format!("h{i}"),
                HostStatus::Unreachable,
                0,
                &["refused"],
            ));
        }
        let plan = Plan {
            cluster: None,
            cluster_id: "ferry-1".into(),
            site: Default::default(),
            hosts,
        };
        assert_eq!(
            plan.render(),
            "RESOURCE  WHAT   HOSTS          FROM    TO\n\
             sysctl    key.0  30             absent  1\n\
             sysctl    key.1  30 (as on h0)  absent  h0\n\
             h31: UNREACHABLE: refused\n\
             h32: UNREACHABLE: refused\n\
             h33: UNREACHABLE: refused\n\
             h34: UNREACHABLE: refused\n\
             h35: UNREACHABLE: refused\n\
             h36: UNREACHABLE: refused\n\
             h37: UNREACHABLE: refused\n\
             h38: UNREACHABLE: refused\n\
             h39: UNREACHABLE: refused\n\
             h40: UNREACHABLE: refused\n\
             ... and 2 more blocked or unreachable hosts (`ferry plan --json` lists every host \
             with its reasons)\n\
             no changes: h30\n\
             warning: clock 2 s ahead (30 hosts: h0, h1, h2, h3, h4, h5, h6, h7, h8, h9 and 20 \
             more)\n\
             plan: 43 hosts, 30 to change (60 changes), 1 already done, 0 blocked, 12 unreachable\n"
        );
    }

    #[test]
    fn long_or_multiline_values_fit_one_cell() {
        assert_eq!(cell("a\nb"), "a b");
        assert_eq!(cell(""), "-");
        assert_eq!(cell(&"x".repeat(60)).chars().count(), 48);
    }
}
