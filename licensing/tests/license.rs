//! The licensing rules as specifications: every bad input of issues 5 and 10 is refused with its
//! own error, and the tolerated hardware and clock changes are accepted.
#![allow(clippy::unwrap_used, missing_docs)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ferry_license::time::{parse_date, DAY};
use ferry_license::*;
use sha2::{Digest as _, Sha256};

const NOW: i64 = 1_795_000_000; // 2026-11-19
const HOUR: i64 = 3600;

fn host(name: &str, seed: &str) -> HostComponents {
    HostComponents {
        name: name.into(),
        machine_id: Some(format!("{seed}-machine-id")),
        product_uuid: Some(format!("{seed}-uuid")),
        disk_serials: vec![format!("{seed}-disk1"), format!("{seed}-disk2")],
        macs: vec![
            format!("52:54:00:00:00:{:02x}", seed.len()),
            "52:54:00:aa:bb:cc".into(),
        ],
    }
}

fn site(hosts: Vec<HostComponents>, now: i64) -> SiteFacts {
    SiteFacts {
        usage: Usage {
            nodes: hosts.len() as u32,
            gpus: 0,
        },
        hosts,
        now,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    state: StateDir,
    key: IssuerKey,
    trusted: TrustRoot,
    request: ActivationRequest,
    hosts: Vec<HostComponents>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let key = IssuerKey::generate().unwrap();
        let trusted = TrustRoot::of(vec![key.public()]);
        let hosts = vec![host("node1", "a")];
        let request = ActivationRequest::new(&hosts, Usage { nodes: 1, gpus: 0 }, NOW).unwrap();
        state.save_request(&request).unwrap();
        Self {
            dir,
            state,
            key,
            trusted,
            request,
            hosts,
        }
    }

    fn issue(&self, spec: &str) -> String {
        let spec = IssueSpec::from_toml(spec).unwrap();
        issue(&spec, &self.request, &self.key, NOW)
            .unwrap()
            .1
            .to_armored()
    }

    fn site(&self, now: i64) -> SiteFacts {
        site(self.hosts.clone(), now)
    }
}

const SPEC: &str = "customer = \"Example Site\"\nexpires = \"2027-12-31\"\nmax_nodes = 10\n";

/// Re-armors a body the way ferry does, so an edit passes the checksum and reaches the
/// signature check.
fn armor(label: &str, body: &[u8]) -> String {
    let b64 = STANDARD.encode(body);
    let mut out = format!("-----BEGIN {label}-----\n");
    for c in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(c).unwrap());
        out.push('\n');
    }
    out.push_str(&format!(
        "={}\n-----END {label}-----\n",
        hex::encode(&Sha256::digest(body)[..4])
    ));
    out
}

fn body(text: &str) -> Vec<u8> {
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.starts_with('='))
        .collect();
    STANDARD.decode(b64).unwrap()
}

/// Changes fields of a license envelope, keeping ferry's field order.
fn edit_envelope(text: &str, f: impl FnOnce(&mut serde_json::Value)) -> String {
    let raw = String::from_utf8(body(text)).unwrap();
    let env: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let mut edited = env.clone();
    f(&mut edited);
    let mut out = raw;
    for (k, v) in env.as_object().unwrap() {
        let new = &edited[k];
        if new != v {
            out = out.replace(&format!("\"{k}\":{v}"), &format!("\"{k}\":{new}"));
        }
    }
    armor("FERRY LICENSE", out.as_bytes())
}

#[test]
fn activates_and_verifies_a_license_with_either_cipher() {
    for alg in ["", "alg = \"ed25519+aes-256-gcm\"\n"] {
        let fx = Fixture::new();
        let lic = fx.issue(&format!("{SPEC}{alg}"));
        let v = fx
            .state
            .activate(lic.as_bytes(), &fx.trusted, &fx.site(NOW))
            .unwrap();
        assert_eq!(v.license.customer, "Example Site");
        assert_eq!(v.license.entitlements.max_nodes, 10);
        assert_eq!(v.license.expires, parse_date("2028-01-01").unwrap());
        assert!(v.notices.is_empty());
        fx.state
            .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 60))
            .unwrap();
        let status = fx.state.status(&fx.trusted, &fx.site(NOW + 120));
        assert_eq!(status.result.unwrap().license.id, v.license.id);
    }
}

