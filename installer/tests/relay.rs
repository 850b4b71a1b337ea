//! The host-to-host relay on real parts (the k3s files, the baseline's OS repository and GPU
//! driver alike): every host a real sshd in a network namespace of its own on one switch, the
//! real `ferry agent` pushed to each, this process as the jump host on a link of its own shaped
//! with `tc` (the hosts' links unshaped). The benchmark at the end runs
//! from benches/relay/run.sh.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_bootos::baseline::{LocalDriver, LocalRepo};
use ferry_bootos::host::{Host, SshHost};
use ferry_bootos::resources::gpu::GpuDriver;
use ferry_bootos::resources::packages::OsRepo;
use ferry_bootos::tree::PackedTree;
use ferry_bootos::DynResource;
use ferry_inventory::agent::protocol::{BlobSpec, Op};
use ferry_inventory::agent::Client;
use ferry_inventory::relay::{relay, RelayError, RelayEvent, RelayHost, RelayOptions};
use ferry_inventory::remote::AgentBinary;
use ferry_inventory::ssh::{Pool, SessionOptions};
use ferry_inventory::transfer::{LocalFile, UploadSource};
use ferry_inventory::{Auth, Sudo, Target};
use ferry_tests::site::Site;
use ferry_tests::sshd::{self, ScratchDir};

fn store_of(site: &Site, i: usize) -> PathBuf {
    site.hosts[i].home().join("store")
}

fn relay_hosts(site: &Site) -> Vec<RelayHost> {
    site.hosts
        .iter()
        .map(|h| RelayHost {
            target: sshd::key_target(&h.name, &h.address, 22, sshd::KEY_USER),
            site_address: h.address.clone(),
            store: format!("{}/store", h.home_on_host()),
            as_root: false,
        })
        .collect()
}

fn pool(dir: &Path) -> Arc<Pool> {
    let mut o = SessionOptions::new(dir.join("known_hosts"));
    o.connect_timeout = Duration::from_secs(5);
    o.backoff = Duration::from_millis(100);
    Arc::new(Pool::new(o))
}

async fn agent() -> AgentBinary {
    AgentBinary::at(env!("CARGO_BIN_EXE_ferry")).await.unwrap()
}

async fn blob(dir: &Path, mib: u64, seed: u64) -> Arc<LocalFile> {
    let path = dir.join(format!("blob-{mib}-{seed}"));
    ferry_tests::noise::write_file(&path, mib << 20, seed).unwrap();
    Arc::new(LocalFile::open(&path).await.unwrap())
}

fn sha256_of(path: &Path) -> Option<String> {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    })
}

type Events = Arc<Mutex<Vec<RelayEvent>>>;

fn recorder() -> (Events, Arc<dyn Fn(RelayEvent) + Send + Sync>) {
    let events: Events = Arc::default();
    let e = events.clone();
    (events, Arc::new(move |ev| e.lock().unwrap().push(ev)))
}

fn available() -> bool {
    sshd::netns_available()
}

