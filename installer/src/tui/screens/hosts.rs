//! Hosts: the inventory edited in place (add, edit, delete, import an Ansible inventory) and
//! checked live. Every host is reached in the background as soon as it is added or changed;
//! the table fills in with facts, and each problem is shown with its fix. 500 hosts scroll and
//! filter: drawing looks only at the rows on screen.

use crossterm::event::{KeyCode, KeyEvent};
use ferry_inventory::model::raw::RawHost;
use ferry_inventory::Secret;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::form::{Input, InputKey};
use super::{Flow, Screen, ScreenId};
use crate::commands::human;
use crate::tui::app::{Job, Model};
use crate::tui::checks::CheckState;
use crate::tui::text::{fill, Text};

/// A field of the host editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostField {
    Name,
    Address,
    Port,
    User,
    Key,
    PasswordEnv,
    Password,
    Sudo,
    SudoEnv,
    Bastion,
}

const FIELDS: [HostField; 10] = [
    HostField::Name,
    HostField::Address,
    HostField::Port,
    HostField::User,
    HostField::Key,
    HostField::PasswordEnv,
    HostField::Password,
    HostField::Sudo,
    HostField::SudoEnv,
    HostField::Bastion,
];

impl HostField {
    fn label(self, t: &'static Text) -> &'static str {
        match self {
            HostField::Name => t.field_name,
            HostField::Address => t.field_address,
            HostField::Port => t.field_port,
            HostField::User => t.field_user,
            HostField::Key => t.field_key,
            HostField::PasswordEnv => t.field_password_env,
            HostField::Password => t.field_password,
            HostField::Sudo => t.field_sudo,
            HostField::SudoEnv => t.field_sudo_env,
            HostField::Bastion => t.field_bastion,
        }
    }

    fn get(self, h: &RawHost, m: &Model) -> String {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        match self {
            HostField::Name => h.name.clone(),
            HostField::Address => h.address.clone(),
            HostField::Port => h.port.map(|p| p.to_string()).unwrap_or_default(),
            HostField::User => o(&h.user),
            HostField::Key => o(&h.key),
            HostField::PasswordEnv => o(&h.password_env),
            HostField::Password => h
                .password_env
                .as_ref()
                .and_then(|v| m.draft.secrets.get(v))
                .map(|s| "*".repeat(s.expose().chars().count()))
                .unwrap_or_default(),
            HostField::Sudo => h.sudo.clone().unwrap_or_else(|| "none".into()),
            HostField::SudoEnv => o(&h.sudo_password_env),
            HostField::Bastion => o(&h.bastion),
        }
    }

    /// Sets the field from typed text; a secret goes to memory, never into the entry.
    fn set(self, h: &mut RawHost, text: &str, m: &mut Model) {
        let v = text.trim();
        let opt = || (!v.is_empty()).then(|| v.to_string());
        match self {
            HostField::Name => h.name = v.to_string(),
            HostField::Address => h.address = v.to_string(),
            // Not a number: kept as none, and the port stays the default; the problem line
            // would not name a port typed as letters, so refuse it here.
            HostField::Port => h.port = v.parse().ok(),
            HostField::User => h.user = opt(),
            HostField::Key => {
                h.key = opt();
                if h.key.is_some() {
                    h.password_env = None;
                    h.password = None;
                }
            }
            HostField::PasswordEnv => {
                h.password_env = opt();
                if h.password_env.is_some() {
                    h.key = None;
                    h.password = None;
                }
            }
            HostField::Password => {
                if v.is_empty() {
                    return;
                }
                let var = h.password_env.clone().unwrap_or_else(|| {
                    format!(
                        "FERRY_PASSWORD_{}",
                        h.name
                            .chars()
                            .map(|c| if c.is_ascii_alphanumeric() {
                                c.to_ascii_uppercase()
                            } else {
                                '_'
                            })
                            .collect::<String>()
                    )
                });
                m.draft.secrets.insert(var.clone(), Secret::new(text));
                h.password_env = Some(var);
                h.key = None;
                h.password = None;
            }
            HostField::Sudo => {}
            HostField::SudoEnv => {
                h.sudo_password_env = opt();
                if h.sudo_password_env.is_some() {
                    h.sudo = Some("password".into());
                }
            }
            HostField::Bastion => h.bastion = opt(),
        }
    }
}

/// The hosts screen.
#[derive(Default)]
pub struct HostsScreen {
    /// Selected row among the filtered hosts.
    selected: usize,
    /// The filter text, and whether it is being typed.
    filter: String,
    filtering: Option<Input>,
    /// The host being edited (its index in the inventory) and the focused field.
    editor: Option<(usize, usize)>,
    input: Option<Input>,
    /// The Ansible file being named.
    import: Option<Input>,
}

impl HostsScreen {
    fn visible<'a>(&self, m: &'a Model) -> Vec<(usize, &'a RawHost)> {
        let f = self.filter.to_lowercase();
        m.draft
            .hosts()
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                f.is_empty()
                    || h.name.to_lowercase().contains(&f)
                    || h.address.to_lowercase().contains(&f)
            })
            .collect()
    }

    fn check(m: &mut Model, names: Vec<String>) {
        let mut todo = Vec::new();
        for n in names {
            if let Some(h) = m.draft.hosts().iter().find(|h| h.name == n) {
                if !h.name.is_empty() && !h.address.is_empty() {
                    m.checks.start(h);
                    todo.push(n);
                }
            }
        }
        if !todo.is_empty() {
            m.jobs.push(Job::CheckHosts(todo));
        }
    }

    /// Starts a check of every host whose entry has no check yet.
    pub(super) fn check_stale(m: &mut Model) {
        let stale: Vec<String> = m
            .draft
            .hosts()
            .iter()
            .filter(|h| m.checks.stale(h))
            .map(|h| h.name.clone())
            .collect();
        Self::check(m, stale);
    }

    fn add(&mut self, m: &mut Model) {
        let hosts = &m.draft.inventory.hosts;
        let n = hosts.len() + 1;
        // A new host logs in as the one before it did; the first host serves the cluster.
        let mut h = hosts.last().cloned().unwrap_or_else(|| RawHost {
            user: Some("root".into()),
            key: Some("~/.ssh/id_ed25519".into()),
            ..RawHost::default()
        });
        h.name = format!("node{n}");
        while m.draft.hosts().iter().any(|o| o.name == h.name) {
            h.name.push('x');
        }
        h.address = String::new();
        h.roles = vec![if n == 1 { "server" } else { "agent" }.to_string()];
        h.labels.clear();
        h.vars.clear();
        m.draft.inventory.hosts.push(h);
        self.filter.clear();
        self.selected = m.draft.hosts().len() - 1;
        self.editor = Some((self.selected, 1));
        self.input = Some(Input::new(""));
    }

    fn editor_key(&mut self, k: KeyEvent, m: &mut Model, idx: usize, focus: usize) -> Flow {
        if let Some(input) = &mut self.input {
            return match input.key(k) {
                InputKey::Editing => Flow::Handled,
                InputKey::Cancel => {
                    self.input = None;
                    Flow::Handled
                }
                InputKey::Commit => {
                    let text = input.text.clone();
                    self.input = None;
                    let field = FIELDS[focus];
                    let Some(mut h) = m.draft.inventory.hosts.get(idx).cloned() else {
                        return Flow::Handled;
                    };
                    field.set(&mut h, &text, m);
                    if field == HostField::Password || field == HostField::PasswordEnv {
                        if let Some(var) = &h.password_env {
                            m.status = Some(fill(
                                m.text.secret_note,
                                &[&format!("password_env = {var:?}")],
                            ));
                        }
                    }
                    let name = h.name.clone();
                    m.draft.inventory.hosts[idx] = h;
                    self.editor = Some((idx, (focus + 1) % FIELDS.len()));
                    Self::check(m, vec![name]);
                    Flow::Edited
                }
            };
        }
        match k.code {
            KeyCode::Esc => {
                self.editor = None;
                Flow::Handled
            }
            KeyCode::Tab | KeyCode::Down => {
                self.editor = Some((idx, (focus + 1) % FIELDS.len()));
                Flow::Handled
            }
            KeyCode::BackTab | KeyCode::Up => {
                self.editor = Some((idx, (focus + FIELDS.len() - 1) % FIELDS.len()));
                Flow::Handled
            }
            KeyCode::Enter | KeyCode::Char(' ') if FIELDS[focus] == HostField::Sudo => {
                let Some(h) = m.draft.inventory.hosts.get_mut(idx) else {
                    return Flow::Handled;
                };
                h.sudo = match h.sudo.as_deref() {
                    None | Some("none") => Some("passwordless".into()),
                    Some("passwordless") => Some("password".into()),
                    _ => {
                        h.sudo_password_env = None;
                        None
                    }
                };
                let name = h.name.clone();
                Self::check(m, vec![name]);
                Flow::Edited
            }
            KeyCode::Enter => {
                let Some(h) = m.draft.hosts().get(idx) else {
                    return Flow::Handled;
                };
                let field = FIELDS[focus];
                let mut input = Input::new(&if field == HostField::Password {
                    String::new()
                } else {
                    field.get(h, m)
                });
                input.mask = field == HostField::Password;
                self.input = Some(input);
                Flow::Handled
            }
            _ => Flow::Handled,
        }
    }

    fn render_editor(&self, m: &Model, f: &mut Frame, area: Rect, idx: usize, focus: usize) {
        let t = m.text;
        let th = m.theme;
        let Some(h) = m.draft.hosts().get(idx) else {
            return;
        };
        let mut lines = vec![Line::styled(fill(t.host_edit, &[&h.name]), th.heading())];
        let w = FIELDS
            .iter()
            .map(|fl| Span::raw(fl.label(t)).width())
            .max()
            .unwrap_or(20);
        let mut cursor = None;
        for (i, fl) in FIELDS.iter().enumerate() {
            let label = fl.label(t);
            let pad = w.saturating_sub(Span::raw(label).width());
            let label = format!("  {label}{} ", " ".repeat(pad));
            let focused = i == focus;
            let (value, style) = match (&self.input, focused) {
                (Some(input), true) => {
                    cursor = Some((
                        area.x + Span::raw(label.as_str()).width() as u16 + input.cursor_col(),
                        area.y + 1 + i as u16,
                    ));
                    (input.shown(), th.text())
                }
                (None, true) => (fl.get(h, m), th.selected()),
                _ => (fl.get(h, m), th.text()),
            };
            let value = if value.is_empty() && !(focused && self.input.is_some()) {
                Span::styled(t.unset, if focused { th.selected() } else { th.dim() })
            } else {
                Span::styled(value, style)
            };
            lines.push(Line::from(vec![
                Span::styled(label, if focused { th.heading() } else { th.text() }),
                value,
            ]));
        }
        if let Some(var) = &h.password_env {
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                fill(t.secret_note, &[&format!("password_env = {var:?}")]),
                th.dim(),
            ));
        }
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
        if let Some(c) = cursor {
            f.set_cursor_position(c);
        }
    }
}

