//! Host patterns with ranges: `node[01:20]`, `rack[a:c]-n[1:9:2]`.

/// The most host names one pattern may expand to; more is refused before anything is built
/// (`node[0:18446744073709551615]` would otherwise exhaust memory).
pub const MAX_HOSTS_PER_PATTERN: u64 = 10_000;

/// Expands every `[start:end]` or `[start:end:step]` range in a host pattern. Numeric ranges
/// keep the start's zero padding; letter ranges go one letter at a time. A pattern that would
/// give more than [`MAX_HOSTS_PER_PATTERN`] names is refused.
pub fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let too_many = || {
        format!(
            "host pattern `{pattern}` expands to more than {MAX_HOSTS_PER_PATTERN} hosts; \
             split it into smaller ranges"
        )
    };
    match count(pattern)? {
        Some(n) if n <= MAX_HOSTS_PER_PATTERN => expand_unchecked(pattern),
        _ => Err(too_many()),
    }
}

/// How many names `pattern` expands to, `None` past `u64`; checks syntax as [`expand`] does.
fn count(pattern: &str) -> Result<Option<u64>, String> {
    let Some((_, inner, tail)) = split(pattern)? else {
        return Ok(Some(1));
    };
    let here = match range(pattern, inner)? {
        Range::Numbers { a, b, step, .. } => ((b - a) / step).checked_add(1),
        Range::Letters { a, b, step } => Some((u64::from(b) - u64::from(a)) / step + 1),
    };
    let rest = count(tail)?;
    Ok(here.zip(rest).and_then(|(h, r)| h.checked_mul(r)))
}

/// `(head, inner, tail)` around the first `[...]`, or `None` without one.
fn split(pattern: &str) -> Result<Option<(&str, &str, &str)>, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(None);
    };
    let close = pattern[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(|| format!("unclosed `[` in host pattern `{pattern}`"))?;
    Ok(Some((
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    )))
}

enum Range {
    Numbers {
        a: u64,
        b: u64,
        step: u64,
        width: usize,
    },
    Letters {
        a: char,
        b: char,
        step: u64,
    },
}

/// Reads the inside of one `[...]`.
fn range(pattern: &str, inner: &str) -> Result<Range, String> {
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
    let step: u64 =
        step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
            format!("range step `{step}` in `{pattern}` is not a positive number")
        })?;
    if let (Ok(a), Ok(b)) = (start.parse::<u64>(), end.parse::<u64>()) {
        if a > b {
            return Err(format!("range `[{inner}]` in `{pattern}` goes backwards"));
        }
        let width = if start.len() > 1 && start.starts_with('0') {
            start.len()
        } else {
            0
        };
        return Ok(Range::Numbers { a, b, step, width });
    }
    let letter = |s: &str| {
        let mut cs = s.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
            _ => None,
        }
    };
    match (letter(start), letter(end)) {
        (Some(a), Some(b)) if a <= b => Ok(Range::Letters { a, b, step }),
        _ => Err(format!(
            "range `[{inner}]` in `{pattern}` is neither numbers nor letters in order"
        )),
    }
}

/// Expands a pattern already known to be small.
fn expand_unchecked(pattern: &str) -> Result<Vec<String>, String> {
    let Some((head, inner, tail)) = split(pattern)? else {
        return Ok(vec![pattern.to_string()]);
    };
    // Steps larger than usize cannot take a second item: one item is right either way.
    let items: Vec<String> = match range(pattern, inner)? {
        Range::Numbers { a, b, step, width } => (a..=b)
            .step_by(usize::try_from(step).unwrap_or(usize::MAX))
            .map(|n| format!("{n:0width$}"))
            .collect(),
        Range::Letters { a, b, step } => (a..=b)
            .step_by(usize::try_from(step).unwrap_or(usize::MAX))
            .map(String::from)
            .collect(),
    };
    let tails = expand_unchecked(tail)?;
    let mut ordered = Vec::with_capacity(items.len().saturating_mul(tails.len()));
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

    #[test]
    fn refuses_patterns_past_the_cap_before_building_them() {
        // ~1.8e19 names: must be refused at once, not abort on memory.
        let err = expand("node[0:18446744073709551615]").unwrap_err();
        assert!(err.contains("more than 10000 hosts"), "{err}");
        // Each range is small, their product is not; and products past u64 do not overflow.
        assert!(expand("r[1:200]n[1:200]").is_err());
        let huge = "a[0:18446744073709551615]b[0:18446744073709551615]c[0:9]";
        assert!(expand(huge).unwrap_err().contains("more than"));
        // Exactly at the cap is fine.
        assert_eq!(expand("n[1:100]m[1:100]").unwrap().len(), 10_000);
        assert_eq!(
            expand("n[0:18446744073709551615:18446744073709551615]").unwrap(),
            ["n0", "n18446744073709551615"]
        );
    }
}
