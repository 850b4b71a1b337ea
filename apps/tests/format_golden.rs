//! app.yaml as a specification: every `good-*.yaml` under tests/data (and the sample MCD
//! platform, examples/mcd/app.yaml) beside the `.json` it reads as, every `bad-*.yaml` beside
//! the one error line it must give, naming file, line, cause and fix. `UPDATE_GOLDEN=1`
//! rewrites both (refused under `CI=true`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_apps::deps;
use ferry_apps::values::Given;
use ferry_apps::{AppSpec, Values};
use ferry_tests::golden::Golden;

fn data(prefix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Parses as ferry does, naming the file by its name only (the same on every machine).
fn parse(path: &Path) -> Result<AppSpec, ferry_apps::AppError> {
    let text = std::fs::read_to_string(path).unwrap();
    AppSpec::parse(&text, &path.file_name().unwrap().to_string_lossy())
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mcd/app.yaml")
}

#[test]
fn good_descriptions_read_as_their_golden_json() {
    let mut files = data("good-");
    files.push(sample());
    let mut golden = Golden::new();
    for path in &files {
        let spec = parse(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json = serde_json::to_string_pretty(&spec).unwrap() + "\n";
        let out = if path == &sample() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample-mcd.json")
        } else {
            path.with_extension("json")
        };
        golden.check(&out, &json);
    }
    golden.finish(3);
}

#[test]
fn bad_descriptions_give_one_line_with_file_line_cause_and_fix() {
    let files = data("bad-");
    let mut golden = Golden::new();
    for path in &files {
        let err = match parse(path) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(e) => e.to_string(),
        };
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        golden.check(&path.with_extension("err"), &(err + "\n"));
    }
    golden.finish(20);
}

#[test]
fn every_mistake_the_reader_can_place_names_its_line() {
    for path in data("bad-") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let err = parse(&path).unwrap_err().to_string();
        // Whole-file checks have no line of their own; everything else has one.
        if ["bad-depends-on-itself.yaml", "bad-no-components.yaml"].contains(&name.as_str()) {
            continue;
        }
        assert!(
            err.starts_with(&format!("{name}:"))
                && err[name.len() + 1..].starts_with(|c: char| c.is_ascii_digit()),
            "no line number: {err}"
        );
    }
}

fn app(name: &str, version: &str, deps: &[(&str, &str)]) -> AppSpec {
    let mut text = format!(
        "name: {name}\nversion: {version}\ndescription: test\ncomponents:\n  - {{name: job, kind: job, image: \"demo/app@sha256:{}\"}}\n",
        "ab".repeat(32)
    );
    if !deps.is_empty() {
        text.push_str("dependencies:\n");
        for (n, r) in deps {
            text.push_str(&format!("  - {{name: {n}, version: \"{r}\"}}\n"));
        }
    }
    AppSpec::parse(&text, "app.yaml").unwrap()
}

#[test]
fn orders_packages_after_their_dependencies() {
    let web = app("web", "1.0.0", &[("api", "^2"), ("base", ">=1")]);
    let api = app("api", "2.1.0", &[("base", ">=1, <2")]);
    let base = app("base", "1.4.0", &[]);
    let order = deps::order(&[&web, &api, &base]).unwrap();
    let names: Vec<&str> = order
        .iter()
        .map(|&i| [&web, &api, &base][i].name.as_str())
        .collect();
    assert_eq!(names, ["base", "api", "web"]);
}

#[test]
fn refuses_a_dependency_cycle_naming_the_circle() {
    let a = app("a", "1.0.0", &[("b", "^1")]);
    let b = app("b", "1.0.0", &[("c", "^1")]);
    let c = app("c", "1.0.0", &[("a", "^1")]);
    let err = deps::order(&[&a, &b, &c]).unwrap_err().to_string();
    assert_eq!(
        err,
        "packages depend on each other in a circle (a -> b -> c -> a): none can be deployed \
         first; remove one of these dependencies"
    );
}

#[test]
fn refuses_a_missing_dependency_and_one_out_of_range() {
    let a = app("a", "1.0.0", &[("b", ">=2")]);
    let err = deps::order(&[&a]).unwrap_err().to_string();
    assert_eq!(
        err,
        "a 1.0.0 needs b >=2, which is not among the packages: add it (to [[app_packages]] in \
         bundle.toml) or remove the dependency"
    );
    let b = app("b", "1.5.0", &[]);
    let err = deps::order(&[&a, &b]).unwrap_err().to_string();
    assert_eq!(
        err,
        "a 1.0.0 needs b >=2, and the package given is b 1.5.0: give a version in range"
    );
}

