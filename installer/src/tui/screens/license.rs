//! The license: activation is an offline exchange with the vendor. The screen gives the exact
//! command that exports this site's activation request (every host of the inventory is read
//! over SSH, `--qr` shows it for a phone), then takes the license file the vendor returns and
//! shows what it grants, opened with the activation record on this machine. `ferry apply`
//! activates it on every host before the apps; an install without apps needs none.

use std::path::PathBuf;

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::form::{Field, Form, Kind};
use super::{Flow, Screen, ScreenId};
use crate::engine::events::one_line;
use crate::tui::app::Model;
use crate::tui::draft::Draft;
use crate::tui::text::{fill, Text};

/// What the named license file says, read when the screen is shown and after each edit.
#[derive(Debug, Clone, PartialEq)]
enum Opened {
    /// No license file named.
    None,
    /// Its id, customer, last day, node limit and granted modules.
    Grants(String),
    /// Why it cannot be read (one line, ferry's own words).
    Problem(String),
}

/// The license screen.
pub struct LicenseScreen {
    form: Form,
    opened: Opened,
}

impl Default for LicenseScreen {
    fn default() -> Self {
        LicenseScreen {
            form: Form::new(vec![
                Field {
                    key: "license.file",
                    label: |t| t.field_license_file,
                    kind: Kind::Text,
                },
                Field {
                    key: "license.state-dir",
                    label: |t| t.field_license_state,
                    kind: Kind::Text,
                },
            ]),
            opened: Opened::None,
        }
    }
}

/// The state directory the draft names, else the one `ferry license` uses.
fn state_dir(d: &Draft) -> PathBuf {
    let given = d.get_text("license.state-dir");
    if !given.is_empty() {
        return d.base().join(given);
    }
    std::env::var_os("FERRY_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ferry_license::DEFAULT_STATE_DIR))
}

/// Opens the license the draft names, offline, as `ferry validate` does.
fn open(d: &Draft, t: &'static Text) -> Opened {
    let file = d.get_text("license.file");
    if file.is_empty() {
        return Opened::None;
    }
    let keys = match ferry_license::TrustRoot::built_in() {
        Ok(k) => k,
        Err(e) => return Opened::Problem(one_line(&e)),
    };
    let state = ferry_license::StateDir::new(state_dir(d));
    match crate::site_license::open_offline(&d.base().join(&file), &state, &keys) {
        Ok(l) => {
            let granted = l.entitlements.granted();
            let modules = if granted.is_empty() {
                "-".to_string()
            } else {
                granted.join(", ")
            };
            Opened::Grants(fill(
                t.license_grants,
                &[
                    &l.id,
                    &l.customer,
                    &ferry_license::time::format_date(l.expires.saturating_sub(1)),
                    &l.entitlements.max_nodes,
                    &modules,
                ],
            ))
        }
        Err(e) => Opened::Problem(fill(t.license_problem, &[&one_line(&e)])),
    }
}

/// The command that exports this site's activation request.
fn request_command(d: &Draft) -> String {
    let inventory = d.get_text("inventory");
    let inventory = if inventory.is_empty() {
        "inventory.toml".to_string()
    } else {
        inventory
    };
    format!(
        "ferry license request -i {inventory} --state-dir {} -o site-request.txt --qr",
        state_dir(d).display()
    )
}

impl Screen for LicenseScreen {
    fn id(&self) -> ScreenId {
        ScreenId::License
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_license
    }

    fn owns(&self, key: &str) -> bool {
        self.form.owns(key) || key.starts_with("license")
    }

    fn enter(&mut self, m: &mut Model) {
        self.opened = open(&m.draft, m.text);
    }

    fn editing(&self) -> bool {
        self.form.input.is_some()
    }

    fn key(&mut self, k: KeyEvent, m: &mut Model) -> Flow {
        let flow = self.form.key(k, &mut m.draft, 0);
        if flow == Flow::Edited {
            self.opened = open(&m.draft, m.text);
        }
        flow
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        let [intro, request, command, steps, fields, opened] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(2),
            Constraint::Length(3),
            Constraint::Length(3),
            Constraint::Length(3),
            Constraint::Min(0),
        ])
        .areas(area);
        let wrap = |text: String| Paragraph::new(text).wrap(Wrap { trim: true });
        f.render_widget(wrap(m.text.license_intro.to_string()), intro);
        f.render_widget(wrap(m.text.license_request.to_string()), request);
        f.render_widget(wrap(format!("  {}", request_command(&m.draft))), command);
        f.render_widget(wrap(m.text.license_steps.to_string()), steps);
        let w = self.form.label_width(m.text);
        self.form.render(m, f, fields, w);
        let (text, style) = match &self.opened {
            Opened::None => (m.text.license_none.to_string(), m.theme.warn()),
            Opened::Grants(s) => (s.clone(), m.theme.ok()),
            Opened::Problem(s) => (s.clone(), m.theme.warn()),
        };
        f.render_widget(wrap(text).style(style), opened);
    }
}
