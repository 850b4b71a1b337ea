//! Runs `ferry license` subcommands: reads files, gathers this machine's fingerprint components,
//! calls ferry-license and shows the outcome. The rules live in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use ferry_license::{
    time, ActivationRequest, HostComponents, IssueSpec, IssuerKey, IssuerPublicKey, License,
    LicenseFile, SiteFacts, StateDir, TrustRoot, Usage, Verified,
};
use zeroize::Zeroizing;

use crate::cmdline::license::{
    ActivateArgs, InspectArgs, IssueArgs, KeygenArgs, LicenseCmd, RequestArgs, SiteArgs,
    StatusArgs, VerifyArgs,
};
use crate::commands::output;
use crate::site_license::{self, SiteHost};

/// Runs one `ferry license` subcommand.
pub fn run(cmd: LicenseCmd) -> Result<ExitCode> {
    // Only test builds read it (see `TestHooks`); a release build says so rather than letting
    // someone believe a chosen time is in force.
    if !ferry_license::TEST_BUILD && std::env::var_os("FERRY_LICENSE_NOW").is_some() {
        bail!(
            "FERRY_LICENSE_NOW is set, but this ferry reads the time only from the clock \
             (the variable works only in ferry's test builds): unset it"
        );
    }
    match cmd {
        LicenseCmd::Keygen(a) => keygen(a),
        LicenseCmd::Keys => keys(),
        LicenseCmd::Request(a) => request(a),
        LicenseCmd::Issue(a) => issue(a),
        LicenseCmd::Activate(a) => activate(a),
        LicenseCmd::Inspect(a) => inspect(a),
        LicenseCmd::Verify(a) => verify(a),
        LicenseCmd::Status(a) => status(a),
    }
}

/// Reads a file that may hold a secret (a request, a signing key): the bytes are wiped on drop.
fn read(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .with_context(|| format!("reading {what} {}", path.display()))
}

