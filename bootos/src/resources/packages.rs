//! The bundle's offline OS package repository on a host (`os-repo`) and the packages installed
//! from it (`packages`). apt reads only ferry's repository here: a site has no mirror, and a
//! host's own sources would make every install wait for unreachable servers.
//!
//! The source is `[trusted=yes]`: the repository has no apt signature of its own, and its bytes
//! were checked against the bundle's signed manifest on the jump host before they were sent.
//! Before installing, the packages apt will add (dependencies included) and their versions are
//! recorded in the run's journal (`apt-get -s`); undoing the run removes exactly those, and
//! only while still at the version the run installed: a package an admin installed later, or
//! one upgraded since, stays (and the rollback says so). A package that had only its
//! configuration files left (`rc`) before is removed, not purged, so those files stay. RedHat is designed in the same way (a `file://` repo in
//! `/etc/yum.repos.d/ferry.repo`, `dnf --disablerepo='*' --enablerepo=ferry`, `rpm -qa` lists);
//! only Debian/Ubuntu is implemented.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::shell_quote;
use serde::{Deserialize, Serialize};

use crate::baseline::LocalRepo;
use crate::host::{Effect, FileState, Host, HostError, InstalledPackage, Kept};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError, Upload};
use crate::tree::PackedTree;

/// Where repositories are kept on hosts, one directory per bundle item digest.
pub const REPO_ROOT: &str = "/var/lib/ferry/repo";
/// ferry's apt source.
pub const SOURCE_LIST: &str = "/etc/apt/sources.list.d/ferry.list";

/// apt with ferry's repository as its only source: no waiting on a host's own mirrors, no
/// questions, and the other sources' lists kept for when the host is back on its own network.
const APT_OPTS: &str = "-q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/ferry.list \
    -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 -o DPkg::Lock::Timeout=120 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";

/// The repository as the resources that use it need it (no jump-host path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    /// The bundle item's digest (the directory name on hosts).
    pub digest: String,
    /// Distribution it fits (`debian-12`).
    pub distro: String,
}

impl RepoRef {
    /// The reference to a repository taken out of the bundle.
    pub fn of(repo: &LocalRepo) -> Self {
        Self {
            digest: repo.digest.clone(),
            distro: repo.distro.clone(),
        }
    }

    /// Its directory on hosts: named after the digest, with `:` as `-` (`sha256-<hex>`), since
    /// a colon in a `file:` URI path is not something to trust every apt version with.
    pub fn dir(&self) -> String {
        format!("{REPO_ROOT}/{}", path_name(&self.digest))
    }

    /// The apt source line for it.
    pub fn source_line(&self) -> String {
        format!("deb [trusted=yes] file:{} ./\n", self.dir())
    }
}

/// A digest as one path component.
pub(crate) fn path_name(digest: &str) -> String {
    digest.replace(':', "-").replace(['/', ' '], "_")
}

/// The repository directory sent to the host and made apt's source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRepo {
    /// The repository on the jump host.
    pub repo: LocalRepo,
}

/// What `os-repo` finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRepoState {
    /// ferry's apt source file.
    pub source_list: FileState,
    /// The repository directory is there, complete.
    pub present: bool,
}

fn distro_of(facts: &Facts) -> String {
    format!("{}-{}", facts.os.id, facts.os.version_id)
}

fn fits(distro: &str, facts: &Facts) -> bool {
    let major = facts.os.version_id.split('.').next().unwrap_or("");
    distro == distro_of(facts) || distro == format!("{}-{major}", facts.os.id)
}

#[async_trait]
impl Resource for OsRepo {
    type State = OsRepoState;

