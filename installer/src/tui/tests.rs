//! The wizard drawn into ratatui's TestBackend: every screen as a snapshot (80x24 and 120x40,
//! English and Chinese), and keys driving the state as an engineer would.
#![allow(clippy::unwrap_used)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ferry_inventory::model::raw::RawHost;
use ratatui::backend::TestBackend;
use ratatui::text::Span;
use ratatui::Terminal;

use super::app::{App, AppInfo, BundleInfo, BundleState, Job, Model, Msg, PlanState, RunEnd};
use super::board::Board;
use super::checks::{CheckReport, FactsRow};
use super::draft::Draft;
use super::screens::ScreenId;
use super::text::Lang;
use super::theme::Theme;
use crate::engine::apply::{HostSummary, Outcome};
use crate::engine::events::Event;
use crate::engine::plan::{HostPlan, HostStatus, Plan, PlannedChange};

pub(super) fn host(name: &str, address: &str, role: &str) -> RawHost {
    RawHost {
        name: name.into(),
        address: address.into(),
        user: Some("root".into()),
        // Beside the inventory (`site`): validate checks that it is there.
        key: Some("id_ed25519".into()),
        roles: vec![role.into()],
        ..RawHost::default()
    }
}

/// A draft of three hosts for cluster `site-a`.
pub(super) fn draft(answers: &std::path::Path) -> Draft {
    let mut d = Draft::new(answers.to_path_buf());
    d.set_text("cluster.name", "site-a");
    d.set_text("bundle", "site.ferry");
    d.set_text("bundle-pubkey", "vendor.pub");
    d.inventory.hosts = vec![
        host("node1", "10.0.0.11", "server"),
        host("node2", "10.0.0.12", "agent"),
        host("node3", "10.0.0.13", "agent"),
    ];
    d
}

pub(super) fn app(lang: Lang, d: Draft, scratch: &std::path::Path) -> App {
    App::new(Model::new(
        lang,
        Theme { color: false },
        d,
        scratch.to_path_buf(),
    ))
}

/// The screen as text, one line per row (a wide character's second cell is skipped).
fn draw(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| app.render(f)).unwrap();
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..w {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let sym = buf[(x, y)].symbol();
            skip = Span::raw(sym).width().saturating_sub(1);
            line.push_str(sym);
        }
        // The site directory `on` made, as the snapshots name it.
        let site = app.model.scratch.join("site").display().to_string();
        out.push_str(line.replace(&site, "/site").trim_end());
        out.push('\n');
    }
    out
}

pub(super) fn facts(os: &str) -> FactsRow {
    FactsRow {
        os: os.into(),
        cpus: 4,
        memory: 8 << 30,
        disk_free: Some(40 << 30),
        gpus: 0,
    }
}

fn plan() -> Plan {
    let change = |r: &str, what: &str, from: &str, to: &str| PlannedChange {
        resource: r.into(),
        what: what.into(),
        from: from.into(),
        to: to.into(),
    };
    Plan {
        cluster: None,
        cluster_id: "ferry-0123456789abcdef".into(),
        site: Default::default(),
        hosts: vec![
            HostPlan {
                host: "node1".into(),
                status: HostStatus::Ready,
                reasons: vec![],
                warnings: vec![],
                changes: vec![
                    change("hostname", "hostname", "debian", "node1"),
                    change("sysctl", "net.ipv4.ip_forward", "0", "1"),
                ],
                resources: vec![],
                cluster: vec![],
            },
            HostPlan {
                host: "node2".into(),
                status: HostStatus::NoChanges,
                reasons: vec![],
                warnings: vec![],
                changes: vec![],
                resources: vec![],
                cluster: vec![],
            },
            HostPlan {
                host: "node3".into(),
                status: HostStatus::Unreachable,
                reasons: vec!["cannot connect to 10.0.0.13:22: Connection refused; fix: check the address, SSH access and credentials (`ferry inventory check`)".into()],
                warnings: vec![],
                changes: vec![],
                resources: vec![],
                cluster: vec![],
            },
        ],
    }
}

