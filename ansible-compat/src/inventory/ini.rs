//! The INI inventory format: `[group]` host lines with `key=value` pairs, `[group:children]`,
//! `[group:vars]`, and hosts before any section (ungrouped).

use serde_json::Value;

use super::{pattern, AnsibleError, Parsed};

enum Section {
    Hosts(String),
    Children(String),
    Vars(String),
}

/// Parses INI inventory text; `file` names it in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<Parsed, AnsibleError> {
    let mut parsed = Parsed::default();
    let mut section = Section::Hosts("ungrouped".to_string());
    for (i, raw_line) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |message: String| AnsibleError::Syntax {
            file: file.to_string(),
            line: line_no,
            message,
        };
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
                return Err(err(format!(
                    "section header `{line}` does not end with `]`"
                )));
            };
            let inner = inner.trim();
            section = match inner.split_once(':') {
                None => Section::Hosts(inner.to_string()),
                Some((g, "children")) => Section::Children(g.to_string()),
                Some((g, "vars")) => Section::Vars(g.to_string()),
                Some((_, other)) => {
                    return Err(err(format!(
                        "section `[{inner}]`: `:{other}` is not known; use `:children` or `:vars`"
                    )))
                }
            };
            let name = match &section {
                Section::Hosts(g) | Section::Children(g) | Section::Vars(g) => g,
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(err(format!("group name `{name}` is not valid")));
            }
            parsed.group(name);
            continue;
        }
        match &section {
            Section::Hosts(group) => {
                let tokens = split_tokens(line).map_err(&err)?;
                let Some((pattern, pairs)) = tokens.split_first() else {
                    continue;
                };
                if pattern.contains('=') {
                    return Err(err(format!(
                        "`{pattern}` looks like a variable, but host lines start with a host name"
                    )));
                }
                let mut vars = Vec::new();
                for pair in pairs {
                    let (k, v) = pair.split_once('=').ok_or_else(|| {
                        err(format!(
                            "`{pair}` after host `{pattern}` is not `key=value`"
                        ))
                    })?;
                    if k.is_empty() {
                        return Err(err(format!("`{pair}` has an empty variable name")));
                    }
                    let quoted = v.len() >= 2
                        && (v.starts_with('"') && v.ends_with('"')
                            || v.starts_with('\'') && v.ends_with('\''));
                    let value = if quoted {
                        Value::String(unquote(v))
                    } else {
                        literal(v)
                    };
                    vars.push((k.to_string(), value));
                }
                let names = pattern::expand(pattern).map_err(&err)?;
                for name in names {
                    parsed.add_host(group, &name, vars.clone());
                }
            }
            Section::Children(group) => {
                if line.contains(char::is_whitespace) || line.contains('=') {
                    return Err(err(format!(
                        "`{line}` in [{group}:children] is not a single group name"
                    )));
                }
                parsed.group(line);
                parsed.group(group).children.push(line.to_string());
            }
            Section::Vars(group) => {
                let (k, v) = line
                    .split_once('=')
                    .ok_or_else(|| err(format!("`{line}` in [{group}:vars] is not `key=value`")))?;
                let v = unquote(v.trim());
                parsed
                    .group(group)
                    .vars
                    .push((k.trim().to_string(), Value::String(v)));
            }
        }
    }
    Ok(parsed)
}

/// A host-line value as Ansible reads it: a Python literal (`2222`, `1.5`, `True`, `None`)
/// where it is one, else a string. Values in `:vars` sections stay strings, as in Ansible.
fn literal(v: &str) -> Value {
    match v {
        "True" => return Value::Bool(true),
        "False" => return Value::Bool(false),
        "None" => return Value::Null,
        _ => {}
    }
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if v.contains('.') && !v.starts_with('.') && !v.ends_with('.') {
        if let Some(n) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(v.to_string())
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// Splits a host line on blanks, keeping quoted values (`a="x y"`) whole, quotes included;
/// `#` starts a comment.
fn split_tokens(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            None if c == '#' && cur.is_empty() => break,
            None => cur.push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unclosed {q} quote"));
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    Ok(tokens)
}
