//! Verifications per second on one thread: the full offline check (parse, signature, decrypt,
//! fingerprint, dates, usage) against a bare Ed25519 verification of the same file, measured in
//! the same run. Run: `cargo bench -p ferry-license --bench verify` (prints one line per case).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ferry_license::*;

fn rate(name: &str, budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up, then count whole iterations within the budget.
    for _ in 0..100 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    let per_sec = n as f64 / start.elapsed().as_secs_f64();
    println!("{name:<58} {per_sec:>12.0} /s");
    per_sec
}

fn main() {
    let budget = Duration::from_secs(
        std::env::var("FERRY_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let hosts = vec![HostComponents {
        name: "node1".into(),
        machine_id: Some("3d1219c7c4c5404aaa1f6d2a48adfda4".into()),
        product_uuid: Some("4c4c4544-0042-3510-8052-b4c04f384d32".into()),
        disk_serials: vec!["S4EWNX0R123456".into(), "S4EWNX0R654321".into()],
        macs: vec!["52:54:00:12:34:56".into(), "52:54:00:12:34:57".into()],
    }];
    let now = 1_795_000_000;
    let key = IssuerKey::generate().unwrap();
    let trusted = TrustRoot::of(vec![key.public()]);
    let request = ActivationRequest::new(&hosts, Usage { nodes: 1, gpus: 0 }, now).unwrap();
    let spec =
        IssueSpec::from_toml("customer = \"Bench\"\nexpires = \"2027-12-31\"\nmax_nodes = 10\n")
            .unwrap();
    let text = issue(&spec, &request, &key, now).unwrap().1.to_armored();
    let site = SiteFacts {
        hosts,
        usage: Usage { nodes: 1, gpus: 0 },
        now,
    };
    let guards = Guards {
        license: String::new(),
        sequence: 0,
        high_water: now,
        clock_reset: false,
    };

    let file = LicenseFile::parse(text.as_bytes()).unwrap();
    let bare = rate("bare Ed25519 signature check (reference)", budget, || {
        file.verify_signature(&trusted).unwrap();
    });
    rate("  of which: parse armor + envelope", budget, || {
        LicenseFile::parse(text.as_bytes()).unwrap();
    });
    let license = open(&file, &trusted, &request).unwrap();
    rate(
        "  of which: decrypt (HKDF + AEAD + payload JSON)",
        budget,
        || {
            file.decrypt(&request).unwrap();
        },
    );
    rate(
        "  of which: fingerprint, dates, guards, usage",
        budget,
        || {
            check(license.clone(), &site, Some(&guards)).unwrap();
        },
    );
    let full = rate(
        "full verification (parse+sig+decrypt+fingerprint+guards)",
        budget,
        || {
            let file = LicenseFile::parse(text.as_bytes()).unwrap();
            let license = open(&file, &trusted, &request).unwrap();
            check(license, &site, Some(&guards)).unwrap();
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path());
    state.save_request(&request).unwrap();
    state.activate(text.as_bytes(), &trusted, &site).unwrap();
    let with_state = rate("full verification incl. state dir reads", budget, || {
        state.verify(text.as_bytes(), &trusted, &site).unwrap();
    });
    println!(
        "ratio full/bare: {:.2}   ratio with-state/bare: {:.2}",
        full / bare,
        with_state / bare
    );
}