#[test]
fn refuses_one_changed_byte_anywhere_in_the_file() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    let bytes = lic.as_bytes();
    let mut refused = 0;
    for i in 0..bytes.len() {
        for replacement in [
            bytes[i] ^ 0x01,
            if bytes[i] == b'A' { b'B' } else { b'A' },
            b'\n',
        ] {
            if replacement == bytes[i] {
                continue;
            }
            let mut changed = bytes.to_vec();
            changed[i] = replacement;
            let result = fx.state.verify(&changed, &fx.trusted, &fx.site(NOW));
            assert!(
                result.is_err(),
                "byte {i} changed to {replacement:#x} was accepted"
            );
            refused += 1;
        }
    }
    assert!(refused > 2 * bytes.len());
}

#[test]
fn refuses_an_edit_with_a_recomputed_checksum_by_its_signature() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    let edited = edit_envelope(&lic, |env| {
        let mut ct = STANDARD.decode(env["ct"].as_str().unwrap()).unwrap();
        ct[5] ^= 0x80;
        env["ct"] = STANDARD.encode(ct).into();
    });
    let err = fx
        .state
        .verify(edited.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap_err();
    assert!(matches!(err, LicenseError::BadSignature { .. }), "{err}");
}

#[test]
fn refuses_a_license_signed_by_another_key() {
    let fx = Fixture::new();
    let other = IssuerKey::generate().unwrap();
    let spec = IssueSpec::from_toml(SPEC).unwrap();
    let forged = issue(&spec, &fx.request, &other, NOW)
        .unwrap()
        .1
        .to_armored();
    let err = fx
        .state
        .verify(forged.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap_err();
    assert!(matches!(err, LicenseError::UntrustedKey { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not a vendor key built into this ferry"),
        "{err}"
    );

    // Another key's signature under the trusted key's id.
    let genuine = fx.issue(SPEC);
    let forged_sig = edit_envelope(&genuine, |env| {
        let sig = body(&forged);
        let other_env: serde_json::Value = serde_json::from_slice(&sig).unwrap();
        env["sig"] = other_env["sig"].clone();
    });
    let err = fx
        .state
        .verify(forged_sig.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap_err();
    assert!(matches!(err, LicenseError::BadSignature { .. }), "{err}");
}

#[test]
fn accepts_rotated_keys_by_id() {
    // The vendor rotated from `old` to `fx.key`; the site trusts both.
    let fx = Fixture::new();
    let old = IssuerKey::generate().unwrap();
    let spec = IssueSpec::from_toml(SPEC).unwrap();
    let under_old = issue(&spec, &fx.request, &old, NOW).unwrap().1.to_armored();
    let under_new = fx.issue(SPEC);
    let trusted = TrustRoot::of(vec![old.public(), fx.key.public()]);
    // A license issued under the old key still verifies after the rotation...
    fx.state
        .verify(under_old.as_bytes(), &trusted, &fx.site(NOW))
        .unwrap();
    // ...as does one issued under the new key, whichever key comes first in the list.
    let reversed = TrustRoot::of(vec![fx.key.public(), old.public()]);
    fx.state
        .verify(under_new.as_bytes(), &reversed, &fx.site(NOW))
        .unwrap();
    // Once the old key is no longer trusted, its licenses are refused by key id.
    let err = fx
        .state
        .verify(under_old.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap_err();
    assert!(matches!(err, LicenseError::UntrustedKey { .. }), "{err}");
    fx.state
        .activate(under_old.as_bytes(), &trusted, &fx.site(NOW))
        .unwrap();
}

#[test]
fn refuses_an_unknown_alg_even_when_signed() {
    let fx = Fixture::new();
    let lic = LicenseFile::sign_raw("ed25519+rot13", &fx.request.id, &[0; 24], &[0; 40], &fx.key);
    let err = fx
        .state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap_err();
    assert!(
        matches!(err, LicenseError::UnknownAlg(ref a) if a == "ed25519+rot13"),
        "{err}"
    );
    assert!(err.to_string().contains("ed25519+xchacha20poly1305"));
}

#[test]
fn refuses_a_license_for_another_site() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    // Another site: its own state dir, which never made this request.
    let other = StateDir::new(fx.dir.path().join("other"));
    let mine = ActivationRequest::new(&[host("x", "other")], Usage::default(), NOW).unwrap();
    other.save_request(&mine).unwrap();
    let err = other
        .activate(
            lic.as_bytes(),
            &fx.trusted,
            &site(vec![host("x", "other")], NOW),
        )
        .unwrap_err();
    assert!(matches!(err, LicenseError::NoActivation { .. }), "{err}");
    assert!(err.to_string().contains("belongs to another site"));
}

#[test]
fn refuses_a_license_whose_activation_secret_differs() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    // Same request id on disk, other secret: the payload must not open.
    let mut forged = ActivationRequest::new(&fx.hosts, Usage::default(), NOW).unwrap();
    forged.id = fx.request.id.clone();
    let file = LicenseFile::parse(lic.as_bytes()).unwrap();
    let err = file.decrypt(&forged).unwrap_err();
    assert!(matches!(err, LicenseError::Decrypt { .. }), "{err}");
}

#[test]
fn refuses_a_license_copied_with_its_state_to_other_hardware() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    let err = fx
        .state
        .activate(
            lic.as_bytes(),
            &fx.trusted,
            &site(vec![host("node1", "b")], NOW),
        )
        .unwrap_err();
    assert!(matches!(err, LicenseError::OtherHardware { .. }), "{err}");
    assert!(err.to_string().contains("other hardware"), "{err}");
}

#[test]
fn refuses_a_cloned_machine_with_other_product_uuid_and_macs() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    let mut clone = fx.hosts[0].clone();
    clone.product_uuid = Some("clone-uuid".into());
    clone.macs = vec!["52:54:00:12:34:56".into()];
    let err = fx
        .state
        .activate(lic.as_bytes(), &fx.trusted, &site(vec![clone], NOW))
        .unwrap_err();
    assert!(matches!(err, LicenseError::OtherHardware { .. }), "{err}");
    assert!(err.to_string().contains("50%"), "{err}");
}

#[test]
fn tolerates_one_swapped_disk_a_new_nic_or_a_reinstalled_os() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    let mut disk = fx.hosts[0].clone();
    disk.disk_serials[1] = "replacement-disk".into();
    let mut nic = fx.hosts[0].clone();
    nic.macs = vec!["52:54:00:99:99:99".into()];
    let mut os = fx.hosts[0].clone();
    os.machine_id = Some("new-machine-id".into());
    for (what, h) in [("disk", disk), ("nic", nic), ("os", os)] {
        fx.state
            .verify(lic.as_bytes(), &fx.trusted, &site(vec![h], NOW))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

#[test]
fn matches_a_cluster_by_majority_of_hosts() {
    let hosts: Vec<_> = ["a", "bb", "ccc"]
        .iter()
        .enumerate()
        .map(|(i, s)| host(&format!("n{i}"), s))
        .collect();
    let fp = Fingerprint::new(&[7; 16], &hosts);
    // Order does not matter; one host replaced is still the same cluster.
    let mut now = vec![hosts[2].clone(), hosts[0].clone(), host("n9", "zzzz")];
    fp.matches(&now).unwrap();
    now[1] = host("n8", "yyyyy");
    let err = fp.matches(&now).unwrap_err();
    assert!(err.contains("1 of 3 licensed hosts found"), "{err}");
}

#[test]
fn refuses_an_expired_license_after_its_grace_and_warns_within_it() {
    let fx = Fixture::new();
    let lic =
        fx.issue("customer = \"c\"\nexpires = \"2026-11-30\"\nmax_nodes = 1\ngrace_days = 7\n");
    let expiry = parse_date("2026-12-01").unwrap();
    let v = fx
        .state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(expiry + 2 * DAY))
        .unwrap();
    assert!(
        matches!(v.notices[..], [Notice::InGrace { days_left: 5, .. }]),
        "{:?}",
        v.notices
    );
    let err = fx
        .state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(expiry + 7 * DAY))
        .unwrap_err();
    assert!(matches!(err, LicenseError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("expired on 2026-11-30"), "{err}");
}

#[test]
fn refuses_a_license_that_is_not_valid_yet() {
    let fx = Fixture::new();
    let lic = fx.issue(
        "customer = \"c\"\nexpires = \"2027-12-31\"\nnot_before = \"2027-01-01\"\nmax_nodes = 1\n",
    );
    let err = fx
        .state
        .activate(lic.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap_err();
    assert!(matches!(err, LicenseError::NotYetValid { .. }), "{err}");
    assert!(
        err.to_string().contains("not valid before 2027-01-01"),
        "{err}"
    );
}

#[test]
fn tolerates_a_clock_fixed_within_48_hours_and_refuses_one_set_back_further() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    fx.state
        .activate(lic.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap();
    // The clock ran 47 hours ahead (a time zone taken for UTC, a day typed wrong) while a check
    // ran, then was put right: the site goes on working.
    fx.state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 47 * HOUR))
        .unwrap();
    let status = fx.state.status(&fx.trusted, &fx.site(NOW + HOUR));
    assert!(status.result.is_ok(), "{:?}", status.result);
    // More than 48 hours behind the highest time seen is a clock set back.
    let err = fx
        .state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW - 2 * HOUR))
        .unwrap_err();
    assert!(matches!(err, LicenseError::ClockRollback { .. }), "{err}");
    let status = fx.state.status(&fx.trusted, &fx.site(NOW - 2 * HOUR));
    assert!(matches!(
        status.result,
        Err(LicenseError::ClockRollback { .. })
    ));
    assert!(status.license.is_some());
    assert!(
        status
            .result
            .unwrap_err()
            .to_string()
            .contains("run `ferry license request`"),
        "the error names the way out"
    );
}

