//! `ferry app pack` / `ferry app inspect` and AppPackages in `ferry bundle build`, through the
//! real binary: the sample MCD platform packed twice gives the same bytes, reads back as the
//! app.yaml it came from, and every bad input ends in one line naming the cause and the fix.
#![allow(clippy::unwrap_used, missing_docs)]

#[allow(dead_code, missing_docs)]
#[path = "../../examples/demo-inputs/src/main.rs"]
mod demo_inputs;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod cli;
use cli::{fails, ferry, license, ok};

/// The demo's inputs (images, the sample MCD package directory) and two key pairs.
fn site() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    demo_inputs::make(d.path()).unwrap();
    ok(&ferry(&["key", "generate", "-o", "vendor"], d.path()));
    ok(&ferry(&["key", "generate", "-o", "other"], d.path()));
    d
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mcd")
}

#[test]
fn packs_the_same_bytes_twice_and_reads_back_what_app_yaml_says() {
    let d = site();
    let p = d.path();
    let out = ok(&ferry(&["app", "pack", "mcd", "--sign-key", "vendor"], p));
    assert!(
        out.contains("packed mcd 2.3.0 (7 components, 3 files)"),
        "{out}"
    );
    // A second pack, from a copy in another place, at another time: the same file.
    let copy = p.join("elsewhere/mcd");
    fs::create_dir_all(copy.join("files")).unwrap();
    for f in ["app.yaml", "files/index.html", "files/report.sh"] {
        fs::copy(sample().join(f), copy.join(f)).unwrap();
    }
    let o = ferry(
        &[
            "app",
            "pack",
            "elsewhere/mcd",
            "-o",
            "again.fap",
            "--sign-key",
            "vendor",
        ],
        p,
    );
    ok(&o);
    assert_eq!(
        fs::read(p.join("mcd-2.3.0.fap")).unwrap(),
        fs::read(p.join("again.fap")).unwrap(),
        "packing is not deterministic"
    );

    // Round trip: what inspect reads out of the package is what app.yaml says.
    let json = ok(&ferry(
        &[
            "app",
            "inspect",
            "mcd-2.3.0.fap",
            "--pubkey",
            "vendor.pub",
            "--json",
        ],
        p,
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let text = fs::read_to_string(sample().join("app.yaml")).unwrap();
    let spec = ferry_apps::AppSpec::parse(&text, "app.yaml").unwrap();
    assert_eq!(v["app"], serde_json::to_value(&spec).unwrap());
    assert_eq!(v["signature"]["state"], "verified");
    let files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["app.yaml", "files/index.html", "files/report.sh"]);
    // And plain tar lists it.
    let listed = Command::new("tar")
        .args(["-tf", "mcd-2.3.0.fap"])
        .current_dir(p)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "package.json\npackage.sig\napp.yaml\nfiles/index.html\nfiles/report.sh\n"
    );

    let human = ok(&ferry(&["app", "inspect", "mcd-2.3.0.fap"], p));
    assert!(human.contains("(not checked: pass --pubkey)"), "{human}");
    assert!(human.contains("inference        service   1"), "{human}");
    // An existing package is kept unless --force.
    let err = fails(&ferry(&["app", "pack", "mcd", "--sign-key", "vendor"], p));
    assert_eq!(
        err,
        "error: mcd-2.3.0.fap: already exists; will not overwrite an app package without \
         --force (or choose another -o)"
    );
    ok(&ferry(
        &["app", "pack", "mcd", "--sign-key", "vendor", "--force"],
        p,
    ));
}

#[test]
fn refuses_a_package_signed_by_another_key_and_one_changed_after_packing() {
    let d = site();
    let p = d.path();
    ok(&ferry(&["app", "pack", "mcd", "--sign-key", "vendor"], p));
    let err = fails(&ferry(
        &["app", "inspect", "mcd-2.3.0.fap", "--pubkey", "other.pub"],
        p,
    ));
    assert!(
        err.starts_with(
            "error: inspecting app package: mcd-2.3.0.fap: app package is signed by key "
        ) && err.contains(", not by the given public key "),
        "{err}"
    );

    // One byte of app.yaml changed (inside the tar, its header left alone).
    let mut bytes = fs::read(p.join("mcd-2.3.0.fap")).unwrap();
    let at = bytes.windows(9).position(|w| w == b"name: mcd").unwrap();
    bytes[at + 6] = b'M';
    fs::write(p.join("changed.fap"), &bytes).unwrap();
    let err = fails(&ferry(&["app", "inspect", "changed.fap"], p));
    assert_eq!(
        err,
        "error: inspecting app package: changed.fap: app.yaml does not match its digest in \
         package.json (changed after packing)"
    );
    // A file that is not a package at all.
    let err = fails(&ferry(&["app", "inspect", "vendor.pub"], p));
    assert!(err.contains("vendor.pub: "), "{err}");
    assert!(err.contains("not an app package"), "{err}");
}

