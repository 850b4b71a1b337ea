//! The bundle: where the answer file is saved, the bundle and the vendor key, a verification
//! with a progress bar (in the background), and the bill of materials.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::form::{Field, Form, Kind};
use super::{Flow, Screen, ScreenId};
use crate::commands::human;
use crate::tui::app::{BundleState, Job, Model};
use crate::tui::text::{fill, Text};

/// The bundle screen.
pub struct BundleScreen {
    form: Form,
}

impl Default for BundleScreen {
    fn default() -> Self {
        BundleScreen {
            form: Form::new(vec![
                Field {
                    key: "",
                    label: |t| t.field_answers,
                    kind: Kind::AnswersPath,
                },
                Field {
                    key: "bundle",
                    label: |t| t.field_bundle,
                    kind: Kind::Text,
                },
                Field {
                    key: "bundle-pubkey",
                    label: |t| t.field_pubkey,
                    kind: Kind::Text,
                },
            ]),
        }
    }
}

impl BundleScreen {
    fn on_verify(&self) -> bool {
        self.form.focus == self.form.fields.len()
    }
}

impl Screen for BundleScreen {
    fn id(&self) -> ScreenId {
        ScreenId::Bundle
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_bundle
    }

    fn owns(&self, key: &str) -> bool {
        matches!(key, "bundle" | "bundle-pubkey")
    }

    fn editing(&self) -> bool {
        self.form.input.is_some()
    }

    fn key(&mut self, k: KeyEvent, m: &mut Model) -> Flow {
        if self.on_verify() && self.form.input.is_none() && k.code == KeyCode::Enter {
            if m.draft.get("bundle").is_some() && m.draft.get("bundle-pubkey").is_some() {
                m.bundle = BundleState::Verifying(0.0);
                m.jobs.push(Job::VerifyBundle);
            }
            return Flow::Handled;
        }
        let before = m.draft.get_text("bundle") + "\0" + &m.draft.get_text("bundle-pubkey");
        let flow = self.form.key(k, &mut m.draft, 1);
        if flow == Flow::Edited
            && before != m.draft.get_text("bundle") + "\0" + &m.draft.get_text("bundle-pubkey")
        {
            m.bundle = BundleState::Unchecked;
        }
        flow
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        let t = m.text;
        let th = m.theme;
        let [intro, fields, button, state, bom] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(self.form.fields.len() as u16),
            Constraint::Length(2),
            Constraint::Length(2),
            Constraint::Min(0),
        ])
        .areas(area);
        f.render_widget(
            Paragraph::new(t.bundle_intro).wrap(Wrap { trim: true }),
            intro,
        );
        self.form.render(m, f, fields, 20);
        let style = if self.on_verify() {
            th.selected()
        } else {
            th.heading()
        };
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::raw("  "),
                Span::styled(t.bundle_verify, style),
            ])),
            Rect {
                y: button.y + 1,
                height: 1,
                ..button
            },
        );
        let path = m.draft.get_text("bundle");
        match &m.bundle {
            BundleState::Unchecked => {
                if !path.is_empty() {
                    f.render_widget(
                        Paragraph::new(Span::styled(t.bundle_not_verified, th.dim())),
                        state,
                    );
                }
            }
            BundleState::Verifying(frac) => {
                f.render_widget(
                    Gauge::default()
                        .ratio(frac.clamp(0.0, 1.0))
                        .label(fill(t.bundle_verifying, &[&path]))
                        .gauge_style(th.ok()),
                    Rect { height: 1, ..state },
                );
            }
            BundleState::Failed(why) => {
                f.render_widget(
                    Paragraph::new(Span::styled(fill(t.bundle_bad, &[why]), th.bad()))
                        .wrap(Wrap { trim: true }),
                    state,
                );
            }
            BundleState::Verified(info) => {
                let line = format!(
                    "{}: {}",
                    info.title,
                    fill(t.bundle_verified, &[&info.items.len(), &human(info.bytes)])
                );
                f.render_widget(Paragraph::new(Span::styled(line, th.ok())), state);
                let rows: Vec<Row> = info
                    .items
                    .iter()
                    .map(|(name, kind, version, size)| {
                        Row::new(vec![
                            name.clone(),
                            kind.clone(),
                            version.clone(),
                            human(*size),
                        ])
                    })
                    .collect();
                f.render_widget(
                    Table::new(
                        rows,
                        [
                            Constraint::Percentage(45),
                            Constraint::Length(12),
                            Constraint::Length(16),
                            Constraint::Length(11),
                        ],
                    )
                    .header(Row::new(vec![t.bundle_bom, "", "", ""]).style(th.heading())),
                    bom,
                );
            }
        }
    }
}
