//! The answer file as a specification, through `ferry validate`: golden files under
//! `tests/data/answers/` (each `NAME.toml` beside the `NAME.json` ferry shows for it, each
//! `bad-NAME.toml` beside the one error line it must give). `UPDATE_GOLDEN=1` rewrites the
//! `.json` files (refused under `CI=true`).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry_tests::golden;

const DATA: &str = "tests/data/answers";

fn inputs(bad: bool) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(DATA);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("bad-") == bad)
        .map(|p| Path::new(DATA).join(p.file_name().unwrap()))
        .collect();
    v.sort();
    v
}

/// `ferry validate --answers PATH`, run from the crate's directory so paths in the output
/// are the same relative paths on every machine.
fn validate(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["validate", "--answers"])
        .arg(path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

#[test]
fn good_answer_files_give_their_golden_config() {
    let files = inputs(false);
    assert!(files.len() >= 3, "golden inputs missing");
    let mut golden = golden::Golden::new();
    for path in &files {
        let out = validate(path);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let abs = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        golden.check(
            &abs.with_extension("json"),
            &String::from_utf8(out.stdout).unwrap(),
        );
    }
    golden.finish(files.len());
}

#[test]
fn bad_answer_files_give_one_line_naming_the_key_and_the_fix() {
    let files = inputs(true);
    assert!(files.len() >= 10, "bad inputs missing");
    for path in files {
        let out = validate(&path);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", path.display());
        assert!(
            out.stdout.is_empty(),
            "{}: printed a config",
            path.display()
        );
        let abs = Path::new(env!("CARGO_MANIFEST_DIR")).join(&path);
        let want = golden::expected_error(&abs.with_extension("err"));
        let got = stderr.trim_end();
        assert!(
            got.starts_with(&want),
            "{}:\n  got:  {got}\n  want: {want}",
            path.display()
        );
        assert_eq!(got.lines().count(), 1, "error is one line: {got}");
        assert!(!got.contains("panicked"), "{got}");
    }
}