/// `-` for nothing.
fn dash(s: Option<String>) -> String {
    s.unwrap_or_else(|| "-".into())
}

impl Screen for HostsScreen {
    fn id(&self) -> ScreenId {
        ScreenId::Hosts
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_hosts
    }

    fn owns(&self, key: &str) -> bool {
        key == "inventory"
    }

    fn enter(&mut self, m: &mut Model) {
        Self::check_stale(m);
    }

    fn editing(&self) -> bool {
        self.input.is_some() || self.filtering.is_some() || self.import.is_some()
    }

    fn key(&mut self, k: KeyEvent, m: &mut Model) -> Flow {
        if let Some((idx, focus)) = self.editor {
            return self.editor_key(k, m, idx, focus);
        }
        if let Some(input) = &mut self.filtering {
            match input.key(k) {
                InputKey::Editing => self.filter = input.text.clone(),
                InputKey::Commit => self.filtering = None,
                InputKey::Cancel => {
                    self.filtering = None;
                    self.filter.clear();
                }
            }
            self.selected = 0;
            return Flow::Handled;
        }
        if let Some(input) = &mut self.import {
            return match input.key(k) {
                InputKey::Editing => Flow::Handled,
                InputKey::Cancel => {
                    self.import = None;
                    Flow::Handled
                }
                InputKey::Commit => {
                    let path = std::path::PathBuf::from(input.text.trim());
                    self.import = None;
                    let options = ferry_ansible::ImportOptions::default();
                    match ferry_ansible::import_file(&path, &options) {
                        Ok(import) => {
                            m.draft.inventory = import.inventory.raw().clone();
                            let mut status =
                                fill(m.text.imported, &[&m.draft.hosts().len(), &path.display()]);
                            let notes = import.grouped_notes();
                            if !notes.is_empty() {
                                status.push_str("; ");
                                status.push_str(&fill(
                                    m.text.import_notes,
                                    &[&notes
                                        .iter()
                                        .map(|n| n.to_string())
                                        .collect::<Vec<_>>()
                                        .join("; ")],
                                ));
                            }
                            m.status = Some(status);
                            self.selected = 0;
                            Self::check_stale(m);
                            Flow::Edited
                        }
                        Err(e) => {
                            m.status = Some(format!("{}: {e:#}", path.display()));
                            Flow::Handled
                        }
                    }
                }
            };
        }
        let rows = self.visible(m).len();
        match k.code {
            KeyCode::Down | KeyCode::Char('j') if rows > 0 => {
                self.selected = (self.selected + 1).min(rows - 1)
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.selected = rows.saturating_sub(1),
            KeyCode::Char('a') => {
                self.add(m);
                return Flow::Edited;
            }
            KeyCode::Enter | KeyCode::Char('e') => {
                if let Some((idx, _)) = self.visible(m).get(self.selected) {
                    self.editor = Some((*idx, 0));
                }
            }
            KeyCode::Char('d') | KeyCode::Delete => {
                if let Some((idx, _)) = self.visible(m).get(self.selected).copied() {
                    m.draft.inventory.hosts.remove(idx);
                    self.selected = self.selected.min(rows.saturating_sub(2));
                    return Flow::Edited;
                }
            }
            KeyCode::Char('/') => self.filtering = Some(Input::new(&self.filter)),
            KeyCode::Char('i') => self.import = Some(Input::new("")),
            KeyCode::Char('c') => {
                let all = m.draft.hosts().iter().map(|h| h.name.clone()).collect();
                Self::check(m, all);
            }
            _ => return Flow::Ignored,
        }
        Flow::Handled
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        let t = m.text;
        let th = m.theme;
        if let Some((idx, focus)) = self.editor {
            self.render_editor(m, f, area, idx, focus);
            return;
        }
        let [intro, table, detail, foot] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(3),
            Constraint::Length(1),
        ])
        .areas(area);
        let intro_line = if let Some(input) = &self.import {
            let label = format!("{}: ", t.import_prompt);
            f.set_cursor_position((
                intro.x + Span::raw(label.as_str()).width() as u16 + input.cursor_col(),
                intro.y,
            ));
            Line::from(vec![
                Span::styled(label, th.heading()),
                Span::raw(input.text.clone()),
            ])
        } else {
            Line::styled(t.hosts_intro, th.dim())
        };
        f.render_widget(Paragraph::new(intro_line), intro);

