//! `ferry plan`, `apply` and `rollback` given bad input: each stops before reaching any host
//! with one line naming the cause and what to do, and a non-zero exit. (Real hosts: the VM
//! tests in `baseline_vm.rs`.)
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn ferry(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir.join("home"))
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap()
}

/// The one error line, after checking the command failed without panicking.
fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "succeeded:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.lines().next().unwrap_or_default().to_string()
}

fn site() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    // The key file must exist (validate checks it); no host is ever reached with it.
    std::fs::write(d.path().join("k"), "a private key\n").unwrap();
    std::fs::write(
        d.path().join("inventory.toml"),
        "[[hosts]]\nname = \"vm0\"\naddress = \"127.0.0.1\"\nport = 1\nuser = \"root\"\nkey = \"k\"\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("site.toml"),
        "inventory = \"inventory.toml\"\n[cluster]\nname = \"t\"\n",
    )
    .unwrap();
    d
}

#[test]
fn a_missing_answer_file_is_named() {
    let d = site();
    for cmd in ["plan", "apply"] {
        let line = error_line(&ferry(d.path(), &[cmd, "--answers", "nope.toml"]));
        assert!(
            line.starts_with("error: reading answer file nope.toml:") && line.contains("--answers"),
            "{line}"
        );
    }
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let d = site();
    std::fs::write(
        d.path().join("typo.toml"),
        "inventory = \"inventory.toml\"\n[cluster]\nname = \"t\"\n[baseline]\nswapoff = true\n",
    )
    .unwrap();
    let line = error_line(&ferry(d.path(), &["plan", "--answers", "typo.toml"]));
    assert!(
        line.starts_with(
            "error: typo.toml:5:1: baseline: unknown field `swapoff`, expected one of"
        ),
        "{line}"
    );
}

#[test]
fn a_missing_inventory_is_named() {
    let d = site();
    std::fs::write(
        d.path().join("a.toml"),
        "inventory = \"gone.toml\"\n[cluster]\nname = \"t\"\n",
    )
    .unwrap();
    let line = error_line(&ferry(d.path(), &["apply", "--answers", "a.toml"]));
    assert!(
        line.starts_with("error: a.toml: inventory: reading inventory gone.toml:"),
        "{line}"
    );
}

#[test]
fn force_needs_a_host_name_and_a_host_of_the_inventory() {
    let d = site();
    let line = error_line(&ferry(
        d.path(),
        &["plan", "--answers", "site.toml", "--force"],
    ));
    assert!(
        line.contains("a value is required for '--force <HOST>'"),
        "{line}"
    );
    let out = ferry(
        d.path(),
        &[
            "plan",
            "--answers",
            "site.toml",
            "--force",
            "vm9",
            "--timeout",
            "1",
        ],
    );
    let line = error_line(&out);
    assert!(
        line.starts_with("error: --force vm9: no host named vm9 in inventory.toml"),
        "{line}"
    );
}

/// The `error:` line, after checking the command failed without panicking (progress lines
/// may come before it).
fn the_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "succeeded:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"))
        .to_string()
}

#[test]
fn rolling_back_an_unknown_run_names_the_runs_directory() {
    let d = site();
    let line = error_line(&ferry(
        d.path(),
        &["rollback", "--run", "NOPE", "--answers", "site.toml"],
    ));
    let runs = d.path().join("home/.ferry/runs");
    assert_eq!(
        line,
        format!(
            "error: --run NOPE: not a run id (they look like 20250101-120000-abcd); there are no \
             runs in {} (give the --run-dir the run used, or check the run id)",
            runs.display()
        )
    );
    // With runs present, it lists them; the hosts were asked for their copies too.
    for id in ["20250101-000000-aaaa", "20250102-000000-bbbb"] {
        std::fs::create_dir_all(runs.join(id)).unwrap();
        std::fs::write(runs.join(id).join("journal.jsonl"), "").unwrap();
    }
    let line = the_error(&ferry(
        d.path(),
        &[
            "rollback",
            "--run",
            "20250103-000000-cccc",
            "--answers",
            "site.toml",
            "--attempts",
            "1",
        ],
    ));
    assert!(
        line.starts_with(&format!(
            "error: no run 20250103-000000-cccc in {} and no host has \
             /var/lib/ferry/journal/20250103-000000-cccc.jsonl; runs in",
            runs.display()
        )) && line
            .ends_with("20250102-000000-bbbb, 20250101-000000-aaaa (newest 20250102-000000-bbbb)"),
        "{line}"
    );
}

