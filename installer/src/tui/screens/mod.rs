//! The wizard's screens, in order. Each is a [`Screen`]: it draws itself from the model and
//! handles its keys; the frame (title, steps, problem line, key hints, save, help, moving
//! between screens) is the app's. A new screen is a module here and one line in [`all`].

mod apps;
mod bundle;
mod cluster;
mod done;
pub mod form;
mod hosts;
mod license;
mod review;
mod roles;
mod run;

use crossterm::event::KeyEvent;
use ratatui::layout::Rect;
use ratatui::Frame;

use super::app::Model;
use super::text::Text;

/// Which screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenId {
    /// The bundle and its key.
    Bundle,
    /// The inventory, checked live.
    Hosts,
    /// Roles and the time source.
    Roles,
    /// Cluster settings.
    Cluster,
    /// The bundle's apps and their parameters.
    Apps,
    /// The license.
    License,
    /// The plan.
    Review,
    /// The install's progress.
    Run,
    /// The summary.
    Done,
}

impl ScreenId {
    /// Its name in the saved wizard state.
    pub fn name(self) -> &'static str {
        match self {
            ScreenId::Bundle => "bundle",
            ScreenId::Hosts => "hosts",
            ScreenId::Roles => "roles",
            ScreenId::Cluster => "cluster",
            ScreenId::Apps => "apps",
            ScreenId::License => "license",
            ScreenId::Review => "review",
            ScreenId::Run => "run",
            ScreenId::Done => "done",
        }
    }

    /// The screen of a saved name.
    pub fn from_name(name: &str) -> Option<ScreenId> {
        [
            ScreenId::Bundle,
            ScreenId::Hosts,
            ScreenId::Roles,
            ScreenId::Cluster,
            ScreenId::Apps,
            ScreenId::License,
            ScreenId::Review,
            ScreenId::Run,
            ScreenId::Done,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// What a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Not this screen's key: the frame may use it.
    Ignored,
    /// Done; nothing in the answers changed.
    Handled,
    /// The answers changed: check them again, remember the draft.
    Edited,
    /// Go to the next screen.
    Next,
}

/// One screen of the wizard.
pub trait Screen {
    /// Which one.
    fn id(&self) -> ScreenId;
    /// Its title.
    fn title(&self, t: &'static Text) -> &'static str;
    /// Whether an answer-file key (`cluster.name`, `inventory`) is set on this screen: its
    /// problems are shown here and keep the wizard here.
    fn owns(&self, _key: &str) -> bool {
        false
    }
    /// Called when the screen is shown (start a check, a plan).
    fn enter(&mut self, _m: &mut Model) {}
    /// Whether a text field is being edited (every key goes to it).
    fn editing(&self) -> bool {
        false
    }
    /// Whether moving back is allowed now (not during the install).
    fn can_leave(&self) -> bool {
        true
    }
    /// Handles a key.
    fn key(&mut self, key: KeyEvent, m: &mut Model) -> Flow;
    /// Draws the screen into `area`. Reads only.
    fn render(&self, m: &Model, f: &mut Frame, area: Rect);
    /// The key hints line.
    fn hints(&self, t: &'static Text) -> &'static str {
        if self.editing() {
            t.keys_edit
        } else {
            t.keys_nav
        }
    }
}

/// Every screen, in order.
pub fn all() -> Vec<Box<dyn Screen>> {
    vec![
        Box::new(bundle::BundleScreen::default()),
        Box::new(hosts::HostsScreen::default()),
        Box::new(roles::RolesScreen::default()),
        Box::new(cluster::ClusterScreen::default()),
        Box::new(apps::AppsScreen::default()),
        Box::new(license::LicenseScreen::default()),
        Box::new(review::ReviewScreen::default()),
        Box::new(run::RunScreen::default()),
        Box::new(done::DoneScreen::default()),
    ]
}
