//! The wizard's state and its one update function. Keys and background results come in as
//! [`Msg`]s; [`App::update`] changes the state and queues [`Job`]s (long work: host checks,
//! bundle verification, plan, install) that the runner starts and whose results come back as
//! `Msg`s. Nothing here does I/O except the draft's own save and check (a few small files).

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::board::Board;
use super::checks::{CheckReport, Checks};
use super::draft::{message_key, Draft};
use super::screens::{self, Flow, Screen, ScreenId};
use super::text::{fill, Lang, Text};
use super::theme::Theme;
use crate::engine::events::Event;
use crate::engine::plan::Plan;

/// Long work the runner starts in the background.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// Check these hosts (reach, facts); `generation` tells a stale answer from a fresh one.
    CheckHosts(Vec<String>),
    /// Verify the bundle.
    VerifyBundle,
    /// Save, then plan from the saved answer file (what `ferry plan` shows).
    Plan,
    /// Save, then install from the saved answer file (what `ferry apply` does).
    Install,
    /// Persist where the wizard is, so an interrupted wizard reopens there.
    Remember,
}

/// What a verified bundle holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleInfo {
    /// `name version`.
    pub title: String,
    /// Key id that signed it.
    pub key_id: String,
    /// Total bytes.
    pub bytes: u64,
    /// Items: name, kind, version, size.
    pub items: Vec<(String, String, String, u64)>,
    /// Its AppPackages (each checked against the vendor key), in bundle order.
    pub apps: Vec<AppInfo>,
}

/// An AppPackage of the bundle, as the Apps screen shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppInfo {
    /// The package's name: its values are `[apps.values.NAME]`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it is.
    pub description: String,
    /// What a site fills in.
    pub parameters: Vec<ferry_apps::Parameter>,
}

impl AppInfo {
    /// What the screen shows of a package.
    pub fn of(p: &ferry_bundle::app_package::AppPackage) -> AppInfo {
        AppInfo {
            name: p.spec.name.to_string(),
            version: p.spec.version.to_string(),
            description: p.spec.description.clone(),
            parameters: p.spec.parameters.clone(),
        }
    }
}

/// The bundle's check.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum BundleState {
    /// Not checked.
    #[default]
    Unchecked,
    /// Being verified: fraction done.
    Verifying(f64),
    /// Verified.
    Verified(BundleInfo),
    /// Did not verify: why.
    Failed(String),
}

/// The review screen's plan.
#[derive(Debug, Clone, Default)]
pub enum PlanState {
    /// None asked for yet.
    #[default]
    None,
    /// Being made: hosts surveyed so far.
    Planning(usize),
    /// Made, with its text exactly as `ferry plan` prints it.
    Ready(Box<Plan>, String),
    /// Could not be made.
    Failed(String),
}

/// What an install that ran to its end left: every host's outcome, and the cluster and apps
/// phases' reports as `ferry apply` prints them.
#[derive(Debug, Clone, Default)]
pub struct RunEnd {
    /// Every host's outcome, in inventory order.
    pub summaries: Vec<crate::engine::apply::HostSummary>,
    /// The cluster's nodes and where the kubeconfig is (`ferry apply`'s lines), when the
    /// cluster phase ran.
    pub cluster: Option<String>,
    /// The saved kubeconfig, when the cluster became Ready.
    pub kubeconfig: Option<PathBuf>,
    /// The license and apps phases' lines, when they ran.
    pub apps: Option<String>,
}

/// Something that happened, for [`App::update`].
#[derive(Debug)]
pub enum Msg {
    /// A key.
    Key(KeyEvent),
    /// One host's check result.
    Checked(CheckReport),
    /// A line for the status bar (a host key trusted on first contact).
    Notice(String),
    /// Bundle verification progress or its end.
    Bundle(BundleState),
    /// A host surveyed while planning.
    PlanProgress,
    /// The plan.
    Planned(Result<Plan, String>),
    /// An engine event during the install.
    Engine(Event),
    /// The install locked and planned the hosts: its id, plan, and run directory.
    RunStarted(String, Box<Plan>, PathBuf),
    /// The install ended: every host's outcome, or why it stopped.
    RunEnded(Result<RunEnd, String>),
}

/// Everything screens read and change.
pub struct Model {
    /// Its texts.
    pub text: &'static Text,
    /// Styles.
    pub theme: Theme,
    /// The answer file and inventory.
    pub draft: Draft,
    /// Where the draft is checked (see `Draft::validate`).
    pub scratch: PathBuf,
    /// The last check of the whole draft: `None` when valid.
    pub problem: Option<String>,
    /// Host checks.
    pub checks: Checks,
    /// The bundle.
    pub bundle: BundleState,
    /// The plan shown on review.
    pub plan: PlanState,
    /// The install's progress.
    pub board: Board,
    /// One line for the status bar.
    pub status: Option<String>,
    /// Jobs for the runner.
    pub jobs: Vec<Job>,
}