/// A package directory `dir` with app.yaml `body` after a header naming `name`.
fn app_dir(root: &Path, name: &str, body: &str) {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("app.yaml"),
        format!("name: {name}\nversion: 1.0.0\ndescription: A test app.\n{body}"),
    )
    .unwrap();
}

const TOOL: &str =
    "demo/tool:1.0@sha256:21da991fe7d2921bc4cd855ba873926bb4ef2cc684a3f10255b50a201592e1d4";

#[test]
fn pack_refuses_a_bad_app_yaml_with_its_line() {
    let d = site();
    let p = d.path();
    for (name, body, want) in [
        (
            "unknown-key",
            format!("components:\n  - name: job\n    kind: job\n    image: {TOOL}\n    restart: always\n"),
            "error: packing unknown-key: unknown-key/app.yaml:8: components[0]: unknown field `restart`, expected one of",
        ),
        (
            "by-tag",
            "components:\n  - {name: job, kind: job, image: \"demo/tool:1.0\"}\n".to_string(),
            "error: packing by-tag: by-tag/app.yaml:5: components[0].image: image \"demo/tool:1.0\" is not pinned by digest: write NAME[:TAG]@sha256:<64 hex digits>",
        ),
        (
            "wrong-type",
            format!("parameters:\n  - {{name: workers, type: integer, default: many, description: Workers.}}\ncomponents:\n  - {{name: job, kind: job, image: \"{TOOL}\"}}\n"),
            "error: packing wrong-type: wrong-type/app.yaml:5: parameter workers: default \"many\" is not of type integer: write a whole number, e.g. 3",
        ),
        (
            "missing-file",
            format!("components:\n  - name: job\n    kind: job\n    image: {TOOL}\n    config-files: [{{path: /etc/x.conf, file: files/x.conf}}]\n"),
            "error: packing missing-file: missing-file/app.yaml: config file files/x.conf cannot be read (No such file or directory (os error 2)): add it to the package directory or fix the path",
        ),
    ] {
        app_dir(p, name, &body);
        let err = fails(&ferry(&["app", "pack", name, "--sign-key", "vendor"], p));
        assert!(err.starts_with(want), "{name}:\n  got:  {err}\n  want: {want}");
        assert!(!p.join(format!("{name}-1.0.0.fap")).exists());
    }
}

fn bundle_toml(p: &Path, packages: &[&str]) {
    let mut text = "[bundle]\nname = \"t\"\nversion = \"1\"\n\n[[images]]\nref = \"demo/tool:1.0\"\narchive = \"images.tar\"\n".to_string();
    for pkg in packages {
        text.push_str(&format!("\n[[app_packages]]\npath = \"{pkg}\"\n"));
    }
    fs::write(p.join("bundle.toml"), text).unwrap();
}

