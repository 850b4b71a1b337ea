//! Running the real `ferry` binary from a test, shared by the CLI test targets (bundle_cli,
//! app_cli, registry_serve): each target uses what it needs.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

/// `ferry ARGS` in `cwd`, with a fixed build time and none of the caller's signing or Docker
/// settings.
pub fn ferry(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("FERRY_SIGN_KEY")
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap()
}

/// Exit status, stdout and stderr, for a failed assertion's message.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The success's stdout.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", show(o));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The failure's stderr, which must be exactly one line (warnings aside) and no panic.
pub fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected failure, got success: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8(o.stderr.clone()).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert_eq!(lines.len(), 1, "error is not one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_string()
}
