//! The checked scalars of app.yaml: names, image references by digest, quantities, durations,
//! cron schedules, paths and templates. Each is read by a visitor, so a value that does not
//! fit fails inside the YAML reader, which then names its exact line and column.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::ParamType;
use crate::Context;

/// Reads a string and checks it with `check`; the error is raised inside the reader.
fn checked_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    check: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<F>(&'static str, F);
    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.1)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(V(expecting, check))
}

/// Reads a scalar (string, number or boolean) as text, then checks it: for values people write
/// bare in YAML (`PORT: 8080`, a cron `0 3 * * *`) that Kubernetes wants as strings.
fn scalar_text<'de, D, T>(
    d: D,
    expecting: &'static str,
    check: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<F>(&'static str, F);
    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.1)(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
    }
    d.deserialize_any(V(expecting, check))
}

macro_rules! string_type {
    ($(#[$m:meta])* $name:ident, $expecting:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The text as written (checked).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(s).map(|()| $name(s.to_string()))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                checked_str(d, $expecting, |s| s.parse())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

fn dns_label(s: &str, max: usize, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {s:?} is not a valid name: use lowercase letters, digits and '-', \
             starting with a letter, at most {max} characters (it names Kubernetes objects)"
        ))
    }
}

string_type!(
    /// An app or namespace name: a DNS label of at most 53 characters (it names a namespace
    /// and is part of object and Secret names).
    AppName,
    "an app name",
    |s| dns_label(s, 53, "name")
);

string_type!(
    /// A component name: a DNS label of at most 52 characters (a CronJob's limit).
    ComponentName,
    "a component name",
    |s| dns_label(s, 52, "component name")
);

string_type!(
    /// A volume, port or other short name inside a component: a DNS label of at most 15
    /// characters (a port name's limit).
    ShortName,
    "a short name",
    |s| dns_label(s, 15, "name")
);

string_type!(
    /// A parameter name: lowercase letters, digits, '-' and '_', starting with a letter.
    ParamName,
    "a parameter name",
    |s| {
        let ok = s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
            });
        if ok {
            Ok(())
        } else {
            Err(format!(
                "parameter name {s:?} is not valid: use lowercase letters, digits, '-' and '_', \
                 starting with a letter"
            ))
        }
    }
);

string_type!(
    /// An environment variable name (`LOG_LEVEL`).
    EnvName,
    "an environment variable name",
    |s| {
        let ok = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "environment variable name {s:?} is not valid: use letters, digits and '_', \
                 not starting with a digit"
            ))
        }
    }
);

string_type!(
    /// An absolute path inside a container or on a node (`/etc/mcd/web.conf`).
    AbsPath,
    "an absolute path",
    |s| {
        if !s.starts_with('/') {
            return Err(format!("path {s:?} must be absolute (start with '/')"));
        }
        if s.split('/').any(|p| p == "..") || s.contains('\0') {
            return Err(format!("path {s:?} must not contain '..'"));
        }
        Ok(())
    }
);

string_type!(
    /// A file inside the package directory, relative to app.yaml (`files/web.conf`).
    PackagePath,
    "a path relative to app.yaml",
    |s| {
        let clean = !s.is_empty()
            && !s.starts_with('/')
            && s.len() <= 90
            && s.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
            && !s.contains('\0');
        if clean {
            Ok(())
        } else {
            Err(format!(
                "file {s:?} must be a clean path inside the package directory (relative, no \
                 '..', at most 90 characters), e.g. files/web.conf"
            ))
        }
    }
);

string_type!(
    /// A Kubernetes quantity: `500m` or `2` for CPU, `256Mi`, `1Gi` or `1G` for bytes.
    Quantity,
    "a quantity such as 500m, 256Mi or 1Gi",
    |s| {
        const SUFFIXES: [&str; 14] = [
            "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", "",
        ];
        let ok = SUFFIXES.iter().any(|suf| {
            s.strip_suffix(suf).is_some_and(|n| {
                !n.is_empty()
                    && n.chars().all(|c| c.is_ascii_digit() || c == '.')
                    && n.chars().filter(|&c| c == '.').count() <= 1
                    && n.chars().any(|c| c.is_ascii_digit())
            })
        });
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{s:?} is not a quantity: write a number with an optional unit, e.g. 500m or 2 \
                 (CPU), 256Mi or 1Gi (bytes)"
            ))
        }
    }
);

string_type!(
    /// A cron schedule of five fields (`*/5 * * * *`) or a macro (`@hourly`).
    CronSchedule,
    "a cron schedule",
    |s| {
        let macros = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];
        let fields: Vec<&str> = s.split_whitespace().collect();
        let ok = macros.contains(&s)
            || (fields.len() == 5
                && fields.iter().all(|f| {
                    f.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "*/,-?".contains(c))
                }));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "schedule {s:?} is not a cron schedule: write five fields (minute hour \
                 day-of-month month day-of-week), e.g. \"*/5 * * * *\", or @hourly"
            ))
        }
    }
);

