//! The documentation matches the command line: every `ferry ...` command written in README.md,
//! examples/*.sh and docs/*.md names commands that exist and options they take (issue 11
//! item 8: `apply --host` was documented and did not exist).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every `ferry ...` command line of a page: inline code spans, lines of shell code blocks
/// (`sh`, `bash`, `console`; other blocks are data or diagrams) and of shell scripts.
/// `ferry plan|apply` stands for both commands.
fn commands(text: &str, script: bool) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut block: Option<bool> = None; // inside a code block: whether it is shell
    for (n, line) in text.lines().enumerate() {
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(matches!(lang.trim(), "sh" | "bash" | "console")),
            };
            continue;
        }
        let mut found = |s: &str| {
            let s = s.trim().trim_start_matches("$ ");
            let s = s
                .strip_prefix("\"$FERRY\" ")
                .map(|r| format!("ferry {r}"))
                .unwrap_or_else(|| s.to_string());
            let Some(rest) = s.strip_prefix("ferry ") else {
                return;
            };
            let (first, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            for alt in first.split('|') {
                out.push((n + 1, format!("ferry {alt} {tail}")));
            }
        };
        if script || block == Some(true) {
            found(line);
        } else if block.is_none() {
            for (i, span) in line.split('`').enumerate() {
                if i % 2 == 1 {
                    found(span);
                }
            }
        }
    }
    out
}

struct Cli {
    help: HashMap<Vec<String>, Option<String>>,
}

impl Cli {
    fn help(&mut self, path: &[String]) -> Option<String> {
        self.help
            .entry(path.to_vec())
            .or_insert_with(|| {
                let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
                    .args(path)
                    .arg("--help")
                    .output()
                    .unwrap();
                out.status
                    .success()
                    .then(|| String::from_utf8(out.stdout).unwrap())
            })
            .clone()
    }

    /// `Err` says what of the command line does not exist.
    fn check(&mut self, line: &str) -> Result<(), String> {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        // `ferry COMMAND --help`: a placeholder, not a command.
        if words
            .first()
            .is_some_and(|w| w.chars().all(|c| c.is_ascii_uppercase()))
        {
            return Ok(());
        }
        // The longest run of subcommand-like words that ferry knows.
        let mut path: Vec<String> = Vec::new();
        for w in &words {
            let w = w.trim_matches(|c| c == '[' || c == ']');
            if !w.chars().all(|c| c.is_ascii_lowercase() || c == '-') || w.starts_with('-') {
                break;
            }
            let mut longer = path.clone();
            longer.push(w.to_string());
            if self.help(&longer).is_none() {
                break;
            }
            path = longer;
        }
        if path.is_empty() {
            return Err(format!(
                "`ferry {}` is no command",
                words.first().unwrap_or(&"")
            ));
        }
        let help = self.help(&path).unwrap();
        for w in &words {
            for opt in w.split(['[', ']', '|', '(', ')', ',']) {
                let opt = opt.split('=').next().unwrap();
                if !opt.starts_with("--") || opt == "--help" || opt.len() < 3 {
                    continue;
                }
                if !help.contains(&format!("{opt} ")) && !help.contains(&format!("{opt}\n")) {
                    return Err(format!("`ferry {}` has no option {opt}", path.join(" ")));
                }
            }
        }
        Ok(())
    }
}

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut v = vec![root.join("README.md"), root.join("examples/demo.sh")];
    for dir in ["docs", "examples"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md") {
                v.push(p);
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

#[test]
fn every_command_in_the_docs_exists_with_the_options_it_shows() {
    let mut cli = Cli {
        help: HashMap::new(),
    };
    let mut seen = 0;
    let mut wrong = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let script = page.extension().is_some_and(|x| x == "sh");
        for (line, cmd) in commands(&text, script) {
            seen += 1;
            if let Err(e) = cli.check(&cmd) {
                wrong.push(format!("{}:{line}: {e}", page.display()));
            }
        }
    }
    assert!(seen >= 40, "only {seen} commands found in the docs");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_documented_option_that_does_not_exist_is_caught() {
    let mut cli = Cli {
        help: HashMap::new(),
    };
    assert!(cli.check("ferry plan --answers site.toml --json").is_ok());
    let err = cli
        .check("ferry apply --host node1 --answers F")
        .unwrap_err();
    assert_eq!(err, "`ferry apply` has no option --host");
    assert!(cli.check("ferry frobnicate --answers F").is_err());
}

/// Every relative link of the pages leads to a file of the repository (the README once linked
/// to a file outside it).
#[test]
fn every_relative_link_in_the_docs_leads_to_a_file_of_the_repo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap();
    let mut wrong = Vec::new();
    let mut seen = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let Some(end) = target.find(')') else {
                continue;
            };
            let target = target[..end].split('#').next().unwrap();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            seen += 1;
            let resolved = page.parent().unwrap().join(target);
            match resolved.canonicalize() {
                Ok(p) if p.starts_with(&root) => {}
                _ => wrong.push(format!("{}: {target}", page.display())),
            }
        }
    }
    assert!(seen >= 5, "only {seen} links found");
    assert!(
        wrong.is_empty(),
        "links leading nowhere or out of the repo:\n{}",
        wrong.join("\n")
    );
}
