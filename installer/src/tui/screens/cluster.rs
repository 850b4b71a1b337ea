//! Cluster settings: the `[cluster]` keys of the answer file (name, id, distribution,
//! networks, API address, what a failure undoes), how host keys are treated, and the upstream
//! time servers. A new `[cluster]` key becomes one more field here.

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::form::{Field, Form, Kind};
use super::{Flow, Screen, ScreenId};
use crate::tui::app::Model;
use crate::tui::text::Text;

/// The cluster screen.
pub struct ClusterScreen {
    form: Form,
}

impl Default for ClusterScreen {
    fn default() -> Self {
        ClusterScreen {
            form: Form::new(vec![
                Field {
                    key: "cluster.name",
                    label: |t| t.field_cluster_name,
                    kind: Kind::Required,
                },
                Field {
                    key: "cluster.id",
                    label: |t| t.field_cluster_id,
                    kind: Kind::Text,
                },
                Field {
                    key: "cluster.distribution",
                    label: |t| t.field_distribution,
                    kind: Kind::Choice(&["none", "k3s"]),
                },
                Field {
                    key: "cluster.api-address",
                    label: |t| t.field_api_address,
                    kind: Kind::Text,
                },
                Field {
                    key: "cluster.cluster-cidr",
                    label: |t| t.field_cluster_cidr,
                    kind: Kind::Text,
                },
                Field {
                    key: "cluster.service-cidr",
                    label: |t| t.field_service_cidr,
                    kind: Kind::Text,
                },
                Field {
                    key: "cluster.cluster-dns",
                    label: |t| t.field_cluster_dns,
                    kind: Kind::Text,
                },
                Field {
                    key: "cluster.tls-san",
                    label: |t| t.field_tls_san,
                    kind: Kind::List,
                },
                Field {
                    key: "cluster.rollback",
                    label: |t| t.field_rollback,
                    kind: Kind::Choice(&["host", "run", "never"]),
                },
                Field {
                    key: "ssh.strict-host-keys",
                    label: |t| t.field_strict,
                    kind: Kind::Bool,
                },
                Field {
                    key: "baseline.time.upstream",
                    label: |t| t.field_time_upstream,
                    kind: Kind::List,
                },
            ]),
        }
    }
}

impl Screen for ClusterScreen {
    fn id(&self) -> ScreenId {
        ScreenId::Cluster
    }

    fn title(&self, t: &'static Text) -> &'static str {
        t.screen_cluster
    }

    fn owns(&self, key: &str) -> bool {
        self.form.owns(key) || key.starts_with("cluster.") || key.starts_with("ssh.")
    }

    fn editing(&self) -> bool {
        self.form.input.is_some()
    }

    fn key(&mut self, k: KeyEvent, m: &mut Model) -> Flow {
        self.form.key(k, &mut m.draft, 0)
    }

    fn render(&self, m: &Model, f: &mut Frame, area: Rect) {
        let [intro, fields] =
            Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(area);
        f.render_widget(
            Paragraph::new(m.text.cluster_intro).wrap(Wrap { trim: true }),
            intro,
        );
        let w = self.form.label_width(m.text);
        self.form.render(m, f, fields, w);
    }
}
