//! The site's license on its hosts, over SSH sessions already open: each host's fingerprint
//! components, GPUs and clock; the guards the hosts hold; the license state copied to every
//! host. `ferry license -i` and `ferry apply`'s license step both go through here; the rules
//! themselves are ferry-license's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::{shell_quote, Session};
use ferry_license::{
    time, HostComponents, License, LicenseFile, SiteFacts, StateDir, TrustRoot, Usage, Verified,
};
use zeroize::Zeroizing;

/// A host of the site, by inventory name, with its open session.
pub type SiteHost = (String, Arc<Session>);

/// What the hosts told: their fingerprint components, GPUs and clocks.
pub struct Survey {
    /// Every host's components, in the order given.
    pub hosts: Vec<HostComponents>,
    /// NVIDIA GPUs on all of them.
    pub gpus: u32,
    /// Each host's clock when it was read, Unix seconds.
    pub clocks: Vec<(String, i64)>,
}

impl Survey {
    /// The site as a license is checked against it: one node per host, the earliest clock.
    pub fn facts(&self) -> SiteFacts {
        SiteFacts {
            hosts: self.hosts.clone(),
            usage: Usage {
                nodes: u32::try_from(self.hosts.len()).unwrap_or(u32::MAX),
                gpus: self.gpus,
            },
            now: earliest_clock(&self.clocks, time::now()).0,
        }
    }
}

/// The fingerprint components of one host's facts: machine-id, product UUID, disk serials and
/// the MACs of NICs backed by a device (bridges, veths and tunnels come and go).
pub fn components(facts: &Facts, name: &str) -> HostComponents {
    HostComponents {
        name: name.to_owned(),
        machine_id: facts.machine_id.clone(),
        product_uuid: facts.product_uuid.clone(),
        disk_serials: facts
            .disks
            .iter()
            .filter_map(|d| d.serial.clone())
            .collect(),
        macs: facts
            .nics
            .iter()
            .filter(|n| n.physical)
            .filter_map(|n| n.mac.clone())
            .collect(),
    }
}

/// Whether a host gave nothing to fingerprint it by.
pub fn is_blank(h: &HostComponents) -> bool {
    h.machine_id.is_none()
        && h.product_uuid.is_none()
        && h.disk_serials.is_empty()
        && h.macs.is_empty()
}

/// Hosts served at once: a site of hundreds of hosts is read in bounded waves.
const AT_ONCE: usize = 32;

/// Runs `f` for every host, at most [`AT_ONCE`] at a time; the results in the hosts' order.
async fn each_host<T, F, Fut>(hosts: &[SiteHost], f: F) -> Vec<Result<T>>
where
    T: Send + 'static,
    F: Fn(String, Arc<Session>) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let mut tasks = Vec::with_capacity(hosts.len());
    for (name, session) in hosts {
        let job = f(name.clone(), session.clone());
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            job.await
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for (t, (name, _)) in tasks.into_iter().zip(hosts) {
        out.push(
            t.await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("{name}: crashed: {e}"))),
        );
    }
    out
}

/// Reads every host's fingerprint components, GPUs and clock (all hosts at once, bounded).
pub async fn survey(hosts: &[SiteHost]) -> Result<Survey> {
    let read = each_host(hosts, |name, session| async move {
        let facts = ferry_inventory::remote::shell_facts(&session, true)
            .await
            .with_context(|| format!("{name}: gathering facts"))?;
        let host = components(&facts, &name);
        if is_blank(&host) {
            bail!("{name}: no machine-id, product UUID, disk serial or NIC MAC found: this host cannot be fingerprinted");
        }
        let gpus = u32::try_from(facts.gpus.len()).unwrap_or(u32::MAX);
        let clock = session
            .exec_ok("date -u +%s", false)
            .await
            .with_context(|| format!("{name}: reading the clock"))?;
        let clock = clock.trim().parse::<i64>().with_context(|| {
            format!(
                "{name}: `date -u +%s` printed `{}`, not a time",
                clock.trim()
            )
        })?;
        Ok((host, gpus, (name, clock)))
    })
    .await;
    let mut out = Survey {
        hosts: Vec::new(),
        gpus: 0,
        clocks: Vec::new(),
    };
    for r in read {
        let (host, gpus, clock) = r?;
        out.hosts.push(host);
        out.gpus = out.gpus.saturating_add(gpus);
        out.clocks.push(clock);
    }
    Ok(out)
}

