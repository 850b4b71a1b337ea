//! Builds the vendor key set into ferry-license: the armored public keys in the file named by
//! `FERRY_LICENSE_VENDOR_KEYS` at build time (none when it is unset), so that no one on a site
//! can add an issuer key of their own. The keys are parsed when ferry starts using them; here
//! the file is only checked for what would be a mistake to build in.

use std::path::{Path, PathBuf};

const VAR: &str = "FERRY_LICENSE_VENDOR_KEYS";

fn main() {
    println!("cargo:rerun-if-env-changed={VAR}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("vendor-keys.pub");
    let text = match std::env::var_os(VAR).filter(|v| !v.is_empty()) {
        None => String::new(),
        Some(path) => read_keys(Path::new(&path)),
    };
    std::fs::write(&out, text).expect("writing the vendor key set into OUT_DIR");
}

fn read_keys(path: &Path) -> String {
    if path.is_relative() {
        panic!("{VAR}={}: give an absolute path", path.display());
    }
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{VAR}: reading {}: {e}", path.display()));
    // A private key built into a binary would be handed to every site: refuse it outright.
    if text.contains("SIGNING KEY") {
        panic!(
            "{VAR}: {} holds a license signing (private) key: build in only the .pub files",
            path.display()
        );
    }
    if !text.contains("-----BEGIN FERRY LICENSE PUBLIC KEY-----") {
        panic!(
            "{VAR}: {} holds no `FERRY LICENSE PUBLIC KEY` block (make one with `ferry license keygen`)",
            path.display()
        );
    }
    text
}
