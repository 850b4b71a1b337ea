//! Review: the plan of every host, the very text `ferry plan --answers` prints for the saved
//! answer file, made in the background when the screen is shown. Enter starts the install.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{Flow, Screen, ScreenId};
use crate::tui::app::{Job, Model, PlanState};
use crate::tui::text::{fill, Text};

/// The review screen.
#[derive(Default)]
pub struct ReviewScreen {
    scroll: u16,
}

impl Screen for ReviewScreen {
    fn id(&self) -> ScreenId {
        ScreenId::Review
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_review
    }

    fn enter(&mut self, m: &mut Model) {
        self.scroll = 0;
        if m.problem.is_none() && !matches!(m.plan, PlanState::Planning(_)) {
            m.plan = PlanState::Planning(0);
            m.jobs.push(Job::Plan);
        }
    }

    fn key(&mut self, k: KeyEvent, m: &mut Model) -> Flow {
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => self.scroll = self.scroll.saturating_add(1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll = self.scroll.saturating_sub(1),
            KeyCode::Char('r') => {
                self.enter(m);
            }
            KeyCode::Enter => {
                return match &m.plan {
                    PlanState::Ready(..) => Flow::Next,
                    _ => Flow::Handled,
                }
            }
            // The run screen is reached only with Enter, after a plan.
            KeyCode::PageDown => return Flow::Handled,
            _ => return Flow::Ignored,
        }
        Flow::Handled
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        let t = m.text;
        let th = m.theme;
        let [intro, body] =
            Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(area);
        f.render_widget(
            Paragraph::new(t.review_intro).wrap(Wrap { trim: true }),
            intro,
        );
        match &m.plan {
            PlanState::None => {}
            PlanState::Planning(n) => f.render_widget(
                Paragraph::new(Span::styled(
                    fill(t.review_planning, &[n, &m.draft.hosts().len()]),
                    th.warn(),
                )),
                body,
            ),
            PlanState::Failed(e) => f.render_widget(
                Paragraph::new(Span::styled(fill(t.review_failed, &[e]), th.bad()))
                    .wrap(Wrap { trim: true }),
                body,
            ),
            PlanState::Ready(plan, text) => {
                let mut lines: Vec<Line> = text.lines().map(Line::raw).collect();
                if !plan.all_clear() {
                    lines.push(Line::styled(t.review_blocked, th.warn()));
                }
                f.render_widget(
                    Paragraph::new(lines)
                        .wrap(Wrap { trim: false })
                        .scroll((self.scroll, 0)),
                    body,
                );
            }
        }
    }

    fn hints(&self, t: &'static Text) -> &'static str {
        t.review_keys
    }
}
