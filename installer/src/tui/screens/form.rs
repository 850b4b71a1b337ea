//! Editing answers: a one-line text input, and a form of labelled fields bound to answer-file
//! keys. Screens with plain settings are a form and a few lines of their own.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::Flow;
use crate::tui::app::Model;
use crate::tui::draft::Draft;
use crate::tui::text::Text;

/// A one-line text input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Input {
    /// The text.
    pub text: String,
    /// The cursor, in characters.
    pub cursor: usize,
    /// Shown as `*`s (a password).
    pub mask: bool,
}

/// What a key did to an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKey {
    /// Still editing (the text may have changed).
    Editing,
    /// Enter: keep the text.
    Commit,
    /// Esc: drop the edit.
    Cancel,
}

impl Input {
    /// An input holding `text`, the cursor at its end.
    pub fn new(text: &str) -> Input {
        Input {
            text: text.to_string(),
            cursor: text.chars().count(),
            mask: false,
        }
    }

    fn byte(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map(|(i, _)| i)
            .unwrap_or(self.text.len())
    }

    /// Handles a key.
    pub fn key(&mut self, k: KeyEvent) -> InputKey {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Enter => return InputKey::Commit,
            KeyCode::Esc => return InputKey::Cancel,
            KeyCode::Char('u') if ctrl => {
                self.text.clear();
                self.cursor = 0;
            }
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.text.chars().count(),
            KeyCode::Char(c) if !ctrl => {
                let at = self.byte(self.cursor);
                self.text.insert(at, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let at = self.byte(self.cursor);
                self.text.remove(at);
            }
            KeyCode::Delete if self.cursor < self.text.chars().count() => {
                let at = self.byte(self.cursor);
                self.text.remove(at);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.text.chars().count()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.text.chars().count(),
            _ => {}
        }
        InputKey::Editing
    }

    /// What is shown: the text, or `*`s.
    pub fn shown(&self) -> String {
        if self.mask {
            "*".repeat(self.text.chars().count())
        } else {
            self.text.clone()
        }
    }

    /// The cursor's column from the start of the text (wide characters count two).
    pub fn cursor_col(&self) -> u16 {
        let before: String = self.shown().chars().take(self.cursor).collect();
        Span::raw(before).width() as u16
    }
}

/// How a field's value is kept in the answer file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string; empty removes the key (its default applies).
    Text,
    /// A string kept even when empty (a required key: its message then says what to do).
    Required,
    /// A whole number; text that is not one is kept as text, so the check names the key
    /// with `ferry validate`'s message. Empty removes the key.
    Integer,
    /// A list of strings, typed comma separated.
    List,
    /// true/false, toggled with Enter or Space.
    Bool,
    /// Not a key: where the answer file itself is saved.
    AnswersPath,
    /// One of these words, cycled with Enter or Space; the first means unset (the default).
    Choice(&'static [&'static str]),
}

/// A field bound to an answer-file key.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The dotted key (`cluster.name`).
    pub key: &'static str,
    /// Its label.
    pub label: fn(&'static Text) -> &'static str,
    /// How it is kept.
    pub kind: Kind,
}

/// Fields, one focused, at most one being edited.
#[derive(Debug, Clone)]
pub struct Form {
    /// The fields.
    pub fields: Vec<Field>,
    /// The focused one.
    pub focus: usize,
    /// The edit in progress.
    pub input: Option<Input>,
}

impl Form {
    /// A form of `fields`, the first focused.
    pub fn new(fields: Vec<Field>) -> Form {
        Form {
            fields,
            focus: 0,
            input: None,
        }
    }

    /// Whether a key of the answer file is one of the form's.
    pub fn owns(&self, key: &str) -> bool {
        self.fields.iter().any(|f| f.key == key)
    }

    fn value(&self, d: &Draft, f: &Field, t: &'static Text) -> String {
        match f.kind {
            Kind::Bool => {
                if d.get(f.key).and_then(|v| v.as_bool()).unwrap_or(false) {
                    t.yes.to_string()
                } else {
                    t.no.to_string()
                }
            }
            Kind::AnswersPath => d.answers_path.display().to_string(),
            Kind::Choice(words) => {
                let v = d.get_text(f.key);
                if v.is_empty() {
                    words[0].to_string()
                } else {
                    v
                }
            }
            _ => d.get_text(f.key),
        }
    }