/// The earliest clock on the site (`local`, this machine's, included), and a note naming the
/// host when it is well behind this machine: the clock guard must see a host whose clock was
/// set back, so the site is judged by its earliest clock.
pub fn earliest_clock(clocks: &[(String, i64)], local: i64) -> (i64, Option<String>) {
    let Some((name, earliest)) = clocks.iter().min_by_key(|(_, t)| *t) else {
        return (local, None);
    };
    if *earliest < local - 60 {
        let note = format!(
            "judging time by {name}'s clock ({}), the earliest on the site; this machine says {}",
            time::format_time(*earliest),
            time::format_time(local)
        );
        return (*earliest, Some(note));
    }
    (local.min(*earliest), None)
}

/// Takes in every host's copy of the guard (in `dir`) that has seen a later time than this
/// machine's.
pub async fn adopt_guards(
    hosts: &[SiteHost],
    state: &StateDir,
    keys: &TrustRoot,
    dir: &Path,
) -> Result<()> {
    if state.installed_file()?.is_none() {
        return Ok(());
    }
    let path = dir.join("guard.json");
    let cmd = format!(
        "cat {} 2>/dev/null || true",
        shell_quote(&path.display().to_string())
    );
    let shown = path.display().to_string();
    let copies = each_host(hosts, |name, session| {
        let (cmd, shown) = (cmd.clone(), shown.clone());
        async move {
            session
                .exec_ok(&cmd, true)
                .await
                .with_context(|| format!("{name}: reading {shown}"))
        }
    })
    .await;
    // Taken in one after another: each may raise the guards the next is checked against.
    for ((name, _), copy) in hosts.iter().zip(copies) {
        let copy = copy?;
        if !copy.trim().is_empty() {
            let origin = PathBuf::from(format!("{name}:{shown}"));
            state.adopt_guard(keys, copy.as_bytes(), &origin)?;
        }
    }
    Ok(())
}

/// The state files a host keeps for the license of request `request_id`: its activation
/// record, the license and the guard.
pub fn state_files(request_id: &str) -> Vec<PathBuf> {
    vec![
        StateDir::record_file(request_id),
        PathBuf::from("license.lic"),
        PathBuf::from("guard.json"),
    ]
}

/// The two copies of the guard (guard.json and the activation record), after their highest
/// time seen was raised.
pub fn guard_files(request_id: &str) -> Vec<PathBuf> {
    vec![
        StateDir::record_file(request_id),
        PathBuf::from("guard.json"),
    ]
}

/// Writes `files` (relative to the state dir) into `dir` on every host (all hosts at once,
/// bounded): sent on stdin (an activation record holds the activation secret), a temporary
/// file, then a rename; mode 0600.
pub async fn push(
    hosts: &[SiteHost],
    state: &StateDir,
    files: &[PathBuf],
    dir: &Path,
) -> Result<()> {
    let mut contents = Vec::new();
    for rel in files {
        let local = state.path().join(rel);
        let data = std::fs::read(&local)
            .map(Zeroizing::new)
            .with_context(|| format!("reading license state {}", local.display()))?;
        contents.push((dir.join(rel), data));
    }
    let contents = Arc::new(contents);
    let dir = dir.to_path_buf();
    let written = each_host(hosts, |name, session| {
        let (contents, dir) = (contents.clone(), dir.clone());
        async move {
            let q = |p: &Path| shell_quote(&p.display().to_string());
            for (target, data) in contents.iter() {
                let what = || format!("{name}: writing {}", target.display());
                // The temporary name carries the shell's pid: two writers of one path (two
                // runs, or two inventory entries that are one machine) never share it.
                let tmp = q(&PathBuf::from(format!("{}.tmp", target.display())));
                let cmd = format!(
                    "umask 077 && mkdir -p {} && cat > {tmp}.$$ && mv -f {tmp}.$$ {}",
                    q(target.parent().unwrap_or(&dir)),
                    q(target)
                );
                let mut child = session.spawn(&cmd, true).await.with_context(what)?;
                child.write_stdin(data).await.with_context(what)?;
                child.close_stdin().await;
                let exit = child.wait().await.with_context(what)?;
                if !exit.success() {
                    bail!("{}: {}", what(), exit.describe());
                }
            }
            Ok(())
        }
    })
    .await;
    written.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(())
}

