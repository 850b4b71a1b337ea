//! The license: activation is its own offline exchange (`ferry license request`/`activate`);
//! the wizard says how until it can do it in place. The install does not need it.

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{Flow, Screen, ScreenId};
use crate::tui::app::Model;
use crate::tui::text::Text;

/// The license screen.
pub struct LicenseScreen;

impl Screen for LicenseScreen {
    fn id(&self) -> ScreenId {
        ScreenId::License
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_license
    }

    fn key(&mut self, _k: KeyEvent, _m: &mut Model) -> Flow {
        Flow::Ignored
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        let [intro, later] =
            Layout::vertical([Constraint::Length(4), Constraint::Min(0)]).areas(area);
        f.render_widget(
            Paragraph::new(m.text.license_intro).wrap(Wrap { trim: true }),
            intro,
        );
        f.render_widget(
            Paragraph::new(m.text.license_later)
                .style(m.theme.warn())
                .wrap(Wrap { trim: true }),
            later,
        );
    }
}
