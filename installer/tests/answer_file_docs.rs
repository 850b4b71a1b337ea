//! docs/answer-file.md as a specification: every `toml` example in it validates with
//! `ferry validate`, every `toml,refused` example is refused with the line written under it.
//! Each runs in a directory holding what the page says: an inventory, an SSH key file, a signed
//! bundle with an OS package repository, its public key and a license public key.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

const PAGE: &str = "docs/answer-file.md";

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
        let refused = match lines[i].trim() {
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
            .unwrap_or_else(|| panic!("{PAGE}:{}: unclosed example", i + 1));
        let said = refused.then(|| {
            lines
                .get(end + 1)
                .and_then(|l| l.strip_prefix("refused: "))
                .unwrap_or_else(|| {
                    panic!(
                        "{PAGE}:{}: a refused example needs a `refused: ...` line",
                        end + 2
                    )
                })
                .trim()
                .to_string()
        });
        out.push(Example {
            text: lines[start..end].join("\n") + "\n",
            refused: said,
            line: i + 1,
        });
        i = end + 1;
    }
    out
}

fn ferry(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("FERRY_SIGN_KEY")
        .output()
        .unwrap()
}

fn ok(o: Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The directory the page describes.
fn site() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::write(
        p.join("id_ed25519"),
        "a private key: only its presence is checked\n",
    )
    .unwrap();
    std::fs::write(
        p.join("inventory.toml"),
        "[defaults]\nuser = \"root\"\nkey = \"id_ed25519\"\n\n\
         [[hosts]]\nname = \"node1\"\naddress = \"10.0.0.11\"\nroles = [\"server\"]\n\n\
         [[hosts]]\nname = \"node2\"\naddress = \"10.0.0.12\"\nroles = [\"agent\"]\n\n\
         [[hosts]]\nname = \"node3\"\naddress = \"10.0.0.13\"\nroles = [\"agent\"]\n",
    )
    .unwrap();
    std::fs::create_dir_all(p.join("repo")).unwrap();
    std::fs::write(p.join("repo/Packages"), "").unwrap();
    // k3s STAND-INs: the checks read only the bundle's signed manifest.
    std::fs::write(p.join("k3s"), "#!/bin/sh\n# k3s STAND-IN\n").unwrap();
    std::fs::write(p.join("airgap.tar"), "k3s air-gap images STAND-IN\n").unwrap();
    let sha = |f: &str| ferry_bundle::Digest::of(&std::fs::read(p.join(f)).unwrap()).hex();
    std::fs::write(
        p.join("bundle.toml"),
        format!(
            "[bundle]\nname = \"site\"\nversion = \"1\"\n\n\
             [k3s]\nversion = \"v1.31.4+k3s1\"\n\
             binary = {{ path = \"k3s\", sha256 = \"{}\" }}\n\
             airgap_images = {{ path = \"airgap.tar\", sha256 = \"{}\" }}\n\n\
             [[os_packages]]\nname = \"debian-base\"\nformat = \"deb\"\ndistro = \"debian-12\"\npath = \"repo\"\n",
            sha("k3s"),
            sha("airgap.tar")
        ),
    )
    .unwrap();
    ok(ferry(p, &["key", "generate", "-o", "vendor"]));
    ok(ferry(
        p,
        &[
            "bundle",
            "build",
            "bundle.toml",
            "-o",
            "site.ferry",
            "--sign-key",
            "vendor",
        ],
    ));
    ok(ferry(p, &["license", "keygen", "-o", "license"]));
    d
}

#[test]
fn every_example_of_the_answer_file_page_validates_or_is_refused_as_it_says() {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(PAGE))
        .unwrap();
    let all = examples(&page);
    assert!(
        all.iter().filter(|e| e.refused.is_none()).count() >= 5
            && all.iter().filter(|e| e.refused.is_some()).count() >= 8,
        "examples missing from {PAGE}"
    );
    let d = site();
    for ex in all {
        let origin = format!("{PAGE}:{}", ex.line);
        std::fs::write(d.path().join("site.toml"), &ex.text).unwrap();
        let out = ferry(d.path(), &["validate", "--answers", "site.toml"]);
        let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
        match ex.refused {
            None => assert!(
                out.status.success(),
                "{origin}: does not validate: {stderr}"
            ),
            Some(why) => {
                assert!(
                    !out.status.success(),
                    "{origin}: validates, but the page says: {why}"
                );
                assert_eq!(
                    stderr.lines().count(),
                    1,
                    "{origin}: not one line: {stderr}"
                );
                assert!(
                    stderr.contains(&why),
                    "{origin}:\n  got:  {stderr}\n  page: {why}"
                );
            }
        }
    }
}

/// Every key the answer file accepts is on the page, so the page is the whole reference: the
/// keys are taken from the commented example, which uses every one.
#[test]
fn the_page_names_every_key_of_the_example_answer_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let page = std::fs::read_to_string(root.join(PAGE)).unwrap();
    let example = std::fs::read_to_string(root.join("examples/site.toml")).unwrap();
    let mut keys = Vec::new();
    for line in example.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(table) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            keys.push(table.to_string());
        } else if let Some((key, _)) = line.split_once(" = ") {
            if !key.contains(' ') && !key.is_empty() {
                keys.push(key.to_string());
            }
        }
    }
    assert!(
        keys.len() >= 25,
        "too few keys found in examples/site.toml: {keys:?}"
    );
    for k in keys {
        assert!(
            page.contains(&format!("`{k}`")) || page.contains(&format!("`[{k}]`")),
            "{PAGE} does not document `{k}`"
        );
    }
}