/// What the license step of `ferry apply` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LicenseReport {
    /// The license's id.
    pub id: String,
    /// Its customer.
    pub customer: String,
    /// Nodes in use and allowed.
    pub nodes: (u32, u32),
    /// GPUs in use, and allowed (`None`: unlimited).
    pub gpus: (u32, Option<u32>),
    /// The last licensed day, `YYYY-MM-DD`.
    pub until: String,
    /// Whole days left.
    pub days_left: i64,
    /// The modules it grants.
    pub modules: Vec<String>,
    /// Warnings (expiry near, within grace, the clock used).
    pub notices: Vec<String>,
    /// The hosts it was installed on.
    pub hosts: usize,
}

impl LicenseReport {
    fn of(v: &Verified, facts: &SiteFacts, hosts: usize, clock: Option<String>) -> LicenseReport {
        let l = &v.license;
        LicenseReport {
            id: l.id.clone(),
            customer: l.customer.clone(),
            nodes: (facts.usage.nodes, l.entitlements.max_nodes),
            gpus: (facts.usage.gpus, l.entitlements.max_gpus),
            until: time::format_date(l.expires.saturating_sub(1)),
            days_left: v.days_left.max(0),
            modules: l
                .entitlements
                .granted()
                .into_iter()
                .map(String::from)
                .collect(),
            notices: v
                .notices
                .iter()
                .map(ToString::to_string)
                .chain(clock)
                .collect(),
            hosts,
        }
    }

    /// `license lic-… for Example Site: valid until 2027-12-31 (300 days left), 3 of 10
    /// nodes, 0 GPUs, modules mcd; installed on 3 hosts`, then one line per warning.
    pub fn render(&self) -> String {
        let gpus = match self.gpus.1 {
            Some(max) => format!("{} of {max} GPUs", self.gpus.0),
            None => format!("{} GPUs", self.gpus.0),
        };
        let modules = if self.modules.is_empty() {
            "none".to_string()
        } else {
            self.modules.join(", ")
        };
        let mut out = format!(
            "license: {} for {}: valid until {} ({} days left), {} of {} nodes, {gpus}, \
             modules {modules}; installed on {} hosts\n",
            self.id,
            self.customer,
            self.until,
            self.days_left,
            self.nodes.0,
            self.nodes.1,
            self.hosts
        );
        for n in &self.notices {
            out.push_str(&format!("license: warning: {n}\n"));
        }
        out
    }
}

/// Activates the license file `file` for the site made of `hosts`: the guards the hosts hold
/// are taken in, the license is checked in full against the hosts (signature, fingerprint,
/// dates, node and GPU counts) in the jump host's state `state`, then the license, its guard
/// and its activation record are written to `host_dir` on every host. Running it again with the
/// same license puts back anything removed since, against the same guards.
pub async fn activate(
    hosts: &[SiteHost],
    file: &Path,
    state: &StateDir,
    keys: &TrustRoot,
    host_dir: &Path,
) -> Result<(License, LicenseReport)> {
    let input = std::fs::read(file)
        .map(Zeroizing::new)
        .with_context(|| format!("reading license {}", file.display()))?;
    let survey = survey(hosts).await?;
    let facts = survey.facts();
    let clock_note = earliest_clock(&survey.clocks, time::now()).1;
    adopt_guards(hosts, state, keys, host_dir).await?;
    let v = state
        .activate(&input, keys, &facts)
        .with_context(|| format!("activating {}", file.display()))?;
    push(hosts, state, &state_files(&v.license.request), host_dir).await?;
    let report = LicenseReport::of(&v, &facts, hosts.len(), clock_note);
    Ok((v.license, report))
}