/// A site directory inside `scratch` holding what the draft names, so that it validates as
/// `ferry validate` checks it (the bundle opened with its key, the SSH key present): the
/// signed test bundle of the answer-file goldens, its key and a key file. `draw` shows it as
/// `/site`. Returns the answer file's path in it.
pub(super) fn site(scratch: &std::path::Path) -> std::path::PathBuf {
    let dir = scratch.join("site");
    std::fs::create_dir_all(&dir).unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/answers");
    for f in ["site.ferry", "vendor.pub"] {
        std::fs::copy(data.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("id_ed25519"), "a private key\n").unwrap();
    dir.join("site.toml")
}

/// The draft deploys the apps bundle (tests/data/apps: package `shop`, with k3s), verified as
/// the Bundle screen verifies it.
fn apps_site(m: &mut Model) {
    let dir = m.draft.base().to_path_buf();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/apps");
    std::fs::copy(data.join("apps.ferry"), dir.join("apps.ferry")).unwrap();
    std::fs::copy(data.join("vendor.pub"), dir.join("apps.pub")).unwrap();
    m.draft.set_text("bundle", "apps.ferry");
    m.draft.set_text("bundle-pubkey", "apps.pub");
    m.draft.set_text("cluster.distribution", "k3s");
    let key = ferry_bundle::PublicKey::load(&dir.join("apps.pub")).unwrap();
    let apps =
        crate::apps::site::bundle_packages(&dir.join("apps.ferry"), &key, &dir.join("apps.pub"))
            .unwrap();
    m.bundle = BundleState::Verified(BundleInfo {
        title: "apps-site 1".into(),
        key_id: "e26b169eb901c18e".into(),
        bytes: 17920,
        items: vec![],
        apps: apps.iter().map(AppInfo::of).collect(),
    });
}

/// The app on `screen`, with what that screen shows filled in as the background jobs would.
fn on(screen: ScreenId, lang: Lang, scratch: &std::path::Path) -> App {
    let mut a = app(lang, draft(&site(scratch)), scratch);
    a.goto(screen);
    let m = &mut a.model;
    m.status = None;
    m.jobs.clear();
    let checked = |h: &RawHost, reachable: bool, f: Option<FactsRow>, problems: Vec<String>| {
        Msg::Checked(CheckReport {
            host: h.name.clone(),
            fingerprint: super::checks::fingerprint(h),
            reachable,
            facts: f,
            skew: reachable.then_some(0.2),
            problems,
            components: reachable.then(|| {
                Box::new(ferry_license::HostComponents {
                    name: h.name.clone(),
                    machine_id: Some(format!("{:032x}", h.name.len())),
                    ..Default::default()
                })
            }),
        })
    };
    match screen {
        ScreenId::Bundle => {
            m.bundle = BundleState::Verified(BundleInfo {
                title: "mcd-site 2.3.0".into(),
                key_id: "ab12cd34".into(),
                bytes: 3 << 30,
                items: vec![
                    ("k3s".into(), "k3s".into(), "v1.31.4+k3s1".into(), 70 << 20),
                    (
                        "debian-12".into(),
                        "os-packages".into(),
                        "-".into(),
                        300 << 20,
                    ),
                    ("mcd".into(), "app-package".into(), "2.3.0".into(), 2 << 30),
                ],
                apps: vec![],
            })
        }
        ScreenId::Hosts => {
            let hosts = m.draft.hosts().to_vec();
            for h in &hosts {
                m.checks.start(h);
            }
            a.update(checked(
                &hosts[0],
                true,
                Some(facts("Debian GNU/Linux 12 (bookworm)")),
                vec![],
            ));
            a.update(checked(
                &hosts[1],
                false,
                None,
                vec!["cannot connect to 10.0.0.12:22: Connection refused (os error 111); check the address, the port and that sshd runs".into()],
            ));
        }
        ScreenId::Apps => {
            apps_site(m);
            m.revalidate();
        }
        ScreenId::Review => {
            let p = plan();
            let text = p.render();
            a.model.plan = PlanState::Ready(Box::new(p), text);
        }
        ScreenId::Run | ScreenId::Done => {
            a.model.board = Board::new(&["node1".into(), "node2".into(), "node3".into()]);
            a.update(Msg::RunStarted(
                "20261203-101500-ab12".into(),
                Box::new(plan()),
                "/root/.ferry/runs/20261203-101500-ab12".into(),
            ));
            let ev = |e| Msg::Engine(e);
            a.update(ev(Event::HostSurveyed {
                host: "node1".into(),
                seconds: 1.2,
            }));
            a.update(ev(Event::HostSurveyed {
                host: "node2".into(),
                seconds: 1.4,
            }));
            a.update(ev(Event::Applied {
                host: "node1".into(),
                resource: "hostname".into(),
                seconds: 0.3,
            }));
            a.update(ev(Event::Applied {
                host: "node1".into(),
                resource: "sysctl".into(),
                seconds: 0.2,
            }));
            a.update(ev(Event::ApplyFailed {
                host: "node1".into(),
                resource: "packages".into(),
                error: "apt-get install failed: E: Unable to locate package foo".into(),
            }));
            a.update(ev(Event::Reverted {
                host: "node1".into(),
                resource: "sysctl".into(),
                seconds: 0.1,
            }));
            if screen == ScreenId::Done {
                a.update(Msg::RunEnded(Ok(RunEnd {
                    summaries: vec![
                        HostSummary {
                            host: "node1".into(),
                            outcome: Outcome::RolledBack,
                            changes: 0,
                            seconds: 9.0,
                            reason: Some("packages: apt-get install failed".into()),
                        },
                        HostSummary {
                            host: "node2".into(),
                            outcome: Outcome::NoChanges,
                            changes: 0,
                            seconds: 1.0,
                            reason: None,
                        },
                        HostSummary {
                            host: "node3".into(),
                            outcome: Outcome::Unreachable,
                            changes: 0,
                            seconds: 0.0,
                            reason: Some("cannot connect".into()),
                        },
                    ],
                    ..RunEnd::default()
                })));
            }
        }
        _ => {}
    }
    a.model.jobs.clear();
    a
}

const SCREENS: [ScreenId; 9] = [
    ScreenId::Bundle,
    ScreenId::Hosts,
    ScreenId::Roles,
    ScreenId::Cluster,
    ScreenId::Apps,
    ScreenId::License,
    ScreenId::Review,
    ScreenId::Run,
    ScreenId::Done,
];

#[test]
fn every_screen_in_both_languages_at_80x24_and_120x40() {
    let scratch = tempfile::tempdir().unwrap();
    for lang in [Lang::En, Lang::Zh] {
        for screen in SCREENS {
            for (w, h) in [(80, 24), (120, 40)] {
                let a = on(screen, lang, scratch.path());
                let name = format!("{}_{}_{w}x{h}", screen.name(), lang.code());
                insta::assert_snapshot!(name, draw(&a, w, h));
            }
        }
    }
}

#[test]
fn a_console_smaller_than_80x24_is_told_so() {
    let scratch = tempfile::tempdir().unwrap();
    let a = on(ScreenId::Bundle, Lang::En, scratch.path());
    assert!(draw(&a, 60, 20).starts_with("The window is 60x20; the wizard needs at least 80x24."));
}

fn press(a: &mut App, code: KeyCode) {
    a.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn ctrl(a: &mut App, c: char) {
    a.update(Msg::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::CONTROL,
    )));
}

