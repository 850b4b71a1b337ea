//! Image names as Docker and containerd spell them in full: `busybox` is
//! `docker.io/library/busybox:latest`. containerd (and so k3s) stores images under full names,
//! so ferry writes full names into every index it makes.

/// Expands a Docker-style short reference to its full form, as containerd names it: the
/// parsing and normalization are oci-spec's `distribution::Reference` (Docker's grammar:
/// `docker.io/` when the first part is not a registry host, `index.docker.io` read as
/// `docker.io`, `library/` for single-part Docker Hub names, `:latest` when neither a tag nor a
/// digest is given). Bare digests (`sha256:…`) are returned unchanged, and so is a string that
/// is no reference at all (the registry or engine asked for it names it in its error).
pub fn normalize_reference(reference: &str) -> String {
    if reference.starts_with("sha256:") {
        return reference.to_string();
    }
    reference
        .parse::<oci_spec::distribution::Reference>()
        .map_or_else(|_| reference.to_string(), |r| r.whole())
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

    /// Docker Hub names spelled with their host are named as containerd names them: the
    /// hand-written expansion kept `docker.io/busybox` and `index.docker.io/busybox` as written,
    /// names under which k3s finds no image for a pod asking for `busybox`.
    #[test]
    fn docker_hub_names_with_their_host_get_library_and_the_short_host() {
        for (written, full) in [
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/nginx:1.25", "docker.io/library/nginx:1.25"),
            ("index.docker.io/busybox:1", "docker.io/library/busybox:1"),
            ("index.docker.io/ferry/app", "docker.io/ferry/app:latest"),
        ] {
            assert_eq!(normalize_reference(written), full, "{written}");
        }
        assert_eq!(normalize_reference("sha256:ab"), "sha256:ab");
        assert_eq!(normalize_reference("Not A Ref"), "Not A Ref");
    }
}