        let hosts = self.visible(m);
        if m.draft.hosts().is_empty() {
            f.render_widget(
                Paragraph::new(t.hosts_empty).wrap(Wrap { trim: true }),
                table,
            );
        } else {
            let height = table.height.saturating_sub(1) as usize;
            let start = if self.selected < height {
                0
            } else {
                self.selected + 1 - height
            };
            let wide = area.width >= 110;
            let rows: Vec<Row> = hosts
                .iter()
                .enumerate()
                .skip(start)
                .take(height)
                .map(|(i, (_, h))| {
                    let (check, style, facts, skew) = match m.checks.get(&h.name) {
                        None => ("".to_string(), th.dim(), None, None),
                        Some(CheckState::Pending(_)) => {
                            (t.check_pending.to_string(), th.warn(), None, None)
                        }
                        Some(CheckState::Done(r)) => {
                            let (word, style) = if !r.reachable {
                                (t.check_failed, th.bad())
                            } else if r.problems.is_empty() {
                                (t.check_ok, th.ok())
                            } else {
                                (t.check_warn, th.warn())
                            };
                            (word.to_string(), style, r.facts.clone(), r.skew)
                        }
                    };
                    let mut cells = vec![
                        Span::raw(h.name.clone()),
                        Span::raw(if h.port.is_some_and(|p| p != 22) {
                            format!("{}:{}", h.address, h.port.unwrap_or(22))
                        } else {
                            h.address.clone()
                        }),
                    ];
                    if wide {
                        cells.push(Span::raw(h.user.clone().unwrap_or_default()));
                    }
                    cells.extend([
                        Span::styled(check, style),
                        Span::raw(dash(facts.as_ref().map(|f| f.os.clone()))),
                        Span::raw(dash(facts.as_ref().map(|f| f.cpus.to_string()))),
                        Span::raw(dash(facts.as_ref().map(|f| human(f.memory)))),
                        Span::raw(dash(facts.as_ref().and_then(|f| f.disk_free.map(human)))),
                        Span::raw(dash(facts.as_ref().map(|f| f.gpus.to_string()))),
                        Span::raw(dash(skew.map(|s| format!("{s:+.1}s")))),
                    ]);
                    let row = Row::new(cells);
                    if i == self.selected {
                        row.style(th.selected())
                    } else {
                        row
                    }
                })
                .collect();
            let mut header = vec![t.col_host, t.col_address];
            let mut widths = vec![Constraint::Length(12), Constraint::Length(15)];
            if wide {
                header.push(t.col_user);
                widths = vec![
                    Constraint::Length(20),
                    Constraint::Length(21),
                    Constraint::Length(10),
                ];
            }
            header.extend([
                t.col_check,
                t.col_os,
                t.col_cpu,
                t.col_mem,
                t.col_disk,
                t.col_gpu,
                t.col_skew,
            ]);
            widths.extend([
                Constraint::Length(5),
                Constraint::Min(10),
                Constraint::Length(3),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(3),
                Constraint::Length(6),
            ]);
            f.render_widget(
                Table::new(rows, widths)
                    .header(Row::new(header).style(th.heading()))
                    .column_spacing(1),
                table,
            );
        }

