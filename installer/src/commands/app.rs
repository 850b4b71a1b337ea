//! Runs `ferry app` subcommands: ferry-bundle packs and reads the signed `.fap` file,
//! ferry-apps reads app.yaml; this module prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry_apps::model::ComponentKind;
use ferry_bundle::app_package::{self, AppPackage};
use ferry_bundle::{PublicKey, SignatureState, SigningKey};

use crate::apps::render;
use crate::cmdline::app::{AppCmd, AppInspectArgs, PackArgs, RenderArgs};
use crate::commands::output;

/// Runs one `ferry app` subcommand.
pub fn run(cmd: AppCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AppCmd::Pack(a) => pack(a),
        AppCmd::Inspect(a) => inspect(a),
        AppCmd::Render(a) => render_cmd(a),
    }
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

fn inspect(a: AppInspectArgs) -> anyhow::Result<ExitCode> {
    let key = a
        .pubkey
        .as_deref()
        .map(PublicKey::load)
        .transpose()
        .context("loading the public key")?;
    let p = AppPackage::open(&a.package, key.as_ref()).context("inspecting app package")?;
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
    let key = a
        .pubkey
        .as_deref()
        .map(PublicKey::load)
        .transpose()
        .context("loading the public key")?;
    let p = AppPackage::open(&a.package, key.as_ref()).context("reading app package")?;
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