#[test]
fn a_vendor_license_for_a_new_request_resets_a_clock_once_set_far_ahead() {
    const SPEC: &str = "customer = \"c\"\nexpires = \"2035-12-31\"\nmax_nodes = 1\n";
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    fx.state
        .activate(lic.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap();
    // A request made before the clock went wrong: its license must not reset anything.
    let early = ActivationRequest::new(&fx.hosts, Usage { nodes: 1, gpus: 0 }, NOW).unwrap();
    fx.state.save_request(&early).unwrap();
    // Someone sets the clock five years ahead and a check runs; the clock is then put right.
    fx.state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 5 * 365 * DAY))
        .unwrap();
    let today = NOW + DAY;
    let status = fx.state.status(&fx.trusted, &fx.site(today));
    assert!(
        matches!(status.result, Err(LicenseError::ClockRollback { .. })),
        "{:?}",
        status.result
    );
    // The way out, offline: a new request, and the vendor's license for it.
    let request = ActivationRequest::new(&fx.hosts, Usage { nodes: 1, gpus: 0 }, today).unwrap();
    fx.state.save_request(&request).unwrap();
    let spec = IssueSpec::from_toml(SPEC).unwrap();
    let fresh = issue(&spec, &request, &fx.key, today)
        .unwrap()
        .1
        .to_armored();
    let from_early = issue(&spec, &early, &fx.key, today).unwrap().1.to_armored();
    let err = fx
        .state
        .activate(from_early.as_bytes(), &fx.trusted, &fx.site(today))
        .unwrap_err();
    assert!(matches!(err, LicenseError::ClockRollback { .. }), "{err}");
    // Nor does an old license, or the installed one.
    let err = fx
        .state
        .activate(lic.as_bytes(), &fx.trusted, &fx.site(today))
        .unwrap_err();
    assert!(matches!(err, LicenseError::ClockRollback { .. }), "{err}");
    fx.state
        .activate(fresh.as_bytes(), &fx.trusted, &fx.site(today))
        .unwrap();
    let status = fx.state.status(&fx.trusted, &fx.site(today + HOUR));
    assert!(status.result.is_ok(), "{:?}", status.result);
    // The reset happens once: setting the clock back again is refused as before.
    let err = fx
        .state
        .verify(fresh.as_bytes(), &fx.trusted, &fx.site(today - 3 * DAY))
        .unwrap_err();
    assert!(matches!(err, LicenseError::ClockRollback { .. }), "{err}");
}