/// `--run-dir /tmp` must leave /tmp as it is: ferry makes a directory of its own inside.
#[test]
fn run_dir_never_changes_the_mode_of_the_folder_given() {
    use std::os::unix::fs::PermissionsExt;
    if !ferry_tests::sshd::available() {
        return;
    }
    let d = site();
    // A host that answers, so the commands get as far as writing their logs.
    let sshd = ferry_tests::sshd::Sshd::start();
    std::fs::write(
        d.path().join("inventory.toml"),
        format!(
            "[[hosts]]\nname = \"vm0\"\naddress = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\n\
             key = \"{}\"\n",
            sshd.port,
            ferry_tests::sshd::KEY_USER,
            ferry_tests::sshd::fixture().keys.ed25519.display()
        ),
    )
    .unwrap();
    let shared = d.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let run_dir = ["--run-dir", "shared", "--attempts", "1", "--timeout", "2"];
    let commands: [&[&str]; 3] = [
        &["inventory", "check", "-i", "inventory.toml"],
        &["plan", "--answers", "site.toml"],
        &["apply", "--answers", "site.toml"],
    ];
    for cmd in commands {
        let args: Vec<&str> = cmd.iter().chain(&run_dir).copied().collect();
        let out = ferry(d.path(), &args);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            mode,
            0o1777,
            "ferry {} changed the folder's mode",
            cmd.join(" ")
        );
    }
    // Each command made its own private directory inside.
    let made: Vec<(String, u32)> = std::fs::read_dir(&shared)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().permissions().mode() & 0o777,
            )
        })
        .collect();
    assert!(
        made.iter().any(|(n, _)| n.starts_with("check-")),
        "{made:?}"
    );
    assert!(made.iter().any(|(n, _)| n.starts_with("plan-")), "{made:?}");
    assert!(made.iter().all(|(_, m)| *m == 0o700), "{made:?}");
}

#[test]
fn rolling_back_a_run_with_nothing_left_is_harmless() {
    let d = site();
    let run = d.path().join("runs/20250101-000000-aaaa");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("journal.jsonl"), "").unwrap();
    let out = ferry(
        d.path(),
        &[
            "rollback",
            "--run",
            "20250101-000000-aaaa",
            "--answers",
            "site.toml",
            "--run-dir",
            "runs",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "nothing to roll back in run 20250101-000000-aaaa\n"
    );
}

#[test]
fn a_bundle_without_its_public_key_is_refused() {
    let d = site();
    std::fs::write(
        d.path().join("b.toml"),
        "inventory = \"inventory.toml\"\nbundle = \"site.ferry\"\n[cluster]\nname = \"t\"\n",
    )
    .unwrap();
    let line = error_line(&ferry(d.path(), &["plan", "--answers", "b.toml"]));
    assert!(
        line.starts_with("error: b.toml: bundle-pubkey: required when `bundle` is set"),
        "{line}"
    );
}

#[test]
fn an_unreachable_host_is_reported_in_the_plan_and_fails_it() {
    let d = site();
    let out = ferry(
        d.path(),
        &[
            "plan",
            "--answers",
            "site.toml",
            "--json",
            "--timeout",
            "2",
            "--attempts",
            "1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hosts"][0]["host"], "vm0");
    assert_eq!(v["hosts"][0]["status"], "unreachable");
    assert!(v["hosts"][0]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("fix:"));
}

/// The shipped example validates as shipped, where it lies, with the inventory beside it
/// (issue 11 item 4): the first file a new engineer runs ferry on.
#[test]
fn the_example_answer_file_validates_as_shipped() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let out = ferry(&examples, &["validate", "--answers", "site.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cluster"]["name"], "site-a");
    assert_eq!(v["baseline"]["time"]["source"], "node1");
    let members: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["node1", "node2", "node3"]);
}

#[test]
fn host_commands_help_fits_80_columns() {
    let d = site();
    for cmd in ["validate", "plan", "apply", "rollback"] {
        let out = ferry(d.path(), &[cmd, "--help"]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("--answers"), "{cmd}: {text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{cmd} --help: {line:?}");
        }
    }
}