#[test]
fn site_values_must_fit_their_parameters_types() {
    let spec =
        parse(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/good-dependencies.yaml"))
            .unwrap();
    let given = |pairs: &[(&str, Given)]| -> BTreeMap<String, Given> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let secret = ("db-password", Given::Text("s3cret".into()));
    for (bad, want) in [
        (
            given(&[secret.clone(), ("workers", Given::Text("many".into()))]),
            "app shop: parameter workers is of type integer, and \"many\" is not: write a whole number, e.g. 3",
        ),
        (
            given(&[secret.clone(), ("debug", Given::Json(serde_json::json!("yes")))]),
            "app shop: parameter debug is of type boolean, and \"yes\" is not: write true or false",
        ),
        (
            given(&[("db-password", Given::Json(serde_json::json!(12)))]),
            "app shop: parameter db-password is of type secret, and the value given is not: write the secret's text",
        ),
        (
            given(&[]),
            "app shop: parameter db-password has no default and no value was given: give it for this site (The database password.)",
        ),
        (
            given(&[secret.clone(), ("wokers", Given::Text("2".into()))]),
            "app shop: no parameter is named \"wokers\" (it has: workers, debug, db-password): check the name",
        ),
    ] {
        let err = Values::resolve(&spec, "site.example", &bad).unwrap_err().to_string();
        assert_eq!(err, want);
        assert!(!err.contains("s3cret"));
    }
    let values = Values::resolve(
        &spec,
        "site.example",
        &given(&[secret, ("workers", Given::Json(serde_json::json!(5)))]),
    )
    .unwrap();
    assert_eq!(
        values
            .substitute("${workers} at ${app.namespace}.${site.domain} $${HOME}")
            .unwrap(),
        "5 at shops.site.example ${HOME}"
    );
    assert!(
        !format!("{values:?}").contains("s3cret"),
        "a secret in Debug output"
    );
}

/// The keys the reader lists when it meets `zz-unknown` at a place in a document.
fn keys_the_reader_knows(doc: &str) -> Vec<String> {
    let err = AppSpec::parse(doc, "app.yaml").unwrap_err().to_string();
    let list = err
        .split_once("expected one of ")
        .or_else(|| err.split_once("expected "))
        .unwrap_or_else(|| panic!("not an unknown-key error: {err}"))
        .1;
    let mut keys: Vec<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    keys.sort();
    keys
}

#[test]
fn the_schema_knows_exactly_the_keys_the_reader_knows() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/app-package.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let keys_of = |v: &serde_json::Value| -> Vec<String> {
        assert_eq!(v["additionalProperties"], false, "{v}");
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    let img = format!("demo/app@sha256:{}", "ab".repeat(32));
    let head = "name: a\nversion: 1.0.0\ndescription: d\n";
    let comp = |extra: &str| {
        format!("{head}components:\n  - name: c\n    kind: service\n    image: {img}\n{extra}")
    };
    let defs = &schema["$defs"];
    let cases = [
        (&schema, format!("{head}zz-unknown: 1\ncomponents: []\n")),
        (
            &defs["parameter"],
            format!(
                "{head}parameters:\n  - {{name: p, type: string, description: d, zz-unknown: 1}}\n"
            ),
        ),
        (
            &defs["dependency"],
            format!("{head}dependencies:\n  - {{name: b, version: ^1, zz-unknown: 1}}\n"),
        ),
        (&defs["component"], comp("    zz-unknown: 1\n")),
        (
            &defs["port"],
            comp("    ports: [{port: 1, zz-unknown: 1}]\n"),
        ),
        (
            &defs["config-file"],
            comp("    config-files: [{path: /x, content: y, zz-unknown: 1}]\n"),
        ),
        (
            &defs["volume"],
            comp("    volumes: [{name: v, mount: /m, empty-dir: {}, zz-unknown: 1}]\n"),
        ),
        (
            &defs["volume"]["properties"]["local"],
            comp("    volumes: [{name: v, mount: /m, local: {size: 1Gi, zz-unknown: 1}}]\n"),
        ),
        (
            &defs["volume"]["properties"]["empty-dir"],
            comp("    volumes: [{name: v, mount: /m, empty-dir: {zz-unknown: 1}}]\n"),
        ),
        (&defs["resources"], comp("    resources: {zz-unknown: 1}\n")),
        (&defs["nodes"], comp("    nodes: {zz-unknown: 1}\n")),
        (
            &defs["probe"],
            comp("    readiness: {tcp: {port: 1}, zz-unknown: 1}\n"),
        ),
        (
            &defs["probe"]["properties"]["http"],
            comp("    readiness: {http: {path: /, port: 1, zz-unknown: 1}}\n"),
        ),
        (
            &defs["probe"]["properties"]["tcp"],
            comp("    readiness: {tcp: {port: 1, zz-unknown: 1}}\n"),
        ),
    ];
    for (def, doc) in cases {
        assert_eq!(keys_of(def), keys_the_reader_knows(&doc), "{doc}");
    }
    let web = format!("{head}components:\n  - name: c\n    kind: web\n    image: {img}\n    ports: [{{port: 1}}]\n    ingress: {{zz-unknown: 1}}\n");
    assert_eq!(keys_of(&defs["ingress"]), keys_the_reader_knows(&web));
}
