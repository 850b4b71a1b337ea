//! `ferry install`'s wizard: a terminal UI (ratatui on crossterm) that builds the same answer
//! file and `InstallConfig` as `ferry validate` reads, and runs the same engine as `ferry plan`
//! and `ferry apply`. The engine knows nothing of it.
//!
//! Shape: [`app`] holds the state and its one `update`; [`screens`] are the pages (one trait,
//! one list); [`board`] turns the engine's typed events into the hosts x phases view; this
//! module owns the terminal and runs the background jobs (host checks, bundle verification,
//! plan, install) whose results come back as messages. Drawing never waits on the network.

pub mod app;
pub mod board;
pub mod checks;
pub mod draft;
pub mod screens;
pub mod text;
pub mod theme;
mod worker;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use crossterm::event::Event as TermEvent;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::ExecutableCommand as _;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use serde::{Deserialize, Serialize};

use crate::cmdline::install::InstallArgs;
use crate::commands::reach::ferry_home;
use app::{App, Model, Msg};
use draft::Draft;
use screens::ScreenId;
use text::{fill, Lang};
use theme::Theme;

/// Where an unfinished wizard is remembered: the draft and the screen it was on.
#[derive(Debug, Serialize, Deserialize)]
struct Resume {
    answers: PathBuf,
    screen: String,
    draft: String,
    inventory: String,
}

/// The wizard's own directory (`~/.ferry/wizard`, 0700): its resume file and the scratch
/// directory drafts are checked in.
fn wizard_dir(args: &InstallArgs) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    // Absolute: drafts are checked by writing an answer file there that names its inventory
    // by path, and `--known-hosts known_hosts` makes ferry's home the current directory ("").
    let dir = std::path::absolute(ferry_home(&args.reach)?.join("wizard"))
        .context("finding the wizard's directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("check"))
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn resume_file(dir: &Path) -> PathBuf {
    dir.join("resume.toml")
}

/// Remembers where the wizard is (after every edit and screen change). No secret is in it.
fn remember(dir: &Path, app: &App) -> anyhow::Result<()> {
    let d = &app.model.draft;
    let r = Resume {
        answers: d.answers_path.clone(),
        screen: app.screen().name().to_string(),
        draft: toml::to_string_pretty(&d.answers)?,
        inventory: d.inventory_text()?,
    };
    ferry_license::write_atomic(&resume_file(dir), toml::to_string(&r)?.as_bytes(), 0o600)?;
    Ok(())
}

fn forget(dir: &Path) {
    let _ = std::fs::remove_file(resume_file(dir));
}

/// The draft to start from, and the screen to show first.
fn starting_point(args: &InstallArgs, dir: &Path) -> anyhow::Result<(Draft, ScreenId, bool)> {
    if let Some(path) = &args.answers {
        let draft = Draft::open(path)?;
        // `--edit`: from the start; `--answers` on a terminal: the plan, or with --yes the run.
        let screen = match (args.edit, args.yes) {
            (true, _) => ScreenId::Bundle,
            (false, false) => ScreenId::Review,
            (false, true) => ScreenId::Run,
        };
        return Ok((draft, screen, false));
    }
    if args.new {
        forget(dir);
    }
    if let Ok(text) = std::fs::read_to_string(resume_file(dir)) {
        if let Ok(r) = toml::from_str::<Resume>(&text) {
            let mut draft = Draft::new(r.answers);
            if let (Ok(a), Ok(i)) = (toml::from_str(&r.draft), toml::from_str(&r.inventory)) {
                draft.answers = a;
                draft.inventory = i;
                // An install cut short is planned again before it runs again.
                let screen = match ScreenId::from_name(&r.screen) {
                    Some(ScreenId::Run | ScreenId::Done) => ScreenId::Review,
                    Some(s) => s,
                    None => ScreenId::Bundle,
                };
                return Ok((draft, screen, true));
            }
        }
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    Ok((Draft::new(cwd.join("site.toml")), ScreenId::Bundle, false))
}

/// Puts the terminal back however the wizard ends (a panic included).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = disable_raw_mode();
        let _ = std::io::stdout().execute(LeaveAlternateScreen);
        let _ = std::io::stdout().execute(crossterm::cursor::Show);
    }
}

/// Runs the wizard on this terminal.
pub fn run(args: InstallArgs) -> anyhow::Result<ExitCode> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        anyhow::bail!(
            "ferry install: no terminal for the wizard; install unattended with \
             --answers site.toml --yes, or run ferry install in a terminal"
        );
    }
    let env = |k: &str| std::env::var(k).ok();
    let lang = Lang::choose(args.lang, env);
    let theme = Theme::from_env(env);
    let dir = wizard_dir(&args)?;
    let (draft, first, resumed) = starting_point(&args, &dir)?;
    let mut app = App::new(Model::new(lang, theme, draft, dir.join("check")));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (tx, rx) = mpsc::channel::<Msg>();
    let worker = worker::Worker::new(runtime.handle().clone(), tx.clone(), &args);

    enable_raw_mode().context("putting the terminal in raw mode")?;
    let guard = TerminalGuard;
    std::io::stdout()
        .execute(EnterAlternateScreen)
        .context("opening the wizard's screen")?;
    let mut terminal =
        Terminal::new(CrosstermBackend::new(std::io::stdout())).context("starting the UI")?;

    // Keys arrive on their own thread, so a slow draw never loses one.
    let keys = tx.clone();
    std::thread::spawn(move || loop {
        match crossterm::event::read() {
            Ok(TermEvent::Key(k)) => {
                if keys.send(Msg::Key(k)).is_err() {
                    return;
                }
            }
            // A resize only needs a redraw, which every message brings.
            Ok(TermEvent::Resize(..)) => {
                if keys.send(Msg::Notice(String::new())).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    });

    app.goto(first);
    if resumed {
        app.model.status = Some(fill(app.model.text.resumed, &[&app.screen().name()]));
    }
    let result = (|| -> anyhow::Result<()> {
        loop {
            worker.start(&mut app, &dir);
            terminal.draw(|f| app.render(f)).context("drawing")?;
            if app.quit {
                return Ok(());
            }
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(Msg::Notice(n)) if n.is_empty() => {}
                Ok(msg) => app.update(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            // Take whatever else is waiting before drawing again: a burst of events from
            // 500 hosts is one frame, not 500.
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Msg::Notice(n) if n.is_empty() => {}
                    msg => app.update(msg),
                }
            }
        }
    })();
    drop(terminal);
    drop(guard);
    if app.screen() == ScreenId::Done && app.model.board.ended {
        forget(&dir);
    }
    result?;
    let b = &app.model.board;
    if let Some((ok, all)) = b.outcome_counts() {
        println!(
            "ferry install: {ok} of {all} hosts ok{}; answer file {}",
            b.run_id
                .as_ref()
                .map(|id| format!(" (run {id})"))
                .unwrap_or_default(),
            app.model.draft.answers_path.display()
        );
        return Ok(if ok == all {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if let Some(e) = &b.error {
        anyhow::bail!("the install stopped: {e}");
    }
    println!(
        "ferry install: left the wizard; `ferry install` reopens it where you were ({})",
        app.screen().name()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