impl Model {
    /// A model for `draft`.
    pub fn new(lang: Lang, theme: Theme, draft: Draft, scratch: PathBuf) -> Model {
        let mut m = Model {
            text: lang.text(),
            theme,
            draft,
            scratch,
            problem: None,
            checks: Checks::default(),
            bundle: BundleState::default(),
            plan: PlanState::default(),
            board: Board::default(),
            status: None,
            jobs: Vec::new(),
        };
        m.revalidate();
        m
    }

    /// Checks the draft again (after every edit).
    pub fn revalidate(&mut self) {
        self.problem = self.draft.validate(&self.scratch).err();
    }

    /// The key the current problem is about, if it names one.
    pub fn problem_key(&self) -> Option<&str> {
        self.problem
            .as_deref()
            .and_then(|p| message_key(p, &self.draft.answers_path))
    }

    /// Saves the draft, saying so in the status bar; returns whether it worked.
    pub fn save(&mut self) -> bool {
        match self.draft.save() {
            Ok((a, i)) => {
                self.status = Some(fill(self.text.saved, &[&a.display(), &i.display()]));
                true
            }
            Err(e) => {
                self.status = Some(fill(self.text.save_failed, &[&format!("{e:#}")]));
                false
            }
        }
    }
}

/// The wizard: the model, the screens in order, and which one is shown.
pub struct App {
    /// Shared state.
    pub model: Model,
    /// Every screen, in order.
    pub screens: Vec<Box<dyn Screen>>,
    /// The one shown.
    pub current: usize,
    /// Whether the key help is shown over the screen.
    pub help: bool,
    /// Whether the wizard should end.
    pub quit: bool,
}

impl App {
    /// The wizard over `model`, on its first screen.
    pub fn new(model: Model) -> App {
        App {
            model,
            screens: screens::all(),
            current: 0,
            help: false,
            quit: false,
        }
    }

    /// The screen shown.
    pub fn screen(&self) -> ScreenId {
        self.screens[self.current].id()
    }

    /// Shows screen `id` (and lets it start what it needs).
    pub fn goto(&mut self, id: ScreenId) {
        if let Some(i) = self.screens.iter().position(|s| s.id() == id) {
            self.current = i;
            self.screens[i].enter(&mut self.model);
            self.model.jobs.push(Job::Remember);
        }
    }

    /// The first screen (at or before `id`) whose answers are not valid: the wizard does not
    /// go past a screen with a problem.
    fn blocking_screen(&self, upto: usize) -> Option<usize> {
        let key = self.model.problem.as_ref()?;
        let key = self.model.problem_key().unwrap_or(key);
        let owner = self
            .screens
            .iter()
            .position(|s| s.owns(key))
            // A problem no screen claims (a syntax error in a file given to --edit) stops
            // the wizard before review.
            .unwrap_or_else(|| {
                self.screens
                    .iter()
                    .position(|s| s.id() == ScreenId::Review)
                    .unwrap_or(0)
            });
        (owner <= upto).then_some(owner)
    }

    /// The problem to show on the current screen: only one about this screen or an earlier
    /// one (a later screen's empty field is not the engineer's problem yet).
    pub fn visible_problem(&self) -> Option<&str> {
        self.blocking_screen(self.current)?;
        self.model.problem.as_deref()
    }

    fn next(&mut self) {
        if self.current + 1 >= self.screens.len() {
            return;
        }
        if let Some(p) = self.model.problem.clone() {
            if self.blocking_screen(self.current).is_some() {
                self.model.status = Some(fill(self.model.text.fix_first, &[&p]));
                return;
            }
        }
        let id = self.screens[self.current + 1].id();
        self.goto(id);
    }

    fn back(&mut self) {
        if self.current > 0 && self.screens[self.current].can_leave() {
            let id = self.screens[self.current - 1].id();
            self.goto(id);
        }
    }