fn typed(a: &mut App, s: &str) {
    for c in s.chars() {
        press(a, KeyCode::Char(c));
    }
}

#[test]
fn a_required_field_keeps_the_wizard_until_it_is_filled_with_validates_message() {
    let scratch = tempfile::tempdir().unwrap();
    let answers = site(scratch.path());
    let mut d = draft(&answers);
    d.set("cluster.name", Some("".into()));
    let mut a = app(Lang::En, d, scratch.path());
    a.goto(ScreenId::Cluster);
    let msg = format!(
        "{}: cluster.name: is empty; name the cluster (name = \"site-a\")",
        answers.display()
    );
    let msg = msg.as_str();
    assert_eq!(a.visible_problem(), Some(msg));
    press(&mut a, KeyCode::PageDown);
    assert_eq!(a.screen(), ScreenId::Cluster, "not past an invalid screen");
    assert_eq!(
        a.model.status.as_deref(),
        Some(format!("fix this first: {msg}").as_str())
    );
    // Enter edits the focused field, typing fills it, Enter keeps it.
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "site-b");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.model.draft.get_text("cluster.name"), "site-b");
    assert_eq!(a.model.problem, None);
    press(&mut a, KeyCode::PageDown);
    assert_eq!(a.screen(), ScreenId::Apps);
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.screen(), ScreenId::Cluster, "Esc goes back a screen");
}

