//! Apps: the AppPackages of the bundle the Bundle screen verified, each parameter with its
//! type, default and description, and what this site gives it (`[apps.values.NAME]`), with the
//! `[apps]` keys every deploy reads. A value is kept as its parameter's type when it is one,
//! else as typed, so the check names it with `ferry validate`'s own message.

use crossterm::event::{KeyCode, KeyEvent};
use ferry_apps::{ParamType, Parameter};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::form::{Field, Form, Input, InputKey, Kind};
use super::{Flow, Screen, ScreenId};
use crate::tui::app::{AppInfo, BundleState, Job, Model};
use crate::tui::text::{fill, Text};

/// The apps screen.
pub struct AppsScreen {
    /// The `[apps]` keys; the parameters are the rows after its fields.
    form: Form,
    /// A parameter's value being typed.
    input: Option<Input>,
}

impl Default for AppsScreen {
    fn default() -> Self {
        AppsScreen {
            form: Form::new(vec![
                Field {
                    key: "apps.deploy",
                    label: |t| t.field_apps_deploy,
                    kind: Kind::List,
                },
                Field {
                    key: "apps.domain",
                    label: |t| t.field_apps_domain,
                    kind: Kind::Text,
                },
                Field {
                    key: "apps.timeout",
                    label: |t| t.field_apps_timeout,
                    kind: Kind::Integer,
                },
                Field {
                    key: "apps.volume-node",
                    label: |t| t.field_apps_volume_node,
                    kind: Kind::Text,
                },
                Field {
                    key: "apps.gpu-unavailable",
                    label: |t| t.field_apps_gpu,
                    kind: Kind::Choice(&["fail", "allow"]),
                },
            ]),
            input: None,
        }
    }
}

/// The bundle's apps, once verified.
fn apps(m: &Model) -> &[AppInfo] {
    match &m.bundle {
        BundleState::Verified(info) => &info.apps,
        _ => &[],
    }
}

/// Every parameter row: (app, parameter).
fn rows(m: &Model) -> Vec<(&AppInfo, &Parameter)> {
    apps(m)
        .iter()
        .flat_map(|a| a.parameters.iter().map(move |p| (a, p)))
        .collect()
}

/// The answer-file key of a parameter's value.
fn value_key(app: &AppInfo, p: &Parameter) -> String {
    format!("apps.values.{}.{}", app.name, p.name.as_str())
}

/// The environment variable a secret parameter is read from: `{ env = "VAR" }` (the answer
/// file never holds the secret itself).
fn secret_variable(v: Option<&toml::Value>) -> Option<String> {
    let t = v?.as_table()?;
    (t.len() == 1).then(|| t.get("env")?.as_str().map(str::to_string))?
}

/// The variable the wizard proposes for a secret: `FERRY_APP_<APP>_<PARAM>`.
fn default_variable(app: &str, param: &str) -> String {
    let up = |s: &str| s.to_ascii_uppercase().replace(['-', '.'], "_");
    format!("FERRY_APP_{}_{}", up(app), up(param))
}

/// A typed variable name as the secret's reference; empty: no value given.
fn env_reference(text: &str) -> Option<toml::Value> {
    let t = text.trim();
    (!t.is_empty()).then(|| {
        toml::Value::Table(toml::Table::from_iter([(
            "env".to_string(),
            toml::Value::String(t.to_string()),
        )]))
    })
}

/// Typed text as the value of a parameter of type `ty`: of that type when it reads as one,
/// else the text (which the check then refuses by name). Empty: the default applies.
fn typed_value(ty: ParamType, text: &str) -> Option<toml::Value> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    Some(match ty {
        ParamType::Integer => t
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| t.into()),
        ParamType::Boolean => match t {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => t.into(),
        },
        ParamType::String | ParamType::Secret => text.to_string().into(),
    })
}