    fn id(&self) -> String {
        "os-repo".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        os::require(facts, "the offline package repository", &[Family::Debian])?;
        if self.repo.format != "deb" {
            return Err(format!(
                "the bundle's OS repository holds {} packages; this host needs deb",
                self.repo.format
            ));
        }
        if !fits(&self.repo.distro, facts) {
            return Err(format!(
                "the bundle's OS repository is for {}; this host runs {}: add an \
                 [[os_packages]] repository for it to bundle.toml and rebuild",
                self.repo.distro,
                distro_of(facts)
            ));
        }
        Ok(())
    }

    fn reads(&self) -> Vec<String> {
        vec![SOURCE_LIST.to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<OsRepoState, ResourceError> {
        let dir = shell_quote(&RepoRef::of(&self.repo).dir());
        Ok(OsRepoState {
            source_list: host.read_file(SOURCE_LIST).await?,
            present: host.run(&format!("test -d {dir}")).await?.success(),
        })
    }

    fn diff(&self, observed: &OsRepoState) -> Vec<Change> {
        let r = RepoRef::of(&self.repo);
        let mut out = Vec::new();
        if !observed.present {
            out.push(Change::new(
                r.dir(),
                "absent",
                format!("{} repository", r.distro),
            ));
        }
        if observed.source_list.text() != Some(r.source_line().as_str()) {
            let from = if observed.source_list.exists() {
                "another repository"
            } else {
                "absent"
            };
            out.push(Change::new(SOURCE_LIST, from, r.dir()));
        }
        out
    }

    async fn apply(&self, host: &dyn Host, observed: &OsRepoState) -> Result<(), ResourceError> {
        let r = RepoRef::of(&self.repo);
        if !observed.present {
            // Sent beside its final name and renamed once complete, so a present directory is
            // always a whole repository.
            let partial = format!("{}.partial", r.dir());
            host.run_ok(&format!("rm -rf {}", shell_quote(&partial)))
                .await?;
            // The relay may have brought the packed tree already (see `uploads`).
            let staged = match &self.repo.packed {
                Some(p) => host.unpack_staged(&p.sha256, &partial).await?,
                None => false,
            };
            if !staged {
                host.send_tree(&self.repo.dir, &partial).await?;
            }
            host.run_ok(&format!(
                "mv {} {}",
                shell_quote(&partial),
                shell_quote(&r.dir())
            ))
            .await?;
        }
        host.write_file(SOURCE_LIST, r.source_line().as_bytes(), 0o644)
            .await?;
        Ok(())
    }

    /// The repository packed as one blob, when `apply` measured it: every host of a
    /// distribution gets the same bytes.
    fn uploads(&self) -> Vec<Upload> {
        let Some(p) = &self.repo.packed else {
            return Vec::new();
        };
        vec![Upload {
            change: RepoRef::of(&self.repo).dir(),
            source: Arc::new(PackedTree {
                dir: self.repo.dir.clone(),
                sha256: p.sha256.clone(),
                size: p.size,
            }),
        }]
    }

    async fn revert(&self, host: &dyn Host, before: &OsRepoState) -> Result<(), ResourceError> {
        let r = RepoRef::of(&self.repo);
        host.restore_file(SOURCE_LIST, &before.source_list).await?;
        if !before.present {
            // apt names its copy of the index after the path (`_var_lib_ferry_repo_<digest>_._Packages`).
            let list = r.dir().trim_start_matches('/').replace('/', "_");
            host.run_ok(&format!(
                "rm -rf {dir} {dir}.partial && rm -f /var/lib/apt/lists/*{list}_*",
                dir = shell_quote(&r.dir()),
                list = shell_quote(&list)
            ))
            .await?;
        }
        Ok(())
    }
}

/// Packages installed from ferry's repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packages {
    /// Package names.
    pub packages: Vec<String>,
    /// The repository they come from; `None` when the bundle has none (refused).
    pub repo: Option<RepoRef>,
}

/// What `packages` finds: the packages on the host before, by dpkg state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagesState {
    /// Every package present (installed or partly installed) before.
    pub present: BTreeSet<String>,
    /// Packages removed with their configuration files left (`rc`) before.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub config_only: BTreeSet<String>,
}