#[test]
fn tab_moves_through_the_fields_and_esc_drops_an_edit() {
    let scratch = tempfile::tempdir().unwrap();
    let mut a = app(Lang::En, draft(&site(scratch.path())), scratch.path());
    a.goto(ScreenId::Cluster);
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "ferry-fixed");
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.model.draft.get("cluster.id"), None, "Esc drops the edit");
    assert_eq!(a.screen(), ScreenId::Cluster, "and stays on the screen");
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "bad id!");
    press(&mut a, KeyCode::Enter);
    assert_eq!(
        a.visible_problem(),
        Some(format!("{}: cluster.id: \"bad id!\" may hold only letters, digits, '-', '_' and '.'; remove it to use the default", site(scratch.path()).display()).as_str())
    );
    // Focus moved on to the next field; back to the id, emptied, and on to strict host keys,
    // which Space toggles.
    press(&mut a, KeyCode::BackTab);
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Char('u'));
    ctrl(&mut a, 'u');
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.model.problem, None);
    assert_eq!(a.model.draft.get("cluster.id"), None);
    // The distribution is a choice: Space cycles none -> k3s -> none.
    press(&mut a, KeyCode::Char(' '));
    assert_eq!(a.model.draft.get_text("cluster.distribution"), "k3s");
    press(&mut a, KeyCode::Char(' '));
    assert_eq!(a.model.draft.get("cluster.distribution"), None);
    for _ in 0..7 {
        press(&mut a, KeyCode::Tab);
    }
    press(&mut a, KeyCode::Char(' '));
    assert_eq!(
        a.model
            .draft
            .get("ssh.strict-host-keys")
            .and_then(|v| v.as_bool()),
        Some(true)
    );
}

#[test]
fn a_saved_answer_file_passes_validate_and_holds_no_typed_secret() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let answers = dir.path().join("site.toml");
    std::fs::write(dir.path().join("id_ed25519"), "a private key\n").unwrap();
    let mut d = draft(&answers);
    d.answers.remove("bundle");
    d.answers.remove("bundle-pubkey");
    let mut a = app(Lang::En, d, scratch.path());
    a.goto(ScreenId::Hosts);
    // Edit node2: its password, typed here, stays in memory; the file names a variable.
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Enter);
    for _ in 0..6 {
        press(&mut a, KeyCode::Tab);
    }
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "s3cret-pw");
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Esc);
    assert!(a
        .model
        .jobs
        .contains(&Job::CheckHosts(vec!["node2".into()])));
    ctrl(&mut a, 's');
    let inv = std::fs::read_to_string(dir.path().join("inventory.toml")).unwrap();
    let site = std::fs::read_to_string(&answers).unwrap();
    assert!(!inv.contains("s3cret-pw") && !site.contains("s3cret-pw"));
    assert!(
        inv.contains("password_env = \"FERRY_PASSWORD_NODE2\""),
        "{inv}"
    );
    let cfg = crate::config::InstallConfig::load(&answers).unwrap();
    assert_eq!(cfg.cluster.name, "site-a");
    assert_eq!(
        cfg.members
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["node1", "node2", "node3"]
    );
    assert_eq!(
        a.model.status.as_deref(),
        Some(
            format!(
                "saved {} and {}",
                answers.display(),
                dir.path().join("inventory.toml").display()
            )
            .as_str()
        )
    );
}

#[test]
fn host_checks_answer_in_the_background_and_a_stale_answer_is_dropped() {
    let scratch = tempfile::tempdir().unwrap();
    let mut a = app(Lang::En, draft(&site(scratch.path())), scratch.path());
    a.goto(ScreenId::Hosts);
    assert!(a.model.jobs.contains(&Job::CheckHosts(vec![
        "node1".into(),
        "node2".into(),
        "node3".into()
    ])));
    let before = a.model.draft.hosts()[0].clone();
    // node1's address is changed while its first check is out.
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Enter);
    ctrl(&mut a, 'u');
    typed(&mut a, "10.0.0.99");
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Esc);
    a.update(Msg::Checked(CheckReport {
        host: "node1".into(),
        fingerprint: super::checks::fingerprint(&before),
        reachable: true,
        facts: Some(facts("old")),
        skew: None,
        problems: vec![],
        components: None,
    }));
    assert!(matches!(
        a.model.checks.get("node1"),
        Some(super::checks::CheckState::Pending(_))
    ));
}