#[test]
fn removing_the_license_and_its_guard_fails_closed_instead_of_starting_over() {
    let fx = Fixture::new();
    // An older license that expired, and the newer one installed after it.
    let old = fx.issue(
        "customer = \"c\"\nexpires = \"2026-11-30\"\nmax_nodes = 1\ngrace_days = 1\nsequence = 1\n",
    );
    let new = fx.issue(&format!("{SPEC}sequence = 2\n"));
    let later = NOW + 30 * DAY;
    fx.state
        .activate(new.as_bytes(), &fx.trusted, &fx.site(later))
        .unwrap();
    assert!(fx.state.status(&fx.trusted, &fx.site(later)).result.is_ok());
    let dir = fx.state.path().to_owned();
    std::fs::remove_file(dir.join("license.lic")).unwrap();
    std::fs::remove_file(dir.join("guard.json")).unwrap();

    let err = fx
        .state
        .status(&fx.trusted, &fx.site(later))
        .result
        .unwrap_err();
    assert!(matches!(err, LicenseError::StateMissing { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("re-activate with a new license from the vendor"),
        "{err}"
    );
    // The older, expired license at an earlier date: refused, not a fresh start.
    let err = fx
        .state
        .activate(old.as_bytes(), &fx.trusted, &fx.site(NOW + DAY))
        .unwrap_err();
    assert!(
        matches!(
            err,
            LicenseError::ClockRollback { .. } | LicenseError::Replay { .. }
        ),
        "{err}"
    );
    assert!(!dir.join("license.lic").exists());

    // Only guard.json removed: fail closed too; activating the installed license again (its
    // activation record still holds the guard) puts it back.
    fx.state
        .activate(new.as_bytes(), &fx.trusted, &fx.site(later))
        .unwrap();
    std::fs::remove_file(dir.join("guard.json")).unwrap();
    let err = fx
        .state
        .status(&fx.trusted, &fx.site(later))
        .result
        .unwrap_err();
    assert!(err.to_string().contains("guard.json is missing"), "{err}");
    let err = fx
        .state
        .verify(new.as_bytes(), &fx.trusted, &fx.site(later))
        .unwrap_err();
    assert!(matches!(err, LicenseError::StateMissing { .. }), "{err}");
    fx.state
        .activate(new.as_bytes(), &fx.trusted, &fx.site(later))
        .unwrap();
    assert!(fx.state.status(&fx.trusted, &fx.site(later)).result.is_ok());

    // The documented way out after losing it all: a new request, and the vendor's license for it.
    std::fs::remove_file(dir.join("license.lic")).unwrap();
    std::fs::remove_file(dir.join("guard.json")).unwrap();
    let request = ActivationRequest::new(&fx.hosts, Usage { nodes: 1, gpus: 0 }, later).unwrap();
    fx.state.save_request(&request).unwrap();
    let spec = IssueSpec::from_toml(&format!("{SPEC}sequence = 3\n")).unwrap();
    let renewal = issue(&spec, &request, &fx.key, later)
        .unwrap()
        .1
        .to_armored();
    fx.state
        .activate(renewal.as_bytes(), &fx.trusted, &fx.site(later))
        .unwrap();
    assert!(fx.state.status(&fx.trusted, &fx.site(later)).result.is_ok());
}

#[test]
fn an_edited_activation_record_guard_is_refused() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    fx.state
        .activate(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 5 * DAY))
        .unwrap();
    let path = fx
        .state
        .path()
        .join(format!("requests/{}.json", fx.request.id));
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    record["guard"]["high_water"] = NOW.into();
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    let err = fx
        .state
        .status(&fx.trusted, &fx.site(NOW))
        .result
        .unwrap_err();
    assert!(matches!(err, LicenseError::GuardTampered { .. }), "{err}");
    assert!(err.to_string().contains("fails its MAC"), "{err}");
}