#[tokio::test(flavor = "multi_thread")]
async fn relays_a_blob_to_every_host_sending_it_once_over_the_shaped_jump_link() {
    if !available() {
        return;
    }
    let site = Site::start(6);
    site.shape_jump_link("100mbit");
    let dir = ScratchDir::new("relay-once");
    let file = blob(dir.path(), 24, 1).await;
    let tx_at_start = Arc::new(Mutex::new(None));
    let (events, record) = recorder();
    let (tx0, jump) = (tx_at_start.clone(), site.jump_link_tx_bytes_fn());
    let progress: Arc<dyn Fn(RelayEvent) + Send + Sync> = Arc::new(move |ev| {
        if matches!(ev, RelayEvent::Fetching { .. }) {
            tx0.lock().unwrap().get_or_insert_with(&jump);
        }
        record(ev);
    });
    let opts = RelayOptions {
        fan_out: 2,
        ..RelayOptions::default()
    };
    let blobs: Vec<Arc<dyn UploadSource>> = vec![file.clone()];
    let started = Instant::now();
    let tx_before = site.jump_link_tx_bytes();
    let results = relay(
        pool(dir.path()),
        &agent().await,
        &relay_hosts(&site),
        &blobs,
        &opts,
        progress,
    )
    .await
    .unwrap();
    let sent = site.jump_link_tx_bytes() - tx_at_start.lock().unwrap().unwrap();
    let sent_in_all = site.jump_link_tx_bytes() - tx_before;
    let agent_size = std::fs::metadata(env!("CARGO_BIN_EXE_ferry"))
        .unwrap()
        .len();
    // The agent's binary went over the link once too: the other hosts copied it from a peer.
    assert!(
        sent_in_all < (file.size + agent_size) * 13 / 10,
        "{sent_in_all} bytes over the jump link for a {} byte blob and a {agent_size} byte agent",
        file.size
    );
    eprintln!(
        "relay of 24 MiB to 6 hosts: {:?}, {sent} bytes over the jump link",
        started.elapsed()
    );
    for (name, r) in &results {
        assert!(r.is_ok(), "{name}: {r:?}");
    }
    for i in 0..site.hosts.len() {
        let got = sha256_of(&store_of(&site, i).join(&file.sha256));
        assert_eq!(got.as_deref(), Some(file.sha256.as_str()), "host h{i}");
    }
    // Once over the link (plus SSH's and TCP's own bytes), not once per host.
    assert!(
        sent < file.size * 13 / 10,
        "{sent} bytes over the jump link for a {} byte blob",
        file.size
    );
    {
        let ev = events.lock().unwrap();
        let from_jump = ev
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    RelayEvent::Done {
                        from_jump: true,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(from_jump, 1, "{ev:#?}");
    }
    // A second run finds every host holding it: nothing moves.
    let (events, record) = recorder();
    let again = relay(
        pool(dir.path()),
        &agent().await,
        &relay_hosts(&site),
        &blobs,
        &opts,
        record,
    )
    .await
    .unwrap();
    assert!(again.iter().all(|(_, r)| r.is_ok()), "{again:?}");
    let fetched = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, RelayEvent::Fetching { .. }))
        .count();
    assert_eq!(fetched, 0);
}

