//! `ferry inventory import-ansible` as a user runs it: writes a ferry inventory that loads,
//! lists what was not carried over, never writes a password, and names the line of a syntax
//! error without touching the output.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::process::Command;

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

#[test]
fn writes_an_inventory_and_lists_what_was_not_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hosts.ini");
    std::fs::write(
        &input,
        "[server]\ncp1 ansible_host=10.0.0.1 ansible_user=root ansible_ssh_pass=topsecret\n\
         [agent]\nnode[01:03] ansible_user=ops ansible_ssh_private_key_file=/k\n",
    )
    .unwrap();
    let out = dir.path().join("inventory.toml");
    let run = ferry()
        .args(["inventory", "import-ansible"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("(4 hosts)"), "{stderr}");
    assert!(
        stderr.contains("host cp1: ansible_password: clear-text password"),
        "{stderr}"
    );
    assert!(stderr.contains("export FERRY_CP1_PASSWORD"), "{stderr}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(!written.contains("topsecret"));
    assert!(!stderr.contains("topsecret"));
    let inv = ferry_inventory::Inventory::load(&out).unwrap();
    assert_eq!(inv.hosts().len(), 4);
    assert_eq!(inv.host("node02").unwrap().user, "ops");

    // A second run does not overwrite without --force.
    let again = ferry()
        .args(["inventory", "import-ansible"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("pass --force"));
}

#[test]
fn a_syntax_error_names_the_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hosts.ini");
    std::fs::write(&input, "[web]\nweb1\n[web:vars\nx=1\n").unwrap();
    let out = dir.path().join("inventory.toml");
    let run = ferry()
        .args(["inventory", "import-ansible"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(&format!("{}:3: section header", input.display())),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_bad_line_with_a_password_names_the_key_not_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hosts.ini");
    std::fs::write(
        &input,
        "[web]\nweb1 ansible_host=10.0.0.1\n[all:vars]\nansible_ssh_pass hunter2\n",
    )
    .unwrap();
    let out = dir.path().join("inventory.toml");
    let run = ferry()
        .args(["inventory", "import-ansible"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stderr.contains(&format!("{}:4: ", input.display()))
            && stderr.contains("`ansible_ssh_pass`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2") && !stdout.contains("hunter2"),
        "{stderr}{stdout}"
    );
    assert!(!out.exists());
}
