//! The last phases of `ferry apply`, once every node is Ready: the license named in the answer
//! file is activated against the hosts and copied to each of them, then the site's packages
//! are deployed in dependency order through the first server. A package already serving with
//! the same bytes and values is left alone, so a second apply deploys nothing; a package that
//! fails leaves its previous revision serving (see `deploy`) and stops the ones after it.

use std::time::Instant;

use serde::Serialize;

use super::deploy::{Apps, WaitPolicy};
use super::revision::Status;
use super::site::SiteApps;
use crate::cluster::kubectl::Kubectl;
use crate::cluster::Topology;
use crate::config::InstallConfig;
use crate::engine::events::{one_line, Event, Sink};
use crate::engine::Hosts;
use crate::site_license::{self, LicenseReport, SiteHost};

/// The step ids these phases report under (the TUI's board puts `app*` in its apps column).
pub const LICENSE_STEP: &str = "license";

/// Where a package ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppState {
    /// Its current revision already had the same bytes and values: left as it was.
    Unchanged,
    /// Deployed as a new revision, healthy.
    Deployed,
    /// Not healthy: the previous revision put back, or a first install removed.
    Failed,
    /// Not tried: a package before it failed.
    Skipped,
}

/// One package at the end of the apps phase.
#[derive(Debug, Clone, Serialize)]
pub struct AppResult {
    /// The app.
    pub app: String,
    /// Its version.
    pub version: String,
    /// Where it ended.
    pub status: AppState,
    /// The revision serving now (the new one, or the one left in place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// Why it failed or was skipped, one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Components deployed but waiting for a GPU node (`[apps] gpu-unavailable = "allow"`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for_gpu: Vec<String>,
    /// Wall time.
    pub seconds: f64,
    /// Of which applying the objects, and waiting until healthy.
    pub apply_secs: f64,
    /// See `apply_secs`.
    pub wait_secs: f64,
}

/// What the license and apps phases did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AppsReport {
    /// The license, when the answer file names one and it was activated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<LicenseReport>,
    /// Every package, in deploy order.
    pub apps: Vec<AppResult>,
    /// Why the phases stopped early (the license refused, the cluster unreadable), one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AppsReport {
    /// Whether everything the answer file asked for is in place.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.apps.iter().all(|a| a.status != AppState::Failed)
    }

    /// The summary lines after `ferry apply`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(l) = &self.license {
            out.push_str(&l.render());
        }
        for a in &self.apps {
            let rev = a
                .revision
                .map(|r| format!(" revision {r}"))
                .unwrap_or_default();
            out.push_str(&match a.status {
                AppState::Unchanged => {
                    format!("app {} {}: unchanged,{rev} serving\n", a.app, a.version)
                }
                AppState::Deployed => format!(
                    "app {} {}: deployed as{rev}, healthy (apply {:.1}s, healthy after {:.1}s)\n",
                    a.app, a.version, a.apply_secs, a.wait_secs
                ),
                AppState::Failed | AppState::Skipped => format!(
                    "app {} {}: {}: {}\n",
                    a.app,
                    a.version,
                    if a.status == AppState::Failed {
                        "FAILED"
                    } else {
                        "SKIPPED"
                    },
                    a.reason.as_deref().unwrap_or("unknown")
                ),
            });
            for w in &a.waiting_for_gpu {
                out.push_str(&format!(
                    "app {}: warning: {w}: waiting for a GPU node ([apps] gpu-unavailable = \
                     \"allow\")\n",
                    a.app
                ));
            }
        }
        if let Some(e) = &self.error {
            out.push_str(&format!("apps: NOT DONE: {e}\n"));
        }
        out
    }
}

/// How long a deploy may wait for health (`given` on the command line, else `[apps]
/// timeout`, else 300 s), and what it accepts for GPU components.
pub fn wait_policy(given: Option<u64>, cfg: &InstallConfig) -> WaitPolicy {
    WaitPolicy {
        limit: std::time::Duration::from_secs(given.or(cfg.apps.timeout).unwrap_or(300).max(1)),
        gpu_unavailable: cfg.apps.gpu_unavailable.unwrap_or_default(),
    }
}

