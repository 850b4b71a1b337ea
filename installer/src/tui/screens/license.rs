//! The license: activation is an offline exchange with the vendor. `x` exports this site's
//! activation request from the hosts' live checks (their fingerprints, read with their facts:
//! no second login), keeps the activation record in the state directory and writes the request
//! beside the answer file; `r` shows it as a QR code for a phone when the terminal is large
//! enough. The same request comes from the printed `ferry license request` command. The screen
//! then takes the license file the vendor returns and shows what it grants, opened with the
//! activation record on this machine. `ferry apply` activates it on every host before the
//! apps; an install without apps needs none.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::form::{Field, Form, Kind};
use super::{Flow, Screen, ScreenId};
use crate::engine::events::one_line;
use crate::tui::app::Model;
use crate::tui::checks::CheckState;
use crate::tui::draft::Draft;
use crate::tui::text::{fill, Text};
use zeroize::Zeroizing;

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
    /// The request exported on this screen, as text (armored): the QR view shows it.
    request: Option<Zeroizing<String>>,
    /// The QR view is up.
    qr: bool,
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
            request: None,
            qr: false,
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

/// The activation request of the draft's hosts, made from their checks: every host needs a
/// check of its current entry that read its fingerprint. The activation record is kept in the
/// state directory (as `ferry license request` keeps it) and the request written beside the
/// answer file, mode 0600 (it carries the activation secret). The file and the request's
/// text, or one line saying what to do first.
fn export(m: &Model) -> Result<(PathBuf, Zeroizing<String>), String> {
    use ferry_license::{time, ActivationRequest, StateDir, Usage};
    let t = m.text;
    let hosts = m.draft.hosts();
    if hosts.is_empty() {
        return Err(t.license_export_no_hosts.to_string());
    }
    let local = time::now();
    let (mut components, mut gpus, mut clocks) = (Vec::new(), 0u32, Vec::new());
    for h in hosts {
        let report = match m.checks.get(&h.name) {
            Some(CheckState::Done(r)) if !m.checks.stale(h) => r,
            _ => return Err(fill(t.license_export_unchecked, &[&h.name])),
        };
        match &report.components {
            Some(c) if !crate::site_license::is_blank(c) => components.push((**c).clone()),
            _ => {
                let why = report.problems.first().map(String::as_str).unwrap_or("-");
                return Err(fill(t.license_export_unread, &[&h.name, &why]));
            }
        }
        gpus += report.facts.as_ref().map_or(0, |f| f.gpus as u32);
        if let Some(skew) = report.skew {
            clocks.push((h.name.clone(), local + skew.round() as i64));
        }
    }
    let (now, _) = crate::site_license::earliest_clock(&clocks, local);
    let nodes = u32::try_from(components.len()).unwrap_or(u32::MAX);
    let req = ActivationRequest::new(&components, Usage { nodes, gpus }, now)
        .map_err(|e| one_line(&e))?;
    let state = StateDir::new(state_dir(&m.draft));
    state.save_request(&req).map_err(|e| {
        fill(
            t.license_export_state,
            &[&state.path().display(), &one_line(&e)],
        )
    })?;
    let text = req.to_armored();
    let path = m.draft.base().join(format!("site-request-{}.txt", req.id));
    ferry_license::write_new(&path, text.as_bytes(), 0o600)
        .map_err(|e| format!("{}: {}", path.display(), one_line(&e)))?;
    Ok((path, text))
}

/// `text` as a QR code of terminal cells (two modules a row), or the size it needs.
fn qr_lines(text: &str) -> Result<Vec<String>, String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L)
        .map_err(|e| e.to_string())?;
    let image = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build();
    Ok(image.lines().map(str::to_string).collect())
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
        // The export reads the hosts' checks: start those not done for the current entries.
        super::hosts::HostsScreen::check_stale(m);
    }

    fn editing(&self) -> bool {
        self.form.input.is_some()
    }

    fn key(&mut self, k: KeyEvent, m: &mut Model) -> Flow {
        if self.qr {
            // Any key closes the QR view.
            self.qr = false;
            return Flow::Handled;
        }
        if self.form.input.is_none() {
            match k.code {
                KeyCode::Char('x') => {
                    m.status = Some(match export(m) {
                        Ok((path, text)) => {
                            self.request = Some(text);
                            fill(m.text.license_exported, &[&path.display()])
                        }
                        Err(why) => why,
                    });
                    return Flow::Handled;
                }
                KeyCode::Char('r') => {
                    match &self.request {
                        Some(_) => self.qr = true,
                        None => m.status = Some(m.text.license_qr_first.to_string()),
                    }
                    return Flow::Handled;
                }
                _ => {}
            }
        }
        let flow = self.form.key(k, &mut m.draft, 0);
        if flow == Flow::Edited {
            self.opened = open(&m.draft, m.text);
        }
        flow
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        if let (true, Some(text)) = (self.qr, &self.request) {
            return self.render_qr(m, f, area, text);
        }
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

    fn hints(&self, t: &'static Text) -> &'static str {
        match (self.editing(), self.qr) {
            (true, _) => t.keys_edit,
            (false, true) => t.keys_qr,
            (false, false) => t.keys_license,
        }
    }
}

impl LicenseScreen {
    /// The exported request as a QR code, or the terminal size it needs.
    fn render_qr(&self, m: &Model, f: &mut Frame, area: Rect, text: &str) {
        let lines = match qr_lines(text) {
            Ok(l) => l,
            Err(e) => {
                let msg = fill(m.text.license_qr_too_long, &[&e]);
                return f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
            }
        };
        let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        if lines.len() > usize::from(area.height) || width > usize::from(area.width) {
            let msg = fill(
                m.text.license_qr_small,
                &[
                    &(width),
                    &(lines.len() + 2),
                    &area.width,
                    &(area.height + 2),
                ],
            );
            return f.render_widget(
                Paragraph::new(msg)
                    .wrap(Wrap { trim: true })
                    .style(m.theme.warn()),
                area,
            );
        }
        // Drawn as is: the code's own light and dark cells, whatever the theme.
        f.render_widget(Paragraph::new(lines.join("\n")), area);
    }
}
