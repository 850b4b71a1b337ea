//! The YAML inventory format: top-level groups (usually `all`), each with `hosts`, `vars` and
//! `children` mappings.

use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

use super::{pattern, AnsibleError, Parsed};

/// Parses YAML inventory text; `file` names it in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<Parsed, AnsibleError> {
    let doc: Yaml = serde_yaml_ng::from_str(text).map_err(|e| AnsibleError::Syntax {
        file: file.to_string(),
        line: e.location().map(|l| l.line()).unwrap_or(0),
        message: without_quoted(&e.to_string()),
    })?;
    let shape = |message: String| AnsibleError::Shape {
        file: file.to_string(),
        message,
    };
    let mut parsed = Parsed::default();
    match doc {
        Yaml::Null => {}
        Yaml::Mapping(top) => {
            for (k, v) in top {
                let name = key(&k).map_err(&shape)?;
                group(&mut parsed, &name, v, &shape)?;
            }
        }
        _ => return Err(shape("the top level must be a mapping of groups".into())),
    }
    Ok(parsed)
}

fn key(k: &Yaml) -> Result<String, String> {
    match k {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Number(n) => Ok(n.to_string()),
        // Never the key's Debug text: a mapping or sequence key would carry values.
        Yaml::Bool(_) => Err("a true/false key is not a valid name".into()),
        Yaml::Null => Err("an empty (null) key is not a valid name".into()),
        Yaml::Sequence(_) => Err("a list key is not a valid name".into()),
        Yaml::Mapping(_) => Err("a mapping key is not a valid name".into()),
        Yaml::Tagged(_) => Err("a tagged key is not a valid name".into()),
    }
}

/// A YAML parser message with quoted parts (which may be values, e.g. a password) replaced
/// by `…`; errors end up in logs and terminals.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => {}
            None if c == '"' || c == '`' => {
                quote = Some(c);
                out.push(c);
                out.push('…');
            }
            None => out.push(c),
        }
    }
    out
}

fn group(
    parsed: &mut Parsed,
    name: &str,
    body: Yaml,
    shape: &dyn Fn(String) -> AnsibleError,
) -> Result<(), AnsibleError> {
    parsed.group(name);
    let body = match body {
        Yaml::Null => return Ok(()),
        Yaml::Mapping(m) => m,
        _ => return Err(shape(format!("group `{name}` must be a mapping"))),
    };
    for (k, v) in body {
        let field = key(&k).map_err(shape)?;
        match field.as_str() {
            "hosts" => match v {
                Yaml::Null => {}
                Yaml::Mapping(hosts) => {
                    for (hk, hv) in hosts {
                        let pat = key(&hk).map_err(shape)?;
                        let vars = vars(&hv, &format!("host `{pat}`"), shape)?;
                        for host in pattern::expand(&pat).map_err(shape)? {
                            parsed.add_host(name, &host, vars.clone());
                        }
                    }
                }
                _ => {
                    return Err(shape(format!(
                        "`hosts` of group `{name}` must be a mapping"
                    )))
                }
            },
            "vars" => {
                let vs = vars(&v, &format!("group `{name}`"), shape)?;
                parsed.group(name).vars.extend(vs);
            }
            "children" => match v {
                Yaml::Null => {}
                Yaml::Mapping(children) => {
                    for (ck, cv) in children {
                        let child = key(&ck).map_err(shape)?;
                        parsed.group(name).children.push(child.clone());
                        group(parsed, &child, cv, shape)?;
                    }
                }
                _ => {
                    return Err(shape(format!(
                        "`children` of group `{name}` must be a mapping"
                    )))
                }
            },
            other => {
                return Err(shape(format!(
                "group `{name}` has key `{other}`; only `hosts`, `vars` and `children` are known"
            )))
            }
        }
    }
    Ok(())
}

fn vars(
    v: &Yaml,
    whose: &str,
    shape: &dyn Fn(String) -> AnsibleError,
) -> Result<Vec<(String, Value)>, AnsibleError> {
    match v {
        Yaml::Null => Ok(Vec::new()),
        Yaml::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                let k = key(k).map_err(shape)?;
                // The conversion error may quote the value: name the variable only.
                let v = serde_json::to_value(v).map_err(|_| {
                    shape(format!(
                        "{whose}: variable `{k}` has a value JSON cannot hold \
                         (a mapping key that is not text?)"
                    ))
                })?;
                Ok((k, v))
            })
            .collect(),
        _ => Err(shape(format!("variables of {whose} must be a mapping"))),
    }
}