#[async_trait]
impl Resource for Packages {
    type State = PackagesState;

    fn id(&self) -> String {
        "packages".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        os::require(facts, "package installs", &[Family::Debian])?;
        if self.repo.is_none() {
            return Err(format!(
                "packages {} need the bundle's OS package repository, and there is no OS \
                 package repository in the bundle for {}: add [[os_packages]] to bundle.toml \
                 and rebuild",
                self.packages.join(", "),
                distro_of(facts)
            ));
        }
        Ok(())
    }

    async fn observe(&self, host: &dyn Host) -> Result<PackagesState, ResourceError> {
        Ok(dpkg_state(host).await?)
    }

    fn diff(&self, observed: &PackagesState) -> Vec<Change> {
        let from = self.repo.as_ref().map_or("none", |r| r.distro.as_str());
        self.packages
            .iter()
            .filter(|p| !observed.present.contains(*p))
            .map(|p| {
                Change::new(
                    format!("package {p}"),
                    "absent",
                    format!("installed from the bundle ({from})"),
                )
            })
            .collect()
    }

    async fn apply(&self, host: &dyn Host, observed: &PackagesState) -> Result<(), ResourceError> {
        let Some(repo) = &self.repo else {
            return Err(ResourceError::Refused(format!(
                "{}: no OS package repository in the bundle for packages {}",
                host.name(),
                self.packages.join(", ")
            )));
        };
        let missing: Vec<String> = self
            .packages
            .iter()
            .filter(|p| !observed.present.contains(*p))
            .cloned()
            .collect();
        install(host, &missing, repo).await
    }

    async fn revert(&self, host: &dyn Host, before: &PackagesState) -> Result<(), ResourceError> {
        undo_install(host, before).await
    }
}

/// Parses `dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n'`: the packages present,
/// installed or partly (unpacked, half-configured...), not those gone or with only
/// configuration files left.
pub fn parse_present(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            let status = w.next()?.chars().nth(1)?;
            (!matches!(status, 'n' | 'c')).then(|| name.to_string())
        })
        .collect()
}

/// Parses the same listing for the packages with only their configuration files left.
pub fn parse_config_only(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            (w.next()?.chars().nth(1)? == 'c').then(|| name.to_string())
        })
        .collect()
}

/// The packages on `host`, present and configuration-only.
pub(crate) async fn dpkg_state(host: &dyn Host) -> Result<PackagesState, HostError> {
    let out = host
        .run_ok("dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n'")
        .await?;
    Ok(PackagesState {
        present: parse_present(&out),
        config_only: parse_config_only(&out),
    })
}

/// The packages `apt-get -s install` would add, with their versions: its `Inst NAME (VERSION
/// ...)` lines. Upgrades (`Inst NAME [OLD] (NEW ...)`) are not additions and are left out.
pub fn parse_simulated_installs(text: &str) -> Vec<InstalledPackage> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Inst ")?;
            let (name, rest) = rest.split_once(' ')?;
            let version = rest.strip_prefix('(')?.split_whitespace().next()?;
            Some(InstalledPackage {
                name: name.to_string(),
                version: version.to_string(),
            })
        })
        .collect()
}

/// `NAME VERSION STATUS` lines of `dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n'`:
/// the version of each package present (installed or partly).
pub fn parse_present_versions(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, version, status) = (w.next()?, w.next()?, w.next()?);
            let state = status.chars().nth(1)?;
            (!matches!(state, 'n' | 'c')).then(|| (name.to_string(), version.to_string()))
        })
        .collect()
}

/// The one line for packages the repository lacks.
pub fn not_in_repo(missing: &[String], repo: &RepoRef) -> String {
    match missing {
        [one] => format!(
            "package {one} is not in the bundle's repository ({}): add it to bundle.toml's \
             [[os_packages]] and rebuild",
            repo.distro
        ),
        many => format!(
            "packages {} are not in the bundle's repository ({}): add them to bundle.toml's \
             [[os_packages]] and rebuild",
            many.join(", "),
            repo.distro
        ),
    }
}

