//! Host patterns with ranges: `node[01:20]`, `rack[a:c]-n[1:9:2]`.

/// Expands every `[start:end]` or `[start:end:step]` range in a host pattern. Numeric ranges
/// keep the start's zero padding; letter ranges go one letter at a time.
pub fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(|| format!("unclosed `[` in host pattern `{pattern}`"))?;
    let (head, inner, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let parts: Vec<&str> = inner.split(':').collect();
    let (start, end, step) = match parts.as_slice() {
        [s, e] => (*s, *e, "1"),
        [s, e, st] => (*s, *e, *st),
        _ => {
            return Err(format!(
                "range `[{inner}]` in `{pattern}` is not `[start:end]`"
            ))
        }
    };
    let step: usize =
        step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
            format!("range step `{step}` in `{pattern}` is not a positive number")
        })?;
    let items: Vec<String> = if let (Ok(a), Ok(b)) = (start.parse::<u64>(), end.parse::<u64>()) {
        if a > b {
            return Err(format!("range `[{inner}]` in `{pattern}` goes backwards"));
        }
        let width = if start.len() > 1 && start.starts_with('0') {
            start.len()
        } else {
            0
        };
        (a..=b)
            .step_by(step)
            .map(|n| format!("{n:0width$}"))
            .collect()
    } else {
        let letter = |s: &str| {
            let mut cs = s.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
                _ => None,
            }
        };
        match (letter(start), letter(end)) {
            (Some(a), Some(b)) if a <= b => (a..=b).step_by(step).map(String::from).collect(),
            _ => {
                return Err(format!(
                    "range `[{inner}]` in `{pattern}` is neither numbers nor letters in order"
                ))
            }
        }
    };
    let tails = expand(tail)?;
    let mut ordered = Vec::with_capacity(items.len() * tails.len());
    for item in &items {
        for rest in &tails {
            ordered.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::expand;

    #[test]
    fn expands_padded_numbers_letters_and_steps() {
        assert_eq!(
            expand("node[01:03]").unwrap(),
            ["node01", "node02", "node03"]
        );
        assert_eq!(expand("[a:c].x").unwrap(), ["a.x", "b.x", "c.x"]);
        assert_eq!(expand("n[1:5:2]").unwrap(), ["n1", "n3", "n5"]);
        assert_eq!(
            expand("r[1:2]n[a:b]").unwrap(),
            ["r1na", "r1nb", "r2na", "r2nb"]
        );
        assert_eq!(expand("plain").unwrap(), ["plain"]);
    }

    #[test]
    fn refuses_broken_ranges() {
        assert!(expand("n[1:").is_err());
        assert!(expand("n[5:1]").is_err());
        assert!(expand("n[1:3:0]").is_err());
        assert!(expand("n[a:9]").is_err());
    }
}
