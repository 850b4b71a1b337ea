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
                    "section header {} does not end with `]`",
                    shown(line)
                )));
            };
            let inner = inner.trim();
            section = match inner.split_once(':') {
                None => Section::Hosts(inner.to_string()),
                Some((g, "children")) => Section::Children(g.to_string()),
                Some((g, "vars")) => Section::Vars(g.to_string()),
                Some((_, other)) => {
                    return Err(err(format!(
                        "section {}: {} is not known; use `:children` or `:vars`",
                        shown(&format!("[{inner}]")),
                        shown(&format!(":{other}"))
                    )))
                }
            };
            let name = match &section {
                Section::Hosts(g) | Section::Children(g) | Section::Vars(g) => g,
            };
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || "=\"'".contains(c)) {
                return Err(err(format!(
                    "group name {} is not valid: it is empty or has blanks, `=` or quotes",
                    shown(name)
                )));
            }
            parsed.group(name);
            continue;
        }
        match &section {
            Section::Hosts(group) => {
                let tokens = split_tokens(line).map_err(&err)?;
                let Some(((_, pattern), pairs)) = tokens.split_first() else {
                    continue;
                };
                if let Some((k, _)) = pattern.split_once('=') {
                    return Err(err(format!(
                        "the line starts with variable {}, but host lines start with a host name",
                        shown(k)
                    )));
                }
                let mut vars = Vec::new();
                for (column, pair) in pairs {
                    // Never echo the token: it may be a piece of a password split by a blank.
                    let (k, v) = pair.split_once('=').ok_or_else(|| {
                        err(format!(
                            "the word at column {column} after host {} is not `key=value` \
                             (quote values that contain blanks)",
                            shown(pattern)
                        ))
                    })?;
                    if k.is_empty() {
                        return Err(err(format!(
                            "the variable at column {column} has an empty name"
                        )));
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
                        "the line starting with {} in [{group}:children] is not a single group name",
                        shown(first_word(line))
                    )));
                }
                parsed.group(line);
                parsed.group(group).children.push(line.to_string());
            }
            Section::Vars(group) => {
                let (k, v) = line.split_once('=').ok_or_else(|| {
                    // Name the key only when there is more than one word: a lone word may be
                    // a stray piece of a value.
                    let key = first_word(line);
                    let key = if key.len() < line.len() {
                        shown(key)
                    } else {
                        "(not shown)".to_string()
                    };
                    err(format!(
                        "the line for {key} in [{group}:vars] is not `key=value`: it has no `=`"
                    ))
                })?;
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

/// The first word of a line, up to a blank or `=`: the key on a `key=value` or `key value`
/// line.
fn first_word(line: &str) -> &str {
    line.split(|c: char| c.is_whitespace() || c == '=')
        .next()
        .unwrap_or("")
}

/// A piece of a bad line for an error message, in backquotes: only if it cannot carry a
/// value (no `=`, blanks or quotes, and not too long); else `(not shown)`. Errors end up in
/// logs and terminals, so they name keys, lines and columns, never values.
fn shown(s: &str) -> String {
    let plain = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:[]@/*".contains(c));
    if plain {
        format!("`{s}`")
    } else {
        "(not shown)".to_string()
    }
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
/// `#` starts a comment. Each word comes with its 1-based column in the trimmed line.
fn split_tokens(line: &str) -> Result<Vec<(usize, String)>, String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    let mut quote: Option<(char, usize)> = None;
    for (i, c) in line.chars().enumerate() {
        if cur.is_empty() {
            start = i + 1;
        }
        match quote {
            Some((q, _)) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some((c, i + 1));
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    tokens.push((start, std::mem::take(&mut cur)));
                }
            }
            None if c == '#' && cur.is_empty() => break,
            None => cur.push(c),
        }
    }
    if let Some((q, column)) = quote {
        return Err(format!("unclosed {q} quote at column {column}"));
    }
    if !cur.is_empty() {
        tokens.push((start, cur));
    }
    Ok(tokens)
}
