//! Styles. Without colour (`NO_COLOR`, a monochrome serial console) everything still reads:
//! the selection is reverse video, headings bold, problems carry a word (`FAIL`), never only a
//! colour.

use ratatui::style::{Color, Modifier, Style};

/// The wizard's styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Whether colours are used.
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to anything non-empty (no-color.org) or the terminal
    /// is `dumb`.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Theme {
        let no_color = env("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = env("TERM").is_some_and(|t| t == "dumb");
        Theme {
            color: !(no_color || dumb),
        }
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    /// Plain text.
    pub fn text(self) -> Style {
        Style::default()
    }

    /// The title bar.
    pub fn title(self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    /// Headings and labels of the focused field.
    pub fn heading(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// The selected row or field.
    pub fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    /// Something fine.
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }

    /// Something wrong.
    pub fn bad(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Something to look at.
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }

    /// Secondary text (hints, defaults).
    pub fn dim(self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }

    /// The current step in the step strip.
    pub fn current_step(self) -> Style {
        self.fg(Color::Cyan)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
}
