//! The images step on this machine's real CPU (issue 12's goal: at least 0.9 of the throughput
//! of `ctr images import` of the same archive on the node itself). Run by
//! `benches/images-step/run.sh`, which builds the bundle and the reference archive; ignored
//! otherwise.
//!
//! The node is a real sshd on loopback whose sessions talk to a private, fresh containerd
//! (`SetEnv CONTAINERD_ADDRESS`); the step is ferry's own [`Images`] resource, observed, diffed
//! and applied over ferry's SSH session as the engine does (the journal's two lines aside). The
//! reference is `ctr images import` of the OCI archive extracted from the same bundle, from
//! the page cache, into another fresh containerd. Both unpack the image.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_bootos::host::SshHost;
use ferry_bootos::Resource;
use ferry_inventory::ssh::{Pool, Session, SessionOptions};
use ferry_tests::docker::Containerd;
use ferry_tests::sshd::{self, Sshd, SshdOptions};
use tokio::sync::OnceCell;

use super::bundle::ClusterBundle;
use super::images::Images;
use super::registry::ImageSource;
use super::ClusterRuntime;
use crate::config::BundleRef;

/// CPU seconds this process (ferry's side: the bundle read and checked, the SSH encryption)
/// has used, from /proc/self/stat (utime + stime, in USER_HZ = 100 ticks per second).
fn own_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of the line; after the command's ')' they are the 12th and 13th.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `FERRY_BENCH_SPLIT_CPUS=1`: the node (containerd, sshd, ctr) on CPU 0 alone and ferry on
/// CPU 1 (the run script pins the test process), as a site's jump host and node are two
/// machines; the reference import gets CPU 0 alone too.
fn node_wrapper() -> Vec<String> {
    if env("FERRY_BENCH_SPLIT_CPUS").as_deref() == Some("1") {
        ["taskset", "-c", "0"].map(String::from).to_vec()
    } else {
        Vec::new()
    }
}

/// A fresh containerd whose socket any user may open (the sshd's session runs as the test
/// user, without sudo, which would drop `CONTAINERD_ADDRESS`).
fn fresh_containerd() -> Containerd {
    let c = Containerd::start_with(&node_wrapper());
    let ok = std::process::Command::new("chmod")
        .arg("0666")
        .arg(c.socket())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "chmod of {}", c.socket().display());
    c
}

/// The step's wall seconds, and the CPU seconds ferry's own process spent in it.
async fn ferry_step(bundle: &Arc<ClusterBundle>, dir: &std::path::Path) -> (f64, f64) {
    let containerd = fresh_containerd();
    let s = Sshd::start_with(SshdOptions {
        extra: format!(
            "SetEnv CONTAINERD_ADDRESS={}\n",
            containerd.socket().display()
        ),
        host_keys: vec!["ed25519"],
        wrapper: Some(node_wrapper()).filter(|w| !w.is_empty()),
        ..Default::default()
    });
    let target = s.target("node", sshd::KEY_USER);
    let mut opts = SessionOptions::new(dir.join("known_hosts"));
    opts.connect_timeout = Duration::from_secs(10);
    let session = Session::connect(&target, &opts)
        .await
        .unwrap_or_else(|e| panic!("connecting to the bench sshd: {e}"));
    let host = SshHost::new(Arc::new(session));
    let step = Images {
        images: bundle.images.clone(),
        source: ImageSource::Import,
        runtime: Some(Arc::new(ClusterRuntime {
            bundle: bundle.clone(),
            pool: Arc::new(Pool::new(opts)),
            first: target,
            token: OnceCell::new(),
        })),
    };
    let (t, cpu) = (Instant::now(), own_cpu_s());
    let seen = step.observe(&host).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !step.diff(&seen).is_empty(),
        "a fresh containerd lacks the image"
    );
    step.apply(&host, &seen)
        .await
        .unwrap_or_else(|e| panic!("the images step: {e}"));
    let secs = t.elapsed().as_secs_f64();
    let cpu = own_cpu_s() - cpu;
    let now = step.observe(&host).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        step.diff(&now).is_empty(),
        "the image is there by both names"
    );
    (secs, cpu)
}

fn ctr_import(archive: &std::path::Path) -> f64 {
    let containerd = fresh_containerd();
    let t = Instant::now();
    let mut ctr = std::process::Command::new("ctr");
    if let [program, args @ ..] = node_wrapper().as_slice() {
        ctr = std::process::Command::new(program);
        ctr.args(args).arg("ctr");
    }
    let out = ctr
        .arg("--address")
        .arg(containerd.socket())
        .args(["-n", "k8s.io", "images", "import"])
        .arg(archive)
        .output()
        .unwrap_or_else(|e| panic!("ctr: {e}"));
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "ctr import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: benches/images-step/run.sh"]
async fn bench_images_step() {
    let (Some(bundle), Some(pubkey), Some(archive)) = (
        env("FERRY_BENCH_BUNDLE"),
        env("FERRY_BENCH_PUBKEY"),
        env("FERRY_BENCH_ARCHIVE"),
    ) else {
        panic!("run benches/images-step/run.sh (it sets FERRY_BENCH_BUNDLE, _PUBKEY, _ARCHIVE)");
    };
    assert!(
        sshd::available(),
        "the benchmark needs sshd and its test users (run as root)"
    );
    let bundle = Arc::new(
        ClusterBundle::open_ref(
            &BundleRef {
                path: PathBuf::from(bundle),
                pubkey: PathBuf::from(pubkey),
            },
            None,
        )
        .unwrap_or_else(|e| panic!("{e:#}")),
    );
    let archive = PathBuf::from(archive);
    let bytes = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    let repeat: usize = env("REPEAT").and_then(|r| r.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut ferry, mut ctr) = (Vec::new(), Vec::new());
    for r in 1..=repeat {
        // Alternated, so a burst of load from elsewhere falls on both.
        let c = ctr_import(&archive);
        let (f, cpu) = ferry_step(&bundle, dir.path()).await;
        println!(
            "BENCH run {r}: ctr_import_s={c:.2} ferry_images_step_s={f:.2} \
             ferry_process_cpu_s={cpu:.2} (the jump host's share)"
        );
        ctr.push(c);
        ferry.push(f);
    }
    let (f, c) = (median(ferry), median(ctr));
    println!(
        "BENCH images_step bytes={bytes} ctr_import_s={c:.2} ferry_s={f:.2} ratio={:.2} \
         (medians of {repeat})",
        c / f
    );
}
