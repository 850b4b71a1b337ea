//! Done: what the install did, where its journal and logs are, the answer file that repeats
//! it unattended, and what comes after (kubeconfig, license).

use crossterm::event::KeyEvent;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{Flow, Screen, ScreenId};
use crate::tui::app::Model;
use crate::tui::text::{fill, Text};

/// The done screen.
pub struct DoneScreen;

impl Screen for DoneScreen {
    fn id(&self) -> ScreenId {
        ScreenId::Done
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_done
    }

    fn key(&mut self, _k: KeyEvent, _m: &mut Model) -> Flow {
        Flow::Ignored
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        let t = m.text;
        let th = m.theme;
        let b = &m.board;
        let mut lines = Vec::new();
        match b.outcome_counts() {
            None => lines.push(Line::styled(t.done_not_run, th.warn())),
            Some((ok, all)) => {
                if ok == all {
                    lines.push(Line::styled(t.done_ok, th.ok()));
                } else {
                    lines.push(Line::styled(fill(t.done_partial, &[&ok, &all]), th.bad()));
                }
                lines.push(Line::raw(""));
                for row in &b.hosts {
                    lines.push(Line::raw(format!(
                        "  {:<24} {}",
                        row.name,
                        row.outcome_label()
                    )));
                }
                lines.push(Line::raw(""));
                if let Some(dir) = &b.run_dir {
                    lines.push(Line::raw(fill(t.done_logs, &[&dir.display()])));
                }
            }
        }
        let answers = m.draft.answers_path.display();
        lines.push(Line::raw(fill(t.done_answers, &[&answers])));
        lines.push(Line::raw(fill(t.done_repeat, &[&answers])));
        lines.push(Line::raw(t.done_kubeconfig));
        lines.push(Line::raw(t.done_license));
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
    }

    fn hints(&self, t: &'static Text) -> &'static str {
        t.done_keys
    }
}