/// Installs `names` from ferry's repository (its apt source must be in place). Refuses before
/// installing anything when one of them is not in the repository.
pub(crate) async fn install(
    host: &dyn Host,
    names: &[String],
    repo: &RepoRef,
) -> Result<(), ResourceError> {
    if names.is_empty() {
        return Ok(());
    }
    let list = host.read_file(SOURCE_LIST).await?;
    if list.text() != Some(repo.source_line().as_str()) {
        return Err(ResourceError::Refused(format!(
            "{}: {SOURCE_LIST} does not point at the bundle's repository ({}): the os-repo step \
             must run first",
            host.name(),
            repo.dir()
        )));
    }
    host.run_ok(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get {APT_OPTS} update"
    ))
    .await?;
    let quoted: Vec<String> = names.iter().map(|n| shell_quote(n)).collect();
    let out = host
        .run_ok(&format!(
            "for p in {}; do apt-cache {APT_OPTS} show --no-all-versions \"$p\" >/dev/null \
             2>&1 || echo \"$p\"; done",
            quoted.join(" ")
        ))
        .await?;
    let missing: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    if !missing.is_empty() {
        return Err(ResourceError::Refused(not_in_repo(&missing, repo)));
    }
    // What apt will add, recorded before it does: undoing the run removes these and nothing
    // else, even when the run is killed half way.
    let simulated = host
        .run_ok(&format!(
            "apt-get {APT_OPTS} -s install -y --no-install-recommends {}",
            quoted.join(" ")
        ))
        .await?;
    host.record_effect(&Effect::Installed {
        packages: parse_simulated_installs(&simulated),
    })
    .await?;
    host.run_ok(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get {APT_OPTS} install -y --no-install-recommends {}",
        quoted.join(" ")
    ))
    .await?;
    Ok(())
}

/// Removes what a run's installs added, `before` being what was there before them. With the
/// run's record ([`Host::recorded_effects`]): exactly the packages it installed, each only while
/// still at the version installed; a package configuration-only (`rc`) before is removed, so its
/// configuration files stay; the others are purged. Without a record (a plain host): every
/// package present now and not before is purged.
pub(crate) async fn undo_install(
    host: &dyn Host,
    before: &PackagesState,
) -> Result<(), ResourceError> {
    let Some(effects) = host.recorded_effects() else {
        let now = dpkg_state(host).await?;
        let added: Vec<String> = now.present.difference(&before.present).cloned().collect();
        return remove_packages(host, &[], &added).await;
    };
    let installed: Vec<InstalledPackage> = effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Installed { packages } => Some(packages),
            Effect::Wrote { .. } => None,
        })
        .flatten()
        .filter(|p| !before.present.contains(&p.name))
        .collect();
    if installed.is_empty() {
        return Ok(());
    }
    let out = host
        .run_ok("dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n'")
        .await?;
    let now = parse_present_versions(&out);
    let (mut remove, mut purge) = (Vec::new(), Vec::new());
    for p in installed {
        match now.get(&p.name) {
            None => {}
            Some(v) if *v == p.version => {
                if before.config_only.contains(&p.name) {
                    remove.push(p.name);
                } else {
                    purge.push(p.name);
                }
            }
            Some(v) => host.report_kept(Kept {
                what: format!("package {}", p.name),
                why: format!(
                    "the run installed version {}, the host has {v} now (changed since): left \
                     installed",
                    p.version
                ),
            }),
        }
    }
    remove_packages(host, &remove, &purge).await
}

