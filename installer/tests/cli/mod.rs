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

/// A license from the test vendor key (built into test builds only) for a one-file machine
/// root, granting `modules` (TOML lines): the request's activation record is kept in
/// `state/`, as `ferry license request` keeps it on a jump host.
pub fn license(p: &Path, modules: &str) {
    let root = p.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/machine-id"),
        "3d1219c7c4c5404aaa1f6d2a48adfda4\n",
    )
    .unwrap();
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../licensing/testdata");
    std::fs::copy(testdata.join("test-issuer-a.key"), p.join("issuer.key")).unwrap();
    let root = root.to_str().unwrap();
    ok(&ferry(
        &[
            "license",
            "request",
            "--local",
            "--root",
            root,
            "--state-dir",
            "state",
            "-o",
            "req.txt",
            "--force",
        ],
        p,
    ));
    std::fs::write(
        p.join("spec.toml"),
        format!(
            "customer = \"Test Site\"\nexpires = \"2099-12-31\"\nmax_nodes = 10\n\n[modules]\n{modules}"
        ),
    )
    .unwrap();
    ok(&ferry(
        &[
            "license",
            "issue",
            "--request",
            "req.txt",
            "--spec",
            "spec.toml",
            "--key",
            "issuer.key",
            "-o",
            "site.lic",
            "--force",
        ],
        p,
    ));
}

/// The sample MCD platform (examples/mcd) on a test's own images: its files copied into
/// `dir/files`, and its app.yaml, returned, naming `app` and `tool` (`NAME:TAG@sha256:…`)
/// instead of the demo's images (which hold no programs: they need the Rust toolchain).
pub fn sample_mcd(dir: &Path, app: &str, tool: &str) -> String {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mcd");
    let yaml = std::fs::read_to_string(sample.join("app.yaml")).unwrap();
    let pinned = |text: &str, name: &str, with: &str| -> String {
        let start = text.find(&format!("{name}@sha256:")).unwrap();
        let old = &text[start..start + name.len() + 1 + 7 + 64];
        text.replace(old, with)
    };
    std::fs::create_dir_all(dir.join("files")).unwrap();
    for f in ["index.html", "report.sh"] {
        std::fs::copy(sample.join("files").join(f), dir.join("files").join(f)).unwrap();
    }
    pinned(&pinned(&yaml, "demo/app:1.0", app), "demo/tool:1.0", tool)
}

/// `apply A s, healthy after W s` from ferry's `deployed as revision N (apply …)` line, for
/// the benchmarks' BENCH lines.
pub fn deploy_times(out: &str) -> String {
    out.lines()
        .find_map(|l| {
            l.split_once("(apply ")
                .map(|(_, t)| t.trim_end_matches(')'))
        })
        .unwrap_or("?")
        .to_string()
}

/// Calls `answered` every `every` until `stop`, as a client asking a service over and over:
/// (answered, failed, longest run of failures in seconds).
pub fn poll(
    stop: &std::sync::atomic::AtomicBool,
    every: std::time::Duration,
    mut answered: impl FnMut() -> bool,
) -> (u32, u32, f64) {
    use std::sync::atomic::Ordering;
    let (mut good, mut bad, mut worst) = (0u32, 0u32, 0f64);
    let mut down_since: Option<std::time::Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if answered() {
            good += 1;
            if let Some(t) = down_since.take() {
                worst = worst.max(t.elapsed().as_secs_f64());
            }
        } else {
            bad += 1;
            down_since.get_or_insert_with(std::time::Instant::now);
        }
        std::thread::sleep(every);
    }
    if let Some(t) = down_since {
        worst = worst.max(t.elapsed().as_secs_f64());
    }
    (good, bad, worst)
}
