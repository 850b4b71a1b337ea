//! Swap off now (`swapoff -a`) and at boot: the swap lines of `/etc/fstab` are commented out
//! with a `# ferry: ` prefix (systemd's fstab generator then makes no swap unit for them), and a
//! swap active from a `.swap` unit of its own has that unit masked (a packaged or generated
//! unit) or disabled (a unit file in /etc/systemd/system, which `systemctl mask` cannot
//! shadow). Revert puts the old fstab back, unmasks and re-enables what it changed, and turns
//! the swap areas that were on back on.

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::shell_quote;
use serde::{Deserialize, Serialize};

use crate::host::{FileState, Host};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError};

const FSTAB: &str = "/etc/fstab";
/// What a line ferry commented out starts with.
pub const PREFIX: &str = "# ferry: ";

/// Turns swap off for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapOff {}

/// What [`SwapOff::observe`] finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapState {
    /// `/etc/fstab` as it was.
    pub fstab: FileState,
    /// Active swap areas (`/proc/swaps`).
    pub active: Vec<String>,
    /// Masked `.swap` units.
    pub masked: Vec<String>,
    /// `.swap` units enabled in /etc/systemd/system (wanted by a target).
    #[serde(default)]
    pub enabled: Vec<String>,
}

/// Whether an fstab line is an active swap entry (type field `swap`).
fn is_swap_line(line: &str) -> bool {
    let t = line.trim_start();
    !t.starts_with('#') && t.split_whitespace().nth(2) == Some("swap")
}

/// The devices or files of the fstab's active swap lines.
pub fn fstab_swaps(content: &str) -> Vec<String> {
    content
        .lines()
        .filter(|l| is_swap_line(l))
        .filter_map(|l| l.split_whitespace().next().map(unescape))
        .collect()
}

