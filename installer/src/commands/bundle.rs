//! Runs `ferry bundle` subcommands: the library does the work and reports typed events; this
//! module draws them (indicatif bars on a terminal, nothing otherwise) and prints results.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use ferry_bundle::manifest::{Form, ItemKind};
use ferry_bundle::read::Layout;
use ferry_bundle::{
    build, BuildEvent, BuildOptions, Bundle, BundleSpec, PublicKey, ReadEvent, SignatureState,
    SigningKey,
};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cmdline::bundle::{BuildArgs, BundleCmd, ExtractArgs, InspectArgs, VerifyArgs};

/// Runs one `ferry bundle` subcommand.
pub fn run(cmd: BundleCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        BundleCmd::Build(a) => build_cmd(a),
        BundleCmd::Verify(a) => verify_cmd(a),
        BundleCmd::Inspect(a) => inspect_cmd(a),
        BundleCmd::Extract(a) => extract_cmd(a),
    }
}

/// Human size: 1.5 GiB, 700.0 MiB, 12 B.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>24} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn load_pubkey(p: &Path) -> anyhow::Result<PublicKey> {
    PublicKey::load(p).context("loading the public key")
}

fn build_cmd(a: BuildArgs) -> anyhow::Result<ExitCode> {
    // The one rule for output files (commands/output.rs), checked before the slow build.
    let index = std::path::PathBuf::from(format!("{}.parts", a.output.display()));
    for p in [&a.output, &index] {
        super::output::refuse_existing(p, "a bundle", a.force)?;
    }
    let spec = BundleSpec::load(&a.spec).context("reading bundle.toml")?;
    let sign_key = match &a.sign_key {
        Some(p) => Some(SigningKey::load(p).context("loading the signing key")?),
        None => {
            eprintln!(
                "warning: no --sign-key: the bundle will be unsigned and `verify` will refuse it"
            );
            None
        }
    };
    let key_id = sign_key.as_ref().map(|k| k.public().key_id());
    let opts = BuildOptions {
        output: a.output.clone(),
        sign_key,
        max_part_size: a.max_part_size,
        source_date_epoch: ferry_bundle::build_time()?,
        docker_host: a.docker_host.clone(),
        threads: a.threads,
    };
    let multi = MultiProgress::with_draw_target(draw_target());
    let overall = multi.add(ProgressBar::new(0));
    overall.set_style(bar_style());
    overall.set_prefix("total");
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let mut on_event = |e: BuildEvent| match e {
        BuildEvent::ReadingImages { count } => {
            overall.set_message(format!("reading {count} images"));
        }
        BuildEvent::Planned { items } => {
            overall.set_length(items.iter().map(|(_, _, b)| b).sum());
            for (name, _, bytes) in items {
                let bar = multi.insert_before(&overall, ProgressBar::new(bytes));
                bar.set_style(bar_style());
                bar.set_prefix(truncate(&name, 24));
                bars.insert(name, bar);
            }
        }
        BuildEvent::ItemStarted { .. } => {}
        BuildEvent::Bytes { name, bytes } => {
            if let Some(b) = bars.get(&name) {
                b.inc(bytes);
            }
            overall.inc(bytes);
        }
        BuildEvent::ItemFinished { summary } => {
            if let Some(b) = bars.get(&summary.name) {
                b.finish();
            }
        }
    };
    let summary = build(&spec, &opts, &mut on_event)
        .with_context(|| format!("building bundle {}", a.output.display()))?;
    overall.finish_and_clear();
    let _ = multi.clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<12} {:>11} {:>11} {:>11}",
        "ITEM", "KIND", "SIZE", "STORED", "DEDUPED"
    );
    for i in &summary.items {
        println!(
            "{:<28} {:<12} {:>11} {:>11} {:>11}",
            truncate(&i.name, 28),
            i.kind,
            human(i.size),
            human(i.stored),
            human(i.deduplicated)
        );
    }
    let pct = if summary.input_size > 0 {
        summary.bundle_size as f64 * 100.0 / summary.input_size as f64
    } else {
        100.0
    };
    println!(
        "{} items, {} blobs: {} in, {} bundle ({pct:.0}%), {} saved by storing shared content once",
        summary.items.len(),
        summary.blobs,
        human(summary.input_size),
        human(summary.bundle_size),
        human(summary.deduplicated)
    );
    match key_id {
        Some(k) => println!("signed by key {k}; manifest {}", summary.manifest_digest),
        None => println!("UNSIGNED; manifest {}", summary.manifest_digest),
    }
    for f in &summary.files {
        println!("wrote {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

fn read_bar(label: &str) -> (ProgressBar, impl FnMut(ReadEvent)) {
    let bar = ProgressBar::with_draw_target(Some(0), draw_target());
    bar.set_style(bar_style());
    bar.set_prefix(label.to_string());
    let b = bar.clone();
    let f = move |e: ReadEvent| match e {
        ReadEvent::Started { bytes } => b.set_length(bytes),
        ReadEvent::Bytes { bytes } => b.inc(bytes),
        ReadEvent::ItemExtracted { .. } => {}
    };
    (bar, f)
}

fn verify_cmd(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = load_pubkey(&a.pubkey)?;
    let bundle = Bundle::open(&a.bundle, Some(&key)).context("verifying bundle")?;
    let (bar, mut on_event) = read_bar("verify");
    let report = bundle
        .verify(a.deep, &mut on_event)
        .context("verifying bundle")?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let m = bundle.manifest();
        println!(
            "OK: {} {} — signature by key {}, {} items, {} blobs, {}{}{}",
            m.name,
            m.version,
            report.key_id,
            report.items,
            report.blobs,
            human(report.bytes),
            if report.parts > 0 {
                format!(", {} parts", report.parts)
            } else {
                String::new()
            },
            if report.deep {
                ", content digests checked"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect_cmd(a: InspectArgs) -> anyhow::Result<ExitCode> {
    let key = a.pubkey.as_deref().map(load_pubkey).transpose()?;
    let bundle = Bundle::open(&a.bundle, key.as_ref()).context("inspecting bundle")?;
    let m = bundle.manifest();
    let signature = match bundle.signature() {
        SignatureState::Verified(k) => format!("verified, key {k}"),
        SignatureState::Unchecked { key_id, .. } => {
            format!("present, key {key_id} (not checked: pass --pubkey)")
        }
        SignatureState::Unsigned => "NONE (unsigned bundle)".into(),
    };
    let created = i64::try_from(m.created)
        .map(ferry_license::time::format_time)
        .unwrap_or_else(|_| format!("{} (seconds since 1970)", m.created));
    let parts = match bundle.layout() {
        Layout::Single(_) => 0,
        Layout::Split { index, .. } => index.parts.len(),
    };
    if a.json {
        let out = serde_json::json!({
            "bundle": bundle.path(),
            "size": bundle.size(),
            "parts": parts,
            "created": created,
            "signature": signature_json(bundle.signature()),
            "manifest": m,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("bundle    {} {}", m.name, m.version);
    println!("format    {}", m.format);
    println!("created   {created}");
    println!(
        "size      {}{}",
        human(bundle.size()),
        if parts > 0 {
            format!(" in {parts} parts")
        } else {
            String::new()
        }
    );
    println!("signature {signature}");
    let stored: u64 = m.blobs.iter().map(|b| b.stored_size).sum();
    let content: u64 = m.blobs.iter().map(|b| b.size).sum();
    println!(
        "blobs     {} ({} content, {} stored)",
        m.blobs.len(),
        human(content),
        human(stored)
    );
    println!();
    println!(
        "{:<28} {:<12} {:<16} {:<7} {:>11}  DETAILS",
        "ITEM", "KIND", "VERSION", "ARCH", "SIZE"
    );
    for i in &m.items {
        let details = match &i.kind {
            ItemKind::GpuDriver {
                kernels,
                pci_vendor,
            } => {
                format!("pci vendor {pci_vendor}, kernels {}", kernels.join(" "))
            }
            ItemKind::OsPackages { format, distro } => {
                format!("{format:?} for {distro}").to_lowercase()
            }
            ItemKind::Image {
                reference,
                manifest_digest,
                os,
                architecture,
            } => {
                format!("{reference} {os}/{architecture} {manifest_digest}")
            }
            _ => i
                .contents
                .iter()
                .map(|c| c.path.clone())
                .collect::<Vec<_>>()
                .join(" "),
        };
        println!(
            "{:<28} {:<12} {:<16} {:<7} {:>11}  {details}",
            truncate(&i.name, 28),
            kind_shown(i),
            i.version.as_deref().unwrap_or("-"),
            i.arch.as_deref().unwrap_or("-"),
            human(i.size()),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `inspect --json`'s `signature`: whether it was checked, by which key, with which algorithm.
pub(crate) fn signature_json(state: &SignatureState) -> serde_json::Value {
    match state {
        SignatureState::Verified(key_id) => serde_json::json!({
            "state": "verified", "key_id": key_id, "algorithm": "ed25519",
        }),
        SignatureState::Unchecked { key_id, algorithm } => serde_json::json!({
            "state": "not-checked", "key_id": key_id, "algorithm": algorithm,
        }),
        SignatureState::Unsigned => serde_json::json!({
            "state": "unsigned", "key_id": null, "algorithm": null,
        }),
    }
}

/// The KIND column: a `file` item holding a directory tree shows as `dir`.
fn kind_shown(item: &ferry_bundle::Item) -> &'static str {
    match item.kind {
        ItemKind::File if item.contents.iter().any(|c| c.form == Form::Tree) => "dir",
        _ => item.kind.label(),
    }
}

fn extract_cmd(a: ExtractArgs) -> anyhow::Result<ExitCode> {
    let key = a.pubkey.as_deref().map(load_pubkey).transpose()?;
    if key.is_none() {
        if !a.insecure_skip_signature {
            anyhow::bail!(
                "no --pubkey: give the signer's public key, or --insecure-skip-signature to extract unchecked"
            );
        }
        eprintln!(
            "warning: --insecure-skip-signature: the signature is not checked (blob digests still are)"
        );
    }
    let bundle = Bundle::open(&a.bundle, key.as_ref()).context("extracting from bundle")?;
    if a.oci_archive {
        let name = a.item.as_deref().unwrap_or_default();
        std::fs::create_dir_all(&a.output)
            .with_context(|| format!("creating {}", a.output.display()))?;
        let file_name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dest = a.output.join(format!("{file_name}.tar"));
        let tmp = a
            .output
            .join(format!(".{file_name}.tar.tmp-{}", std::process::id()));
        let result = (|| -> anyhow::Result<()> {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?,
            );
            bundle.write_image_archive(name, &mut f)?;
            use std::io::Write;
            f.flush()?;
            std::fs::rename(&tmp, &dest)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.context("extracting an OCI archive")?;
        println!("wrote {}", dest.display());
        return Ok(ExitCode::SUCCESS);
    }
    let (bar, mut on_event) = read_bar("extract");
    let written = bundle
        .extract(a.item.as_deref(), &a.output, &mut on_event)
        .context("extracting from bundle")?;
    bar.finish_and_clear();
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