    /// Handles one message.
    pub fn update(&mut self, msg: Msg) {
        match msg {
            Msg::Key(k) => self.key(k),
            Msg::Checked(r) => self.model.checks.record(r),
            Msg::Notice(n) => self.model.status = Some(n),
            Msg::Bundle(b) => self.model.bundle = b,
            Msg::PlanProgress => {
                if let PlanState::Planning(n) = &mut self.model.plan {
                    *n += 1;
                }
            }
            Msg::Planned(r) => {
                self.model.plan = match r {
                    Ok(p) => {
                        let text = p.render();
                        PlanState::Ready(Box::new(p), text)
                    }
                    Err(e) => PlanState::Failed(e),
                }
            }
            Msg::Engine(e) => self.model.board.event(e),
            Msg::RunStarted(id, plan, dir) => self.model.board.started(id, &plan, dir),
            Msg::RunEnded(r) => {
                self.model.board.ended(r);
                if self.screen() == ScreenId::Run && self.model.board.finished_ok() {
                    self.goto(ScreenId::Done);
                }
            }
        }
    }

    fn key(&mut self, k: KeyEvent) {
        if k.kind == KeyEventKind::Release {
            return;
        }
        if self.help {
            self.help = false;
            return;
        }
        // A status line lasts until the next key.
        self.model.status = None;
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        // Leaving works everywhere, even mid-edit: the draft is kept.
        if ctrl && matches!(k.code, KeyCode::Char('c') | KeyCode::Char('q')) {
            self.model.jobs.push(Job::Remember);
            self.quit = true;
            return;
        }
        let editing = self.screens[self.current].editing();
        if !editing {
            match (k.code, ctrl) {
                (KeyCode::Char('s'), true) | (KeyCode::F(2), _) => {
                    self.model.save();
                    return;
                }
                (KeyCode::Char('?'), false) | (KeyCode::F(1), _) => {
                    self.help = true;
                    return;
                }
                _ => {}
            }
        }
        let flow = self.screens[self.current].key(k, &mut self.model);
        match flow {
            Flow::Handled => {}
            Flow::Edited => {
                self.model.revalidate();
                self.model.jobs.push(Job::Remember);
            }
            Flow::Next => self.next(),
            Flow::Ignored if !editing => match (k.code, ctrl) {
                (KeyCode::PageDown, _) | (KeyCode::Char('n'), true) => self.next(),
                (KeyCode::PageUp, _) | (KeyCode::Char('p'), true) | (KeyCode::Esc, _) => {
                    self.back()
                }
                _ => {}
            },
            Flow::Ignored => {}
        }
    }

    /// Draws the whole wizard: title and steps, the screen, its problem or status, key hints.
    pub fn render(&self, f: &mut Frame) {
        let area = f.area();
        let m = &self.model;
        let t = m.text;
        let th = m.theme;
        if area.width < 80 || area.height < 24 {
            let msg = fill(t.too_small, &[&area.width, &area.height]);
            f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
            return;
        }
        let [top, steps, body, problem, keys] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);

        let screen = &self.screens[self.current];
        let title = format!(
            " {} — {}  ({})",
            t.app_title,
            screen.title(t),
            fill(t.step, &[&(self.current + 1), &self.screens.len()])
        );
        f.render_widget(Paragraph::new(title).style(th.title()), top);

        let mut spans = Vec::new();
        for (i, s) in self.screens.iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(" > ", th.dim()));
            }
            let style = if i == self.current {
                th.current_step()
            } else {
                th.dim()
            };
            spans.push(Span::styled(s.title(t), style));
        }
        f.render_widget(Paragraph::new(Line::from(spans)), steps);

        screen.render(m, f, body);

        let line = match (self.visible_problem(), &m.status) {
            (_, Some(s)) => Line::from(Span::styled(s.clone(), th.warn())),
            (Some(p), None) => Line::from(vec![
                Span::styled(format!("{}: ", t.invalid), th.bad()),
                Span::raw(p.to_string()),
            ]),
            // A problem of a later screen is not shown yet, and nothing is called valid.
            (None, None) if m.problem.is_some() => Line::default(),
            (None, None) => Line::from(Span::styled(t.valid, th.ok())),
        };
        f.render_widget(Paragraph::new(line), problem);
        let hints = screen.hints(t);
        f.render_widget(Paragraph::new(hints).style(th.dim()), keys);

        if self.help {
            let lines: Vec<Line> = t
                .help_body
                .lines()
                .map(|l| Line::from(l.trim_start()))
                .collect();
            let h = (lines.len() as u16 + 2).min(area.height);
            let w = 70.min(area.width);
            let r = Rect {
                x: area.x + (area.width - w) / 2,
                y: area.y + (area.height - h) / 2,
                width: w,
                height: h,
            };
            f.render_widget(Clear, r);
            f.render_widget(
                Paragraph::new(lines)
                    .block(Block::default().borders(Borders::ALL).title(t.help_title)),
                r,
            );
        }
    }
}