/// The fstab with every swap line commented out.
pub fn comment_out_swaps(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| {
            if is_swap_line(l) {
                format!("{PREFIX}{l}")
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// fstab and /proc/swaps write a space in a path as `\040`.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t")
}

/// The paths of `/proc/swaps` (header line skipped).
pub fn parse_proc_swaps(content: &str) -> Vec<String> {
    content
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(unescape))
        .collect()
}

/// Unit names, one a line, `.swap` ones only, sorted and unique.
pub fn parse_unit_list(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| u.ends_with(".swap"))
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Masked swap units: links to /dev/null where `systemctl mask` puts them (persistent and
/// runtime). Read from the file system: `systemctl list-unit-files` walks every unit and
/// takes seconds on a slow host.
const MASKED: &str = "for f in /etc/systemd/system/*.swap /run/systemd/system/*.swap; do \
     if [ \"$(readlink \"$f\" 2>/dev/null)\" = /dev/null ]; then echo \"${f##*/}\"; fi; done";

/// Enabled swap units: their links in a target's `.wants` directory.
const ENABLED: &str = "for f in /etc/systemd/system/*.wants/*.swap; do \
     if [ -L \"$f\" ]; then echo \"${f##*/}\"; fi; done";

async fn masked_units(host: &dyn Host) -> Result<Vec<String>, ResourceError> {
    Ok(parse_unit_list(&host.run_ok(MASKED).await?))
}

async fn enabled_units(host: &dyn Host) -> Result<Vec<String>, ResourceError> {
    Ok(parse_unit_list(&host.run_ok(ENABLED).await?))
}

#[async_trait]
impl Resource for SwapOff {
    type State = SwapState;

    fn id(&self) -> String {
        "swap".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        // RedHat: same fstab and units, and zram from systemd's zram generator (masked the
        // same way); enabled there once tested.
        os::require(facts, "swap off", &[Family::Debian])
    }

    fn reads(&self) -> Vec<String> {
        vec![FSTAB.to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<SwapState, ResourceError> {
        let fstab = host.read_file(FSTAB).await?;
        let swaps = host.run_ok("cat /proc/swaps").await?;
        Ok(SwapState {
            fstab,
            active: parse_proc_swaps(&swaps),
            masked: masked_units(host).await?,
            enabled: enabled_units(host).await?,
        })
    }

    fn diff(&self, observed: &SwapState) -> Vec<Change> {
        let mut out = Vec::new();
        if !observed.active.is_empty() {
            out.push(Change::new(
                "swap",
                format!("on ({})", observed.active.join(", ")),
                "off",
            ));
        }
        let lines = fstab_swaps(observed.fstab.text().unwrap_or_default());
        if !lines.is_empty() {
            out.push(Change::new(
                FSTAB,
                format!("swap at boot ({})", lines.join(", ")),
                "swap lines commented out",
            ));
        }
        out
    }

    async fn apply(&self, host: &dyn Host, observed: &SwapState) -> Result<(), ResourceError> {
        let content = observed.fstab.editable_text(FSTAB)?;
        let from_fstab = fstab_swaps(content);
        let new = comment_out_swaps(content);
        if new != content {
            host.write_file(FSTAB, new.as_bytes(), observed.fstab.mode.unwrap_or(0o644))
                .await?;
        }
        // A swap that fstab did not give comes from a unit file of its own (packaged,
        // hand-written, or a generator's such as zram's): mask or disable it, or it is back at
        // the next boot. One turned on by hand has no unit file and does not come back.
        let mut script = String::new();
        for path in observed.active.iter().filter(|p| !from_fstab.contains(p)) {
            let p = shell_quote(path);
            script.push_str(&format!(
                "u=$(systemd-escape -p --suffix=swap {p}); \
                 if [ -n \"$(systemctl show --value -p FragmentPath \"$u\" 2>/dev/null)\" ] \
                 && [ \"$(systemctl show --value -p SourcePath \"$u\")\" != /etc/fstab ]; then \
                 case \"$(systemctl show --value -p FragmentPath \"$u\")\" in \
                 /etc/systemd/system/*) systemctl disable --quiet \"$u\" ;; \
                 *) systemctl mask --quiet \"$u\" ;; esac; fi\n"
            ));
        }
        script.push_str("swapoff -a\n");
        script.push_str("if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi\n");
        host.run_ok(&format!("set -e\n{script}")).await?;
        let left = parse_proc_swaps(&host.run_ok("cat /proc/swaps").await?);
        if !left.is_empty() {
            return Err(ResourceError::Check(format!(
                "swap is still on after swapoff -a ({}): not enough free memory to move \
                 its pages back? free memory, then run again",
                left.join(", ")
            )));
        }
        Ok(())
    }

    async fn revert(&self, host: &dyn Host, before: &SwapState) -> Result<(), ResourceError> {
        host.restore_file(FSTAB, &before.fstab).await?;
        let mut script = String::from("set -e\n");
        for unit in masked_units(host).await? {
            if !before.masked.contains(&unit) {
                script.push_str(&format!(
                    "systemctl unmask --quiet {}\n",
                    shell_quote(&unit)
                ));
            }
        }
        let enabled = enabled_units(host).await?;
        for unit in before.enabled.iter().filter(|u| !enabled.contains(u)) {
            script.push_str(&format!("systemctl enable --quiet {}\n", shell_quote(unit)));
        }
        script.push_str("if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi\n");
        for path in &before.active {
            let p = shell_quote(path);
            // Idempotent: only what is not on already.
            script.push_str(&format!(
                "if ! swapon --show=NAME --noheadings | grep -qxF -- {p}; then swapon -- {p}; fi\n"
            ));
        }
        host.run_ok(&script).await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FSTAB_TEXT: &str = "# <file system> <mount point> <type> <options> <dump> <pass>\n\
UUID=abc / ext4 errors=remount-ro 0 1\n\
/swapfile none swap sw 0 0\n\
#/dev/sdb1 none swap sw 0 0\n\
UUID=def  none  swap  sw,pri=5  0  0\n";

    #[test]
    fn finds_only_active_swap_lines() {
        assert_eq!(fstab_swaps(FSTAB_TEXT), vec!["/swapfile", "UUID=def"]);
    }

    #[test]
    fn comments_out_swap_lines_and_nothing_else() {
        let new = comment_out_swaps(FSTAB_TEXT);
        assert_eq!(
            new,
            "# <file system> <mount point> <type> <options> <dump> <pass>\n\
UUID=abc / ext4 errors=remount-ro 0 1\n\
# ferry: /swapfile none swap sw 0 0\n\
#/dev/sdb1 none swap sw 0 0\n\
# ferry: UUID=def  none  swap  sw,pri=5  0  0\n"
        );
        assert!(fstab_swaps(&new).is_empty());
        // Applying twice changes nothing more.
        assert_eq!(comment_out_swaps(&new), new);
    }

    #[test]
    fn parses_proc_swaps_with_escaped_paths() {
        let p = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
/swapfile                               file\t\t65532\t\t0\t\t-2\n\
/swap\\040file                           file\t\t65532\t\t0\t\t-3\n";
        assert_eq!(parse_proc_swaps(p), vec!["/swapfile", "/swap file"]);
        assert!(parse_proc_swaps("Filename Type Size Used Priority\n").is_empty());
    }

    #[test]
    fn diff_is_empty_when_already_set() {
        let s = SwapState {
            fstab: FileState::present(comment_out_swaps(FSTAB_TEXT), 0o644),
            active: vec![],
            masked: vec![],
            enabled: vec![],
        };
        assert!(SwapOff {}.diff(&s).is_empty());
    }

    #[test]
    fn diff_says_swap_is_on_and_in_fstab() {
        let s = SwapState {
            fstab: FileState::present(FSTAB_TEXT, 0o644),
            active: vec!["/swapfile".into()],
            masked: vec![],
            enabled: vec![],
        };
        assert_eq!(
            SwapOff {}.diff(&s),
            vec![
                Change::new("swap", "on (/swapfile)", "off"),
                Change::new(
                    "/etc/fstab",
                    "swap at boot (/swapfile, UUID=def)",
                    "swap lines commented out"
                ),
            ]
        );
    }

    #[test]
    fn reads_masked_swap_units() {
        let out = "swapfile.swap\ndev-zram0.swap\nfoo.service\nswapfile.swap\n";
        assert_eq!(
            parse_unit_list(out),
            vec!["dev-zram0.swap", "swapfile.swap"]
        );
    }
}