#[test]
fn refuses_an_older_license_after_a_newer_one() {
    let fx = Fixture::new();
    let old = fx.issue(&format!("{SPEC}sequence = 1\n"));
    let new = fx.issue(&format!("{SPEC}sequence = 2\n"));
    fx.state
        .activate(new.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap();
    let err = fx
        .state
        .activate(old.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap_err();
    assert!(
        matches!(
            err,
            LicenseError::Replay {
                got: 1,
                installed: 2,
                ..
            }
        ),
        "{err}"
    );
    // The same license again is fine (re-running activate converges).
    fx.state
        .activate(new.as_bytes(), &fx.trusted, &fx.site(NOW))
        .unwrap();
}

#[test]
fn refuses_more_nodes_or_gpus_than_licensed() {
    let fx = Fixture::new();
    let lic = fx.issue("customer = \"c\"\nexpires = \"2027-12-31\"\nmax_nodes = 1\nmax_gpus = 2\n");
    let mut s = fx.site(NOW);
    s.usage = Usage { nodes: 2, gpus: 0 };
    let err = fx
        .state
        .verify(lic.as_bytes(), &fx.trusted, &s)
        .unwrap_err();
    assert!(
        matches!(err, LicenseError::TooManyNodes { used: 2, max: 1 }),
        "{err}"
    );
    s.usage = Usage { nodes: 1, gpus: 3 };
    let err = fx
        .state
        .verify(lic.as_bytes(), &fx.trusted, &s)
        .unwrap_err();
    assert!(
        matches!(err, LicenseError::TooManyGpus { used: 3, max: 2 }),
        "{err}"
    );
}

#[test]
fn refuses_truncated_and_empty_files() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    for len in [0, 1, 20, lic.len() / 2, lic.len() - 10] {
        let err = fx
            .state
            .verify(&lic.as_bytes()[..len], &fx.trusted, &fx.site(NOW))
            .unwrap_err();
        let expected = match len {
            0 => matches!(err, LicenseError::Empty { .. }),
            1 | 20 => matches!(err, LicenseError::NotArmored { .. }),
            _ => matches!(err, LicenseError::Truncated { .. }),
        };
        assert!(expected, "length {len}: {err}");
    }
    assert!(fx
        .state
        .verify(b"\n\n", &fx.trusted, &fx.site(NOW))
        .unwrap_err()
        .to_string()
        .contains("empty"));
}

#[test]
fn refuses_a_request_edited_by_hand() {
    let req = ActivationRequest::new(&[host("n", "a")], Usage::default(), NOW).unwrap();
    let text = req.to_armored().to_string();
    ActivationRequest::parse(text.as_bytes()).unwrap();
    // Any one changed character.
    let line = text.lines().nth(2).unwrap();
    let pos = text.find(line).unwrap() + 10;
    let mut edited = text.clone().into_bytes();
    edited[pos] = if edited[pos] == b'x' { b'y' } else { b'x' };
    let err = ActivationRequest::parse(&edited).unwrap_err();
    assert!(matches!(err, LicenseError::Checksum { .. }), "{err}");
    // An edit that even recomputes the checksum.
    let mut json: serde_json::Value = serde_json::from_slice(&body(&text)).unwrap();
    json["fingerprint"]["hosts"][0]["name"] = "edited".into();
    let err = ActivationRequest::parse(
        armor("FERRY LICENSE REQUEST", &serde_json::to_vec(&json).unwrap()).as_bytes(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("edited by hand"), "{err}");
    // A license handed in where a request is expected is named.
    let err = ActivationRequest::parse(b"-----BEGIN FERRY LICENSE-----\n").unwrap_err();
    assert!(err.to_string().contains("this is a license file"), "{err}");
}

#[test]
fn refuses_an_edited_or_missing_guard() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    fx.state
        .activate(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 5 * DAY))
        .unwrap();
    let guard = fx.state.path().join("guard.json");
    let text = std::fs::read_to_string(&guard).unwrap();
    let mut g: serde_json::Value = serde_json::from_str(&text).unwrap();
    g["high_water"] = (NOW - DAY).into();
    std::fs::write(&guard, serde_json::to_vec(&g).unwrap()).unwrap();
    let err = fx
        .state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 5 * DAY))
        .unwrap_err();
    assert!(matches!(err, LicenseError::GuardTampered { .. }), "{err}");
    std::fs::remove_file(&guard).unwrap();
    let err = fx
        .state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 5 * DAY))
        .unwrap_err();
    assert!(err.to_string().contains("guard.json is missing"), "{err}");
}

