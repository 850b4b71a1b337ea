//! docs/inventory.md as a specification: every `toml` example in it loads, every
//! `toml,refused` example is refused with the message written under it.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ferry_inventory::Inventory;

/// An example of the page: its text, whether it must be refused (and with what), its line.
struct Example {
    text: String,
    refused: Option<String>,
    line: usize,
}

fn examples(page: &str) -> Vec<Example> {
    let lines: Vec<&str> = page.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let info = lines[i].trim();
        let refused = match info {
            "```toml" => false,
            "```toml,refused" => true,
            _ => {
                i += 1;
                continue;
            }
        };
        let start = i + 1;
        let end = (start..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .unwrap_or_else(|| panic!("docs/inventory.md:{}: unclosed example", i + 1));
        let text = lines[start..end].join("\n");
        let said = refused.then(|| {
            let why = lines
                .get(end + 1)
                .and_then(|l| l.strip_prefix("refused: "))
                .unwrap_or_else(|| {
                    panic!(
                        "docs/inventory.md:{}: a refused example needs a `refused: ...` line",
                        end + 2
                    )
                });
            why.trim().to_string()
        });
        out.push(Example {
            text,
            refused: said,
            line: i + 1,
        });
        i = end + 1;
    }
    out
}

#[test]
fn every_example_of_the_inventory_page_loads_or_is_refused_as_it_says() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/inventory.md"))
            .unwrap();
    let all = examples(&page);
    assert!(
        all.iter().filter(|e| e.refused.is_none()).count() >= 4
            && all.iter().filter(|e| e.refused.is_some()).count() >= 3,
        "examples missing from docs/inventory.md"
    );
    for ex in all {
        let origin = format!("docs/inventory.md:{}", ex.line);
        match (Inventory::from_toml_str(&ex.text, &origin), ex.refused) {
            (Ok(_), None) => {}
            (Err(e), None) => panic!("{origin}: the example does not load: {e}"),
            (Ok(_), Some(why)) => panic!("{origin}: loads, but the page says: {why}"),
            (Err(e), Some(why)) => {
                let got = e.to_string();
                assert!(
                    got.contains(&why),
                    "{origin}:\n  got:  {got}\n  page: {why}"
                );
            }
        }
    }
}
