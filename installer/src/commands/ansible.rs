//! Runs Ansible compatibility commands.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use ferry_ansible::{import_file, ImportOptions};

use crate::cmdline::ansible::ImportAnsibleArgs;

/// `ferry inventory import-ansible`: writes the ferry inventory, then lists on stderr (or as
/// JSON on stdout) what could not be carried over, notes saying the same about many hosts
/// merged into one line.
pub fn import(args: ImportAnsibleArgs) -> anyhow::Result<ExitCode> {
    if args.json && args.output.is_none() {
        // stdout carries the notes as JSON: the inventory would have nowhere to go.
        bail!(
            "--json prints the notes on stdout, so the inventory needs a file: add -o FILE \
             (without --json the inventory is printed and the notes go to stderr)"
        );
    }
    let options = ImportOptions {
        default_user: args.default_user,
        default_key: args.default_key,
    };
    let import = import_file(&args.input, &options)
        .with_context(|| format!("importing {}", args.input.display()))?;
    let text = import.inventory.to_toml_string()?;
    let header = format!(
        "# Imported from {} by ferry inventory import-ansible.\n# Passwords are not written: export the *_env variables named below.\n\n",
        args.input.display()
    );
    match &args.output {
        Some(out) => {
            super::output::refuse_existing(out, "an inventory", args.force)?;
            write_atomically(out, &(header + &text))
                .with_context(|| format!("writing {}", out.display()))?;
        }
        None => print!("{header}{text}"),
    }
    let notes = import.grouped_notes();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&notes)?);
    } else {
        let hosts = import.inventory.hosts().len();
        match &args.output {
            Some(out) => eprintln!("wrote {} ({hosts} hosts)", out.display()),
            None => eprintln!("{hosts} hosts"),
        }
        if !notes.is_empty() {
            eprintln!("not carried over as written:");
            for note in &notes {
                eprintln!("  {note}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Temp file beside the target, fsync, rename: a crash leaves the old file or the new one.
fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .context("the output path has no file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.ferry-tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    Ok(())
}
