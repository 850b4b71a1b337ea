//! Done: what the install did (each host's outcome, a failure's reason, the cluster's nodes
//! and the apps), where the kubeconfig, the journal and the logs are, the answer file and the
//! command that repeats the install unattended.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{Flow, Screen, ScreenId};
use crate::tui::app::Model;
use crate::tui::text::{fill, Text};

/// The done screen.
#[derive(Default)]
pub struct DoneScreen {
    /// Lines scrolled (a large cluster's node table is longer than a console).
    scroll: u16,
}

impl Screen for DoneScreen {
    fn id(&self) -> ScreenId {
        ScreenId::Done
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_done
    }

    fn key(&mut self, k: KeyEvent, _m: &mut Model) -> Flow {
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => self.scroll = self.scroll.saturating_add(1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll = self.scroll.saturating_sub(1),
            _ => return Flow::Ignored,
        }
        Flow::Handled
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
                    let failed = row.outcome.is_some_and(|o| !o.success());
                    let mut line = format!("  {:<20} {}", row.name, row.outcome_label());
                    if let (true, Some(r)) = (failed, &row.reason) {
                        line.push_str(&format!(" ({}: {r})", t.done_why));
                    }
                    lines.push(if failed {
                        Line::styled(line, th.bad())
                    } else {
                        Line::raw(line)
                    });
                }
                lines.push(Line::raw(""));
                // The cluster's nodes and the apps, as `ferry apply` prints them (its line on
                // the kubeconfig is said below, with how to use it).
                for text in [&b.cluster, &b.apps].into_iter().flatten() {
                    lines.extend(
                        text.lines()
                            .filter(|l| b.kubeconfig.is_none() || !l.starts_with("cluster: k3s"))
                            .map(|l| Line::raw(l.to_string())),
                    );
                }
                let distribution = m.draft.get_text("cluster.distribution");
                lines.push(match &b.kubeconfig {
                    Some(k) => Line::styled(fill(t.done_kubeconfig, &[&k.display()]), th.ok()),
                    None if distribution.is_empty() || distribution == "none" => {
                        Line::raw(t.done_no_cluster)
                    }
                    None => Line::styled(t.done_no_kubeconfig, th.warn()),
                });
                if let Some(dir) = &b.run_dir {
                    lines.push(Line::raw(fill(t.done_logs, &[&dir.display()])));
                }
            }
        }
        let answers = std::path::absolute(&m.draft.answers_path)
            .unwrap_or_else(|_| m.draft.answers_path.clone());
        let answers = answers.display();
        lines.push(Line::raw(fill(t.done_answers, &[&answers])));
        lines.push(Line::raw(fill(t.done_repeat, &[&answers])));
        // The license's status is among the apps lines when the install activated one.
        let activated = b
            .apps
            .as_deref()
            .is_some_and(|a| a.lines().any(|l| l.starts_with("license: ")));
        if !activated {
            lines.push(Line::raw(t.done_license));
        }
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .scroll((self.scroll, 0)),
            area,
        );
    }

    fn hints(&self, t: &'static Text) -> &'static str {
        t.done_keys
    }
}
