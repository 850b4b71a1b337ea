//! The one error type of this crate: each message is one line naming the file (and line, when
//! there is one), the cause, and what to do.

use std::io;

/// Everything that can be wrong with an app package's description or its values.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Reading a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done ("reading mcd/app.yaml").
        what: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// `app.yaml` is not valid YAML or not a valid description.
    #[error("{file}{}: {msg}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file (`mcd/app.yaml`).
        file: String,
        /// The line of the mistake, when it has one.
        line: Option<usize>,
        /// What is wrong and what to do.
        msg: String,
    },
    /// A parameter value given for a site does not fit the parameter.
    #[error("app {app}: {msg}")]
    Value {
        /// The app.
        app: String,
        /// What is wrong and what to do.
        msg: String,
    },
    /// Packages' dependencies cannot be met or go round in a circle.
    #[error("{0}")]
    Dependency(String),
}

impl AppError {
    /// An error of the YAML reader, as one line `FILE:LINE: what: cause`.
    pub(crate) fn from_yaml(file: &str, e: &serde_yaml_ng::Error) -> Self {
        Self::from_yaml_with(file, e, "")
    }

    /// A YAML syntax error: the reader's words, and what to look at.
    pub(crate) fn syntax(file: &str, e: &serde_yaml_ng::Error) -> Self {
        Self::from_yaml_with(
            file,
            e,
            " (not valid YAML: check the indentation and quoting there)",
        )
    }

    fn from_yaml_with(file: &str, e: &serde_yaml_ng::Error, hint: &str) -> Self {
        let line = e.location().map(|l| l.line());
        let mut msg = e.to_string();
        if let Some(l) = e.location() {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(stripped) = msg.strip_suffix(&suffix) {
                msg = stripped.to_string();
            }
        }
        // One line, whatever the reader said.
        let mut msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
        // A check of a whole component or parameter names it itself: the path would only
        // repeat the list it is in ("components: component web: ...").
        if let Some((_, rest)) = msg.split_once(": ") {
            if rest.starts_with("component ") || rest.starts_with("parameter ") {
                msg = rest.to_string();
            }
        }
        if msg.contains("unknown field") {
            msg.push_str(" (a misspelt key? see docs/app-package.md)");
        } else if msg.contains("missing field") {
            msg.push_str(": add it (see docs/app-package.md)");
        }
        msg.push_str(hint);
        AppError::Invalid {
            file: file.to_string(),
            line,
            msg,
        }
    }
}