/// A duration in whole seconds, written `30s`, `5m` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub u64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a duration such as 30s, 5m or 1h", |s| {
            let bad = || {
                format!("{s:?} is not a duration: write a whole number with s, m or h, e.g. 30s")
            };
            let (n, mult) = match s.chars().last() {
                Some('s') => (&s[..s.len() - 1], 1),
                Some('m') => (&s[..s.len() - 1], 60),
                Some('h') => (&s[..s.len() - 1], 3600),
                _ => return Err(bad()),
            };
            let n: u64 = n.parse().map_err(|_| bad())?;
            Ok(Duration(n.saturating_mul(mult)))
        })
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", self.0))
    }
}

/// A package version (semantic versioning: `2.3.0`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub semver::Version);

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar_text(d, "a version such as 2.3.0", |s| {
            semver::Version::parse(s).map(Version).map_err(|e| {
                format!("version {s:?} is not a semantic version ({e}): write MAJOR.MINOR.PATCH, e.g. 2.3.0")
            })
        })
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.pad(&self.0.to_string())
    }
}

/// A range of versions a dependency accepts (`>=1.2, <2`, `^1.4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange(pub semver::VersionReq);

impl<'de> Deserialize<'de> for VersionRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar_text(d, "a version range such as \">=1.2, <2\"", |s| {
            semver::VersionReq::parse(s).map(VersionRange).map_err(|e| {
                format!(
                    "version range {s:?} is not valid ({e}): write e.g. \">=1.2, <2\" or \"^1.4\""
                )
            })
        })
    }
}

impl Serialize for VersionRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An image reference pinned by digest: `demo/web:2.3.0@sha256:<64 hex>` (the tag is
/// optional and only informative; the digest is what runs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    text: String,
    at: usize,
}

impl ImageRef {
    /// The reference as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The name with its tag, if any (`demo/web:2.3.0`).
    pub fn name_and_tag(&self) -> &str {
        &self.text[..self.at]
    }

    /// The repository name without tag (`demo/web`).
    pub fn repository(&self) -> &str {
        let n = self.name_and_tag();
        match n.rfind(':') {
            Some(c) if !n[c..].contains('/') => &n[..c],
            _ => n,
        }
    }

    /// The manifest digest (`sha256:<hex>`).
    pub fn digest(&self) -> &str {
        &self.text[self.at + 1..]
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.pad(&self.text)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some(at) = s.find('@') else {
            return Err(format!(
                "image {s:?} is not pinned by digest: write NAME[:TAG]@sha256:<64 hex digits> \
                 (`ferry bundle inspect` or `docker images --digests` shows the digest)"
            ));
        };
        let (name, digest) = (&s[..at], &s[at + 1..]);
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64
            || !hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return Err(format!(
                "image {s:?}: the digest must be sha256: followed by 64 lowercase hex digits"
            ));
        }
        let name_ok = !name.is_empty()
            && !name.starts_with(['/', ':', '.', '-'])
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c));
        if !name_ok {
            return Err(format!(
                "image {s:?}: the name {name:?} is not an image name (lowercase letters, \
                 digits, '.', '_', '-', '/', and ':' before a tag or port)"
            ));
        }
        Ok(ImageRef {
            text: s.to_string(),
            at,
        })
    }
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "an image reference by digest", |s| s.parse())
    }
}

impl Serialize for ImageRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Names every `${...}` stands for besides the parameters: what the site and the package are.
pub const BUILTINS: [&str; 4] = ["site.domain", "app.name", "app.namespace", "app.version"];

/// Where a template may use a secret parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUse {
    /// Nowhere: command lines, hosts and labels are visible to anyone who can list pods.
    Refused,
    /// Only as the whole value (`${db-password}`), which becomes a reference to a Secret.
    WholeValue,
    /// Anywhere: a config file that uses a secret becomes a Secret, not a ConfigMap.
    Anywhere,
}

/// One piece of a template: text, or the value of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text (`$${` already turned into `${`).
    Text(String),
    /// `${name}`: a parameter or one of [`BUILTINS`].
    Ref(String),
}