    /// Handles a key; `Ignored` when it is not a form key (the screen or frame may use it).
    /// `extra` is how many focusable rows the screen adds after the fields (buttons).
    pub fn key(&mut self, k: KeyEvent, d: &mut Draft, extra: usize) -> Flow {
        if let Some(input) = &mut self.input {
            let field = self.fields[self.focus];
            return match input.key(k) {
                InputKey::Editing => Flow::Handled,
                InputKey::Cancel => {
                    self.input = None;
                    Flow::Handled
                }
                InputKey::Commit => {
                    let text = input.text.clone();
                    self.input = None;
                    match field.kind {
                        Kind::Text => d.set_text(field.key, &text),
                        Kind::Required => d.set(field.key, Some(text.trim().into())),
                        Kind::List => d.set_list(field.key, &text),
                        Kind::Integer => d.set_integer(field.key, &text),
                        Kind::Bool | Kind::Choice(_) => {}
                        Kind::AnswersPath if !text.trim().is_empty() => {
                            d.answers_path = text.trim().into();
                        }
                        Kind::AnswersPath => {}
                    }
                    // Enter moves on, as a form on paper does.
                    self.focus = (self.focus + 1).min(self.fields.len() + extra - 1);
                    Flow::Edited
                }
            };
        }
        let rows = self.fields.len() + extra;
        match k.code {
            KeyCode::Tab | KeyCode::Down => {
                self.focus = (self.focus + 1) % rows;
                Flow::Handled
            }
            KeyCode::BackTab | KeyCode::Up => {
                self.focus = (self.focus + rows - 1) % rows;
                Flow::Handled
            }
            KeyCode::Enter | KeyCode::Char(' ') if self.focus < self.fields.len() => {
                let field = self.fields[self.focus];
                if let Kind::Choice(words) = field.kind {
                    let now = d.get_text(field.key);
                    let i = words.iter().position(|w| *w == now).unwrap_or(0);
                    let next = words[(i + 1) % words.len()];
                    if next == words[0] {
                        d.set(field.key, None);
                    } else {
                        d.set(field.key, Some(next.into()));
                    }
                    Flow::Edited
                } else if field.kind == Kind::Bool {
                    let now = d.get(field.key).and_then(|v| v.as_bool()).unwrap_or(false);
                    d.set(field.key, (!now).then_some(true.into()));
                    Flow::Edited
                } else if k.code == KeyCode::Enter {
                    let now = match field.kind {
                        Kind::AnswersPath => d.answers_path.display().to_string(),
                        _ => d.get_text(field.key),
                    };
                    self.input = Some(Input::new(&now));
                    Flow::Handled
                } else {
                    Flow::Ignored
                }
            }
            _ => Flow::Ignored,
        }
    }

    /// The width of the longest label in `t`'s language, so values line up in either.
    pub fn label_width(&self, t: &'static crate::tui::text::Text) -> u16 {
        self.fields
            .iter()
            .map(|fl| ratatui::text::Span::raw((fl.label)(t)).width() as u16)
            .max()
            .unwrap_or(20)
    }

    /// Draws the fields from `area`'s top, one per line, labels in a column of `label_w`;
    /// returns the lines used. A field the current problem is about is marked `!`.
    pub fn render(&self, m: &Model, f: &mut Frame, area: Rect, label_w: u16) -> u16 {
        let t = m.text;
        let th = m.theme;
        let problem_key = m.problem_key();
        for (i, field) in self.fields.iter().enumerate() {
            let y = area.y + i as u16;
            if y >= area.y + area.height {
                break;
            }
            let focused = i == self.focus;
            let mark = if problem_key == Some(field.key) {
                "!"
            } else {
                " "
            };
            let label = (field.label)(t);
            let pad = (label_w as usize).saturating_sub(Span::raw(label).width());
            let label_span = Span::styled(
                format!("{mark} {label}{} ", " ".repeat(pad)),
                if focused { th.heading() } else { th.text() },
            );
            let (value, style) = match (&self.input, focused) {
                (Some(input), true) => (input.shown(), th.text()),
                _ => {
                    let v = self.value(&m.draft, field, t);
                    if v.is_empty() {
                        (t.unset.to_string(), th.dim())
                    } else {
                        (v, th.text())
                    }
                }
            };
            let value_style = if focused && self.input.is_none() {
                th.selected()
            } else {
                style
            };
            let line = Line::from(vec![label_span.clone(), Span::styled(value, value_style)]);
            let row = Rect {
                y,
                height: 1,
                ..area
            };
            f.render_widget(Paragraph::new(line), row);
            if let (Some(input), true) = (&self.input, focused) {
                let x = area.x + label_span.width() as u16 + input.cursor_col();
                f.set_cursor_position((x.min(area.x + area.width.saturating_sub(1)), y));
            }
        }
        self.fields.len() as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn input_edits_wide_characters_by_character() {
        let mut i = Input::new("集群");
        assert_eq!(i.cursor_col(), 4);
        i.key(key(KeyCode::Left));
        i.key(key(KeyCode::Char('a')));
        assert_eq!(i.text, "集a群");
        i.key(key(KeyCode::Backspace));
        i.key(key(KeyCode::Backspace));
        assert_eq!(i.text, "群");
        assert_eq!(i.key(key(KeyCode::Enter)), InputKey::Commit);
    }
}