/// `dpkg --remove` (configuration files stay) then `dpkg --purge`. dpkg, not apt: it removes
/// these and nothing else, and refuses if a package installed since depends on one of them.
async fn remove_packages(
    host: &dyn Host,
    remove: &[String],
    purge: &[String],
) -> Result<(), ResourceError> {
    for (action, names) in [("--remove", remove), ("--purge", purge)] {
        if names.is_empty() {
            continue;
        }
        let quoted: Vec<String> = names.iter().map(|p| shell_quote(p)).collect();
        host.run_ok(&format!(
            "DEBIAN_FRONTEND=noninteractive dpkg {action} {}",
            quoted.join(" ")
        ))
        .await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_query_lists_present_packages_only() {
        let out = "\
apt ii 
containerd ii 
ferry-test-tool iU 
oldpkg rc 
gone un 
halfway iF 
";
        let p = parse_present(out);
        let names: Vec<&str> = p.iter().map(String::as_str).collect();
        assert_eq!(names, ["apt", "containerd", "ferry-test-tool", "halfway"]);
    }

    #[test]
    fn dpkg_query_lists_configuration_only_packages_apart() {
        let out = "apt ii \nolddaemon rc \ngone un \n";
        let rc: Vec<String> = parse_config_only(out).into_iter().collect();
        assert_eq!(rc, ["olddaemon"]);
        let v =
            parse_present_versions("jq 1.6-2.1 ii \nolddaemon 2.0-1 rc \nhalf 1:3.0~rc1-1 iU \n");
        assert_eq!(v.len(), 2);
        assert_eq!(v["jq"], "1.6-2.1");
        assert_eq!(v["half"], "1:3.0~rc1-1");
    }

    #[test]
    fn simulated_installs_are_the_new_packages_with_their_versions() {
        let out = "NOTE: This is only a simulation!\n\
Reading package lists...\n\
Inst libonig5 (6.9.8-1 ferry:./ [amd64])\n\
Inst libc6 [2.36-9] (2.36-9+deb12u4 ferry:./ [amd64])\n\
Inst jq (1.6-2.1 ferry:./ [amd64])\n\
Conf libonig5 (6.9.8-1 ferry:./ [amd64])\n\
Conf jq (1.6-2.1 ferry:./ [amd64])\n";
        let p = parse_simulated_installs(out);
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(got, [("libonig5", "6.9.8-1"), ("jq", "1.6-2.1")]);
    }

    #[test]
    fn one_line_names_the_package_and_the_fix() {
        let r = RepoRef {
            digest: "sha256:abc".into(),
            distro: "debian-12".into(),
        };
        assert_eq!(
            not_in_repo(&["jq".into()], &r),
            "package jq is not in the bundle's repository (debian-12): add it to bundle.toml's \
             [[os_packages]] and rebuild"
        );
        assert!(not_in_repo(&["a".into(), "b".into()], &r).starts_with("packages a, b are not"));
        assert_eq!(
            r.source_line(),
            "deb [trusted=yes] file:/var/lib/ferry/repo/sha256-abc ./\n"
        );
    }

    #[test]
    fn the_repository_must_fit_the_host() {
        let mut f = Facts::default();
        f.os.id = "debian".into();
        f.os.version_id = "12".into();
        let repo = |distro: &str| OsRepo {
            repo: LocalRepo {
                dir: "/tmp/r".into(),
                digest: "d".into(),
                distro: distro.into(),
                format: "deb".into(),
                packed: None,
            },
        };
        assert!(repo("debian-12").supports(&f).is_ok());
        let e = repo("ubuntu-22.04").supports(&f).unwrap_err();
        assert!(
            e.contains("is for ubuntu-22.04; this host runs debian-12"),
            "{e}"
        );
    }

    #[test]
    fn diff_lists_the_absent_packages() {
        let p = Packages {
            packages: vec!["jq".into(), "curl".into()],
            repo: Some(RepoRef {
                digest: "d".into(),
                distro: "debian-12".into(),
            }),
        };
        let state = PackagesState {
            present: ["curl".to_string()].into_iter().collect(),
            ..PackagesState::default()
        };
        let d = p.diff(&state);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].what, "package jq");
    }
}