#[test]
fn bundle_build_refuses_a_package_whose_image_is_not_in_the_bundle() {
    let d = site();
    let p = d.path();
    // The sample runs demo/app as well, which this bundle.toml leaves out.
    ok(&ferry(&["app", "pack", "mcd", "--sign-key", "vendor"], p));
    bundle_toml(p, &["mcd-2.3.0.fap"]);
    let err = fails(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "t.bundle",
            "--sign-key",
            "vendor",
        ],
        p,
    ));
    assert!(
        err.ends_with(
            "bundle.toml: app package mcd 2.3.0 runs image demo/app:1.0@sha256:11022419488261912347131b84066f02c7b093d8a56cfd6b2b577362daf681dd, \
             which is not in the bundle: add it to [[images]] (or pack the package with the digest the bundle has)"
        ),
        "{err}"
    );
    assert!(!p.join("t.bundle").exists());

    // A digest that is not the one the bundle has: named beside the one it has.
    let other = TOOL.replace("21da", "0000");
    app_dir(
        p,
        "old",
        &format!("components:\n  - {{name: job, kind: job, image: \"{other}\"}}\n"),
    );
    ok(&ferry(&["app", "pack", "old", "--sign-key", "vendor"], p));
    bundle_toml(p, &["old-1.0.0.fap"]);
    let err = fails(&ferry(
        &["bundle", "build", "bundle.toml", "-o", "t.bundle"],
        p,
    ));
    assert!(
        err.contains(&format!("runs image {other}, which is not in the bundle (docker.io/demo/tool:1.0 is sha256:21da")),
        "{err}"
    );

    // With its images there, the package goes in, named and versioned by itself.
    app_dir(
        p,
        "tool",
        &format!("components:\n  - {{name: job, kind: job, image: \"{TOOL}\"}}\n"),
    );
    ok(&ferry(&["app", "pack", "tool", "--sign-key", "vendor"], p));
    bundle_toml(p, &["tool-1.0.0.fap"]);
    ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "t.bundle",
            "--sign-key",
            "vendor",
        ],
        p,
    ));
    let inspect = ok(&ferry(&["bundle", "inspect", "t.bundle", "--json"], p));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let item = v["manifest"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "tool")
        .unwrap();
    assert_eq!(item["kind"], "app-package");
    assert_eq!(item["version"], "1.0.0");
}

#[test]
fn bundle_build_refuses_packages_that_depend_on_each_other() {
    let d = site();
    let p = d.path();
    for (name, dep) in [("a", "b"), ("b", "a")] {
        app_dir(
            p,
            name,
            &format!(
                "dependencies:\n  - {{name: {dep}, version: \"^1\"}}\ncomponents:\n  - {{name: job, kind: job, image: \"{TOOL}\"}}\n"
            ),
        );
        ok(&ferry(&["app", "pack", name, "--sign-key", "vendor"], p));
    }
    bundle_toml(p, &["a-1.0.0.fap", "b-1.0.0.fap"]);
    let err = fails(&ferry(
        &["bundle", "build", "bundle.toml", "-o", "t.bundle"],
        p,
    ));
    assert!(
        err.ends_with(
            "bundle.toml: packages depend on each other in a circle (a -> b -> a): none can be \
             deployed first; remove one of these dependencies"
        ),
        "{err}"
    );
    bundle_toml(p, &["a-1.0.0.fap"]);
    let err = fails(&ferry(
        &["bundle", "build", "bundle.toml", "-o", "t.bundle"],
        p,
    ));
    assert!(
        err.ends_with("bundle.toml: a 1.0.0 needs b ^1, which is not among the packages: add it (to [[app_packages]] in bundle.toml) or remove the dependency"),
        "{err}"
    );
}

#[test]
fn render_shows_the_objects_with_site_values_and_never_a_secret() {
    let d = site();
    let p = d.path();
    ok(&ferry(&["app", "pack", "mcd", "--sign-key", "vendor"], p));
    fs::write(p.join("token"), "t0ken-from-a-file\n").unwrap();
    let base = ["app", "render", "mcd-2.3.0.fap", "--pubkey", "vendor.pub"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ferry(&a, p)
    };
    let out = ok(&run(with(&[
        "--domain",
        "site.example",
        "--set",
        "web-replicas=4",
        "--set-file",
        "api-token=token",
        "--json",
    ])));
    let objects: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let web = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "web")
        .unwrap();
    assert_eq!(web["spec"]["replicas"], 4);
    let ingress = objects.iter().find(|o| o["kind"] == "Ingress").unwrap();
    assert_eq!(ingress["spec"]["rules"][0]["host"], "console.site.example");
    assert!(!out.contains("t0ken"), "a secret was printed");
    assert!(out.contains("(secret: not shown)"));

    let err = fails(&run(with(&["--set", "api-token=t0ken"])));
    assert_eq!(
        err,
        "error: parameter api-token is a secret: give it with --set-file api-token=PATH (a \
         command line is visible to other users)"
    );
    let err = fails(&run(with(&[
        "--set-file",
        "api-token=token",
        "--set",
        "web-replicas=many",
    ])));
    assert_eq!(
        err,
        "error: app mcd: parameter web-replicas is of type integer, and \"many\" is not: write \
         a whole number, e.g. 3"
    );
    let err = fails(&run(with(&[])));
    assert!(
        err.starts_with(
            "error: app mcd: parameter api-token has no default and no value was given"
        ),
        "{err}"
    );
}