/// The license in `file` opened offline with the activation record the jump host keeps in
/// `state` (signature and decryption only: the hosts are not consulted), so what it grants is
/// known before any host is reached.
pub fn open_offline(file: &Path, state: &StateDir, keys: &TrustRoot) -> Result<License> {
    let input = std::fs::read(file)
        .map(Zeroizing::new)
        .with_context(|| format!("reading {}", file.display()))?;
    let parsed =
        LicenseFile::parse(&input).with_context(|| format!("reading {}", file.display()))?;
    let record = state.load_request(parsed.request_id()).with_context(|| {
        format!(
            "{} answers license request {}, whose activation record is not in {}: give the \
             --state-dir that `ferry license request` was run with ([license] state-dir)",
            file.display(),
            parsed.request_id(),
            state.path().display()
        )
    })?;
    ferry_license::open(&parsed, keys, &record)
        .with_context(|| format!("opening {}", file.display()))
}

/// Why the packages cannot deploy under `license`: `(app, feature)` pairs that need a module,
/// checked against what the license grants; `Err` is one line naming the first refused app.
pub fn gate(needs: &[(String, String)], license: Option<&License>) -> Result<()> {
    for (app, feature) in needs {
        match license {
            None => bail!(
                "{app} needs license feature `{feature}` and the answer file names no license: \
                 add [license] file = \"<site>.lic\" (from `ferry license request` and the vendor)"
            ),
            Some(l) if !l.entitlements.grants(feature) => {
                let granted = l.entitlements.granted();
                bail!(
                    "{app} needs license feature `{feature}`, which license {} does not grant \
                     (it grants: {}): ask the vendor for a license with `{feature}`, or leave \
                     {app} out with [apps] deploy",
                    l.id,
                    if granted.is_empty() {
                        "nothing".to_string()
                    } else {
                        granted.join(", ")
                    }
                )
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn license(modules: serde_json::Value) -> License {
        serde_json::from_value(serde_json::json!({
            "id": "lic-0123456789abcdef", "customer": "Site", "product": "ferry",
            "edition": "standard",
            "entitlements": { "max_nodes": 3, "max_gpus": null, "modules": modules },
            "issued": 0, "not_before": 0, "expires": 1, "grace_days": 0, "sequence": 0,
            "issuer": "0123456789abcdef", "request": "r",
            "fingerprint": { "salt": "", "hosts": [] }
        }))
        .unwrap()
    }

    #[test]
    fn the_gate_lets_through_what_the_license_grants_and_names_the_first_refused_app() {
        let needs = vec![
            ("web".to_string(), "mcd".to_string()),
            ("gpu".to_string(), "vision".to_string()),
        ];
        let both = license(serde_json::json!({"mcd": true, "vision": "gold"}));
        gate(&needs, Some(&both)).unwrap();
        gate(&[], None).unwrap();

        let one = license(serde_json::json!({"mcd": true, "vision": false}));
        let e = gate(&needs, Some(&one)).unwrap_err().to_string();
        assert_eq!(
            e,
            "gpu needs license feature `vision`, which license lic-0123456789abcdef does not \
             grant (it grants: mcd): ask the vendor for a license with `vision`, or leave gpu \
             out with [apps] deploy"
        );
        let e = gate(&needs, None).unwrap_err().to_string();
        assert!(
            e.starts_with("web needs license feature `mcd` and the answer file names no license"),
            "{e}"
        );
    }

    #[test]
    fn the_earliest_clock_judges_the_site_and_a_late_one_is_named() {
        let clocks = vec![("a".to_string(), 1_000_000), ("b".to_string(), 999_000)];
        let (t, note) = earliest_clock(&clocks, 1_000_010);
        assert_eq!(t, 999_000);
        assert!(note.unwrap().starts_with("judging time by b's clock"));
        assert_eq!(earliest_clock(&clocks[..1], 1_000_010), (1_000_000, None));
        assert_eq!(earliest_clock(&[], 5), (5, None));
    }
}
