//! Runs `ferry app` subcommands: ferry-bundle packs and reads the signed `.fap` file,
//! ferry-apps reads app.yaml; this module prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry_apps::model::ComponentKind;
use ferry_bundle::app_package::{self, AppPackage};
use ferry_bundle::{PublicKey, SignatureState, SigningKey};

use crate::apps::deploy::{Apps, Outcome, Release};
use crate::apps::health::{self, Health, Verdict};
use crate::apps::revision::{self, Status};
use crate::apps::{render, site};
use crate::cluster::kubectl::Kubectl;
use crate::cluster::Topology;
use crate::cmdline::app::{
    AppArgs, AppCmd, AppInspectArgs, AppRollbackArgs, ClusterArgs, DeployArgs, PackArgs, RenderArgs,
};
use crate::commands::output;
use crate::config::InstallConfig;

/// Runs one `ferry app` subcommand.
pub fn run(cmd: AppCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AppCmd::Pack(a) => pack(a),
        AppCmd::Inspect(a) => inspect(a),
        AppCmd::Render(a) => render_cmd(a),
        AppCmd::Deploy(a) => {
            // Everything that can be refused offline is, before the cluster is reached.
            let cfg = InstallConfig::load(&a.cluster.answers)?;
            let releases = releases(&a, &cfg)?;
            on_cluster(&a.cluster, cfg, "app-deploy", |apps, cfg, rt| {
                rt.block_on(deploy(&a, releases, apps, cfg))
            })
        }
        AppCmd::List(a) => on_cluster(&a, load(&a)?, "app-list", |apps, _, rt| {
            rt.block_on(list(apps, a.json))
        }),
        AppCmd::Status(a) => on_cluster(
            &a.cluster,
            load(&a.cluster)?,
            "app-status",
            |apps, cfg, rt| rt.block_on(status(&a, apps, cfg)),
        ),
        AppCmd::History(a) => on_cluster(
            &a.cluster,
            load(&a.cluster)?,
            "app-history",
            |apps, _, rt| rt.block_on(history(&a, apps)),
        ),
        AppCmd::Rollback(a) => on_cluster(
            &a.cluster,
            load(&a.cluster)?,
            "app-rollback",
            |apps, cfg, rt| rt.block_on(rollback(&a, apps, cfg)),
        ),
        AppCmd::Remove(a) => on_cluster(
            &a.cluster,
            load(&a.cluster)?,
            "app-remove",
            |apps, _, rt| rt.block_on(remove(&a, apps)),
        ),
    }
}

fn load(c: &ClusterArgs) -> anyhow::Result<InstallConfig> {
    InstallConfig::load(&c.answers)
}

/// Reaches the answer file's first server and runs `f` with the cluster's apps there.
fn on_cluster(
    c: &ClusterArgs,
    cfg: InstallConfig,
    command: &str,
    f: impl FnOnce(&Apps<'_>, &InstallConfig, &tokio::runtime::Runtime) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let mut reach_args = c.reach.clone();
    reach_args.strict_host_keys |= cfg.ssh.strict_host_keys;
    let run_dir = super::reach::one_off_run_dir(&reach_args, command)?;
    crate::engine::journal::create_private_dir(&run_dir)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let kubectl = rt.block_on(async {
        let reach =
            super::reach::reach(&reach_args, &cfg.inventory, &cfg.inventory_path, run_dir).await?;
        let first = Topology::of(&cfg.members).first().to_string();
        let target = reach
            .targets
            .iter()
            .find(|t| t.name == first)
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the inventory has no server: apps deploy through the cluster's first server"
                )
            })?;
        anyhow::Ok(Kubectl::new(reach.pool.clone(), target))
    })?;
    let progress = |line: String| eprintln!("{line}");
    let apps = Apps::new(&kubectl, &progress);
    f(&apps, &cfg, &rt)
}