/// An answer file whose cluster is never reached: deploy must refuse before connecting.
fn site_answers(p: &Path, apps: &str) {
    fs::write(p.join("k"), "a private key\n").unwrap();
    fs::write(
        p.join("inventory.toml"),
        "[[hosts]]\nname = \"a\"\naddress = \"192.0.2.1\"\nuser = \"root\"\nkey = \"k\"\nroles = [\"server\"]\n",
    )
    .unwrap();
    fs::write(
        p.join("site.toml"),
        format!("inventory = \"inventory.toml\"\n\n[cluster]\nname = \"site-a\"\n\n{apps}"),
    )
    .unwrap();
}

#[test]
fn deploy_refuses_before_reaching_the_cluster_what_it_must_not_deploy() {
    let d = site();
    let p = d.path();
    ok(&ferry(&["app", "pack", "mcd", "--sign-key", "vendor"], p));
    site_answers(p, "[apps.values.mcd]\napi-token = \"t0k3n\"\n");
    let deploy = |extra: &[&str]| {
        let mut args = vec!["app", "deploy", "--answers", "site.toml", "--timeout", "1"];
        args.extend_from_slice(extra);
        ferry(&args, p)
    };
    // Signed by another key than the vendor's.
    let err = fails(&deploy(&["--pubkey", "other.pub", "mcd-2.3.0.fap"]));
    assert!(
        err.starts_with("error: checking app package mcd-2.3.0.fap: ")
            && err.contains("not by the given public key"),
        "{err}"
    );
    // No vendor key at all.
    let err = fails(&deploy(&["mcd-2.3.0.fap"]));
    assert_eq!(
        err,
        "error: no vendor key to check the packages with: pass --pubkey or set bundle-pubkey in \
         the answer file"
    );
    // A parameter of the wrong type.
    site_answers(
        p,
        "[apps.values.mcd]\napi-token = \"t0k3n\"\nweb-replicas = \"three\"\n",
    );
    let err = fails(&deploy(&["--pubkey", "vendor.pub", "mcd-2.3.0.fap"]));
    assert!(err.starts_with("error: [apps.values.mcd]: "), "{err}");
    assert!(err.contains("web-replicas"), "{err}");
    // A secret read from the environment variable the answer file names: unset, a table that
    // is not { env = ... }, then set (the values are accepted and deploy goes on to the hosts).
    site_answers(
        p,
        "[apps.values.mcd]\napi-token = { env = \"FERRY_TEST_NO_SUCH_TOKEN\" }\n",
    );
    let err = fails(&deploy(&["--pubkey", "vendor.pub", "mcd-2.3.0.fap"]));
    assert_eq!(
        err,
        "error: [apps.values.mcd] api-token: the environment variable FERRY_TEST_NO_SUCH_TOKEN is \
         not set: export it (e.g. read -rs FERRY_TEST_NO_SUCH_TOKEN; export \
         FERRY_TEST_NO_SUCH_TOKEN) before running ferry"
    );
    site_answers(
        p,
        "[apps.values.mcd]\napi-token = { file = \"token.txt\" }\n",
    );
    let err = fails(&deploy(&["--pubkey", "vendor.pub", "mcd-2.3.0.fap"]));
    assert!(
        err.starts_with("error: [apps.values.mcd] api-token: a table here must be { env = "),
        "{err}"
    );
    site_answers(
        p,
        "[apps.values.mcd]\napi-token = { env = \"FERRY_TEST_SITE_TOKEN\" }\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["app", "deploy", "--answers", "site.toml", "--timeout", "1"])
        .args(["--pubkey", "vendor.pub", "mcd-2.3.0.fap"])
        .current_dir(p)
        .env("FERRY_TEST_SITE_TOKEN", "s3cr3t-t0k3n")
        .output()
        .unwrap();
    let err = fails(&out);
    assert!(
        !err.contains("[apps.values"),
        "the variable was read: {err}"
    );
    assert!(
        !err.contains("s3cr3t-t0k3n"),
        "the secret is never printed: {err}"
    );
    // Packages that depend on each other, and one whose dependency is missing.
    for (name, dep) in [("a", "b"), ("b", "a")] {
        app_dir(
            p,
            name,
            &format!(
                "dependencies:\n  - {{name: {dep}, version: \"^1\"}}\ncomponents:\n  - {{name: job, kind: job, image: \"{TOOL}\"}}\n"
            ),
        );
        ok(&ferry(&["app", "pack", name, "--sign-key", "vendor"], p));
    }
    let err = fails(&deploy(&[
        "--pubkey",
        "vendor.pub",
        "a-1.0.0.fap",
        "b-1.0.0.fap",
    ]));
    assert!(err.contains("depend on each other in a circle"), "{err}");
    let err = fails(&deploy(&["--pubkey", "vendor.pub", "a-1.0.0.fap"]));
    assert!(
        err.contains("a 1.0.0 needs b ^1, which is not among the packages"),
        "{err}"
    );
}

#[test]
fn a_package_needing_a_license_feature_goes_only_with_a_license_that_grants_it() {
    let d = site();
    let p = d.path();
    ok(&ferry(&["app", "pack", "mcd", "--sign-key", "vendor"], p));
    // The example bundle: the sample platform in it, with the demo's images.
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bundle.toml"),
        p.join("bundle.toml"),
    )
    .unwrap();
    ok(&ferry(
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "site.ferry",
            "--sign-key",
            "vendor",
        ],
        p,
    ));
    let answers = |extra: &str| {
        site_answers(
            p,
            &format!("[apps.values.mcd]\napi-token = \"t0k3n\"\n\n{extra}"),
        );
        let text = fs::read_to_string(p.join("site.toml")).unwrap().replace(
            "[cluster]\nname = \"site-a\"\n",
            "bundle = \"site.ferry\"\nbundle-pubkey = \"vendor.pub\"\n\n[cluster]\nname = \"site-a\"\ndistribution = \"k3s\"\n",
        );
        fs::write(p.join("site.toml"), text).unwrap();
    };
    let validate = || ferry(&["validate", "--answers", "site.toml"], p);
    let deploy = || {
        ferry(
            &[
                "app",
                "deploy",
                "--answers",
                "site.toml",
                "--timeout",
                "1",
                "--all",
            ],
            p,
        )
    };

    // No license named: refused offline by validate (apply and plan say the same first) and
    // by app deploy, naming the package, the feature and what to add.
    answers("");
    let want = "mcd needs license feature `mcd-platform` and the answer file names no license: \
                add [license] file = \"<site>.lic\"";
    let err = fails(&validate());
    assert!(
        err.starts_with(&format!("error: site.toml: {want}")),
        "{err}"
    );
    assert!(fails(&deploy()).contains(want));

    // A name [apps] deploy gives that the bundle lacks; and deploy = [] deploys nothing,
    // so nothing needs the license.
    answers("[apps]\ndeploy = [\"mcd-web\"]\n");
    let err = fails(&validate());
    assert!(
        err.ends_with(
            "apps.deploy: `mcd-web` is not a package of the bundle (it carries: mcd); fix the \
             name or rebuild the bundle with it"
        ),
        "{err}"
    );
    answers("[apps]\ndeploy = []\n");
    ok(&validate());

    // A license that grants other modules only: named, with what it grants.
    license(p, "analytics = true\nmcd-platform = false\n");
    answers("[license]\nfile = \"site.lic\"\nstate-dir = \"state\"\n");
    let err = fails(&validate());
    assert!(
        err.contains("mcd needs license feature `mcd-platform`, which license lic-")
            && err.contains("does not grant (it grants: analytics): ask the vendor"),
        "{err}"
    );
    assert!(fails(&deploy()).contains("does not grant (it grants: analytics)"));

    // The activation record is not where the answer file says: the state dir is named.
    answers("[license]\nfile = \"site.lic\"\nstate-dir = \"elsewhere\"\n");
    let err = fails(&validate());
    assert!(
        err.contains("whose activation record is not in elsewhere"),
        "{err}"
    );
    // A license file that is not there.
    answers("[license]\nfile = \"gone.lic\"\n");
    let err = fails(&validate());
    assert!(
        err.ends_with("license.file: gone.lic is not there; copy the vendor's license file there or fix the path"),
        "{err}"
    );

    // A license granting the feature: validate passes and shows it; deploy gets past the
    // gate to the cluster (unreachable here).
    license(p, "mcd-platform = true\n");
    answers("[license]\nfile = \"site.lic\"\nstate-dir = \"state\"\n");
    let out = ok(&validate());
    assert!(out.contains("\"license\""), "{out}");
    let err = String::from_utf8_lossy(&deploy().stderr).into_owned();
    assert!(!err.contains("license feature"), "{err}");
}
