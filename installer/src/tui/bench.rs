//! A benchmark, not a test: the time to draw one frame of the Hosts screen with 500 inventory
//! hosts (every one checked, with facts), still, while scrolling through all of them, and
//! while typing a filter, at 80x24 and 120x40; and the time to check the whole draft after an
//! edit (what every edit costs before the next frame). Run by `benches/tui/run.sh`, which
//! prints the figures docs/performance.md records. A frame is drawn into ratatui's
//! TestBackend: the layout, the widgets and the buffer diff, without the terminal's own
//! writing.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::app::{App, Msg};
use super::checks::{fingerprint, CheckReport};
use super::screens::ScreenId;
use super::tests::{app, draft, facts, host, site};
use super::text::Lang;

const HOSTS: usize = 500;

/// The wizard on the Hosts screen with `HOSTS` hosts, each checked (one in ten with a problem).
fn wizard(scratch: &std::path::Path) -> App {
    let mut d = draft(&site(scratch));
    d.inventory.hosts = (0..HOSTS)
        .map(|i| {
            let role = if i < 3 { "server" } else { "agent" };
            host(
                &format!("node{i:03}"),
                &format!("10.1.{}.{}", i / 250, i % 250 + 1),
                role,
            )
        })
        .collect();
    let mut a = app(Lang::En, d, scratch);
    a.goto(ScreenId::Hosts);
    let hosts = a.model.draft.hosts().to_vec();
    for (i, h) in hosts.iter().enumerate() {
        a.model.checks.start(h);
        let bad = i % 10 == 7;
        a.update(Msg::Checked(CheckReport {
            host: h.name.clone(),
            fingerprint: fingerprint(h),
            reachable: !bad,
            facts: (!bad).then(|| facts("Debian GNU/Linux 12 (bookworm)")),
            skew: (!bad).then_some(0.1),
            problems: if bad {
                vec!["cannot connect: Connection refused; fix: check the address".into()]
            } else {
                vec![]
            },
            components: None,
        }));
    }
    a.model.jobs.clear();
    a
}

fn key(a: &mut App, code: KeyCode) {
    a.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

/// Median, 95th percentile and worst, in milliseconds.
fn summary(mut t: Vec<Duration>, what: &str) -> String {
    t.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.3} ms, p95 {:.3} ms, max {:.3} ms ({} {what})",
        ms(at(0.5)),
        ms(at(0.95)),
        ms(t[t.len() - 1]),
        t.len()
    )
}

/// Applies `step` (a key, or nothing) then draws a frame; the time of both.
fn frame(a: &mut App, term: &mut Terminal<TestBackend>, step: impl FnOnce(&mut App)) -> Duration {
    let start = Instant::now();
    step(a);
    term.draw(|f| a.render(f)).unwrap();
    start.elapsed()
}

#[test]
#[ignore = "a benchmark: benches/tui/run.sh runs it and prints its figures"]
fn hosts_screen_frame_with_500_hosts() {
    let scratch = tempfile::tempdir().unwrap();
    for (w, h) in [(80u16, 24u16), (120, 40)] {
        let mut a = wizard(scratch.path());
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        for _ in 0..20 {
            frame(&mut a, &mut term, |_| {});
        }
        let still: Vec<Duration> = (0..300).map(|_| frame(&mut a, &mut term, |_| {})).collect();
        println!(
            "{w}x{h} still frame:           {}",
            summary(still, "frames")
        );
        // Down through every host: the table's window follows the selection.
        let scroll: Vec<Duration> = (0..HOSTS)
            .map(|_| frame(&mut a, &mut term, |a| key(a, KeyCode::Down)))
            .collect();
        println!(
            "{w}x{h} scroll (Down + frame): {}",
            summary(scroll, "frames")
        );
        let screen = format!("{:?}", term.backend().buffer());
        assert!(screen.contains("node499"), "scrolled to the last host");
        // `/` then `node4`, a key and a frame each; then frames with the filter on, and the
        // selection moving through what it left.
        key(&mut a, KeyCode::Home);
        let mut typing = vec![frame(&mut a, &mut term, |a| key(a, KeyCode::Char('/')))];
        for c in "node4".chars() {
            typing.push(frame(&mut a, &mut term, |a| key(a, KeyCode::Char(c))));
        }
        typing.push(frame(&mut a, &mut term, |a| key(a, KeyCode::Enter)));
        let filtered: Vec<Duration> = (0..100)
            .map(|_| frame(&mut a, &mut term, |a| key(a, KeyCode::Down)))
            .collect();
        println!(
            "{w}x{h} filter typed (key + frame): {}",
            summary(typing, "frames")
        );
        println!(
            "{w}x{h} filtered scroll:       {}",
            summary(filtered, "frames")
        );
        let screen = format!("{:?}", term.backend().buffer());
        assert!(screen.contains("filter: node4"), "the filter is on");
    }
    // An edit checks the whole draft as `ferry validate` does before the next frame.
    let mut a = wizard(scratch.path());
    let checks: Vec<Duration> = (0..20)
        .map(|_| {
            let start = Instant::now();
            a.model.revalidate();
            start.elapsed()
        })
        .collect();
    assert_eq!(a.model.problem, None);
    println!(
        "check of the draft after an edit ({HOSTS} hosts): {}",
        summary(checks, "checks")
    );
}
