//! Ansible import as a specification: each input under `tests/data/` beside the expected
//! result (`NAME.json`: the ferry inventory and what was not carried over; `NAME.toml`: the
//! file written; `NAME.notes`: the notes as printed, repeated ones merged), each `bad-*`
//! input beside the error line it must give.
//! `UPDATE_GOLDEN=1` rewrites the expected files (refused under `CI=true`).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use ferry_tests::golden;

use std::path::{Path, PathBuf};

use ferry_ansible::{import_file, ImportOptions};
use ferry_inventory::Inventory;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn inputs(bad: bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "ini" || e == "yml" || e == "yaml")
        })
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("bad-") == bad)
        .collect();
    v.sort();
    v
}

fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(std::env::current_dir().unwrap())
        .unwrap_or(path)
        .to_path_buf()
}

/// Good inputs under `tests/data/` (site.ini, kubespray.ini, passwords.yml, k8s-site.ini,
/// no-server.yml).
const GOOD_INPUTS: usize = 5;
/// `bad-*` inputs under `tests/data/`.
const BAD_INPUTS: usize = 21;

#[test]
fn imports_match_their_golden_files() {
    let mut golden = golden::Golden::new();
    let files = inputs(false);
    assert!(files.len() >= GOOD_INPUTS, "good inputs missing");
    for path in files {
        let import = import_file(&relative(&path), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_string_pretty(&import).unwrap() + "\n";
        let toml = import.inventory.to_toml_string().unwrap();
        // The notes as `import-ansible` prints them: the same note about many hosts once.
        let notes: String = import
            .grouped_notes()
            .iter()
            .map(|n| format!("{n}\n"))
            .collect();
        for (ext, got) in [("json", &json), ("toml", &toml), ("notes", &notes)] {
            golden.check(&path.with_extension(format!("expected.{ext}")), got);
        }
    }
    golden.finish(3 * GOOD_INPUTS);
}

#[test]
fn bad_inventories_name_file_and_line() {
    let files = inputs(true);
    assert!(files.len() >= BAD_INPUTS, "bad inputs missing");
    for path in files {
        let rel = relative(&path);
        let err = import_file(&rel, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        let want = golden::expected_error(&path.with_extension("err"));
        let want = format!("{}/{want}", rel.parent().unwrap().display());
        assert!(
            err.starts_with(&want),
            "{}:\n  got:  {err}\n  want: {want}",
            path.display()
        );
    }
}

/// Every `bad-*password*` input carries the password `hunter2` where the parser trips;
/// no error may repeat it (errors end up in logs and terminals).
#[test]
fn errors_never_echo_a_password() {
    let files: Vec<PathBuf> = inputs(true)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("password"))
        .collect();
    assert!(files.len() >= 10, "password inputs missing");
    for path in files {
        assert!(std::fs::read_to_string(&path).unwrap().contains("hunter2"));
        let err = import_file(&path, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{}: {err}", path.display());
        let debug = format!(
            "{:?}",
            import_file(&path, &ImportOptions::default()).unwrap_err()
        );
        assert!(!debug.contains("hunter2"), "{}: {debug}", path.display());
    }
}

#[test]
fn clear_text_passwords_are_never_written() {
    let files = inputs(false);
    assert!(files.len() >= GOOD_INPUTS, "good inputs missing");
    for path in files {
        let import = import_file(&path, &ImportOptions::default()).unwrap();
        let toml = import.inventory.to_toml_string().unwrap();
        let json = serde_json::to_string(&import).unwrap();
        for secret in ["s3cr3t-sudo", "clear-text-pw", "db1-own-pw"] {
            assert!(!toml.contains(secret), "{secret} written to TOML");
            assert!(!json.contains(secret), "{secret} in the report");
        }
    }
}

#[test]
fn written_inventories_load_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for path in inputs(false) {
        let import = import_file(&path, &ImportOptions::default()).unwrap();
        let out = dir.path().join("inventory.toml");
        std::fs::write(&out, import.inventory.to_toml_string().unwrap()).unwrap();
        let loaded = Inventory::load(&out).unwrap();
        assert_eq!(
            loaded.hosts(),
            import.inventory.hosts(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_password_becomes_a_named_environment_variable() {
    let import = import_file(&data().join("passwords.yml"), &ImportOptions::default()).unwrap();
    let db1 = import.inventory.host("db1").unwrap();
    assert_eq!(
        db1.credential,
        ferry_inventory::Credential::Password(ferry_inventory::SecretRef::Env(
            "FERRY_DB1_PASSWORD".into()
        ))
    );
    let appa = import.inventory.host("appa").unwrap();
    assert_eq!(
        appa.credential,
        ferry_inventory::Credential::Password(ferry_inventory::SecretRef::Env(
            "FERRY_ALL_PASSWORD".into()
        ))
    );
    assert!(import
        .not_carried_over
        .iter()
        .any(|n| n.subject == "host appa" && n.reason.contains("export FERRY_ALL_PASSWORD")));
}