/// The packages to deploy, each opened with its signature checked against the vendor key.
fn packages(a: &DeployArgs, cfg: &InstallConfig) -> anyhow::Result<Vec<AppPackage>> {
    let key_path = match (&a.pubkey, &cfg.bundle) {
        (Some(k), _) => k.clone(),
        (None, Some(b)) => b.pubkey.clone(),
        (None, None) => anyhow::bail!(
            "no vendor key to check the packages with: pass --pubkey or set bundle-pubkey in \
             the answer file"
        ),
    };
    let key = PublicKey::load(&key_path)
        .with_context(|| format!("loading the vendor key {}", key_path.display()))?;
    if a.all {
        let Some(b) = &cfg.bundle else {
            anyhow::bail!("--all deploys the bundle's packages: set `bundle` in the answer file");
        };
        let out = site::bundle_packages(&b.path, &key, &key_path)?;
        if out.is_empty() {
            anyhow::bail!("the bundle {} carries no app packages", b.path.display());
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for p in &a.packages {
        out.push(
            AppPackage::open(p, Some(&key))
                .with_context(|| format!("checking app package {}", p.display()))?,
        );
    }
    site::signed_by(&out, &key_path)?;
    Ok(out)
}

/// The warning of a component the site lets wait for a GPU node.
fn gpu_warning(line: &str) -> String {
    format!("warning: {line}: waiting for a GPU node ([apps] gpu-unavailable = \"allow\")")
}

fn print_outcome(o: &Outcome) {
    match o.status {
        Status::Deployed => {
            println!(
                "{} {}: deployed as revision {} (apply {:.1}s, healthy after {:.1}s)",
                o.app, o.version, o.revision, o.apply_secs, o.wait_secs
            );
            for line in &o.waiting_for_gpu {
                println!("{}: {}", o.app, gpu_warning(line));
            }
        }
        _ => {
            println!(
                "{} {}: FAILED (revision {}): {}",
                o.app,
                o.version,
                o.revision,
                o.reason.as_deref().unwrap_or("unknown")
            );
            if let Some(r) = o.restored {
                println!("{}: revision {r} restored", o.app);
            }
            if o.removed {
                println!("{}: the failed first install was removed", o.app);
            }
        }
    }
}

/// The packages checked, ordered by dependencies, rendered for the site, and allowed by the
/// answer file's license.
fn releases(a: &DeployArgs, cfg: &InstallConfig) -> anyhow::Result<Vec<Release>> {
    let releases = site::releases(&packages(a, cfg)?, cfg)?;
    let license = cfg.license.as_ref().map(site::open_license).transpose()?;
    crate::site_license::gate(&site::needs(&releases), license.as_ref())?;
    Ok(releases)
}

async fn deploy<'a>(
    a: &'a DeployArgs,
    releases: Vec<Release>,
    apps: &'a Apps<'a>,
    cfg: &'a InstallConfig,
) -> anyhow::Result<ExitCode> {
    let policy = crate::apps::phase::wait_policy(a.wait_timeout, cfg);
    let mut outcomes = Vec::new();
    let mut ok = true;
    for r in &releases {
        let o = apps.deploy(r, policy).await?;
        if !a.cluster.json {
            print_outcome(&o);
        }
        ok = o.status == Status::Deployed;
        outcomes.push(o);
        if !ok {
            // What depends on it would deploy against a package that is not there.
            break;
        }
    }
    if a.cluster.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": ok, "apps": outcomes}))?
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn list<'a>(apps: &'a Apps<'a>, json: bool) -> anyhow::Result<ExitCode> {
    let all = apps.all_history().await?;
    let rows: Vec<_> = all
        .iter()
        .filter_map(|(name, revs)| {
            let r = revision::current(revs).or(revs.last())?;
            Some(serde_json::json!({
                "app": name,
                "namespace": r.namespace,
                "version": r.version,
                "revision": r.revision,
                "status": r.status,
                "deployed_at": r.deployed_at,
            }))
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no apps deployed");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<16} {:<12} {:>4}  {:<11} DEPLOYED",
        "APP", "NAMESPACE", "VERSION", "REV", "STATUS"
    );
    for r in &rows {
        println!(
            "{:<20} {:<16} {:<12} {:>4}  {:<11} {}",
            r["app"].as_str().unwrap_or_default(),
            r["namespace"].as_str().unwrap_or_default(),
            r["version"].as_str().unwrap_or_default(),
            r["revision"],
            r["status"].as_str().unwrap_or_default(),
            r["deployed_at"].as_str().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn status<'a>(
    a: &'a AppArgs,
    apps: &'a Apps<'a>,
    cfg: &'a InstallConfig,
) -> anyhow::Result<ExitCode> {
    let revs = apps.history(&a.app).await?;
    let Some(cur) = revision::current(&revs) else {
        anyhow::bail!(
            "{} is not deployed on this cluster; see `ferry app list`",
            a.app
        );
    };
    let h = apps.health(&cur.app, &cur.namespace, &cur.objects).await?;
    let healthy = h.iter().all(|c| c.health == Health::Healthy);
    // Components the site lets wait for a GPU node leave the app as good as deployed.
    let policy = cfg.apps.gpu_unavailable.unwrap_or_default();
    let waiting_for_gpu = match health::verdict(&h, policy, None) {
        Verdict::Deployed { waiting_for_gpu } => Some(waiting_for_gpu),
        Verdict::Wait | Verdict::Failed(_) => None,
    };
    if a.cluster.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "app": cur.app, "version": cur.version, "revision": cur.revision,
                "namespace": cur.namespace, "healthy": healthy, "components": h,
                "waiting_for_gpu": waiting_for_gpu.as_deref().unwrap_or_default(),
            }))?
        );
    } else {
        let state = match &waiting_for_gpu {
            _ if healthy => "healthy",
            Some(_) => "healthy but for components waiting for a GPU node",
            None => "NOT HEALTHY",
        };
        println!(
            "{} {} (revision {}, namespace {}): {state}",
            cur.app, cur.version, cur.revision, cur.namespace,
        );
        println!("{:<16} {:<12} {:<9} STATE", "COMPONENT", "KIND", "READY");
        for c in &h {
            let state = match &c.health {
                Health::Healthy => "healthy".to_string(),
                Health::NoGpu => health::NO_GPU.to_string(),
                Health::Progressing(r) | Health::Failed(r) if !r.is_empty() => r.clone(),
                _ => "not ready".to_string(),
            };
            println!("{:<16} {:<12} {:<9} {state}", c.component, c.kind, c.ready);
        }
        for line in waiting_for_gpu.iter().flatten() {
            println!("{}", gpu_warning(line));
        }
    }
    Ok(if waiting_for_gpu.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn history<'a>(a: &'a AppArgs, apps: &'a Apps<'a>) -> anyhow::Result<ExitCode> {
    let revs = apps.history(&a.app).await?;
    if revs.is_empty() {
        anyhow::bail!(
            "{} has no revisions on this cluster; see `ferry app list`",
            a.app
        );
    }
    if a.cluster.json {
        let rows: Vec<_> = revs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "revision": r.revision, "version": r.version, "status": r.status,
                    "deployed_at": r.deployed_at, "source": r.source, "reason": r.reason,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>4}  {:<12} {:<11} {:<21} REASON",
        "REV", "VERSION", "STATUS", "DEPLOYED"
    );
    for r in &revs {
        println!(
            "{:>4}  {:<12} {:<11} {:<21} {}",
            r.revision,
            r.version,
            r.status.label(),
            r.deployed_at,
            r.reason.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn rollback<'a>(
    a: &'a AppRollbackArgs,
    apps: &'a Apps<'a>,
    cfg: &'a InstallConfig,
) -> anyhow::Result<ExitCode> {
    let o = apps
        .rollback(
            &a.app,
            a.to,
            crate::apps::phase::wait_policy(a.wait_timeout, cfg),
        )
        .await?;
    if a.cluster.json {
        println!("{}", serde_json::to_string_pretty(&o)?);
    } else {
        print_outcome(&o);
    }
    Ok(if o.status == Status::Deployed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn remove<'a>(a: &'a AppArgs, apps: &'a Apps<'a>) -> anyhow::Result<ExitCode> {
    let r = apps.remove(&a.app).await?;
    if a.cluster.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "app": r.app, "version": r.version, "revision": r.revision, "removed": true,
            }))?
        );
    } else {
        println!("{} {} removed (revision {})", r.app, r.version, r.revision);
    }
    Ok(ExitCode::SUCCESS)
}

