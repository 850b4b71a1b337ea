//! Checks of single values that can be told wrong without reaching a host: a host address
//! (an IP address or a DNS name, nothing else) and a role word that is a slip of a known role.

use std::net::IpAddr;

/// Whether `s` is an address SSH can reach: an IPv4 or IPv6 address, or a DNS host name.
/// `Err` says what is wrong and what to write, e.g. for `10.0.0.300`, `10.0.0.0/24` or
/// `" 10.0.0.1"`.
pub fn address(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("is empty; write the host's IP address or DNS name".into());
    }
    if s.trim() != s || s.contains(char::is_whitespace) {
        return Err(format!(
            "has spaces in it; write it without them: \"{}\"",
            s.split_whitespace().collect::<String>()
        ));
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if let Some((net, bits)) = s.split_once('/') {
        if net.parse::<IpAddr>().is_ok() && bits.parse::<u8>().is_ok() {
            return Err(
                "is a network (CIDR), not a host's address; write the host's own \
                 address, like 10.0.0.11"
                    .into(),
            );
        }
    }
    // Only digits and dots: meant as IPv4, and not one (a number above 255, too few parts).
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(
            "is not an IPv4 address: write four numbers from 0 to 255 separated by dots, \
             like 10.0.0.11"
                .into(),
        );
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.len() <= 253 && name.split('.').all(label_ok) {
        return Ok(());
    }
    Err(
        "is neither an IP address nor a host name (letters, digits, '-' and '.'); \
         write the host's IP address or DNS name"
            .into(),
    )
}

/// The roles ferry acts on, and words often written for them.
const MEANT: &[(&str, &str)] = &[
    ("master", "server"),
    ("masters", "server"),
    ("control-plane", "server"),
    ("control_plane", "server"),
    ("controlplane", "server"),
    ("worker", "agent"),
    ("workers", "agent"),
];

/// The known role a role word was most likely meant as, when it is not one itself but is a
/// slip of one (`sever`, `agnet`, `Server`, `gpus`) or a word other tools use for one
/// (`master`, `worker`). Other words are free labels and give `None`.
pub fn role_meant(word: &str) -> Option<&'static str> {
    const KNOWN: [&str; 4] = ["server", "agent", "gpu", "bastion"];
    if KNOWN.contains(&word) {
        return None;
    }
    let lower = word.to_ascii_lowercase();
    if let Some((_, role)) = MEANT.iter().find(|(w, _)| *w == lower) {
        return Some(role);
    }
    KNOWN
        .iter()
        .map(|k| (distance(&lower, k), *k))
        .filter(|(d, k)| *d <= if k.len() <= 3 { 1 } else { 2 })
        .min()
        .map(|(_, k)| k)
}

/// Edits (insert, delete, replace, swap of neighbours) between two words.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_ip_addresses_or_host_names() {
        for good in [
            "10.0.0.11",
            "fd00::11",
            "node1",
            "node-1.site.local",
            "node1.site.local.",
        ] {
            assert_eq!(address(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("10.0.0.300", "is not an IPv4 address"),
            ("10.0.0", "is not an IPv4 address"),
            ("10.0.0.0/24", "is a network (CIDR)"),
            (
                " 10.0.0.1",
                "has spaces in it; write it without them: \"10.0.0.1\"",
            ),
            ("10.0.0.1 ", "has spaces"),
            ("node 1", "has spaces"),
            ("", "is empty"),
            ("node_1", "is neither an IP address nor a host name"),
            ("-node", "is neither"),
            ("a..b", "is neither"),
        ] {
            let err = address(bad).unwrap_err();
            assert!(err.starts_with(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn slips_of_known_roles_are_caught_and_other_words_are_labels() {
        for (word, meant) in [
            ("sever", "server"),
            ("servers", "server"),
            ("Server", "server"),
            ("agnet", "agent"),
            ("agents", "agent"),
            ("gpus", "gpu"),
            ("bastian", "bastion"),
            ("master", "server"),
            ("worker", "agent"),
        ] {
            assert_eq!(role_meant(word), Some(meant), "{word}");
        }
        for word in [
            "server", "agent", "gpu", "bastion", "db", "storage", "edge", "etcd",
        ] {
            assert_eq!(role_meant(word), None, "{word}");
        }
    }
}