/// The baseline's OS package repository (a tree, relayed packed as one blob) and GPU driver
/// as their steps declare them (`Resource::uploads`), relayed to every host, then placed by
/// each host's own step code from its store: the link carries each once, the placing nothing.
#[tokio::test(flavor = "multi_thread")]
async fn relays_the_os_repository_and_gpu_driver_once_and_each_host_places_its_relayed_copy() {
    if !available() {
        return;
    }
    let site = Site::start(4);
    site.shape_jump_link("100mbit");
    let dir = ScratchDir::new("relay-baseline");
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(repo_dir.join("pool/main")).unwrap();
    std::fs::write(repo_dir.join("Packages"), "Package: a\nVersion: 1\n").unwrap();
    for (i, name) in ["a_1_amd64.deb", "b_1_amd64.deb", "c_1_amd64.deb"]
        .iter()
        .enumerate()
    {
        let path = repo_dir.join("pool/main").join(name);
        ferry_tests::noise::write_file(&path, 4 << 20, 20 + i as u64).unwrap();
    }
    let packed = PackedTree::measure(&repo_dir).unwrap();
    let repo = LocalRepo {
        dir: repo_dir.clone(),
        digest: "sha256:0f".into(),
        distro: "debian-12".into(),
        format: "deb".into(),
        packed: Some(BlobSpec {
            sha256: packed.sha256.clone(),
            size: packed.size,
        }),
    };
    let driver = blob(dir.path(), 8, 21).await;
    let steps: Vec<Box<dyn DynResource>> = vec![
        Box::new(OsRepo { repo: repo.clone() }),
        Box::new(GpuDriver {
            driver: LocalDriver {
                file: driver.path.clone(),
                sha256: driver.sha256.clone(),
                version: "550.54.14".into(),
                kernels: Vec::new(),
            },
        }),
    ];
    let blobs: Vec<Arc<dyn UploadSource>> = steps
        .iter()
        .flat_map(|s| s.uploads())
        .map(|u| u.source)
        .collect();
    assert_eq!(blobs.len(), 2);
    let total: u64 = blobs.iter().map(|b| b.size()).sum();

    let tx_at_start = Arc::new(Mutex::new(None));
    let (tx0, jump) = (tx_at_start.clone(), site.jump_link_tx_bytes_fn());
    let progress: Arc<dyn Fn(RelayEvent) + Send + Sync> = Arc::new(move |ev| {
        if matches!(ev, RelayEvent::Fetching { .. }) {
            tx0.lock().unwrap().get_or_insert_with(&jump);
        }
    });
    let opts = RelayOptions {
        fan_out: 2,
        ..RelayOptions::default()
    };
    let pool = pool(dir.path());
    let hosts = relay_hosts(&site);
    let results = relay(
        pool.clone(),
        &agent().await,
        &hosts,
        &blobs,
        &opts,
        progress,
    )
    .await
    .unwrap();
    for (name, r) in &results {
        assert!(r.is_ok(), "{name}: {r:?}");
    }
    let sent = site.jump_link_tx_bytes() - tx_at_start.lock().unwrap().unwrap();
    assert!(
        sent < total * 13 / 10,
        "{sent} bytes over the jump link for {total} bytes of repository and driver"
    );
    for i in 0..site.hosts.len() {
        for b in &blobs {
            let got = sha256_of(&store_of(&site, i).join(b.sha256()));
            assert_eq!(got.as_deref(), Some(b.sha256()), "host h{i}");
        }
    }

    // Each host's step finds its copy: the repository unpacked from it, the driver copied.
    let before = site.jump_link_tx_bytes();
    for (i, h) in hosts.iter().enumerate() {
        let session = pool.session(&h.target).await.unwrap();
        let host = SshHost::new(session).with_store(&h.store);
        let home = site.hosts[i].home_on_host();
        let dest = format!("{home}/repo.partial");
        assert!(
            host.unpack_staged(&packed.sha256, &dest).await.unwrap(),
            "h{i} did not find the relayed repository"
        );
        host.upload(&driver.path, &format!("{home}/driver/NVIDIA.run"), 0o755)
            .await
            .unwrap();
        let here = site.hosts[i].home();
        for name in ["a_1_amd64.deb", "b_1_amd64.deb", "c_1_amd64.deb"] {
            let want = sha256_of(&repo_dir.join("pool/main").join(name));
            let got = sha256_of(&here.join("repo.partial/pool/main").join(name));
            assert_eq!(got, want, "h{i}: {name}");
        }
        let got = sha256_of(&here.join("driver/NVIDIA.run"));
        assert_eq!(got.as_deref(), Some(driver.sha256.as_str()), "h{i}");
    }
    let placing = site.jump_link_tx_bytes() - before;
    assert!(
        placing < 1 << 20,
        "{placing} bytes over the jump link while the hosts placed relayed copies"
    );
    // A copy that is not what it claims is not unpacked (and is removed).
    let bad = store_of(&site, 0).join(&packed.sha256);
    std::fs::write(&bad, b"not the repository").unwrap();
    let session = pool.session(&hosts[0].target).await.unwrap();
    let host = SshHost::new(session).with_store(&hosts[0].store);
    let dest = format!("{}/repo2", site.hosts[0].home_on_host());
    assert!(!host.unpack_staged(&packed.sha256, &dest).await.unwrap());
    assert!(!bad.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_killed_mid_relay_leaves_every_other_host_with_the_verified_blob() {
    if !available() {
        return;
    }
    let site = Arc::new(Site::start(6));
    site.shape_jump_link("100mbit");
    let dir = ScratchDir::new("relay-kill");
    let file = blob(dir.path(), 48, 2).await;
    // fan-out 2: h0 <- jump; h1, h2 <- h0; h3, h4 <- h1; h5 <- h2. h1 dies with children.
    let victim = 1;
    let partial = store_of(&site, victim).join(format!("{}.ferry-partial", file.sha256));
    let killer = {
        let site = site.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(120) {
                let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
                if have >= 12 << 20 {
                    return (site.hosts[victim].kill_processes_with_arg("agent"), have);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (0, 0)
        })
    };
    let (events, record) = recorder();
    let opts = RelayOptions {
        fan_out: 2,
        ..RelayOptions::default()
    };
    let blobs: Vec<Arc<dyn UploadSource>> = vec![file.clone()];
    let results = relay(
        pool(dir.path()),
        &agent().await,
        &relay_hosts(&site),
        &blobs,
        &opts,
        record,
    )
    .await
    .unwrap();
    let (killed, at) = killer.join().unwrap();
    assert!(
        killed >= 1,
        "the victim's agent was never seen mid-transfer"
    );
    eprintln!("killed h{victim}'s agent at {at} of {} bytes", file.size);
    for (i, (name, r)) in results.iter().enumerate() {
        if i == victim {
            assert!(r.is_err(), "{name} lost its agent but reports success");
            continue;
        }
        assert!(r.is_ok(), "{name}: {r:?}");
        let got = sha256_of(&store_of(&site, i).join(&file.sha256));
        assert_eq!(got.as_deref(), Some(file.sha256.as_str()), "{name}");
        let left = store_of(&site, i).join(format!("{}.ferry-partial", file.sha256));
        assert!(!left.exists(), "{name} kept a partial file");
    }
    // Its children changed source and resumed instead of starting over.
    let ev = events.lock().unwrap();
    let victim_addr = &site.hosts[victim].address;
    let switched: Vec<&RelayEvent> = ev
        .iter()
        .filter(|e| match e {
            RelayEvent::SourceFailed { from: Some(f), .. } => {
                f.starts_with(&format!("{victim_addr}:"))
            }
            _ => false,
        })
        .collect();
    assert!(
        !switched.is_empty(),
        "no receiver of h{victim} changed source: {ev:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_serving_a_tampered_blob_is_refused_and_the_blob_fetched_elsewhere() {
    if !available() {
        return;
    }
    let site = Arc::new(Site::start(4));
    let dir = ScratchDir::new("relay-tamper");
    let file = blob(dir.path(), 8, 3).await;
    // h1 holds the blob whole when the run starts (so it is a source from the first moment);
    // once its agent has checked it, its copy is changed behind its back.
    let bad = 1;
    let store = store_of(&site, bad);
    std::fs::create_dir_all(&store).unwrap();
    let copy = store.join(&file.sha256);
    std::fs::copy(&file.path, &copy).unwrap();
    let chown = format!("{0}:{0}", sshd::KEY_USER);
    let st = std::process::Command::new("chown")
        .args(["-R", &chown])
        .arg(&store)
        .status()
        .unwrap();
    assert!(st.success());
    let (events, record) = recorder();
    let bad_name = site.hosts[bad].name.clone();
    let progress: Arc<dyn Fn(RelayEvent) + Send + Sync> = Arc::new(move |ev| {
        if let RelayEvent::Serving { host, .. } = &ev {
            if *host == bad_name {
                let mut f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
                f.seek(SeekFrom::Start(3 << 20)).unwrap();
                f.write_all(b"tampered").unwrap();
            }
        }
        record(ev);
    });
    let opts = RelayOptions {
        fan_out: 2,
        ..RelayOptions::default()
    };
    let blobs: Vec<Arc<dyn UploadSource>> = vec![file.clone()];
    let results = relay(
        pool(dir.path()),
        &agent().await,
        &relay_hosts(&site),
        &blobs,
        &opts,
        progress,
    )
    .await
    .unwrap();
    for (i, (name, r)) in results.iter().enumerate() {
        assert!(r.is_ok(), "{name}: {r:?}");
        let got = sha256_of(&store_of(&site, i).join(&file.sha256));
        assert_eq!(got.as_deref(), Some(file.sha256.as_str()), "{name}");
    }
    let ev = events.lock().unwrap();
    let bad_addr = format!("{}:", site.hosts[bad].address);
    let refused = ev.iter().any(|e| match e {
        RelayEvent::SourceFailed {
            from: Some(f),
            reason,
            ..
        } => f.starts_with(&bad_addr) && reason.contains("sha256"),
        _ => false,
    });
    assert!(refused, "nobody refused h{bad}'s tampered bytes: {ev:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_are_refused_in_one_line() {
    let dir = ScratchDir::new("relay-bad");
    let file = blob(dir.path(), 1, 4).await;
    let host = |name: &str, store: &str, addr: &str| RelayHost {
        target: Target {
            name: name.into(),
            address: "192.0.2.1".into(),
            port: 22,
            user: "nobody".into(),
            auth: Auth::Key {
                path: dir.path().join("no-key"),
                passphrase: None,
            },
            sudo: Sudo::None,
            bastion: None,
        },
        site_address: addr.into(),
        store: store.into(),
        as_root: false,
    };
    let blobs: Vec<Arc<dyn UploadSource>> = vec![file.clone()];
    let bin = agent().await;
    let cases = [
        (
            vec![host("a", "store", "192.0.2.1")],
            "the store \"store\" must be an absolute path",
        ),
        (
            vec![host("a", "/s", "192.0.2.1"), host("a", "/s", "192.0.2.2")],
            "host a is named twice",
        ),
        (
            vec![host("a", "/s", "")],
            "site address \"\" is not an address",
        ),
    ];
    for (hosts, want) in cases {
        let quiet: Arc<dyn Fn(RelayEvent) + Send + Sync> = Arc::new(|_| {});
        let err = relay(
            pool(dir.path()),
            &bin,
            &hosts,
            &blobs,
            &RelayOptions::default(),
            quiet,
        )
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, RelayError::BadInput(_)), "{msg}");
        assert!(msg.contains(want), "{msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }
}

/// Speaks HTTP to a listener by hand; returns the status line.
fn http_get(addr: &str, path: &str, token: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = c.take(4096).read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agents_listener_serves_only_the_runs_blobs_and_only_with_its_token() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let data = ferry_tests::noise::bytes(300_000, 5);
    let sha = sha256_of_bytes(&data);
    std::fs::write(store.join(&sha), &data).unwrap();
    std::fs::write(store.join("0".repeat(64)), b"not announced").unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("agent")
        .arg("--root")
        .arg(root.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (out, inp) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let mut client = Client::connect(out, inp).await.unwrap();
    let token = "t".repeat(64);
    let serving = client
        .relay_serve(Op::RelayServe {
            listen: "127.0.0.1".into(),
            token: token.clone(),
            store: "/store".into(),
            blobs: vec![BlobSpec {
                sha256: sha.clone(),
                size: data.len() as u64,
            }],
            stall_secs: 2,
            agent_sha256: None,
        })
        .await
        .unwrap();
    assert_eq!(serving.have, vec![sha.clone()]);
    let addr = format!("127.0.0.1:{}", serving.port);
    let (a, s, t) = (addr.clone(), sha.clone(), token.clone());
    let statuses = tokio::task::spawn_blocking(move || {
        [
            http_get(&a, &format!("/blobs/{s}"), "wrong"),
            http_get(&a, &format!("/blobs/{}", "0".repeat(64)), &t),
            http_get(&a, "/blobs/../../etc/passwd", &t),
            http_get(&a, &format!("/blobs/{s}"), &t),
        ]
    })
    .await
    .unwrap();
    assert!(statuses[0].contains(" 401 "), "{statuses:?}");
    assert!(statuses[1].contains(" 404 "), "{statuses:?}");
    assert!(statuses[2].contains(" 404 "), "{statuses:?}");
    assert!(statuses[3].contains(" 200 "), "{statuses:?}");
    // A second agent fetches it from the first: resumed from a partial file it already had.
    let root2 = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root2.path().join("store")).unwrap();
    std::fs::write(
        root2.path().join(format!("store/{sha}.ferry-partial")),
        &data[..100_000],
    )
    .unwrap();
    let mut child2 = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("agent")
        .arg("--root")
        .arg(root2.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (out, inp) = (child2.stdout.take().unwrap(), child2.stdin.take().unwrap());
    let mut client2 = Client::connect(out, inp).await.unwrap();
    let fetch = |token: &str| Op::RelayFetch {
        peer: addr.clone(),
        token: token.into(),
        store: "/store".into(),
        blob: BlobSpec {
            sha256: sha.clone(),
            size: data.len() as u64,
        },
        stall_secs: 2,
    };
    let refused = client2.relay_fetch(fetch("wrong")).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    let got = client2.relay_fetch(fetch(&token)).await.unwrap();
    assert_eq!(got.resumed_from, 100_000);
    assert_eq!(
        std::fs::read(root2.path().join(format!("store/{sha}"))).unwrap(),
        data
    );
    // The token never reached a command line.
    for pid in [child.id().unwrap(), child2.id().unwrap()] {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains(&token));
    }
    client.exit().await.unwrap();
    client2.exit().await.unwrap();
}

fn sha256_of_bytes(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `benches/relay/run.sh`: FERRY_BENCH_MIB (1024 unless set) to FERRY_BENCH_HOSTS (16) hosts
/// over a jump-host link shaped to 100 Mbit/s, against one copy of the same file over that
/// link with ferry's own upload, in the same run. Prints `BENCH` lines.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: benches/relay/run.sh"]
async fn bench_relay_to_many_hosts_vs_one_copy() {
    if !available() {
        return;
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (mib, n) = (
        env("FERRY_BENCH_MIB", 1024),
        env("FERRY_BENCH_HOSTS", 16) as usize,
    );
    let site = Site::start(n);
    site.shape_jump_link("100mbit");
    let dir = ScratchDir::new("relay-bench");
    let file = blob(dir.path(), mib, 9).await;
    let pool = pool(dir.path());
    let hosts = relay_hosts(&site);
    // One copy over the link: ferry's upload to the first host, then removed.
    let session = pool.session(&hosts[0].target).await.unwrap();
    let dest = format!("{}/one-copy", site.hosts[0].home_on_host());
    let quiet = |_| {};
    let t = Instant::now();
    ferry_inventory::transfer::upload(
        &session,
        file.as_ref(),
        &dest,
        &ferry_inventory::transfer::UploadOptions::default(),
        &quiet,
    )
    .await
    .unwrap();
    let one = t.elapsed().as_secs_f64();
    std::fs::remove_file(site.hosts[0].home().join("one-copy")).unwrap();
    // The relay, agents included.
    let first_fetch = Arc::new(Mutex::new(None));
    let ff = first_fetch.clone();
    let progress: Arc<dyn Fn(RelayEvent) + Send + Sync> = Arc::new(move |ev| {
        if matches!(ev, RelayEvent::Fetching { .. }) {
            ff.lock().unwrap().get_or_insert_with(Instant::now);
        }
    });
    let blobs: Vec<Arc<dyn UploadSource>> = vec![file.clone()];
    let tx0 = site.jump_link_tx_bytes();
    let t = Instant::now();
    let results = relay(
        pool.clone(),
        &agent().await,
        &hosts,
        &blobs,
        &RelayOptions::default(),
        progress,
    )
    .await
    .unwrap();
    let all = t.elapsed().as_secs_f64();
    let delivery = first_fetch.lock().unwrap().unwrap().elapsed().as_secs_f64();
    let sent = site.jump_link_tx_bytes() - tx0;
    for (name, r) in &results {
        assert!(r.is_ok(), "{name}: {r:?}");
    }
    for i in 0..n {
        let got = sha256_of(&store_of(&site, i).join(&file.sha256));
        assert_eq!(got.as_deref(), Some(file.sha256.as_str()), "h{i}");
        let _ = std::fs::remove_file(store_of(&site, i).join(&file.sha256));
    }
    println!(
        "BENCH relay {mib} MiB to {n} hosts, jump link 100mbit: one copy {one:.1} s; relay {all:.1} s \
         in all ({:.2}x), {delivery:.1} s from the first byte of the blob ({:.2}x); {:.0} MiB \
         over the jump link ({:.2}x the blob, agent binary of {:.0} MiB included)",
        all / one,
        delivery / one,
        sent as f64 / 1048576.0,
        sent as f64 / file.size as f64,
        std::fs::metadata(env!("CARGO_BIN_EXE_ferry")).unwrap().len() as f64 / 1048576.0,
    );
}