fn pack(a: PackArgs) -> anyhow::Result<ExitCode> {
    if let Some(out) = &a.output {
        output::refuse_existing(out, "an app package", a.force)?;
    }
    let key = SigningKey::load(&a.sign_key).context("loading the signing key")?;
    let packed =
        app_package::pack(&a.dir, &key).with_context(|| format!("packing {}", a.dir.display()))?;
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(AppPackage::file_name(&packed.spec)));
    output::write(&out, &packed.bytes, 0o644, "an app package", a.force)?;
    let digest = ferry_bundle::Digest::of(&packed.bytes);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "file": out,
                "name": packed.spec.name,
                "version": packed.spec.version,
                "sha256": digest,
                "key_id": key.public().key_id(),
                "files": packed.index.files,
            }))?
        );
    } else {
        println!(
            "packed {} {} ({} components, {} files) signed by key {}",
            packed.spec.name,
            packed.spec.version,
            packed.spec.components.len(),
            packed.index.files.len(),
            key.public().key_id()
        );
        println!("wrote {} ({digest})", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens a .fap, its signature checked against `pubkey` when one is given.
fn open_package(
    path: &std::path::Path,
    pubkey: Option<&std::path::Path>,
    what: &'static str,
) -> anyhow::Result<AppPackage> {
    let key = pubkey
        .map(PublicKey::load)
        .transpose()
        .context("loading the public key")?;
    AppPackage::open(path, key.as_ref()).context(what)
}

fn inspect(a: AppInspectArgs) -> anyhow::Result<ExitCode> {
    let p = open_package(&a.package, a.pubkey.as_deref(), "inspecting app package")?;
    let s = &p.spec;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "file": p.path,
                "sha256": p.digest,
                "signature": super::bundle::signature_json(&p.signature),
                "files": p.index.files,
                "app": s,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let signature = match &p.signature {
        SignatureState::Verified(k) => format!("verified, key {k}"),
        SignatureState::Unchecked { key_id, .. } => {
            format!("present, key {key_id} (not checked: pass --pubkey)")
        }
        SignatureState::Unsigned => "NONE".into(),
    };
    println!("app:        {} {}", s.name, s.version);
    println!("about:      {}", s.description);
    println!("namespace:  {}", s.namespace());
    if let Some(f) = &s.license_feature {
        println!("license:    needs feature {f}");
    }
    println!("signature:  {signature}");
    println!("sha256:     {}", p.digest);
    for d in &s.dependencies {
        println!("needs:      {} {}", d.name, d.version);
    }
    println!();
    println!("{:<16} {:<9} {:<9} IMAGE", "COMPONENT", "KIND", "REPLICAS");
    for c in &s.components {
        let replicas = match (&c.replicas, c.kind) {
            (Some(r), _) => serde_json::to_value(r)
                .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string()))
                .unwrap_or_default(),
            (None, k) if k.has_replicas() => "1".into(),
            (None, ComponentKind::Daemon) => "per node".into(),
            (None, _) => "-".into(),
        };
        println!(
            "{:<16} {:<9} {:<9} {}",
            c.name,
            c.kind.label(),
            replicas,
            c.image
        );
    }
    if !s.parameters.is_empty() {
        println!();
        println!(
            "{:<16} {:<9} {:<12} DESCRIPTION",
            "PARAMETER", "TYPE", "DEFAULT"
        );
        for prm in &s.parameters {
            let default = match &prm.default {
                Some(v) => serde_json::to_string(v).unwrap_or_default(),
                None => "(required)".into(),
            };
            println!(
                "{:<16} {:<9} {:<12} {}",
                prm.name,
                prm.ty.label(),
                default,
                prm.description
            );
        }
    }
    println!();
    println!("{:<40} {:>8}  SHA256", "FILE", "SIZE");
    for f in &p.index.files {
        println!("{:<40} {:>8}  {}", f.path, f.size, f.sha256);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--set NAME=VALUE` and `--set-file NAME=PATH` as the values a site gives. A secret given
/// with `--set` is refused: other users see a command line.
fn given_values(
    spec: &ferry_apps::AppSpec,
    set: &[String],
    set_file: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, ferry_apps::values::Given>> {
    use ferry_apps::values::Given;
    let mut out = std::collections::BTreeMap::new();
    for s in set {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--set {s:?}: write NAME=VALUE"))?;
        if spec
            .parameter(k)
            .is_some_and(|p| p.ty == ferry_apps::ParamType::Secret)
        {
            anyhow::bail!(
                "parameter {k} is a secret: give it with --set-file {k}=PATH (a command line \
                 is visible to other users)"
            );
        }
        out.insert(k.to_string(), Given::Text(v.to_string()));
    }
    for s in set_file {
        let (k, path) = s
            .split_once('=')
            .with_context(|| format!("--set-file {s:?}: write NAME=PATH"))?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--set-file {k}: reading {path}"))?;
        let value = text.lines().next().unwrap_or_default().to_string();
        out.insert(k.to_string(), Given::Text(value));
    }
    Ok(out)
}

fn render_cmd(a: RenderArgs) -> anyhow::Result<ExitCode> {
    let p = open_package(&a.package, a.pubkey.as_deref(), "reading app package")?;
    let given = given_values(&p.spec, &a.set, &a.set_file)?;
    let values = ferry_apps::Values::resolve(&p.spec, &a.domain, &given)?;
    let files = |path: &str| p.file(path);
    let mut objects = render::render(
        &p.spec,
        &files,
        &render::Site {
            values: &values,
            local_node: &a.node,
        },
    )
    .map_err(|e| anyhow::anyhow!("rendering {} {}: {e}", p.spec.name, p.spec.version))?;
    // What is printed may end up in a terminal's scrollback or a ticket: never a secret.
    for o in &mut objects {
        if o["kind"] == "Secret" {
            if let Some(data) = o.get_mut("stringData").and_then(|d| d.as_object_mut()) {
                for v in data.values_mut() {
                    *v = serde_json::Value::String("(secret: not shown)".into());
                }
            }
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&objects)?);
    } else {
        for o in &objects {
            print!("---\n{}", serde_yaml_ng::to_string(o)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
