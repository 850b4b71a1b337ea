//! Parameter values: the defaults app.yaml gives and the values a site gives (in its answer
//! file, or `--set name=value`), checked against each parameter's type, and the `${name}`
//! substitution that uses them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::model::{AppSpec, ParamType};
use crate::scalar::{pieces, Piece};
use crate::AppError;

/// One parameter's value.
#[derive(Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// Text.
    String(String),
    /// A whole number.
    Integer(i64),
    /// true or false.
    Boolean(bool),
    /// Text never shown (Debug prints `<secret>`).
    Secret(String),
}

impl fmt::Debug for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ParamValue::String(s) => write!(f, "{s:?}"),
            ParamValue::Integer(n) => write!(f, "{n}"),
            ParamValue::Boolean(b) => write!(f, "{b}"),
            ParamValue::Secret(_) => f.write_str("<secret>"),
        }
    }
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::String(v) | ParamValue::Secret(v) => s.serialize_str(v),
            ParamValue::Integer(n) => s.serialize_i64(*n),
            ParamValue::Boolean(b) => s.serialize_bool(*b),
        }
    }
}

impl ParamValue {
    /// The value as text, as it is substituted.
    pub fn as_text(&self) -> String {
        match self {
            ParamValue::String(s) | ParamValue::Secret(s) => s.clone(),
            ParamValue::Integer(n) => n.to_string(),
            ParamValue::Boolean(b) => b.to_string(),
        }
    }

    /// What to write for a value of type `ty`.
    pub fn hint(ty: ParamType) -> &'static str {
        match ty {
            ParamType::String => "write text, quoted if it looks like a number",
            ParamType::Integer => "write a whole number, e.g. 3",
            ParamType::Boolean => "write true or false",
            ParamType::Secret => "write the secret's text",
        }
    }

    /// A YAML value (a default in app.yaml) as type `ty`; `Err` shows what was given.
    pub(crate) fn from_yaml(ty: ParamType, v: &serde_yaml_ng::Value) -> Result<Self, String> {
        use serde_yaml_ng::Value as Y;
        match (ty, v) {
            (ParamType::String, Y::String(s)) => Ok(ParamValue::String(s.clone())),
            (ParamType::Secret, Y::String(s)) => Ok(ParamValue::Secret(s.clone())),
            (ParamType::Integer, Y::Number(n)) if n.as_i64().is_some() => {
                Ok(ParamValue::Integer(n.as_i64().unwrap_or_default()))
            }
            (ParamType::Boolean, Y::Bool(b)) => Ok(ParamValue::Boolean(*b)),
            _ => Err(shown_yaml(v)),
        }
    }

    /// A JSON value (an answer file's, converted) as type `ty`; `Err` shows what was given.
    pub fn from_json(ty: ParamType, v: &serde_json::Value) -> Result<Self, String> {
        use serde_json::Value as J;
        match (ty, v) {
            (ParamType::String, J::String(s)) => Ok(ParamValue::String(s.clone())),
            (ParamType::Secret, J::String(s)) => Ok(ParamValue::Secret(s.clone())),
            (ParamType::Integer, J::Number(n)) if n.as_i64().is_some() => {
                Ok(ParamValue::Integer(n.as_i64().unwrap_or_default()))
            }
            (ParamType::Boolean, J::Bool(b)) => Ok(ParamValue::Boolean(*b)),
            (ParamType::Secret, _) => Err("a value that is not text".into()),
            _ => Err(v.to_string()),
        }
    }

    /// Text from a command line (`--set replicas=3`) as type `ty`; `Err` shows what was given.
    pub fn from_text(ty: ParamType, s: &str) -> Result<Self, String> {
        match ty {
            ParamType::String => Ok(ParamValue::String(s.to_string())),
            ParamType::Secret => Ok(ParamValue::Secret(s.to_string())),
            ParamType::Integer => s
                .trim()
                .parse()
                .map(ParamValue::Integer)
                .map_err(|_| format!("{s:?}")),
            ParamType::Boolean => match s.trim() {
                "true" => Ok(ParamValue::Boolean(true)),
                "false" => Ok(ParamValue::Boolean(false)),
                _ => Err(format!("{s:?}")),
            },
        }
    }
}

