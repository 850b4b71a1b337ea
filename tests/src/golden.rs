//! Golden-file checks shared by the parser tests of every crate (inventory files, facts
//! fixtures, Ansible imports): each input beside its expected result.
//!
//! `UPDATE_GOLDEN=1` rewrites the expected files instead of comparing; it is refused when
//! `CI=true`, so CI always compares. Every check names how many inputs it must see, so an
//! empty or misnamed data directory fails instead of passing with nothing compared.

// A test harness: a failure to read or write a golden file is the test failing, loudly.
#![allow(clippy::unwrap_used, clippy::new_without_default)]

use std::path::Path;

/// One run of golden comparisons.
pub struct Golden {
    update: bool,
    checked: usize,
    failures: Vec<String>,
}

impl Golden {
    /// Reads `UPDATE_GOLDEN`; panics if it is set under `CI=true`.
    pub fn new() -> Self {
        let update = std::env::var_os("UPDATE_GOLDEN").is_some();
        assert!(
            !(update && ci()),
            "UPDATE_GOLDEN is set under CI=true: golden files are only rewritten by hand, \
             CI must compare them"
        );
        Self {
            update,
            checked: 0,
            failures: Vec::new(),
        }
    }

    /// Compares `got` with the file at `golden` (or rewrites it when updating).
    pub fn check(&mut self, golden: &Path, got: &str) {
        self.checked += 1;
        if self.update {
            std::fs::write(golden, got).unwrap();
        } else if std::fs::read_to_string(golden).unwrap_or_default() != got {
            self.failures.push(format!("{}:\n{got}", golden.display()));
        }
    }

    /// Fails on any mismatch, or if fewer than `at_least` files were checked.
    pub fn finish(self, at_least: usize) {
        assert!(
            self.checked >= at_least,
            "only {} golden files checked, at least {at_least} expected: inputs missing",
            self.checked
        );
        assert!(
            self.failures.is_empty(),
            "golden mismatch:\n{}",
            self.failures.join("\n")
        );
    }
}

/// Whether `CI=true`.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The expected error line of a `bad-*` input: its `.err` file, which must not be empty
/// (an empty expectation would match any error).
pub fn expected_error(err_file: &Path) -> String {
    let want =
        std::fs::read_to_string(err_file).unwrap_or_else(|e| panic!("{}: {e}", err_file.display()));
    let want = want.trim_end().to_string();
    assert!(!want.is_empty(), "{} is empty", err_file.display());
    want
}
