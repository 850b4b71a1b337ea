//! The inventory file as a specification: golden files under `tests/data/inventory/` (each
//! `NAME.toml` beside `NAME.json`, each `bad-NAME.toml` beside the error line it must give),
//! then how hosts become SSH targets. `UPDATE_GOLDEN=1` rewrites the `.json` files (refused
//! under `CI=true`).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use ferry_tests::golden;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferry_inventory::{
    Auth, Inventory, InventoryError, PromptRequest, Secret, SecretSource, Sudo, Target,
};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/inventory")
}

fn inputs(bad: bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("bad-") == bad)
        .collect();
    v.sort();
    v
}

fn parse(path: &Path) -> Result<Inventory, InventoryError> {
    let text = std::fs::read_to_string(path).unwrap();
    let origin = path.file_name().unwrap().to_string_lossy().to_string();
    Inventory::from_toml_str(&text, &origin)
}

#[test]
fn good_inventories_parse_to_their_golden_json() {
    let files = inputs(false);
    assert!(files.len() >= 3, "golden inputs missing");
    let mut golden = golden::Golden::new();
    for path in &files {
        let inv = parse(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json = serde_json::to_string_pretty(&inv).unwrap() + "\n";
        golden.check(&path.with_extension("json"), &json);
    }
    golden.finish(files.len());
}

#[test]
fn bad_inventories_give_their_error_line() {
    let files = inputs(true);
    assert!(files.len() >= 13, "bad inputs missing");
    for path in files {
        let err = match parse(&path) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(e) => e.to_string(),
        };
        let want = golden::expected_error(&path.with_extension("err"));
        let want = want.as_str();
        assert!(
            err.starts_with(want),
            "{}:\n  got:  {err}\n  want: {want}",
            path.display()
        );
        assert!(!err.contains('\n'), "error is one line: {err}");
    }
}

#[test]
fn writing_back_gives_the_same_inventory() {
    for path in inputs(false) {
        let inv = parse(&path).unwrap();
        let text = inv.to_toml_string().unwrap();
        let again = Inventory::from_toml_str(&text, "rewritten").unwrap();
        assert_eq!(inv, again, "{}", path.display());
    }
}

/// Secrets from a map; counts prompts so tests see each secret is asked once.
#[derive(Default)]
struct Secrets {
    env: HashMap<String, String>,
    prompts: RefCell<Vec<String>>,
}

impl SecretSource for Secrets {
    fn env(&self, var: &str) -> Option<Secret> {
        self.env.get(var).map(|v| Secret::new(v.clone()))
    }
    fn prompt(&self, request: &PromptRequest) -> Result<Secret, String> {
        self.prompts.borrow_mut().push(request.text());
        Ok(Secret::new(format!("typed-{}", request.host)))
    }
}

fn full() -> Inventory {
    let mut inv = parse(&data_dir().join("full.toml")).unwrap();
    inv.set_base_dir("/site");
    inv
}

fn secrets() -> Secrets {
    let mut s = Secrets::default();
    s.env.insert("GPU_SUDO".into(), "sudo-secret".into());
    s.env.insert("GPU2_PASSPHRASE".into(), "pass-secret".into());
    s
}

#[test]
fn minimal_form_gives_key_and_env_password_targets() {
    let inv = parse(&data_dir().join("minimal.toml")).unwrap();
    let mut s = Secrets::default();
    s.env.insert("NODE2_PASS".into(), "pw2".into());
    let t = inv.targets(&s).unwrap();
    assert_eq!(
        t[0],
        Target {
            name: "node1".into(),
            address: "10.0.0.11".into(),
            port: 22,
            user: "root".into(),
            auth: Auth::Key {
                path: "/path/to/private_key".into(),
                passphrase: None
            },
            sudo: Sudo::None,
            bastion: None,
        }
    );
    assert_eq!(t[1].auth, Auth::Password(Secret::new("pw2")));
    assert_eq!(t[1].port, 22);
}