fn hint(t: &'static Text, ty: ParamType) -> &'static str {
    match ty {
        ParamType::Integer => t.hint_integer,
        ParamType::Boolean => t.hint_boolean,
        ParamType::String | ParamType::Secret => t.hint_string,
    }
}

/// `s` cut or padded to `w` columns (wide characters count two).
fn cell(s: &str, w: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = Span::raw(c.to_string()).width();
        if used + cw > w {
            break;
        }
        out.push(c);
        used += cw;
    }
    out.push_str(&" ".repeat(w - used));
    out
}

impl AppsScreen {
    /// The focused parameter row, if the focus is on one.
    fn param(&self) -> Option<usize> {
        self.form.focus.checked_sub(self.form.fields.len())
    }
}

impl Screen for AppsScreen {
    fn id(&self) -> ScreenId {
        ScreenId::Apps
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_apps
    }

    fn owns(&self, key: &str) -> bool {
        key == "apps" || key.starts_with("apps.") || key.starts_with("[apps.")
    }

    fn enter(&mut self, m: &mut Model) {
        // Opened on a saved answer file (`--edit`, a resumed wizard): the bundle is read now.
        let named = m.draft.get("bundle").is_some() && m.draft.get("bundle-pubkey").is_some();
        if named && m.bundle == BundleState::Unchecked {
            m.bundle = BundleState::Verifying(0.0);
            m.jobs.push(Job::VerifyBundle);
        }
        let n = self.form.fields.len() + rows(m).len();
        self.form.focus = self.form.focus.min(n.saturating_sub(1));
    }

    fn editing(&self) -> bool {
        self.input.is_some() || self.form.input.is_some()
    }

