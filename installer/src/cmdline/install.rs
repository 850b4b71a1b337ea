//! `ferry install`: the wizard, or the same install unattended from an answer file.

use std::path::PathBuf;

use super::ReachArgs;

/// The wizard's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LangArg {
    /// English.
    En,
    /// Simplified Chinese (简体中文).
    Zh,
}

/// `ferry install`
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The answer file: install from it (unattended without a terminal, which needs --yes),
    /// or with --edit open the wizard on it. Without it the wizard starts (or reopens where
    /// it was left) and saves one.
    #[arg(short, long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    /// Install without asking for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Open the wizard on --answers, every field filled in from it.
    #[arg(long, requires = "answers")]
    pub edit: bool,
    /// Start the wizard afresh instead of reopening an unfinished one.
    #[arg(long, conflicts_with = "answers")]
    pub new: bool,
    /// The wizard's language [default: from LC_ALL, LC_MESSAGES or LANG; zh* gives zh].
    #[arg(long, value_name = "LANG")]
    pub lang: Option<LangArg>,
    /// Leave a failed host as it is (undo later with `ferry rollback`).
    #[arg(long)]
    pub no_rollback: bool,
    /// Take over this host even though it belongs to another cluster (repeat per host).
    #[arg(long, value_name = "HOST")]
    pub force: Vec<String>,
    /// How to reach the hosts.
    #[command(flatten)]
    pub reach: ReachArgs,
}
