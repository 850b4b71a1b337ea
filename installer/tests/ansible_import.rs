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
    // The variable as written in the Ansible file.
    assert!(
        stderr.contains("host cp1: ansible_ssh_pass: clear-text password"),
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
    assert!(String::from_utf8_lossy(&again.stderr)
        .contains("will not overwrite an inventory without --force"));
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

#[test]
fn a_shared_password_is_one_variable_in_defaults_and_one_note_for_all_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hosts.ini");
    std::fs::write(
        &input,
        "[masters]\ncp1 ansible_host=10.0.0.1\n[workers]\nw[01:23]\n\
         [all:vars]\nansible_user=ops\nansible_ssh_pass=shared-secret-9\nansible_become=true\n",
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
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        written.matches("password_env").count(),
        1,
        "one variable, in [defaults]: {written}"
    );
    assert!(written.contains("[defaults]"), "{written}");
    let inv = ferry_inventory::Inventory::load(&out).unwrap();
    assert_eq!(inv.hosts().len(), 24);
    for h in inv.hosts() {
        assert_eq!(
            h.credential,
            ferry_inventory::Credential::Password(ferry_inventory::SecretRef::Env(
                "FERRY_ALL_PASSWORD".into()
            )),
            "{}",
            h.name
        );
        assert_eq!(h.user, "ops");
    }
    // One line for the 24 hosts, not 24 lines.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("FERRY_ALL_PASSWORD"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0]
            .trim_start()
            .starts_with("24 hosts (cp1, w01, w02, and 21 more): ansible_ssh_pass:"),
        "{stderr}"
    );
    assert!(!written.contains("shared-secret-9") && !stderr.contains("shared-secret-9"));
}

#[test]
fn json_without_an_output_file_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hosts.ini");
    std::fs::write(&input, "[masters]\ncp1 ansible_host=10.0.0.1\n").unwrap();
    let run = ferry()
        .args(["inventory", "import-ansible", "--json"])
        .arg(&input)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("add -o FILE"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(run.stdout.is_empty());
    // With -o, the inventory goes to the file and the notes to stdout as JSON.
    let out = dir.path().join("inventory.toml");
    let run = ferry()
        .args(["inventory", "import-ansible", "--json"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success());
    let notes: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(
        notes.as_array().unwrap()[0]["subjects"].is_array(),
        "{notes}"
    );
    assert!(ferry_inventory::Inventory::load(&out).is_ok());
}

#[test]
fn a_port_that_is_not_a_number_is_an_error_not_port_22() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hosts.ini");
    std::fs::write(
        &input,
        "[masters]\ncp1 ansible_host=10.0.0.1 ansible_port=abc\n",
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
    assert!(
        stderr.contains("host cp1: ansible_port=`abc` is not a port"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn an_imported_jump_host_is_no_cluster_member_unless_it_is_in_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hosts.ini");
    std::fs::write(
        &input,
        "[k8s_master]\ncp1 ansible_host=10.0.0.1\n[k8s_node]\nw1 ansible_host=10.0.0.2\n\
         [all:vars]\nansible_user=root\nansible_ssh_common_args='-o ProxyJump=ops@jump.site'\n",
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
    assert!(
        stderr.contains("host jump.site: roles: jump host in no group"),
        "{stderr}"
    );
    let inv = ferry_inventory::Inventory::load(&out).unwrap();
    assert!(inv.host("jump.site").unwrap().is_jump_only());
    assert_eq!(
        inv.host("cp1").unwrap().roles,
        vec![ferry_inventory::Role::Server]
    );
    assert_eq!(
        inv.host("w1").unwrap().roles,
        vec![ferry_inventory::Role::Agent]
    );
    // The answer file's members, which plan and apply set up, leave the jump host out.
    let answers = dir.path().join("site.toml");
    std::fs::write(
        &answers,
        "inventory = \"inventory.toml\"\n[cluster]\nname = \"t\"\n",
    )
    .unwrap();
    // The imported inventory logs in with Ansible's default key, which validate checks is
    // there: give it one in a home of the test's own.
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_rsa"), "a private key\n").unwrap();
    let run = ferry()
        .args(["validate", "--answers"])
        .arg(&answers)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let cfg: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let members: Vec<&str> = cfg["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["cp1", "w1"]);
}

/// One rule for output files (issue 11 item 7): an existing inventory is kept unless
/// `--force`, with the same words as every other command's `-o`.
#[test]
fn an_existing_inventory_is_replaced_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hosts.ini");
    std::fs::write(&input, "[k8s_master]\ncp1 ansible_host=10.0.0.1\n").unwrap();
    let out = dir.path().join("inventory.toml");
    std::fs::write(&out, "# mine\n").unwrap();
    let run = |force: bool| {
        let mut c = ferry();
        c.args(["inventory", "import-ansible"])
            .arg(&input)
            .arg("-o")
            .arg(&out);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    let refused = run(false);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: {}: already exists; will not overwrite an inventory without --force \
             (or choose another -o)",
            out.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# mine\n");
    assert!(run(true).status.success());
    assert!(std::fs::read_to_string(&out).unwrap().contains("cp1"));
}