#[test]
fn never_shows_secrets_in_debug_output() {
    let fx = Fixture::new();
    let secret_b64 = serde_json::to_value(&fx.request).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!format!("{:?}", fx.request).contains(&secret_b64));
    let key_text = fx.key.to_armored();
    let key_b64 = key_text.lines().nth(1).unwrap();
    assert!(!format!("{:?}", fx.key).contains(key_b64));
    assert!(format!("{:?}", fx.key).contains("redacted"));
}

#[test]
fn keeps_activation_records_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let fx = Fixture::new();
    let path = fx.state.save_request(&fx.request).unwrap();
    assert_eq!(
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn reads_the_minimal_spec_and_refuses_bad_ones() {
    let spec = IssueSpec::from_toml(SPEC).unwrap();
    assert_eq!(spec.entitlements.max_nodes, 10);
    assert_eq!(spec.entitlements.max_gpus, None);
    assert_eq!(spec.alg, Alg::XChaCha20Poly1305);
    for (bad, why) in [
        (
            "customer = \"c\"\nexpires = \"2027-02-30\"\nmax_nodes = 1\n",
            "not a date",
        ),
        (
            "customer = \"c\"\nexpires = \"2027-01-01\"\nmax_nodes = 0\n",
            "at least 1",
        ),
        (
            "customer = \"c\"\nexpires = \"2027-01-01\"\nmax_nodes = 1\nmax_node = 2\n",
            "unknown field",
        ),
        (
            "customer = \"c\"\nmax_nodes = 1\n",
            "missing field `expires`",
        ),
        (
            "customer = \"c\"\nexpires = \"2027-01-01\"\nmax_nodes = 1\nalg = \"rsa\"\n",
            "unknown license algorithm",
        ),
    ] {
        let err = IssueSpec::from_toml(bad).unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn round_trips_key_files() {
    let key = IssuerKey::generate().unwrap();
    let again = IssuerKey::from_armored(key.to_armored().as_bytes()).unwrap();
    assert_eq!(again.public(), key.public());
    let public = IssuerPublicKey::from_armored(key.public().to_armored().as_bytes()).unwrap();
    assert_eq!(public.id(), key.public().id());
    let err = IssuerPublicKey::from_armored(key.to_armored().as_bytes()).unwrap_err();
    assert!(
        err.to_string()
            .contains("this is a license signing key file"),
        "{err}"
    );
}

#[test]
fn adopts_a_later_guard_from_another_host_and_refuses_an_edited_one() {
    let fx = Fixture::new();
    let lic = fx.issue(SPEC);
    // Host B saw day 10; the jump host's state is then restored from a backup taken on day 1.
    fx.state
        .activate(lic.as_bytes(), &fx.trusted, &fx.site(NOW + DAY))
        .unwrap();
    let guard = fx.state.path().join("guard.json");
    let record = fx
        .state
        .path()
        .join(format!("requests/{}.json", fx.request.id));
    let backup = std::fs::read(&guard).unwrap();
    let record_backup = std::fs::read(&record).unwrap();
    fx.state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 10 * DAY))
        .unwrap();
    let host_b = std::fs::read(&guard).unwrap();
    std::fs::write(&guard, &backup).unwrap();
    std::fs::write(&record, &record_backup).unwrap();
    fx.state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 2 * DAY))
        .unwrap();
    fx.state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 3 * DAY))
        .unwrap();

    let origin = std::path::Path::new("node2:/var/lib/ferry/license/guard.json");
    assert!(fx.state.adopt_guard(&fx.trusted, &host_b, origin).unwrap());
    let err = fx
        .state
        .verify(lic.as_bytes(), &fx.trusted, &fx.site(NOW + 3 * DAY))
        .unwrap_err();
    assert!(matches!(err, LicenseError::ClockRollback { .. }), "{err}");
    // An older copy changes nothing; an edited one is refused and names its origin.
    assert!(!fx.state.adopt_guard(&fx.trusted, &backup, origin).unwrap());
    let mut g: serde_json::Value = serde_json::from_slice(&host_b).unwrap();
    g["high_water"] = (NOW + 100 * DAY).into();
    let err = fx
        .state
        .adopt_guard(&fx.trusted, &serde_json::to_vec(&g).unwrap(), origin)
        .unwrap_err();
    assert!(err.to_string().contains("node2:"), "{err}");
}

