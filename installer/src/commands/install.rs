//! `ferry install`: the wizard on a terminal; without one, the same install from an answer
//! file through the same engine as `ferry apply` (with --yes), or one line saying what to do.

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::cmdline::host::ApplyArgs;
use crate::cmdline::install::InstallArgs;

/// Runs `ferry install`.
pub fn run(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if terminal {
        return crate::tui::run(args);
    }
    match &args.answers {
        Some(answers) if !args.edit => {
            if !args.yes {
                anyhow::bail!(
                    "ferry install --answers {}: no terminal to confirm the install on; add \
                     --yes to install unattended",
                    answers.display()
                );
            }
            super::host::apply(ApplyArgs {
                answers: answers.clone(),
                no_rollback: args.no_rollback,
                force: args.force,
                json: false,
                break_lock: None,
                reach: args.reach,
            })
        }
        _ => crate::tui::run(args),
    }
}
