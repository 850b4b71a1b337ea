//! Roles: which hosts run the control plane (server) and workloads (agent), which have GPUs
//! to set up, and which one serves time to the others. Roles a host takes from a group are
//! shown and kept; only its own are toggled.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;

use super::{Flow, Screen, ScreenId};
use crate::tui::app::Model;
use crate::tui::text::{fill, Text};

const ROLES: [&str; 3] = ["server", "agent", "gpu"];

/// The roles screen.
#[derive(Default)]
pub struct RolesScreen {
    row: usize,
    col: usize,
}

/// The roles a host takes from its groups.
fn group_roles(m: &Model, host: &str) -> Vec<String> {
    m.draft
        .inventory
        .groups
        .iter()
        .filter(|g| {
            g.hosts.iter().any(|h| h == host)
                || m.draft
                    .hosts()
                    .iter()
                    .any(|h| h.name == host && h.groups.contains(&g.name))
        })
        .flat_map(|g| g.roles.clone())
        .collect()
}

/// The time source: the answer file's, else the first server, else the first host (as
/// `ferry validate` resolves it).
fn time_source(m: &Model) -> Option<String> {
    let given = m.draft.get_text("baseline.time.source");
    if !given.is_empty() {
        return Some(given);
    }
    let hosts = m.draft.hosts();
    hosts
        .iter()
        .find(|h| {
            h.roles.iter().any(|r| r == "server")
                || group_roles(m, &h.name).iter().any(|r| r == "server")
        })
        .or(hosts.first())
        .map(|h| h.name.clone())
}

impl Screen for RolesScreen {
    fn id(&self) -> ScreenId {
        ScreenId::Roles
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_roles
    }

    fn owns(&self, key: &str) -> bool {
        key.starts_with("baseline.time.source")
    }

    fn key(&mut self, k: KeyEvent, m: &mut Model) -> Flow {
        let n = m.draft.hosts().len();
        match k.code {
            KeyCode::Down | KeyCode::Char('j') if n > 0 => self.row = (self.row + 1).min(n - 1),
            KeyCode::Up | KeyCode::Char('k') => self.row = self.row.saturating_sub(1),
            KeyCode::Right | KeyCode::Tab | KeyCode::Char('l') => {
                self.col = (self.col + 1) % ROLES.len()
            }
            KeyCode::Left | KeyCode::BackTab | KeyCode::Char('h') => {
                self.col = (self.col + ROLES.len() - 1) % ROLES.len()
            }
            KeyCode::Char(' ') | KeyCode::Enter => {
                let Some(h) = m.draft.inventory.hosts.get_mut(self.row) else {
                    return Flow::Handled;
                };
                let role = ROLES[self.col].to_string();
                if let Some(i) = h.roles.iter().position(|r| *r == role) {
                    h.roles.remove(i);
                } else {
                    h.roles.push(role);
                    h.roles
                        .sort_by_key(|r| ROLES.iter().position(|x| x == r).unwrap_or(ROLES.len()));
                }
                return Flow::Edited;
            }
            KeyCode::Char('t') => {
                if let Some(h) = m.draft.hosts().get(self.row) {
                    let name = h.name.clone();
                    m.draft.set_text("baseline.time.source", &name);
                    return Flow::Edited;
                }
            }
            _ => return Flow::Ignored,
        }
        Flow::Handled
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        let t = m.text;
        let th = m.theme;
        let [intro, table, foot] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(2),
            Constraint::Length(1),
        ])
        .areas(area);
        f.render_widget(Paragraph::new(Span::styled(t.roles_intro, th.dim())), intro);
        let source = time_source(m);
        let height = table.height.saturating_sub(1) as usize;
        let start = if self.row < height {
            0
        } else {
            self.row + 1 - height
        };
        let mut servers = 0;
        let mut agents = 0;
        for h in m.draft.hosts() {
            let all: Vec<String> = h
                .roles
                .iter()
                .cloned()
                .chain(group_roles(m, &h.name))
                .collect();
            servers += usize::from(all.iter().any(|r| r == "server"));
            agents += usize::from(all.iter().any(|r| r == "agent"));
        }
        let rows: Vec<Row> = m
            .draft
            .hosts()
            .iter()
            .enumerate()
            .skip(start)
            .take(height)
            .map(|(i, h)| {
                let from_groups = group_roles(m, &h.name);
                let mut cells = vec![Span::raw(h.name.clone())];
                for (c, role) in ROLES.iter().enumerate() {
                    let own = h.roles.iter().any(|r| r == role);
                    let group = from_groups.iter().any(|r| r == role);
                    let mark = match (own, group) {
                        (true, _) => "[x]",
                        (false, true) => "[g]",
                        (false, false) => "[ ]",
                    };
                    let style = if i == self.row && c == self.col {
                        th.selected()
                    } else {
                        th.text()
                    };
                    cells.push(Span::styled(mark, style));
                }
                cells.push(Span::raw(if source.as_deref() == Some(h.name.as_str()) {
                    "*"
                } else {
                    ""
                }));
                let others: Vec<&String> = h
                    .roles
                    .iter()
                    .filter(|r| !ROLES.contains(&r.as_str()))
                    .collect();
                cells.push(Span::styled(
                    others
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    th.dim(),
                ));
                Row::new(cells)
            })
            .collect();
        let header = Row::new(vec![
            t.col_host,
            t.col_server,
            t.col_agent,
            t.col_gpu,
            t.col_time,
            "",
        ])
        .style(th.heading());
        f.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(20),
                    Constraint::Length(8),
                    Constraint::Length(10),
                    Constraint::Length(5),
                    Constraint::Length(12),
                    Constraint::Min(0),
                ],
            )
            .header(header),
            table,
        );
        let line = fill(
            t.roles_count,
            &[&servers, &agents, &source.unwrap_or_else(|| "-".into())],
        );
        f.render_widget(Paragraph::new(Span::styled(line, th.dim())), foot);
    }
}