#[test]
fn the_run_screen_follows_engine_events_and_names_a_failure_with_what_to_do() {
    let scratch = tempfile::tempdir().unwrap();
    let a = on(ScreenId::Run, Lang::En, scratch.path());
    let b = &a.model.board;
    assert_eq!(b.phases, ["survey", "baseline"]);
    let node1 = &b.hosts[0];
    assert_eq!(
        node1.reason.as_deref(),
        Some("packages: apt-get install failed: E: Unable to locate package foo")
    );
    assert_eq!(node1.cells[1], super::board::Cell::RolledBack(1));
    // A phase the engine adds later is a new column as soon as it reports.
    let mut b = b.clone();
    b.event(Event::Applied {
        host: "node2".into(),
        resource: "k3s-server".into(),
        seconds: 1.0,
    });
    assert_eq!(b.phases, ["survey", "baseline", "cluster"]);
}

#[test]
fn leaving_remembers_the_screen_and_reopening_returns_there() {
    let home = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut a = app(
        Lang::En,
        draft(&home.path().join("site.toml")),
        scratch.path(),
    );
    a.goto(ScreenId::Roles);
    ctrl(&mut a, 'c');
    assert!(a.quit);
    super::remember(home.path(), &a).unwrap();
    let args = crate::cmdline::install::InstallArgs {
        answers: None,
        yes: false,
        edit: false,
        new: false,
        lang: None,
        no_rollback: false,
        force: vec![],
        reach: crate::cmdline::ReachArgs {
            known_hosts: None,
            timeout: 10,
            command_timeout: 900,
            strict_host_keys: false,
            attempts: 2,
            parallel: 64,
            run_dir: None,
            agent: None,
            relay_min_mib: 256,
        },
    };
    let (d, screen, resumed) = super::starting_point(&args, home.path()).unwrap();
    assert!(resumed);
    assert_eq!(screen, ScreenId::Roles);
    assert_eq!(d.hosts().len(), 3);
    assert_eq!(d.get_text("cluster.name"), "site-a");
}

#[test]
fn the_apps_screen_writes_each_value_as_its_type_and_names_a_wrong_one_as_validate_does() {
    let scratch = tempfile::tempdir().unwrap();
    let answers = site(scratch.path());
    let mut a = app(Lang::En, draft(&answers), scratch.path());
    apps_site(&mut a.model);
    // Not yet verified (as when the wizard reopens): the screen reads the bundle itself.
    a.model.bundle = BundleState::Unchecked;
    a.goto(ScreenId::Apps);
    assert!(a.model.jobs.contains(&Job::VerifyBundle));
    apps_site(&mut a.model);
    a.model.revalidate();
    let shown = |a: &App| a.visible_problem().map(str::to_string);
    let path = answers.display();
    // A parameter without a default keeps the wizard here, with validate's message.
    assert_eq!(
        shown(&a).as_deref(),
        Some(format!("{path}: [apps.values.shop]: app shop: parameter admin-email has no default and no value was given: give it for this site (Who gets the shop's alerts.)").as_str())
    );
    press(&mut a, KeyCode::PageDown);
    assert_eq!(a.screen(), ScreenId::Apps);

    // The rows after the five [apps] keys are the parameters: replicas, title, debug, admin-email.
    for _ in 0..5 {
        press(&mut a, KeyCode::Tab);
    }
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "many");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.model.draft.get_text("apps.values.shop.replicas"), "many");
    assert_eq!(
        shown(&a).as_deref(),
        Some(format!("{path}: [apps.values.shop]: app shop: parameter replicas is of type integer, and \"many\" is not: write a whole number, e.g. 3").as_str())
    );
    press(&mut a, KeyCode::Up);
    press(&mut a, KeyCode::Enter);
    ctrl(&mut a, 'u');
    typed(&mut a, "3");
    press(&mut a, KeyCode::Enter);
    // On to title (left at its default), debug and admin-email.
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "true");
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "ops@site.example");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.model.problem, None);

    // The [apps] keys: a package the bundle lacks and a timeout that is not a number are named
    // as validate names them.
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "shopx");
    press(&mut a, KeyCode::Enter);
    let p = shown(&a).unwrap();
    assert!(
        p.ends_with(
            "apps.deploy: `shopx` is not a package of the bundle (it carries: shop); fix the \
             name or rebuild the bundle with it"
        ),
        "{p}"
    );
    press(&mut a, KeyCode::BackTab);
    press(&mut a, KeyCode::Enter);
    ctrl(&mut a, 'u');
    typed(&mut a, "shop");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.model.problem, None);
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "ai.site.example");
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "soon");
    press(&mut a, KeyCode::Enter);
    let p = shown(&a).unwrap();
    assert!(
        p.starts_with(&format!("{path}:"))
            && p.ends_with(": apps.timeout: expected a whole number like 2, found \"soon\""),
        "{p}"
    );
    press(&mut a, KeyCode::BackTab);
    press(&mut a, KeyCode::Enter);
    ctrl(&mut a, 'u');
    typed(&mut a, "600");
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Char(' '));
    assert_eq!(a.model.problem, None);

    // Saved: the [apps] table as typed, each value of its type, and ferry validate's checks
    // pass on the file.
    ctrl(&mut a, 's');
    let saved: toml::Table = toml::from_str(&std::fs::read_to_string(&answers).unwrap()).unwrap();
    let want: toml::Table = toml::from_str(
        r#"
        deploy = ["shop"]
        domain = "ai.site.example"
        timeout = 600
        gpu-unavailable = "allow"
        [values.shop]
        replicas = 3
        debug = true
        admin-email = "ops@site.example"
        "#,
    )
    .unwrap();
    assert_eq!(saved["apps"], toml::Value::Table(want));
    let cfg = crate::config::InstallConfig::load(&answers).unwrap();
    crate::commands::host::check_offline(&cfg, &answers).unwrap();
    press(&mut a, KeyCode::PageDown);
    assert_eq!(a.screen(), ScreenId::License);
}

