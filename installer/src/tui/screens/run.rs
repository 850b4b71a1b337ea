//! The install: hosts x phases from the engine's events, the selected host's log, and a failed
//! host's one-line reason with what to do. Rollbacks show as they happen (`undo N`).

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::{Flow, Screen, ScreenId};
use crate::tui::app::{Job, Model};
use crate::tui::board::{Board, Cell};
use crate::tui::text::{fill, Text};
use crate::tui::theme::Theme;

/// The run screen.
#[derive(Default)]
pub struct RunScreen {
    selected: usize,
    started: bool,
}

fn phase_title(t: &'static Text, phase: &'static str) -> String {
    match phase {
        "survey" => t.col_phase_survey.to_string(),
        other => other.to_uppercase(),
    }
}

fn cell(c: &Cell, th: Theme) -> (String, Style) {
    match c {
        Cell::Pending => ("-".into(), th.dim()),
        Cell::Running(step) => (format!("{step}..."), th.warn()),
        Cell::Done => ("ok".into(), th.ok()),
        Cell::Unchanged => ("no changes".into(), th.ok()),
        Cell::Failed(step) if step.is_empty() => ("FAIL".into(), th.bad()),
        Cell::Failed(step) => (format!("FAIL {step}"), th.bad()),
        Cell::RolledBack(n) => (format!("undo {n}"), th.warn()),
        Cell::Skipped => ("skipped".into(), th.dim()),
    }
}

impl RunScreen {
    fn window(&self, rows: usize, height: usize) -> usize {
        if height == 0 || self.selected < height {
            0
        } else {
            (self.selected + 1 - height).min(rows.saturating_sub(height))
        }
    }
}

impl Screen for RunScreen {
    fn id(&self) -> ScreenId {
        ScreenId::Run
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_run
    }

    fn enter(&mut self, m: &mut Model) {
        // One install per wizard: coming back shows the same run.
        if !self.started {
            self.started = true;
            let names: Vec<String> = m.draft.hosts().iter().map(|h| h.name.clone()).collect();
            m.board = Board::new(&names);
            m.jobs.push(Job::Install);
        }
    }

    fn can_leave(&self) -> bool {
        false
    }

    fn key(&mut self, k: KeyEvent, m: &mut Model) -> Flow {
        let n = m.board.hosts.len();
        match k.code {
            KeyCode::Down | KeyCode::Char('j') if n > 0 => {
                self.selected = (self.selected + 1).min(n - 1)
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::PageDown if m.board.ended => return Flow::Next,
            _ => return Flow::Ignored,
        }
        Flow::Handled
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        let t = m.text;
        let th = m.theme;
        let b = &m.board;
        let [head, table, detail] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Percentage(55),
            Constraint::Min(4),
        ])
        .areas(area);
        let head_line = match (&b.run_id, &b.error) {
            (_, Some(e)) => Span::styled(fill(t.run_error, &[e]), th.bad()),
            (None, None) => Span::styled(t.run_starting, th.warn()),
            (Some(id), None) => {
                Span::raw(fill(t.run_running, &[id, &b.finished(), &b.hosts.len()]))
            }
        };
        f.render_widget(Paragraph::new(head_line), head);

        let visible = table.height.saturating_sub(1) as usize;
        let start = self.window(b.hosts.len(), visible);
        let mut header = vec![Span::styled(t.col_host, th.heading())];
        header.extend(
            b.phases
                .iter()
                .map(|p| Span::styled(phase_title(t, p), th.heading())),
        );
        let rows: Vec<Row> = b
            .hosts
            .iter()
            .enumerate()
            .skip(start)
            .take(visible)
            .map(|(i, h)| {
                let mut cells = vec![Span::raw(h.name.clone())];
                cells.extend(h.cells.iter().map(|c| {
                    let (s, st) = cell(c, th);
                    Span::styled(s, st)
                }));
                let row = Row::new(cells);
                if i == self.selected {
                    row.style(th.selected())
                } else {
                    row
                }
            })
            .collect();
        let mut widths = vec![Constraint::Length(20)];
        widths.extend(b.phases.iter().map(|_| Constraint::Length(18)));
        f.render_widget(Table::new(rows, widths).header(Row::new(header)), table);

        if let Some(h) = b.hosts.get(self.selected) {
            let mut lines: Vec<Line> = Vec::new();
            if let Some(r) = &h.reason {
                lines.push(Line::styled(fill(t.run_reason, &[r]), th.bad()));
                if h.outcome.is_some_and(|o| !o.success()) {
                    let log = b
                        .run_dir
                        .as_ref()
                        .map(|d| d.join(format!("{}.log", h.name)).display().to_string())
                        .unwrap_or_default();
                    let fix = match r.split_once("; fix: ") {
                        Some((_, fix)) => fix.to_string(),
                        None => fill(t.run_fix_failed, &[&log]),
                    };
                    lines.push(Line::raw(fill(t.run_fix, &[&fix])));
                }
            }
            let room = (detail.height as usize).saturating_sub(2 + lines.len());
            let skip = h.log.len().saturating_sub(room);
            lines.extend(h.log.iter().skip(skip).map(|l| Line::raw(l.clone())));
            f.render_widget(
                Paragraph::new(lines).wrap(Wrap { trim: false }).block(
                    Block::default()
                        .borders(Borders::TOP)
                        .title(fill(t.run_log, &[&h.name])),
                ),
                detail,
            );
        }
    }

    fn hints(&self, t: &'static Text) -> &'static str {
        t.run_keys
    }
}
