//! `ferry --help`: the first screen a delivery engineer reads. It says what ferry is for and
//! where to start on site, in the engineer's words, within 80 columns. Golden text in
//! `tests/data/help/` (`UPDATE_GOLDEN=1` rewrites it; review the diff).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use ferry_tests::golden;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn top_level_help_speaks_to_users_and_says_where_to_start() {
    let text = help(&["--help"]);
    let mut g = golden::Golden::new();
    g.check(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/help/ferry.txt"),
        &text,
    );
    g.finish(1);
    // Words of the code, not of the site.
    for word in ["InstallConfig", "CLI", "phases", "binary"] {
        assert!(!text.contains(word), "--help speaks of {word:?}:\n{text}");
    }
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "longer than 80 columns: {line:?}"
        );
    }
    // Every command it suggests exists.
    for cmd in [
        &["install", "--help"][..],
        &["inventory", "check", "--help"],
        &["validate", "--help"],
        &["plan", "--help"],
        &["apply", "--help"],
    ] {
        help(cmd);
    }
}
