//! What `ferry validate` can tell about an answer file without reaching a host, beyond its
//! syntax: the files it names (the bundle opened and its signature checked with the key, the
//! SSH key files of the inventory), and type errors said as what to write.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::Path;

use ferry_bundle::{Bundle, BundleError, ItemKind, PublicKey};
use ferry_inventory::Inventory;

use super::BundleRef;

/// What the bundle offers the baseline, as far as the answer file's checks need it.
pub(super) struct BundleFacts {
    /// It holds at least one offline OS package repository.
    pub os_packages: bool,
}

/// Opens the bundle with its public key: the files exist, the key is a bundle key, and the
/// bundle is signed by it (headers and the signed manifest only; `ferry bundle verify`
/// reads every byte). `Err` names the answer-file key at fault.
pub(super) fn bundle(b: &BundleRef) -> anyhow::Result<BundleFacts> {
    let key = PublicKey::load(&b.pubkey).map_err(|e| anyhow::anyhow!("bundle-pubkey: {e}"))?;
    let bundle = Bundle::open(&b.path, Some(&key)).map_err(|e| match e {
        BundleError::Signature { .. } => anyhow::anyhow!(
            "bundle: {e}; give the key the bundle was signed with in `bundle-pubkey`"
        ),
        BundleError::Io { .. } => anyhow::anyhow!(
            "bundle: {e}; fix `bundle` in the answer file, or copy the bundle there"
        ),
        e => anyhow::anyhow!("bundle: {e}"),
    })?;
    Ok(BundleFacts {
        os_packages: bundle
            .manifest()
            .items
            .iter()
            .any(|i| matches!(i.kind, ItemKind::OsPackages { .. })),
    })
}

/// Every SSH key file the inventory names exists and is a private key (each file checked
/// once, named with the first host using it).
pub(super) fn key_files(inv: &Inventory, inventory_path: &Path) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for host in inv.hosts() {
        let Some(path) = inv.key_file(host) else {
            continue;
        };
        if !seen.insert(path.clone()) {
            continue;
        }
        if let Err(why) = private_key_file(&path) {
            anyhow::bail!(
                "inventory: host `{}`: key file {} {why}; fix `key` in {}",
                host.name,
                path.display(),
                inventory_path.display()
            );
        }
    }
    Ok(())
}

/// Whether `path` looks like an SSH private key: present, a file, readable, not a public key.
/// Reads only its first bytes, and never shows them.
fn private_key_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        _ => format!("cannot be read ({e})"),
    })?;
    if meta.is_dir() {
        return Err("is a directory, not a key file".into());
    }
    let mut head = [0u8; 48];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| format!("cannot be read ({e})"))?;
    let head = &head[..n];
    if n == 0 {
        return Err("is empty".into());
    }
    let public = ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|p| head.starts_with(p.as_bytes()));
    if public {
        return Err("is a public key; `key` names the private key (the file without .pub)".into());
    }
    if head.starts_with(b"-----BEGIN FERRY") {
        return Err("is a ferry key, not an SSH key".into());
    }
    Ok(())
}

/// A TOML error said as the answer file's key and what to write there:
/// `preflight.min-cpus: expected a whole number like 2, found "two"`.
pub(super) fn toml_error(e: &toml::de::Error) -> String {
    let msg = e.message().trim();
    // toml names the key path only in its Display without the input: "…\nin `a.b`".
    let mut bare = e.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let key = shown
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("in `"))
        .and_then(|l| l.strip_suffix('`'))
        .map(str::to_string);
    let said = type_error(msg).unwrap_or_else(|| {
        if msg.starts_with("missing field") {
            format!("{msg}; add it (examples/site.toml shows every key)")
        } else {
            msg.to_string()
        }
    });
    match key {
        Some(k) if !msg.starts_with("missing field") => format!("{k}: {said}"),
        _ => said,
    }
}

/// `invalid type: string "two", expected usize` as `expected a whole number like 2, found
/// "two"`; `None` for other messages.
fn type_error(msg: &str) -> Option<String> {
    let rest = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    let want = match expected {
        "usize" | "u64" | "u32" | "u8" => "a whole number like 2",
        "u16" => "a whole number from 1 to 65535, like 6443",
        "f64" | "f32" => "a number like 2.5",
        "a boolean" => "true or false",
        "a string" => "text in quotes, like \"value\"",
        "a sequence" => "a list, like [\"a\", \"b\"]",
        e if e.starts_with("struct ") || e == "a map" => "a table, like { key = \"value\" }",
        _ => return None,
    };
    let found = found
        .strip_prefix("string ")
        .or_else(|| found.strip_prefix("integer "))
        .or_else(|| found.strip_prefix("floating point "))
        .or_else(|| found.strip_prefix("boolean "))
        .map(|v| v.trim_matches('`').to_string())
        .unwrap_or_else(|| match found {
            "sequence" => "a list".into(),
            "map" => "a table".into(),
            other => other.into(),
        });
    Some(format!("expected {want}, found {found}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_say_what_to_write() {
        for (msg, want) in [
            (
                "invalid type: string \"two\", expected usize",
                "expected a whole number like 2, found \"two\"",
            ),
            (
                "invalid value: integer `-1`, expected u64",
                "expected a whole number like 2, found -1",
            ),
            (
                "invalid type: string \"yes\", expected a boolean",
                "expected true or false, found \"yes\"",
            ),
            (
                "invalid type: integer `5`, expected a sequence",
                "expected a list, like [\"a\", \"b\"], found 5",
            ),
        ] {
            assert_eq!(type_error(msg).as_deref(), Some(want), "{msg}");
        }
        assert_eq!(type_error("unknown field `x`"), None);
    }
}