#[test]
fn a_secret_parameter_is_written_as_the_variable_that_holds_it_never_in_clear() {
    let scratch = tempfile::tempdir().unwrap();
    let mut a = app(Lang::En, draft(&site(scratch.path())), scratch.path());
    let spec: ferry_apps::AppSpec = serde_yaml_ng::from_str(
        "name: vault\nversion: 1.0.0\ndescription: Keeps keys.\n\
         parameters:\n  - {name: token, type: secret, description: The unseal token.}\n\
         components:\n  - {name: web, kind: service, image: \"demo/tool:1.0@sha256:21da991fe7d2921bc4cd855ba873926bb4ef2cc684a3f10255b50a201592e1d4\"}\n",
    )
    .unwrap();
    a.model.bundle = BundleState::Verified(BundleInfo {
        title: "t 1".into(),
        key_id: "k".into(),
        bytes: 1,
        items: vec![],
        apps: vec![AppInfo {
            name: "vault".into(),
            version: "1.0.0".into(),
            description: spec.description.clone(),
            parameters: spec.parameters.clone(),
        }],
    });
    a.goto(ScreenId::Apps);
    for _ in 0..5 {
        press(&mut a, KeyCode::Tab);
    }
    press(&mut a, KeyCode::Enter);
    assert!(
        a.screens[a.current].editing(),
        "the variable's name is typed"
    );
    let status = a.model.status.clone().unwrap_or_default();
    assert!(
        status.starts_with("token is a secret: type the name of the environment variable")
            && status.contains("FERRY_APP_"),
        "{status}"
    );
    // The proposed name is replaced by the engineer's.
    for _ in 0..40 {
        press(&mut a, KeyCode::Backspace);
    }
    typed(&mut a, "SITE_TOKEN");
    press(&mut a, KeyCode::Enter);
    assert_eq!(
        a.model.draft.get_text("apps.values.vault.token.env"),
        "SITE_TOKEN"
    );
    let table = a.model.draft.get("apps.values.vault.token").unwrap();
    assert_eq!(table.as_table().map(|t| t.len()), Some(1), "{table}");
}

