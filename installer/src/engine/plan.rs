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
    /// without changes, warnings, and the summary line.
    pub fn render(&self) -> String {
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
                HostStatus::Blocked | HostStatus::Unreachable => {
                    let word = if h.status == HostStatus::Blocked {
                        "BLOCKED"
                    } else {
                        "UNREACHABLE"
                    };
                    for r in &h.reasons {
                        out.push_str(&format!("{}: {word}: {r}\n", h.host));
                    }
                }
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
    fn long_or_multiline_values_fit_one_cell() {
        assert_eq!(cell("a\nb"), "a b");
        assert_eq!(cell(""), "-");
        assert_eq!(cell(&"x".repeat(60)).chars().count(), 48);
    }
}