/// Splits a template into text and `${name}` references. `$${` is a literal `${`.
pub fn pieces(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = vec![];
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = r;
        } else if let Some(r) = after.strip_prefix("${") {
            let end = r.find('}').ok_or_else(|| {
                format!("{s:?} has a '${{' without its closing '}}' (write $${{ for a literal ${{)")
            })?;
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            out.push(Piece::Ref(r[..end].trim().to_string()));
            rest = &r[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// Checks a template's references against the parameters being parsed.
fn check_template(s: &str, secrets: SecretUse) -> Result<(), String> {
    let parts = pieces(s)?;
    let whole = parts.len() == 1;
    for p in &parts {
        let Piece::Ref(name) = p else { continue };
        if BUILTINS.contains(&name.as_str()) {
            continue;
        }
        let ty = Context::with(|c| c.params.get(name).copied());
        match ty {
            // Outside a parse (a type read on its own): nothing to check against.
            None => {}
            Some(None) => {
                return Err(format!(
                    "${{{name}}} names no parameter: declare it under parameters, or use one of \
                     {} (write $${{ for a literal ${{)",
                    BUILTINS.map(|b| format!("${{{b}}}")).join(", ")
                ))
            }
            Some(Some(ParamType::Secret)) => match secrets {
                SecretUse::Anywhere => {}
                SecretUse::WholeValue if whole => {}
                SecretUse::WholeValue => {
                    return Err(format!(
                        "secret parameter ${{{name}}} must be the whole value (\"${{{name}}}\"), \
                         so it is passed from a Secret and never written into the pod spec"
                    ))
                }
                SecretUse::Refused => {
                    return Err(format!(
                        "secret parameter ${{{name}}} cannot be used here (command lines, hosts \
                         and labels are visible to anyone who lists pods): pass it in env or a \
                         config file"
                    ))
                }
            },
            Some(Some(_)) => {}
        }
    }
    Ok(())
}

macro_rules! template_type {
    ($(#[$m:meta])* $name:ident, $secrets:expr, $read:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// The template as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $read(d, "a string", |s| {
                    check_template(s, $secrets).map(|()| $name(s.to_string()))
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

template_type!(
    /// Text with `${name}` references that never holds a secret (command, args, ingress host).
    Template,
    SecretUse::Refused,
    scalar_text
);
template_type!(
    /// An environment variable's value: a secret parameter only as the whole value.
    EnvValue,
    SecretUse::WholeValue,
    scalar_text
);
template_type!(
    /// A config file's content (substituted when the file says `template: true`).
    FileText,
    SecretUse::Anywhere,
    checked_str
);

/// `replicas`: a number, or `${name}` of an integer parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replicas {
    /// A fixed count.
    Count(u32),
    /// The value of an integer parameter.
    Param(String),
}

impl<'de> Deserialize<'de> for Replicas {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Replicas;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of replicas or ${parameter}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Replicas, E> {
                u32::try_from(v)
                    .map(Replicas::Count)
                    .map_err(|_| E::custom(format!("replicas {v} is too many")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Replicas, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("replicas {v} is negative: write 0 or more")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Replicas, E> {
                let name = s
                    .strip_prefix("${")
                    .and_then(|r| r.strip_suffix('}'))
                    .map(str::trim)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "replicas {s:?} is neither a number nor ${{parameter}}: write e.g. 2 \
                             or \"${{web-replicas}}\""
                        ))
                    })?;
                match Context::with(|c| c.params.get(name).copied()) {
                    None | Some(Some(ParamType::Integer)) => Ok(Replicas::Param(name.into())),
                    Some(None) => Err(E::custom(format!(
                        "replicas ${{{name}}} names no parameter: declare it under parameters \
                         with type: integer"
                    ))),
                    Some(Some(t)) => Err(E::custom(format!(
                        "replicas ${{{name}}} names a {} parameter: replicas needs one of type: \
                         integer",
                        t.label()
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Replicas {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Replicas::Count(n) => s.serialize_u32(*n),
            Replicas::Param(p) => s.serialize_str(&format!("${{{p}}}")),
        }
    }
}

/// A probe's port: a number or the name of one of the component's ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    /// A port number.
    Number(u16),
    /// A port's name.
    Name(ShortName),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_templates_and_keeps_escaped_dollars() {
        assert_eq!(
            pieces("http://${app.name}.${site.domain}/$${HOME}$x").unwrap(),
            vec![
                Piece::Text("http://".into()),
                Piece::Ref("app.name".into()),
                Piece::Text(".".into()),
                Piece::Ref("site.domain".into()),
                Piece::Text("/${HOME}$x".into()),
            ]
        );
        assert!(pieces("${open").is_err());
    }

    #[test]
    fn reads_image_references_by_digest_only() {
        let d = "sha256:".to_string() + &"ab".repeat(32);
        let r: ImageRef = format!("registry.local:5000/demo/web:2.3.0@{d}")
            .parse()
            .unwrap();
        assert_eq!(r.repository(), "registry.local:5000/demo/web");
        assert_eq!(r.name_and_tag(), "registry.local:5000/demo/web:2.3.0");
        assert_eq!(r.digest(), d);
        for bad in ["demo/web:2.3.0", "demo/web@sha256:abc", "Demo/web@sha256:x"] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }
}