#[test]
fn the_done_screen_after_a_good_install_names_the_kubeconfig_logs_and_the_repeat_command() {
    let scratch = tempfile::tempdir().unwrap();
    for lang in [Lang::En, Lang::Zh] {
        let mut a = app(lang, draft(&site(scratch.path())), scratch.path());
        a.model.draft.set_text("cluster.distribution", "k3s");
        let names = ["node1", "node2", "node3"];
        a.goto(ScreenId::Run);
        a.model.jobs.clear();
        a.update(Msg::RunStarted(
            "20261203-101500-ab12".into(),
            Box::new(plan()),
            "/root/.ferry/runs/20261203-101500-ab12".into(),
        ));
        let kubeconfig = std::path::PathBuf::from("/root/.ferry/clusters/site-a/kubeconfig");
        let report = crate::cluster::ClusterReport {
            ready: true,
            nodes: names
                .iter()
                .map(|n| crate::cluster::NodeLine {
                    name: n.to_string(),
                    ready: "True".into(),
                    message: String::new(),
                })
                .collect(),
            kubeconfig: Some(kubeconfig.clone()),
            version: "v1.30.4+k3s1".into(),
        };
        a.update(Msg::RunEnded(Ok(RunEnd {
            summaries: names
                .iter()
                .map(|n| HostSummary {
                    host: n.to_string(),
                    outcome: Outcome::Ok,
                    changes: 9,
                    seconds: 30.0,
                    reason: None,
                })
                .collect(),
            cluster: Some(crate::commands::host::render_cluster(&report)),
            kubeconfig: Some(kubeconfig),
            // As ferry apply's summary ends: the license activated, then each app.
            apps: Some(
                "license: lic-0123456789abcdef for Site A: valid until 2027-12-31 (393 days \
                 left), 3 of 10 nodes, 0 GPUs, modules mcd; installed on 3 hosts\n\
                 app shop 1.2.0: deployed as revision 1, healthy (apply 0.4s, healthy after \
                 3.1s)\n"
                    .into(),
            ),
        })));
        // A run that ended well goes to Done by itself.
        assert_eq!(a.screen(), ScreenId::Done);
        for (w, h) in [(80, 24), (120, 40)] {
            let screen = draw(&a, w, h);
            // Read as a person reads it: lines wrapped at the edge joined again.
            let read = screen.split_whitespace().collect::<Vec<_>>().join(" ");
            if lang == Lang::En {
                for want in [
                    "Every host is installed.",
                    "kubeconfig: /root/.ferry/clusters/site-a/kubeconfig (try: KUBECONFIG=",
                    "Journal and logs: /root/.ferry/runs/20261203-101500-ab12 (each host's log",
                    "Next site: ferry install --answers /site/site.toml --yes",
                    "license: lic-0123456789abcdef for Site A: valid until 2027-12-31",
                ] {
                    assert!(read.contains(want), "{want:?} not on:\n{screen}");
                }
                // The license's own status, not the pointer to `ferry license status`.
                assert!(!read.contains("License: see"), "{screen}");
            }
            insta::assert_snapshot!(format!("done_ok_{}_{w}x{h}", lang.code()), screen);
        }
    }
}

#[test]
fn the_license_screen_gives_the_request_command_and_opens_the_named_license() {
    let scratch = tempfile::tempdir().unwrap();
    let answers = site(scratch.path());
    let mut a = app(Lang::En, draft(&answers), scratch.path());
    a.goto(ScreenId::License);
    let screen = draw(&a, 120, 40);
    assert!(
        screen.contains("ferry license request -i inventory.toml --state-dir "),
        "{screen}"
    );
    assert!(screen.contains("No license named"), "{screen}");
    // A file that is not a license: ferry's own reason, in one line.
    std::fs::write(answers.with_file_name("site.lic"), "not a license\n").unwrap();
    press(&mut a, KeyCode::Enter);
    typed(&mut a, "site.lic");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.model.draft.get_text("license.file"), "site.lic");
    let screen = draw(&a, 120, 40);
    assert!(
        screen.contains("This license cannot be opened here: reading "),
        "{screen}"
    );
    // Emptied again: no license, and nothing about one in the answer file.
    // (Enter kept the value and moved to the next field: Up comes back to the file.)
    press(&mut a, KeyCode::Up);
    press(&mut a, KeyCode::Enter);
    for _ in 0.."site.lic".len() {
        press(&mut a, KeyCode::Backspace);
    }
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.model.draft.get_text("license.file"), "");
    assert!(draw(&a, 120, 40).contains("No license named"));
}

