//! Runs `ferry app` subcommands: ferry-bundle packs and reads the signed `.fap` file,
//! ferry-apps reads app.yaml; this module prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry_apps::model::ComponentKind;
use ferry_bundle::app_package::{self, AppPackage};
use ferry_bundle::{PublicKey, SignatureState, SigningKey};

use crate::cmdline::app::{AppCmd, AppInspectArgs, PackArgs};
use crate::commands::output;

/// Runs one `ferry app` subcommand.
pub fn run(cmd: AppCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AppCmd::Pack(a) => pack(a),
        AppCmd::Inspect(a) => inspect(a),
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