fn shown_yaml(v: &serde_yaml_ng::Value) -> String {
    match v {
        serde_yaml_ng::Value::String(s) => format!("{s:?}"),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "the value".into()),
    }
}

/// Every parameter of an app with its value for one site, and the built-in names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values {
    map: BTreeMap<String, ParamValue>,
}

/// A value a site gives, before it is checked against its parameter.
#[derive(Debug, Clone)]
pub enum Given {
    /// From a command line: read as the parameter's type.
    Text(String),
    /// From a file: must already be of the parameter's type.
    Json(serde_json::Value),
}

impl Values {
    /// The values of `spec`'s parameters for a site: what the site gives, else the default.
    /// `domain` is the site's domain (`${site.domain}`). Refuses a value of the wrong type,
    /// a value for no parameter, and a missing value for a parameter without a default.
    pub fn resolve(
        spec: &AppSpec,
        domain: &str,
        given: &BTreeMap<String, Given>,
    ) -> Result<Values, AppError> {
        let app = spec.name.to_string();
        let err = |msg: String| AppError::Value {
            app: app.clone(),
            msg,
        };
        for name in given.keys() {
            if spec.parameter(name).is_none() {
                let known: Vec<&str> = spec.parameters.iter().map(|p| p.name.as_str()).collect();
                return Err(err(format!(
                    "no parameter is named {name:?} (it has: {}): check the name",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        let mut map = BTreeMap::new();
        for p in &spec.parameters {
            let value = match given.get(p.name.as_str()) {
                Some(g) => {
                    let got = match g {
                        Given::Text(s) => ParamValue::from_text(p.ty, s),
                        Given::Json(v) => ParamValue::from_json(p.ty, v),
                    };
                    got.map_err(|shown| {
                        err(format!(
                            "parameter {} is of type {}, and {} is not: {}",
                            p.name,
                            p.ty.label(),
                            if p.ty == ParamType::Secret {
                                "the value given".to_string()
                            } else {
                                shown
                            },
                            ParamValue::hint(p.ty)
                        ))
                    })?
                }
                None => p.default.clone().ok_or_else(|| {
                    err(format!(
                        "parameter {} has no default and no value was given: give it for this \
                         site ({})",
                        p.name, p.description
                    ))
                })?,
            };
            map.insert(p.name.to_string(), value);
        }
        map.insert("site.domain".into(), ParamValue::String(domain.into()));
        map.insert("app.name".into(), ParamValue::String(spec.name.to_string()));
        map.insert(
            "app.namespace".into(),
            ParamValue::String(spec.namespace().to_string()),
        );
        map.insert(
            "app.version".into(),
            ParamValue::String(spec.version.to_string()),
        );
        Ok(Values { map })
    }

    /// The value of `name` (a parameter or a built-in).
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.map.get(name)
    }

    /// The parameters' values (without the built-ins), for recording a revision.
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.map
            .iter()
            .filter(|(k, _)| !k.contains('.'))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// `text` with every `${name}` replaced by its value and `$${` by `${`. The names were
    /// checked when app.yaml was read, so an unknown one is a bug in the caller's values.
    pub fn substitute(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        for p in pieces(text)? {
            match p {
                Piece::Text(t) => out.push_str(&t),
                Piece::Ref(name) => out.push_str(
                    &self
                        .get(&name)
                        .ok_or_else(|| format!("no value for ${{{name}}}"))?
                        .as_text(),
                ),
            }
        }
        Ok(out)
    }

    /// Whether `text` uses a secret parameter.
    pub fn uses_secret(&self, text: &str) -> bool {
        pieces(text).unwrap_or_default().iter().any(
            |p| matches!(p, Piece::Ref(n) if matches!(self.get(n), Some(ParamValue::Secret(_)))),
        )
    }
}
