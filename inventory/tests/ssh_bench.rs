//! Benchmarks against OpenSSH in the same run (ignored by default; `benches/ssh/run.sh` runs
//! them): one upload vs `scp`, one file to N hosts vs N sequential `scp`, facts from 64 sshd.
//! Sizes come from FERRY_BENCH_MIB (default 1024), FERRY_BENCH_MULTI_MIB (256),
//! FERRY_BENCH_HOSTS (16) and FERRY_BENCH_FACTS_HOSTS (64).
#![allow(clippy::unwrap_used)]

#[path = "ssh_common.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ferry_inventory::remote::shell_facts;
use ferry_inventory::ssh::{Pool, Session};
use ferry_inventory::transfer::{upload, LocalFile, TransferEvent, UploadOptions};
use ferry_tests::sshd::{self, ScratchDir, Sshd};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn noise_file(path: &Path, size: usize) {
    ferry_tests::noise::write_file(path, size as u64, 7).unwrap();
}

fn owned_dir(user: &str) -> ScratchDir {
    let d = ScratchDir::new("bench");
    assert!(Command::new("chown")
        .arg(user)
        .arg(d.path())
        .status()
        .unwrap()
        .success());
    d
}

fn scp(src: &Path, s: &Sshd, dest: &Path) -> Duration {
    let start = Instant::now();
    let out = Command::new("scp")
        .args(["-q", "-o", "StrictHostKeyChecking=no", "-o"])
        .arg("UserKnownHostsFile=/dev/null")
        .args(["-o", "BatchMode=yes", "-i"])
        .arg(&sshd::fixture().keys.ed25519)
        .args(["-P", &s.port.to_string()])
        .arg(src)
        .arg(format!("{}@127.0.0.1:{}", sshd::KEY_USER, dest.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn quiet(_: TransferEvent) {}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run benches/ssh/run.sh"]
async fn bench_upload_one_host_vs_scp() {
    if !sshd::available() {
        return;
    }
    let mib = env_num("FERRY_BENCH_MIB", 1024);
    let s = Sshd::start();
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let src = work.path().join("blob");
    noise_file(&src, mib << 20);
    let dest = owned_dir(sshd::KEY_USER);
    let mut best_scp = Duration::MAX;
    let mut best_ferry = Duration::MAX;
    for round in 0..2 {
        let target = dest.path().join(format!("scp-{round}"));
        best_scp = best_scp.min(scp(&src, &s, &target));
        let _ = std::fs::remove_file(&target);

        // Everything ferry does counts: hashing the file, connecting, uploading, the remote
        // digest check and the rename.
        let start = Instant::now();
        let file = LocalFile::open(&src).await.unwrap();
        let sess = Session::connect(&key_target("b", &s, sshd::KEY_USER), &options(work.path()))
            .await
            .unwrap();
        let target = dest.path().join(format!("ferry-{round}"));
        upload(
            &sess,
            &file,
            target.to_str().unwrap(),
            &UploadOptions::default(),
            &quiet,
        )
        .await
        .unwrap();
        best_ferry = best_ferry.min(start.elapsed());
        let _ = std::fs::remove_file(&target);
    }
    let mbps = |d: Duration| mib as f64 / d.as_secs_f64();
    println!(
        "BENCH upload_1_host size_mib={mib} scp_s={:.2} ferry_s={:.2} scp_mib_s={:.0} ferry_mib_s={:.0} ratio_throughput_ferry_over_scp={:.2}",
        best_scp.as_secs_f64(),
        best_ferry.as_secs_f64(),
        mbps(best_scp),
        mbps(best_ferry),
        best_scp.as_secs_f64() / best_ferry.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run benches/ssh/run.sh"]
async fn bench_upload_many_hosts_vs_sequential_scp() {
    if !sshd::available() {
        return;
    }
    let mib = env_num("FERRY_BENCH_MULTI_MIB", 256);
    let hosts = env_num("FERRY_BENCH_HOSTS", 16);
    let servers: Vec<Sshd> = (0..hosts).map(|_| Sshd::start()).collect();
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let src = work.path().join("blob");
    noise_file(&src, mib << 20);
    let dests: Vec<ScratchDir> = (0..hosts).map(|_| owned_dir(sshd::KEY_USER)).collect();

    let start = Instant::now();
    for (s, d) in servers.iter().zip(&dests) {
        scp(&src, s, &d.path().join("scp"));
        let _ = std::fs::remove_file(d.path().join("scp"));
    }
    let scp_total = start.elapsed();

    let start = Instant::now();
    let file = Arc::new(LocalFile::open(&src).await.unwrap());
    let pool = Arc::new(Pool::new(options(work.path())));
    let mut tasks = Vec::new();
    for (i, (s, d)) in servers.iter().zip(&dests).enumerate() {
        let t = key_target(&format!("h{i}"), s, sshd::KEY_USER);
        let dest = d.path().join("ferry").to_str().unwrap().to_string();
        let (pool, file) = (pool.clone(), file.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = pool.permit().await;
            let sess = pool.session(&t).await.unwrap();
            upload(&sess, &*file, &dest, &UploadOptions::default(), &quiet)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ferry = start.elapsed();
    println!(
        "BENCH upload_{hosts}_hosts size_mib={mib} sequential_scp_s={:.2} ferry_parallel_s={:.2} ratio_time_ferry_over_scp={:.2}",
        scp_total.as_secs_f64(),
        ferry.as_secs_f64(),
        ferry.as_secs_f64() / scp_total.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run benches/ssh/run.sh"]
async fn bench_facts_from_many_hosts() {
    if !sshd::available() {
        return;
    }
    let hosts = env_num("FERRY_BENCH_FACTS_HOSTS", 64);
    let setup = Instant::now();
    let servers: Vec<Sshd> = (0..hosts).map(|_| Sshd::start()).collect();
    let setup = setup.elapsed();
    let work = tempfile::tempdir().unwrap();
    let rss_before = peak_rss_kib();
    let start = Instant::now();
    let pool = Arc::new(Pool::new(options(work.path())));
    let mut tasks = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let t = key_target(&format!("h{i}"), s, sshd::KEY_USER);
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = pool.permit().await;
            let sess = pool.session(&t).await.unwrap();
            shell_facts(&sess, false).await.unwrap()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let f = t.await.unwrap();
        assert!(!f.kernel.is_empty());
        ok += 1;
    }
    let took = start.elapsed();
    println!(
        "BENCH facts_{hosts}_hosts ok={ok} seconds={:.2} peak_rss_mib={:.1} rss_before_mib={:.1} sshd_setup_s={:.1}",
        took.as_secs_f64(),
        peak_rss_kib() as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        setup.as_secs_f64()
    );
}
