//! Image names as Docker and containerd spell them in full: `busybox` is
//! `docker.io/library/busybox:latest`. containerd (and so k3s) stores images under full names,
//! so ferry writes full names into every index it makes.

/// Expands a Docker-style short reference to its full form: adds `docker.io/` when the first
/// part is not a registry host, `library/` for single-part Docker Hub names, and `:latest` when
/// neither a tag nor a digest is given. Bare digests (`sha256:…`) are returned unchanged.
pub fn normalize_reference(reference: &str) -> String {
    if reference.starts_with("sha256:") {
        return reference.to_string();
    }
    let (name, suffix) = match reference.find('@') {
        Some(at) => (&reference[..at], &reference[at..]),
        None => match reference.rfind(':') {
            // A colon after the last slash separates the tag; one before it is a host port.
            Some(colon) if !reference[colon..].contains('/') => {
                (&reference[..colon], &reference[colon..])
            }
            _ => (reference, ""),
        },
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_host =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_host {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    if suffix.is_empty() {
        full.push_str(":latest");
    } else {
        full.push_str(suffix);
    }
    full
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn expands_short_names_like_docker() {
        for (short, full) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("ferry/app:2", "docker.io/ferry/app:2"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("registry.example/a/b:c", "registry.example/a/b:c"),
            ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
            (
                "app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "docker.io/library/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
        ] {
            assert_eq!(normalize_reference(short), full, "{short}");
        }
    }
}