/// Runs the license phase, then the apps phase; see the module's doc.
pub async fn run(site: &SiteApps, cfg: &InstallConfig, hosts: &Hosts, sink: &Sink) -> AppsReport {
    let mut report = AppsReport::default();
    if cfg.license.is_none() && site.releases.is_empty() {
        return report;
    }
    let first = Topology::of(&cfg.members).first().to_string();
    if let Some(l) = &cfg.license {
        let t = Instant::now();
        let members: Vec<_> = hosts
            .targets
            .iter()
            .filter(|t| cfg.members.iter().any(|m| m.name == t.name))
            .collect();
        let mut open: Vec<SiteHost> = Vec::new();
        for target in members {
            match hosts.pool.session(target).await {
                Ok(s) => open.push((target.name.clone(), s)),
                Err(e) => {
                    return stop(report, sink, &target.name, LICENSE_STEP, one_line(&e));
                }
            }
        }
        let keys = match super::site::license_keys() {
            Ok(k) => k,
            Err(e) => return stop(report, sink, &first, LICENSE_STEP, one_line(&e)),
        };
        let state = ferry_license::StateDir::new(&l.state_dir);
        match site_license::activate(&open, &l.file, &state, &keys, &l.host_state_dir).await {
            Ok((_, r)) => {
                for (name, _) in &open {
                    sink(Event::Applied {
                        host: name.clone(),
                        resource: LICENSE_STEP.into(),
                        seconds: t.elapsed().as_secs_f64(),
                    });
                }
                report.license = Some(r);
            }
            Err(e) => return stop(report, sink, &first, LICENSE_STEP, one_line(&e)),
        }
    }
    if site.releases.is_empty() {
        return report;
    }
    let Some(target) = hosts.targets.iter().find(|t| t.name == first).cloned() else {
        let e = format!("{first}: not among the hosts reached; the apps deploy through it");
        return stop(report, sink, &first, "apps", e);
    };
    let kubectl = Kubectl::new(hosts.pool.clone(), target);
    let progress_sink = sink.clone();
    let host = first.clone();
    let progress = move |line: String| {
        progress_sink(Event::Progress {
            host: host.clone(),
            resource: "apps".into(),
            message: line,
        })
    };
    let apps = Apps::new(&kubectl, &progress);
    let policy = wait_policy(None, cfg);
    let mut failed: Option<String> = None;
    for r in &site.releases {
        let step = format!("app:{}", r.app);
        let t = Instant::now();
        let mut result = AppResult {
            app: r.app.clone(),
            version: r.version.clone(),
            status: AppState::Skipped,
            revision: None,
            reason: None,
            waiting_for_gpu: Vec::new(),
            seconds: 0.0,
            apply_secs: 0.0,
            wait_secs: 0.0,
        };
        if let Some(before) = &failed {
            result.reason = Some(format!("not deployed: {before} failed before it"));
            report.apps.push(result);
            continue;
        }
        match apps.serving(r).await {
            Ok(Some(rev)) => {
                result.status = AppState::Unchanged;
                result.revision = Some(rev);
                report.apps.push(result);
                continue;
            }
            Ok(None) => {}
            Err(e) => return stop(report, sink, &first, &step, one_line(&e)),
        }
        match apps.deploy(r, policy).await {
            Ok(o) => {
                result.seconds = t.elapsed().as_secs_f64();
                result.apply_secs = o.apply_secs;
                result.wait_secs = o.wait_secs;
                if o.status == Status::Deployed {
                    result.status = AppState::Deployed;
                    result.revision = Some(o.revision);
                    result.waiting_for_gpu = o.waiting_for_gpu;
                    sink(Event::Applied {
                        host: first.clone(),
                        resource: step,
                        seconds: result.seconds,
                    });
                } else {
                    let mut why = o.reason.unwrap_or_else(|| "unknown".into());
                    if let Some(back) = o.restored {
                        why.push_str(&format!("; revision {back} restored and serving"));
                    }
                    if o.removed {
                        why.push_str("; the failed first install was removed");
                    }
                    sink(Event::ApplyFailed {
                        host: first.clone(),
                        resource: step,
                        error: why.clone(),
                    });
                    result.status = AppState::Failed;
                    result.revision = o.restored;
                    result.reason = Some(why);
                    failed = Some(r.app.clone());
                }
                report.apps.push(result);
            }
            Err(e) => return stop(report, sink, &first, &step, one_line(&e)),
        }
    }
    report
}

/// Ends the phases early with `error`, reported against `host`'s `step`.
fn stop(mut report: AppsReport, sink: &Sink, host: &str, step: &str, error: String) -> AppsReport {
    sink(Event::ApplyFailed {
        host: host.to_string(),
        resource: step.to_string(),
        error: error.clone(),
    });
    report.error = Some(format!("{step}: {error}"));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(status: AppState, reason: Option<&str>) -> AppResult {
        AppResult {
            app: "web".into(),
            version: "1.0.0".into(),
            status,
            revision: Some(2),
            reason: reason.map(String::from),
            waiting_for_gpu: Vec::new(),
            seconds: 4.0,
            apply_secs: 0.5,
            wait_secs: 3.25,
        }
    }

    #[test]
    fn the_summary_has_a_line_per_app_and_a_failure_fails_it() {
        let mut r = AppsReport {
            license: None,
            apps: vec![
                app(AppState::Deployed, None),
                app(AppState::Unchanged, None),
            ],
            error: None,
        };
        assert!(r.ok());
        assert_eq!(
            r.render(),
            "app web 1.0.0: deployed as revision 2, healthy (apply 0.5s, healthy after 3.2s)\n\
             app web 1.0.0: unchanged, revision 2 serving\n"
        );
        r.apps.push(app(
            AppState::Failed,
            Some("component web (Deployment web): probe failed; revision 2 restored and serving"),
        ));
        assert!(!r.ok());
        assert!(r.render().ends_with(
            "app web 1.0.0: FAILED: component web (Deployment web): probe failed; revision 2 \
             restored and serving\n"
        ));
        let stopped = AppsReport {
            error: Some("license: activating site.lic: expired".into()),
            ..AppsReport::default()
        };
        assert!(!stopped.ok());
        assert_eq!(
            stopped.render(),
            "apps: NOT DONE: license: activating site.lic: expired\n"
        );
    }
}
