//! docs/bundle-format.md as a specification of bundle.toml: every `toml` block in it is a
//! bundle.toml the builder reads, and every inline `key = value` span in it is valid TOML, so
//! the page cannot show a snippet a reader would copy and have refused.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::Path;

use ferry_bundle::BundleSpec;

const PAGE: &str = "docs/bundle-format.md";

fn page() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(PAGE)).unwrap()
}

/// The ```toml blocks of the page, each with the line its fence is on.
fn toml_blocks(page: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = page.lines().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "```toml" {
            i += 1;
            continue;
        }
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .unwrap_or_else(|| panic!("{PAGE}:{}: unclosed toml block", i + 1));
        out.push((i + 1, lines[i + 1..end].join("\n") + "\n"));
        i = end + 1;
    }
    out
}

/// Inline code spans written as TOML (`key = value`) outside fenced blocks, with their line.
fn inline_toml(page: &str) -> Vec<(usize, String)> {
    let mut out = vec![];
    let mut fenced = false;
    for (n, line) in page.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Odd pieces between backticks are code spans; a table cell's `\|` is TOML's `|`.
        for span in line.split('`').skip(1).step_by(2) {
            let is_assignment = span
                .split_once(" = ")
                .is_some_and(|(key, _)| !key.is_empty() && !key.contains(char::is_whitespace));
            if is_assignment {
                out.push((n + 1, span.replace("\\|", "|")));
            }
        }
    }
    out
}

#[test]
fn every_toml_block_of_the_bundle_format_page_is_a_bundle_toml_the_builder_reads() {
    let page = page();
    let blocks = toml_blocks(&page);
    assert!(!blocks.is_empty(), "{PAGE} has no toml block");
    for (line, text) in blocks {
        if let Err(e) = BundleSpec::parse(&text, Path::new(".")) {
            panic!("{PAGE}:{line}: the example is refused: {e}\n{text}");
        }
    }
}

#[test]
fn every_inline_toml_snippet_of_the_bundle_format_page_parses() {
    let page = page();
    let spans = inline_toml(&page);
    assert!(spans.len() >= 5, "found only {spans:?}");
    for (line, span) in spans {
        if let Err(e) = span.parse::<toml::Table>() {
            panic!("{PAGE}:{line}: `{span}` is not TOML: {e}");
        }
    }
}
