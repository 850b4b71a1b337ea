//! The AppPackage format: what `app.yaml` says (an app's components, their images by digest,
//! ports, probes, volumes, resources; its parameters and its dependencies), read strictly, with
//! the line of every mistake. Described in docs/app-package.md, with a JSON schema beside it
//! (docs/app-package.schema.json) so editors can check a file as it is written.
//!
//! This crate knows nothing of signing, bundles, clusters or hosts: ferry-bundle packs and signs
//! a package directory into a `.fap` file and carries it in a bundle; the installer renders a
//! package to Kubernetes objects and deploys it. Both read the package through [`AppSpec`].

pub mod deps;
mod error;
pub mod model;
pub mod scalar;
pub mod values;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use error::AppError;
pub use model::{AppSpec, Component, ComponentKind, ParamType, Parameter};
pub use scalar::ImageRef;
pub use values::{ParamValue, Values};

/// The file name of a package's description inside its directory and its `.fap`.
pub const APP_YAML: &str = "app.yaml";

impl AppSpec {
    /// Reads and checks `app.yaml` at `path`.
    pub fn load(path: &Path) -> Result<Self, AppError> {
        let text = std::fs::read_to_string(path).map_err(|source| AppError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks `app.yaml` text; `file` names it in errors (`mcd/app.yaml`).
    ///
    /// Two passes: the first reads only the parameters' names and types (leniently), the
    /// second reads everything with them at hand, so a check that needs the parameters (an
    /// unknown `${name}`, a secret in a command line, `replicas: ${x}` naming a string) fails
    /// inside the YAML reader, which knows the line.
    pub fn parse(text: &str, file: &str) -> Result<Self, AppError> {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| AppError::syntax(file, &e))?;
        let _ctx = Context::enter(declared_parameters(&doc));
        let spec: AppSpec =
            serde_yaml_ng::from_str(text).map_err(|e| AppError::from_yaml(file, &e))?;
        spec.check().map_err(|msg| AppError::Invalid {
            file: file.to_string(),
            line: None,
            msg,
        })?;
        Ok(spec)
    }
}

/// The parameters a document declares (name → type), read without judging anything else: the
/// second pass reports every mistake with its line.
fn declared_parameters(doc: &serde_yaml_ng::Value) -> BTreeMap<String, ParamType> {
    let mut out = BTreeMap::new();
    let Some(list) = doc.get("parameters").and_then(|p| p.as_sequence()) else {
        return out;
    };
    for p in list {
        let name = p.get("name").and_then(|n| n.as_str());
        let ty = p
            .get("type")
            .and_then(|t| t.as_str())
            .and_then(|t| serde_yaml_ng::from_str::<ParamType>(t).ok());
        if let (Some(name), Some(ty)) = (name, ty) {
            out.insert(name.to_string(), ty);
        }
    }
    out
}

/// What the second pass knows while it reads: the declared parameters, and the names seen so
/// far (to refuse a second component or parameter of the same name at its line). Per thread,
/// set only for the duration of one [`AppSpec::parse`].
#[derive(Default)]
pub(crate) struct Context {
    pub(crate) params: BTreeMap<String, ParamType>,
    pub(crate) components: BTreeSet<String>,
    pub(crate) parameters_seen: BTreeSet<String>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Clears the context when the parse ends, however it ends.
struct ContextGuard;

impl Context {
    fn enter(params: BTreeMap<String, ParamType>) -> ContextGuard {
        CONTEXT.with(|c| {
            *c.borrow_mut() = Some(Context {
                params,
                ..Context::default()
            })
        });
        ContextGuard
    }

    /// Runs `f` on the context when a parse is under way (checks that need it are skipped
    /// when a type is deserialized on its own, e.g. from a rendered revision).
    pub(crate) fn with<R>(f: impl FnOnce(&mut Context) -> R) -> Option<R> {
        CONTEXT.with(|c| c.borrow_mut().as_mut().map(f))
    }
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| *c.borrow_mut() = None);
    }
}