fn keygen(a: KeygenArgs) -> Result<ExitCode> {
    let public_path = PathBuf::from(format!("{}.pub", a.output.display()));
    for p in [&a.output, &public_path] {
        output::refuse_existing(p, "a key", a.force)?;
    }
    let key = IssuerKey::generate()?;
    // A fresh 0600 file put into place whole: a symlink at the key path is replaced, not
    // followed, and an existing file's looser mode is not inherited.
    output::write(
        &a.output,
        key.to_armored().as_bytes(),
        0o600,
        "a key",
        a.force,
    )?;
    output::write(
        &public_path,
        key.public().to_armored().as_bytes(),
        0o644,
        "a key",
        a.force,
    )?;
    println!(
        "issuer key {} written: private {} (keep it offline), public {}",
        key.public().id(),
        a.output.display(),
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn keys() -> Result<ExitCode> {
    let root = TrustRoot::built_in()?;
    let keys: Vec<_> = root.keys().collect();
    if keys.is_empty() {
        println!(
            "no vendor key is built into this ferry: it refuses every license (a release build \
             names the vendor's keys with FERRY_LICENSE_VENDOR_KEYS)"
        );
    } else {
        println!(
            "this ferry accepts licenses signed by these keys only (--pubkey picks among them):"
        );
        for (key, origin) in keys {
            let note = if origin == "test key" {
                " (a test key: only test builds trust it)"
            } else {
                ""
            };
            println!("  {}  {origin}{note}", key.id());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now(site: &SiteArgs) -> Result<i64> {
    match &site.hooks.now {
        None => Ok(time::now()),
        Some(s) => s
            .parse::<i64>()
            .ok()
            // Years 1970 to 9999 only, so date arithmetic cannot overflow.
            .filter(|t| (0..=253_402_300_799).contains(t))
            .or_else(|| time::parse_date(s))
            .with_context(|| {
                format!(
                    "FERRY_LICENSE_NOW / --now `{s}` is neither YYYY-MM-DD nor Unix seconds \
                     between 1970 and 9999"
                )
            }),
    }
}

/// This site's hosts and usage. `--local`: one node, read under `--root`. `-i`: every host of
/// the inventory, reached over SSH (the connections are kept for installing the state).
fn site_facts(site: &SiteArgs) -> Result<(SiteFacts, Option<Remote>)> {
    if let Some(inv) = &site.inventory {
        let (hosts, gpus, remote) = Remote::gather(inv, site.known_hosts.as_deref())?;
        let nodes = u32::try_from(hosts.len()).unwrap_or(u32::MAX);
        let facts = SiteFacts {
            hosts,
            usage: Usage { nodes, gpus },
            now: match site.hooks.now {
                Some(_) => now(site)?,
                None => remote.earliest_clock(time::now()),
            },
        };
        return Ok((facts, Some(remote)));
    }
    let (host, gpus) = local_host(&site.hooks.root)?;
    Ok((
        SiteFacts {
            hosts: vec![host],
            usage: Usage { nodes: 1, gpus },
            now: now(site)?,
        },
        None,
    ))
}

/// The hosts of an inventory, connected.
// TODO(inventory): `ferry inventory`'s `reach` does the same with more options (agent, parallel,
// run dir, secrets asked on the terminal); share it once it is public to other commands.
struct Remote {
    rt: tokio::runtime::Runtime,
    sessions: Vec<SiteHost>,
    /// Each host's clock when it was reached, Unix seconds.
    clocks: Vec<(String, i64)>,
}

impl Remote {
    /// Connects to every host (secrets from the environment) and reads its fingerprint
    /// components and GPUs through the shell facts script.
    fn gather(
        inventory: &Path,
        known_hosts: Option<&Path>,
    ) -> Result<(Vec<HostComponents>, u32, Remote)> {
        use ferry_inventory::ssh::{KnownHosts, Pool, SessionOptions};
        let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        let inv = ferry_inventory::Inventory::load(inventory)
            .with_context(|| format!("reading inventory {}", inventory.display()))?;
        let targets = inv
            .targets(&ferry_inventory::ProcessEnv)
            .with_context(|| format!("resolving the hosts of {}", inventory.display()))?;
        let known_hosts = match known_hosts {
            Some(p) => p.to_owned(),
            None => KnownHosts::default_path()?,
        };
        let pool = std::sync::Arc::new(Pool::new(SessionOptions::new(known_hosts)));
        let (survey, sessions) = rt.block_on(async {
            // Every host at once (the pool bounds the handshakes), kept in inventory order.
            let tasks: Vec<_> = targets
                .iter()
                .map(|t| {
                    let (pool, t) = (pool.clone(), t.clone());
                    tokio::spawn(async move {
                        let s = pool.session(&t).await;
                        (t.name, s)
                    })
                })
                .collect();
            let mut sessions = Vec::new();
            for task in tasks {
                let (name, session) = task.await.context("connecting to a host crashed")?;
                let session = session.with_context(|| format!("{name}: connecting"))?;
                sessions.push((name, session));
            }
            let survey = site_license::survey(&sessions).await?;
            anyhow::Ok((survey, sessions))
        })?;
        Ok((
            survey.hosts,
            survey.gpus,
            Remote {
                rt,
                sessions,
                clocks: survey.clocks,
            },
        ))
    }

    /// The earliest clock on the site (this machine's included).
    fn earliest_clock(&self, local: i64) -> i64 {
        let (t, note) = site_license::earliest_clock(&self.clocks, local);
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
        t
    }

    /// Copies the site's license state (installed license, guard, activation record) into `dir`
    /// on every host: temporary file, then rename; all mode 0600.
    fn install(&self, state: &StateDir, request_id: &str, dir: &Path) -> Result<()> {
        self.rt.block_on(site_license::push(
            &self.sessions,
            state,
            &site_license::state_files(request_id),
            dir,
        ))
    }

    /// Takes in every host's copy of the guard that has seen a later time than this machine's.
    fn adopt_guards(&self, state: &StateDir, keys: &TrustRoot, dir: &Path) -> Result<()> {
        self.rt
            .block_on(site_license::adopt_guards(&self.sessions, state, keys, dir))
    }

    /// Copies both copies of the guard (their highest time seen just raised: guard.json and
    /// the activation record) to every host.
    fn refresh_guard(&self, state: &StateDir, request_id: &str, dir: &Path) -> Result<()> {
        self.rt.block_on(site_license::push(
            &self.sessions,
            state,
            &site_license::guard_files(request_id),
            dir,
        ))
    }
}

/// This machine's fingerprint components and NVIDIA GPU count, read under `root`.
fn local_host(root: &Path) -> Result<(HostComponents, u32)> {
    let facts = ferry_inventory::facts::gather(root);
    let name = if facts.hostname.is_empty() {
        "local"
    } else {
        facts.hostname.as_str()
    };
    let host = site_license::components(&facts, name);
    if site_license::is_blank(&host) {
        bail!(
            "found no machine-id, product UUID, disk serial or NIC MAC under {}: this machine cannot be fingerprinted",
            root.display()
        );
    }
    Ok((host, u32::try_from(facts.gpus.len()).unwrap_or(u32::MAX)))
}

fn request(a: RequestArgs) -> Result<ExitCode> {
    output::refuse_existing(&a.output, "a request", a.force)?;
    let (facts, _remote) = site_facts(&a.site)?;
    let req = ActivationRequest::new(&facts.hosts, facts.usage, facts.now)?;
    let state = StateDir::new(&a.site.state_dir);
    let record = state.save_request(&req).map_err(|e| {
        let denied = matches!(&e, ferry_license::LicenseError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied);
        if denied {
            anyhow::anyhow!(
                "cannot keep the activation record in {}: permission denied; run as root, or pass \
                 --state-dir DIR (a directory you can write; give activate, verify and status the \
                 same --state-dir)",
                state.path().display()
            )
        } else {
            anyhow::Error::new(e).context("keeping the activation record")
        }
    })?;
    let text = req.to_armored();
    output::write(&a.output, text.as_bytes(), 0o600, "a request", a.force)?;
    println!(
        "request {} for {} host(s) written to {}",
        req.id,
        req.fingerprint.hosts.len(),
        a.output.display()
    );
    println!(
        "activation record kept in {} (keep it: only it can open the license)",
        record.display()
    );
    let license = license_name(&a.output);
    println!(
        "send {} to the vendor; save the license they send back as {} and run:",
        a.output.display(),
        license.display()
    );
    println!("  {}", activate_command(&a.site, &license));
    if a.qr {
        let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L)
            .context("the request is too long for a QR code; carry the file instead")?;
        let image = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build();
        println!("{image}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the printed activate command expects the license: beside the request, named like it.
fn license_name(request: &Path) -> PathBuf {
    let named = request.with_extension("lic");
    if named == request {
        PathBuf::from(format!("{}.lic", request.display()))
    } else {
        named
    }
}

/// The `ferry license activate` command that works, as printed, for the site `request` was made
/// for: the same program, site options and state directory, every word shell-quoted.
fn activate_command(site: &SiteArgs, license: &Path) -> String {
    let program = std::env::args_os()
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "ferry".into());
    let mut words = vec![
        program,
        "license".into(),
        "activate".into(),
        license.display().to_string(),
    ];
    let mut opt = |name: &str, value: &Path| {
        words.push(name.into());
        words.push(value.display().to_string());
    };
    match &site.inventory {
        Some(inv) => {
            opt("-i", inv);
            if let Some(kh) = &site.known_hosts {
                opt("--known-hosts", kh);
            }
            if site.host_state_dir != Path::new(ferry_license::DEFAULT_STATE_DIR) {
                opt("--host-state-dir", &site.host_state_dir);
            }
        }
        None => {
            // A test build's fixture root, so that the printed command works there too.
            if site.hooks.root != Path::new("/") {
                opt("--root", &site.hooks.root);
            }
        }
    }
    if site.state_dir != Path::new(ferry_license::DEFAULT_STATE_DIR) {
        opt("--state-dir", &site.state_dir);
    }
    if site.inventory.is_none() {
        words.push("--local".into());
    }
    words
        .iter()
        .map(|w| ferry_inventory::ssh::shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn issue(a: IssueArgs) -> Result<ExitCode> {
    output::refuse_existing(&a.output, "a license", a.force)?;
    let req = ActivationRequest::parse(&read(&a.request, "request")?)
        .with_context(|| format!("reading request {}", a.request.display()))?;
    let spec_text = std::fs::read_to_string(&a.spec)
        .with_context(|| format!("reading spec {} (a UTF-8 TOML file)", a.spec.display()))?;
    let spec = IssueSpec::from_toml(&spec_text)
        .with_context(|| format!("reading spec {}", a.spec.display()))?;
    let key = IssuerKey::from_armored(&read(&a.key, "issuer key")?)
        .with_context(|| format!("reading issuer key {}", a.key.display()))?;
    let now = time::now();
    let (license, file) = ferry_license::issue(&spec, &req, &key, now)?;
    output::write(
        &a.output,
        file.to_armored().as_bytes(),
        0o644,
        "a license",
        a.force,
    )?;
    println!(
        "license {} for {}: {} nodes, GPUs {}, until {} (sequence {}), request {} ({} host(s), using {} nodes / {} GPUs), key {} -> {}",
        license.id,
        license.customer,
        license.entitlements.max_nodes,
        license.entitlements.max_gpus.map_or("unlimited".into(), |g| g.to_string()),
        time::format_date(license.expires.saturating_sub(1)),
        license.sequence,
        req.id,
        req.fingerprint.hosts.len(),
        req.usage.nodes,
        req.usage.gpus,
        license.issuer,
        a.output.display()
    );
    if now >= license.expires {
        let expired = time::format_date(license.expires.saturating_sub(1));
        let today = time::format_date(now);
        if now >= license.grace_end() {
            eprintln!(
                "warning: license {} expired on {expired}, before today ({today}), and its grace \
                 period is over too: every site will refuse it; check `expires` in {}",
                license.id,
                a.spec.display()
            );
        } else {
            eprintln!(
                "warning: license {} expired on {expired}, before today ({today}): it works only \
                 in its grace period, until {}; check `expires` in {}",
                license.id,
                time::format_date(license.grace_end().saturating_sub(1)),
                a.spec.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The keys to accept licenses from: every vendor key built into ferry, or those of them that
/// `--pubkey` names (by .pub file or key id). `--pubkey` can never add a key.
fn trust(chosen: &[PathBuf]) -> Result<TrustRoot> {
    let root = TrustRoot::built_in()?;
    if root.keys().next().is_none() {
        bail!(
            "no vendor license key is built into this ferry, so it refuses every license: use \
             a ferry release from the vendor (`ferry license keys` lists the keys a build holds)"
        );
    }
    if chosen.is_empty() {
        return Ok(root);
    }
    let keys = chosen
        .iter()
        .map(|p| {
            let text = p.to_string_lossy();
            let is_id = text.len() == 16 && text.chars().all(|c| c.is_ascii_hexdigit());
            if is_id && !p.exists() {
                return root
                    .keys()
                    .map(|(k, _)| k)
                    .find(|k| k.id().0 == text.to_ascii_lowercase())
                    .cloned()
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--pubkey {text}: no vendor key with that id is built into this \
                             ferry (built in: {})",
                            root.ids()
                        )
                    });
            }
            let bytes =
                std::fs::read(p).with_context(|| format!("reading public key {}", p.display()))?;
            IssuerPublicKey::from_armored(&bytes)
                .with_context(|| format!("reading public key {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(root.select(&keys)?)
}

fn print_verified(v: &Verified, facts: &SiteFacts) {
    let l = &v.license;
    println!(
        "license {} for {} is valid: {} of {} nodes, {} GPUs{}, until {} ({} days left)",
        l.id,
        l.customer,
        facts.usage.nodes,
        l.entitlements.max_nodes,
        facts.usage.gpus,
        l.entitlements
            .max_gpus
            .map_or(String::new(), |g| format!(" of {g}")),
        time::format_date(l.expires.saturating_sub(1)),
        v.days_left.max(0)
    );
    for n in &v.notices {
        println!("warning: {n}");
    }
}

fn activate(a: ActivateArgs) -> Result<ExitCode> {
    let state = StateDir::new(&a.site.state_dir);
    let keys = trust(&a.pubkey)?;
    let (facts, remote) = site_facts(&a.site)?;
    if let Some(remote) = &remote {
        remote.adopt_guards(&state, &keys, &a.site.host_state_dir)?;
    }
    let input = read(&a.license, "license")?;
    let v = state
        .activate(&input, &keys, &facts)
        .with_context(|| format!("activating {}", a.license.display()))?;
    print_verified(&v, &facts);
    println!("installed in {}", state.path().display());
    if let Some(remote) = remote {
        remote.install(&state, &v.license.request, &a.site.host_state_dir)?;
        println!(
            "installed on {} host(s) in {}",
            remote.sessions.len(),
            a.site.host_state_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let state = StateDir::new(&a.site.state_dir);
    let keys = trust(&a.pubkey)?;
    let (facts, remote) = site_facts(&a.site)?;
    if let Some(remote) = &remote {
        remote.adopt_guards(&state, &keys, &a.site.host_state_dir)?;
    }
    let input = read(&a.license, "license")?;
    let v = state
        .verify(&input, &keys, &facts)
        .with_context(|| format!("verifying {}", a.license.display()))?;
    if let Some(remote) = &remote {
        if let Some(installed) = state.installed_file()? {
            remote.refresh_guard(&state, installed.request_id(), &a.site.host_state_dir)?;
        }
    }
    print_verified(&v, &facts);
    Ok(ExitCode::SUCCESS)
}

fn license_lines(l: &License) -> Vec<String> {
    let modules = if l.entitlements.modules.is_empty() {
        "none".to_owned()
    } else {
        l.entitlements
            .modules
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        format!(
            "license    {} ({} {}, sequence {})",
            l.id, l.product, l.edition, l.sequence
        ),
        format!("customer   {}", l.customer),
        format!(
            "valid      {} to {}, then {} days of grace",
            time::format_date(l.not_before),
            time::format_date(l.expires.saturating_sub(1)),
            l.grace_days
        ),
        format!("modules    {modules}"),
        format!(
            "issuer     key {}, issued {}",
            l.issuer,
            time::format_time(l.issued)
        ),
        format!(
            "hosts      {} licensed (request {})",
            l.fingerprint.hosts.len(),
            l.request
        ),
    ]
}

fn inspect(a: InspectArgs) -> Result<ExitCode> {
    let input = read(&a.license, "license")?;
    let file =
        LicenseFile::parse(&input).with_context(|| format!("reading {}", a.license.display()))?;
    let state = StateDir::new(&a.state_dir);
    // The header is readable by anyone; the payload only with the site's activation record.
    let opened = trust(&a.pubkey).and_then(|keys| {
        let act = state.load_request(file.request_id())?;
        Ok(ferry_license::open(&file, &keys, &act)?)
    });
    if a.json {
        let out = serde_json::json!({
            "alg": file.alg().name(),
            "issuer": file.kid().0,
            "request": file.request_id(),
            "license": opened.as_ref().ok(),
            "error": opened.as_ref().err().map(|e| format!("{e:#}")),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "file       {} (alg {}, issuer key {}, request {})",
        a.license.display(),
        file.alg().name(),
        file.kid(),
        file.request_id()
    );
    match opened {
        Ok(l) => license_lines(&l).iter().for_each(|line| println!("{line}")),
        Err(e) => println!("payload    not readable here: {e:#}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// An error with its causes, "a: b: c", as anyhow's `{:#}` shows them.
fn chain(e: &ferry_license::LicenseError) -> String {
    let mut out = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cur {
        out.push_str(&format!(": {c}"));
        cur = c.source();
    }
    out
}

fn status(a: StatusArgs) -> Result<ExitCode> {
    let state = StateDir::new(&a.site.state_dir);
    let keys = trust(&a.pubkey)?;
    let (facts, remote) = site_facts(&a.site)?;
    if let Some(remote) = &remote {
        remote.adopt_guards(&state, &keys, &a.site.host_state_dir)?;
    }
    let st = state.status(&keys, &facts);
    let ok = st.result.is_ok();
    if let (true, Some(remote), Some(l)) = (ok, &remote, &st.license) {
        remote.refresh_guard(&state, &l.request, &a.site.host_state_dir)?;
    }
    if a.json {
        let out = serde_json::json!({
            "valid": ok,
            "license": st.license,
            "usage": facts.usage,
            "days_left": st.result.as_ref().ok().map(|v| v.days_left),
            "notices": st.result.as_ref().map(|v| v.notices.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
            "error": st.result.as_ref().err().map(chain),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if let Some(l) = &st.license {
            license_lines(l).iter().for_each(|line| println!("{line}"));
            let e = &l.entitlements;
            println!("nodes      {} in use of {}", facts.usage.nodes, e.max_nodes);
            println!(
                "GPUs       {} in use of {}",
                facts.usage.gpus,
                e.max_gpus.map_or("unlimited".to_owned(), |g| g.to_string())
            );
        }
        match &st.result {
            Ok(v) => {
                println!("days left  {}", v.days_left.max(0));
                for n in &v.notices {
                    println!("warning    {n}");
                }
                println!("status     OK");
            }
            Err(e) => println!("status     PROBLEM: {}", chain(e)),
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