#[test]
fn missing_password_variable_names_host_and_variable() {
    let inv = parse(&data_dir().join("minimal.toml")).unwrap();
    let err = inv.targets(&Secrets::default()).unwrap_err().to_string();
    assert!(err.contains("`node2`"), "{err}");
    assert!(err.contains("`NODE2_PASS`"), "{err}");
}

#[test]
fn resolves_bastion_chains_and_asks_each_secret_once() {
    let inv = full();
    let s = secrets();
    let targets = inv.targets(&s).unwrap();
    // jump is the bastion of four hosts and its password is asked once; lab1's sudo once.
    assert_eq!(
        *s.prompts.borrow(),
        vec![
            "login password for delivery@jump".to_string(),
            "sudo password for ops@lab1".to_string()
        ]
    );
    let lab1 = targets.iter().find(|t| t.name == "lab1").unwrap();
    let cp1 = lab1.bastion.as_ref().unwrap();
    assert_eq!(cp1.name, "cp1");
    assert_eq!(cp1.bastion.as_ref().unwrap().name, "jump");
    assert!(cp1.bastion.as_ref().unwrap().bastion.is_none());
    let gpu2 = targets.iter().find(|t| t.name == "gpu2").unwrap();
    assert_eq!(
        gpu2.auth,
        Auth::Key {
            path: "/site/keys/gpu2".into(),
            passphrase: Some(Secret::new("pass-secret"))
        }
    );
    let gpu1 = targets.iter().find(|t| t.name == "gpu1").unwrap();
    assert_eq!(gpu1.sudo, Sudo::Password(Secret::new("sudo-secret")));
    assert_eq!(gpu1.port, 2222);
}

#[test]
fn a_refused_prompt_names_the_host() {
    let inv = full();
    let err = inv
        .targets(&ferry_inventory::ProcessEnv)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("host `jump`: could not ask for the login password"),
        "{err}"
    );
}

#[test]
fn secrets_never_show_in_debug_output() {
    let inv = full();
    let targets = inv.targets(&secrets()).unwrap();
    let debug = format!("{targets:?}");
    for secret in ["sudo-secret", "pass-secret", "typed-jump"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
}

#[test]
fn load_names_the_file_in_errors_and_resolves_keys_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(
        &path,
        "[[hosts]]\nname = \"a\"\naddress = \"h\"\nuser = \"u\"\nkey = \"id\"\n",
    )
    .unwrap();
    let inv = Inventory::load(&path).unwrap();
    let t = inv.target("a", &Secrets::default()).unwrap();
    assert_eq!(
        t.auth,
        Auth::Key {
            path: dir.path().join("id"),
            passphrase: None
        }
    );
    std::fs::write(&path, "[[hosts]]\nname = \"a\"\nport = 1\n").unwrap();
    let err = Inventory::load(&path).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:", path.display())), "{err}");
    let missing = Inventory::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(
        missing.to_string().starts_with("reading inventory "),
        "{missing}"
    );
}

#[test]
fn env_and_prompt_reads_the_environment_and_asks_through_the_callback() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let text = "[[hosts]]\nname = \"a\"\naddress = \"h\"\nuser = \"u\"\npassword_env = \"FERRY_TEST_EAP_PW\"\nsudo_password = \"prompt\"\n";
    let inv = Inventory::from_toml_str(text, "t").unwrap();
    std::env::set_var("FERRY_TEST_EAP_PW", "from-env");
    let calls = AtomicUsize::new(0);
    let secrets = ferry_inventory::EnvAndPrompt::new(|r: &PromptRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::new(format!("typed for {}", r.text())))
    });
    let t = inv.target("a", &secrets).unwrap();
    inv.target("a", &secrets).unwrap();
    assert_eq!(t.auth, Auth::Password(Secret::new("from-env")));
    assert_eq!(
        t.sudo,
        Sudo::Password(Secret::new("typed for sudo password for u@a"))
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "asked once, remembered after"
    );
}