    fn key(&mut self, k: KeyEvent, m: &mut Model) -> Flow {
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
                    let all = rows(m);
                    let Some((app, p)) = self.param().and_then(|i| all.get(i)) else {
                        return Flow::Handled;
                    };
                    let key = value_key(app, p);
                    let value = if p.ty == ParamType::Secret {
                        env_reference(&text)
                    } else {
                        typed_value(p.ty, &text)
                    };
                    let n = self.form.fields.len() + all.len();
                    m.draft.set(&key, value);
                    self.form.focus = (self.form.focus + 1).min(n - 1);
                    Flow::Edited
                }
            };
        }
        let params = rows(m).len();
        if let (Some(i), None, KeyCode::Enter) = (self.param(), &self.form.input, k.code) {
            let all = rows(m);
            let Some((app, p)) = all.get(i) else {
                return Flow::Handled;
            };
            let key = value_key(app, p);
            let now = if p.ty == ParamType::Secret {
                let var = secret_variable(m.draft.get(&key))
                    .unwrap_or_else(|| default_variable(&app.name, p.name.as_str()));
                let name = p.name.as_str();
                m.status = Some(fill(m.text.apps_secret, &[&name, &var.as_str()]));
                var
            } else {
                m.draft.get_text(&key)
            };
            self.input = Some(Input::new(&now));
            return Flow::Handled;
        }
        self.form.key(k, &mut m.draft, params)
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        let t = m.text;
        let th = m.theme;
        let [intro, fields, list, detail] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Length(self.form.fields.len() as u16 + 1),
            Constraint::Min(2),
            Constraint::Length(2),
        ])
        .areas(area);
        f.render_widget(
            Paragraph::new(t.apps_intro).wrap(Wrap { trim: true }),
            intro,
        );
        let w = self.form.label_width(t);
        self.form.render(m, f, fields, w);

        let say = |f: &mut Frame, text: String, style: Style| {
            f.render_widget(
                Paragraph::new(Span::styled(text, style)).wrap(Wrap { trim: true }),
                list,
            )
        };
        match &m.bundle {
            _ if m.draft.get("bundle").is_none() => {
                return say(f, t.apps_no_bundle.into(), th.dim())
            }
            BundleState::Unchecked => return say(f, t.apps_unverified.into(), th.warn()),
            BundleState::Verifying(_) => return say(f, t.apps_verifying.into(), th.warn()),
            BundleState::Failed(why) => return say(f, fill(t.bundle_bad, &[why]), th.bad()),
            BundleState::Verified(info) if info.apps.is_empty() => {
                return say(f, t.apps_none.into(), th.dim())
            }
            BundleState::Verified(_) => {}
        }

        // Columns: the parameter's name as wide as the longest, type, default, value, and
        // what it is in what the screen leaves.
        let all = rows(m);
        let name_w = all
            .iter()
            .map(|(_, p)| p.name.as_str().len())
            .chain([Span::raw(t.col_param).width()])
            .max()
            .unwrap_or(9)
            .min(24);
        let (type_w, default_w, value_w) = (8, 12, 18);
        let row_text = |name: &str, ty: &str, default: &str, value: &str, about: &str| {
            format!(
                "  {} {} {} {} {about}",
                cell(name, name_w),
                cell(ty, type_w),
                cell(default, default_w),
                cell(value, value_w)
            )
        };
        let header = Line::styled(
            row_text(
                t.col_param,
                t.col_type,
                t.col_default,
                t.col_value,
                t.col_about,
            ),
            th.heading(),
        );
        let mut lines: Vec<Line> = Vec::new();
        let mut focus_line = None;
        let mut row = 0;
        for app in apps(m) {
            lines.push(Line::styled(
                format!("{} {}: {}", app.name, app.version, app.description),
                th.heading(),
            ));
            for p in &app.parameters {
                let key = value_key(app, p);
                let default = match &p.default {
                    Some(v) => v.as_text(),
                    None => t.apps_required.to_string(),
                };
                let (value, style) = match (m.draft.get(&key), p.ty) {
                    (v, ParamType::Secret) if secret_variable(v).is_some() => (
                        format!("${}", secret_variable(v).unwrap_or_default()),
                        th.text(),
                    ),
                    (Some(_), ParamType::Secret) => (t.apps_hidden.to_string(), th.text()),
                    (Some(_), _) => (m.draft.get_text(&key), th.text()),
                    (None, _) if p.default.is_none() => (t.apps_required.to_string(), th.bad()),
                    (None, _) => (t.apps_default.to_string(), th.dim()),
                };
                let focused = self.param() == Some(row);
                let value = match (&self.input, focused) {
                    (Some(input), true) => input.shown(),
                    _ => value,
                };
                let text = row_text(
                    p.name.as_str(),
                    p.ty.label(),
                    &default,
                    &value,
                    &p.description,
                );
                if focused {
                    focus_line = Some(lines.len());
                }
                lines.push(match (focused, &self.input) {
                    (true, None) => Line::styled(text, th.selected()),
                    _ => Line::styled(text, style),
                });
                row += 1;
            }
        }
        // The header stays; the rows scroll to keep the focused one in sight.
        let [head, rest] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(list);
        let height = rest.height as usize;
        let skip = match focus_line {
            Some(l) if l >= height => l + 1 - height,
            _ => 0,
        };
        f.render_widget(Paragraph::new(header), head);
        f.render_widget(Paragraph::new(lines).scroll((skip as u16, 0)), rest);
        if let (Some(input), Some(l)) = (&self.input, focus_line) {
            let x = rest.x + (2 + name_w + 1 + type_w + 1 + default_w + 1) as u16;
            f.set_cursor_position((x + input.cursor_col(), rest.y + (l - skip) as u16));
        }

        if let Some((_, p)) = self.param().and_then(|i| all.get(i)) {
            let line = fill(
                t.apps_param,
                &[
                    &p.name.as_str(),
                    &p.ty.label(),
                    &p.description,
                    &hint(t, p.ty),
                ],
            );
            f.render_widget(
                Paragraph::new(Span::styled(line, th.dim())).wrap(Wrap { trim: true }),
                detail,
            );
        }
    }
}