#[test]
fn the_license_screen_exports_the_request_from_the_host_checks_and_shows_it_as_a_qr_code() {
    let scratch = tempfile::tempdir().unwrap();
    let answers = site(scratch.path());
    let mut a = app(Lang::En, draft(&answers), scratch.path());
    a.model.draft.set_text("license.state-dir", "state");
    a.goto(ScreenId::License);
    // Entering the screen starts the checks the export reads.
    let hosts = a.model.draft.hosts().to_vec();
    assert!(hosts.len() >= 2);
    assert!(a.model.jobs.contains(&Job::CheckHosts(
        hosts.iter().map(|h| h.name.clone()).collect()
    )));
    let status = |a: &App| a.model.status.clone().unwrap_or_default();
    press(&mut a, KeyCode::Char('r'));
    assert_eq!(
        status(&a),
        "Press x first to export the request; r then shows it as a QR code."
    );
    press(&mut a, KeyCode::Char('x'));
    assert_eq!(
        status(&a),
        format!(
            "Host {} is not checked yet: wait for its check (Hosts screen shows it), then press x again.",
            hosts[0].name
        )
    );
    let report = |h: &RawHost, read: bool| CheckReport {
        host: h.name.clone(),
        fingerprint: super::checks::fingerprint(h),
        reachable: read,
        facts: read.then(|| facts("Debian GNU/Linux 12 (bookworm)")),
        skew: read.then_some(-3.0),
        problems: if read {
            vec![]
        } else {
            vec!["cannot connect: Connection refused; fix: check the address".into()]
        },
        components: read.then(|| {
            Box::new(ferry_license::HostComponents {
                name: h.name.clone(),
                machine_id: Some(format!("{:032x}", h.name.len() + 7)),
                macs: vec!["52:54:00:12:34:56".into()],
                ..Default::default()
            })
        }),
    };
    // One host unreachable: named, with its check's problem; nothing written.
    a.update(Msg::Checked(report(&hosts[0], true)));
    a.update(Msg::Checked(report(&hosts[1], false)));
    press(&mut a, KeyCode::Char('x'));
    assert_eq!(
        status(&a),
        format!(
            "Host {}'s fingerprint could not be read (cannot connect: Connection refused; fix: check the address): fix the host on the Hosts screen, then press x again.",
            hosts[1].name
        )
    );
    let dir = answers.parent().unwrap();
    let written = || -> Vec<_> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                n.starts_with("site-request-").then_some(n)
            })
            .collect()
    };
    assert!(written().is_empty());

    // Every host read: the request file (0600) and the activation record, as the CLI makes them.
    for h in &hosts[1..] {
        a.update(Msg::Checked(report(h, true)));
    }
    press(&mut a, KeyCode::Char('x'));
    let files = written();
    assert_eq!(files.len(), 1, "{files:?}");
    let path = dir.join(&files[0]);
    assert_eq!(
        status(&a),
        format!(
            "Request written to {} (mode 0600): send it to the vendor; r shows it as a QR code for a phone.",
            path.display()
        )
    );
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let req = ferry_license::ActivationRequest::parse(text.as_bytes()).unwrap();
    assert_eq!(req.fingerprint.hosts.len(), hosts.len());
    assert_eq!(files[0], format!("site-request-{}.txt", req.id));
    let state = ferry_license::StateDir::new(dir.join("state"));
    assert!(
        state.load_request(&req.id).is_ok(),
        "the activation record is kept"
    );
    // Nothing about the request in the answer file.
    assert!(a.model.draft.get("license.file").is_none());

    // r: the QR code where it fits; the size it needs where it does not; any key goes back.
    press(&mut a, KeyCode::Char('r'));
    let small = draw(&a, 80, 24);
    assert!(
        small.contains("The QR code needs a terminal of ") && small.contains("this one is 80 by "),
        "{small}"
    );
    let big = draw(&a, 200, 100);
    assert!(big.contains('█') && big.contains('▀'), "{big}");
    assert!(!big.contains("BEGIN FERRY"), "drawn as a code, not as text");
    press(&mut a, KeyCode::Char('q'));
    assert!(draw(&a, 120, 40).contains("Press x to export"));
}