#[test]
fn write_atomic_follows_no_symlink_at_the_path_or_a_temporary_name() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let path = dir.path().join("key");
    // A link at the destination, and one planted at the old predictable temporary name.
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let planted = dir.path().join(format!(".key.tmp{}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    ferry_license::write_atomic(&path, b"secret", 0o600).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_file(), "{path:?} is still a link");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(&path).unwrap(), b"secret");
    // Nothing but the victim, the key and the planted link is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn trusts_only_the_keys_built_in_and_pubkey_only_chooses_among_them() {
    let built_in = TrustRoot::built_in().unwrap();
    // This is a test build: the two test issuer keys of testdata/ are built in.
    let ids: Vec<String> = built_in.keys().map(|(k, _)| k.id().0).collect();
    for id in ["b2b28b5dac7b8854", "e039d258f3500e3d"] {
        assert!(ids.contains(&id.to_owned()), "{ids:?}");
    }
    let read = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name);
        std::fs::read(path).unwrap()
    };
    let key_a = IssuerKey::from_armored(&read("test-issuer-a.key")).unwrap();
    let pub_b = IssuerPublicKey::from_armored(&read("test-issuer-b.key.pub")).unwrap();

    // A license from a key of the site's own making is refused, whatever else is true.
    let fx = Fixture::new();
    let spec = IssueSpec::from_toml(SPEC).unwrap();
    let home_made = issue(&spec, &fx.request, &fx.key, NOW)
        .unwrap()
        .1
        .to_armored();
    let err = fx
        .state
        .activate(home_made.as_bytes(), &built_in, &fx.site(NOW))
        .unwrap_err();
    assert!(matches!(err, LicenseError::UntrustedKey { .. }), "{err}");
    assert_eq!(err.to_string().lines().count(), 1);
    // --pubkey cannot add that key...
    let err = built_in.select(&[fx.key.public()]).unwrap_err();
    assert!(matches!(err, LicenseError::NotBuiltIn { .. }), "{err}");
    // ...and choosing key B refuses a license signed by key A.
    let by_a = issue(&spec, &fx.request, &key_a, NOW)
        .unwrap()
        .1
        .to_armored();
    let only_b = built_in.select(&[pub_b]).unwrap();
    let err = fx
        .state
        .verify(by_a.as_bytes(), &only_b, &fx.site(NOW))
        .unwrap_err();
    assert!(matches!(err, LicenseError::UntrustedKey { .. }), "{err}");
    fx.state
        .activate(by_a.as_bytes(), &built_in, &fx.site(NOW))
        .unwrap();
}

#[test]
fn license_secrets_are_wiped_on_drop_and_cannot_be_cloned() {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<IssuerKey>();
    wiped_on_drop::<ActivationSecret>();
    // Compiles only while ActivationSecret is not Clone: with a Clone impl, both impls apply
    // and the call is ambiguous.
    trait AmbiguousIfClone<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfClone<()> for T {}
    impl<T: Clone> AmbiguousIfClone<u8> for T {}
    <ActivationSecret as AmbiguousIfClone<_>>::check();
    <ActivationRequest as AmbiguousIfClone<_>>::check();
}