        if let Some((_, h)) = hosts.get(self.selected) {
            if let Some(CheckState::Done(r)) = m.checks.get(&h.name) {
                let lines: Vec<Line> = r
                    .problems
                    .iter()
                    .map(|p| Line::styled(format!("{}: {p}", h.name), th.bad()))
                    .collect();
                f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), detail);
            }
        }
        let (done, bad) = m.checks.counts(m.draft.hosts().iter());
        let mut foot_line = fill(t.hosts_count, &[&m.draft.hosts().len(), &done, &bad]);
        if self.filtering.is_some() || !self.filter.is_empty() {
            foot_line.push_str("   ");
            foot_line.push_str(&fill(t.hosts_filter, &[&self.filter]));
        }
        f.render_widget(Paragraph::new(Span::styled(foot_line, th.dim())), foot);
        if let Some(input) = &self.filtering {
            let prefix = fill(t.hosts_filter, &[&""]);
            let x = foot.x
                + Span::raw(fill(t.hosts_count, &[&m.draft.hosts().len(), &done, &bad])).width()
                    as u16
                + 3
                + Span::raw(prefix).width() as u16
                + input.cursor_col();
            f.set_cursor_position((x.min(foot.x + foot.width.saturating_sub(1)), foot.y));
        }
    }
}
