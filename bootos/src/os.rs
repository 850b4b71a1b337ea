//! Which operating systems a resource supports, from a host's facts, and the one-line refusal
//! for the others.

use ferry_inventory::facts::Facts;

/// A family of distributions sharing package format and file layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Debian, Ubuntu and derivatives (deb, apt).
    Debian,
    /// RHEL, CentOS, Rocky, Alma, Fedora (rpm, dnf/yum).
    RedHat,
    /// Anything else.
    Other,
}

impl Family {
    /// The family of a host, from os-release's `ID` and `ID_LIKE`.
    pub fn of(facts: &Facts) -> Family {
        let words = std::iter::once(facts.os.id.as_str())
            .chain(facts.os.id_like.iter().map(String::as_str));
        let mut family = Family::Other;
        for w in words {
            match w {
                "debian" | "ubuntu" => return Family::Debian,
                "rhel" | "centos" | "fedora" | "rocky" | "almalinux" => family = Family::RedHat,
                _ => {}
            }
        }
        family
    }

    /// Its name in messages.
    pub fn label(self) -> &'static str {
        match self {
            Family::Debian => "Debian/Ubuntu",
            Family::RedHat => "RHEL/CentOS/Rocky",
            Family::Other => "other",
        }
    }
}

/// `Ok` when the host's family is one of `families`; otherwise one line naming the resource,
/// the host's OS and what is supported.
pub fn require(facts: &Facts, what: &str, families: &[Family]) -> Result<(), String> {
    let family = Family::of(facts);
    if families.contains(&family) {
        return Ok(());
    }
    let supported: Vec<&str> = families.iter().map(|f| f.label()).collect();
    let os = if facts.os.pretty_name.is_empty() {
        format!("{} {}", facts.os.id, facts.os.version_id)
    } else {
        facts.os.pretty_name.clone()
    };
    Err(format!(
        "{what} supports {} hosts; this one runs {}",
        supported.join(" and "),
        os.trim()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn facts(id: &str, like: &[&str]) -> Facts {
        let mut f = Facts::default();
        f.os.id = id.into();
        f.os.id_like = like.iter().map(|s| s.to_string()).collect();
        f.os.pretty_name = format!("{id} test");
        f
    }

    #[test]
    fn tells_families_apart() {
        assert_eq!(Family::of(&facts("debian", &[])), Family::Debian);
        assert_eq!(Family::of(&facts("linuxmint", &["ubuntu"])), Family::Debian);
        assert_eq!(
            Family::of(&facts("rocky", &["rhel", "centos", "fedora"])),
            Family::RedHat
        );
        assert_eq!(Family::of(&facts("alpine", &[])), Family::Other);
    }

    #[test]
    fn refusal_names_the_os_and_what_is_supported() {
        let e = require(&facts("alpine", &[]), "sysctl", &[Family::Debian]).unwrap_err();
        assert_eq!(
            e,
            "sysctl supports Debian/Ubuntu hosts; this one runs alpine test"
        );
    }
}
