//! Which images the bundle holds, under which registry names. An image item records its full
//! reference (`docker.io/library/busybox:1.36`); it is served as repository `library/busybox`,
//! tag `1.36` (what a containerd mirror for `docker.io` asks for), and under its full name
//! `docker.io/library/busybox` as well, which no two registries share.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use ferry_bundle::manifest::ItemKind;
use ferry_bundle::{Bundle, Digest};
use serde::Deserialize;

/// Media type of an OCI image manifest (the default when a manifest names none).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of a Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a Docker image config: a manifest whose config has it is a Docker manifest.
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Largest manifest read to learn its media type (manifests are a few KiB).
const MAX_MANIFEST: u64 = 4 << 20;

/// One image of the bundle as the registry serves it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The full reference the bundle records (`docker.io/library/busybox:1.36`).
    pub reference: String,
    /// The registry host of the reference (`docker.io`).
    pub host: String,
    /// The repository without the host (`library/busybox`).
    pub repository: String,
    /// The tag, when the reference has one (`1.36`); images pinned by digest have none.
    pub tag: Option<String>,
    /// The image manifest's digest.
    pub manifest: Digest,
    /// The manifest's size in bytes.
    pub manifest_size: u64,
    /// The manifest's media type (the `Content-Type` it is served with).
    pub media_type: String,
    /// Every blob of the image (manifest, config, layers): what its repository serves.
    pub blobs: BTreeSet<Digest>,
}

impl Image {
    /// The full repository name: `docker.io/library/busybox`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }
}

/// What the registry serves: every named image of the bundle.
#[derive(Debug, Default)]
pub struct Catalog {
    images: Vec<Image>,
    /// Images left out, with why (untagged images, damaged manifests): shown at start.
    pub skipped: Vec<String>,
}

/// What a name asked for resolves to.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// The images under that name (one or more hosts' images when the name is short and
    /// no `ns` narrowed it).
    Found(Vec<&'a Image>),
    /// No image has that name.
    Unknown,
}

#[derive(Deserialize)]
struct ManifestHead {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    config: Option<ConfigHead>,
}

#[derive(Deserialize)]
struct ConfigHead {
    #[serde(rename = "mediaType", default)]
    media_type: String,
}

impl Catalog {
    /// Reads the bundle's image items. Each image's manifest is read (and so verified) once
    /// to learn its media type; an image whose manifest does not check out is left out and
    /// named in [`Catalog::skipped`], so one damaged image does not stop the others.
    pub fn of(bundle: &Bundle) -> Catalog {
        let mut catalog = Catalog::default();
        for item in &bundle.manifest().items {
            let ItemKind::Image {
                reference,
                manifest_digest,
                ..
            } = &item.kind
            else {
                continue;
            };
            let Some((host, repository, tag)) = split_reference(reference) else {
                catalog.skipped.push(format!(
                    "image {} has no repository name (an untagged image): not served",
                    item.name
                ));
                continue;
            };
            let Some(entry) = bundle.blob(manifest_digest) else {
                catalog.skipped.push(format!(
                    "image {}: the bundle has no manifest blob {manifest_digest}: not served",
                    item.name
                ));
                continue;
            };
            let manifest_size = entry.size;
            let media_type = match read_media_type(bundle, manifest_digest, manifest_size) {
                Ok(t) => t,
                Err(why) => {
                    catalog
                        .skipped
                        .push(format!("image {}: {why}: not served", item.name));
                    continue;
                }
            };
            // Contents are `DIR/oci-layout`, `DIR/index.json` and `DIR/blobs/sha256/HEX`:
            // the last are the image's blobs.
            let blobs = item
                .contents
                .iter()
                .filter(|c| c.path.contains("/blobs/sha256/"))
                .map(|c| c.digest)
                .collect();
            catalog.images.push(Image {
                reference: reference.clone(),
                host,
                repository,
                tag,
                manifest: *manifest_digest,
                manifest_size,
                media_type,
                blobs,
            });
        }
        catalog
    }

    /// Every image served.
    pub fn images(&self) -> &[Image] {
        &self.images
    }

    /// The repository names (without host), sorted, each once: what `/v2/_catalog` lists.
    pub fn repositories(&self) -> Vec<String> {
        let names: BTreeSet<&str> = self.images.iter().map(|i| i.repository.as_str()).collect();
        names.into_iter().map(str::to_string).collect()
    }

    /// The images a request's repository name means. `name` is either the repository as
    /// recorded without its host (`library/busybox`, what a mirror asks for) or the full
    /// name (`docker.io/library/busybox`). `ns` is the registry host a containerd mirror
    /// names in its `?ns=` query: when given, a short name means only that host's images.
    pub fn lookup(&self, name: &str, ns: Option<&str>) -> Lookup<'_> {
        let full: Vec<&Image> = self
            .images
            .iter()
            .filter(|i| {
                name.split_once('/')
                    .is_some_and(|(h, r)| i.host == h && i.repository == r)
            })
            .collect();
        if !full.is_empty() {
            return Lookup::Found(full);
        }
        let short: Vec<&Image> = self
            .images
            .iter()
            .filter(|i| i.repository == name && ns.is_none_or(|ns| i.host == ns))
            .collect();
        if short.is_empty() {
            Lookup::Unknown
        } else {
            Lookup::Found(short)
        }
    }
}

/// Splits a full reference into host, repository and tag. `None` for what names no
/// repository (a bare digest: an untagged image).
pub fn split_reference(reference: &str) -> Option<(String, String, Option<String>)> {
    if reference.starts_with("sha256:") {
        return None;
    }
    let full = ferry_bundle::image::normalize_reference(reference);
    let (name, tag) = match full.split_once('@') {
        Some((name, _digest)) => (name.to_string(), None),
        None => match full.rfind(':') {
            Some(colon) if !full[colon..].contains('/') => (
                full[..colon].to_string(),
                Some(full[colon + 1..].to_string()),
            ),
            _ => (full.clone(), None),
        },
    };
    let (host, repository) = name.split_once('/')?;
    Some((host.to_string(), repository.to_string(), tag))
}

fn read_media_type(bundle: &Bundle, digest: &Digest, size: u64) -> Result<String, String> {
    if size > MAX_MANIFEST {
        return Err(format!(
            "its manifest {digest} has {size} bytes, more than a manifest can be"
        ));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    bundle
        .open_blob(digest)
        .map_err(|e| e.to_string())?
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    let head: ManifestHead = serde_json::from_slice(&bytes)
        .map_err(|e| format!("its manifest {digest} is not an image manifest: {e}"))?;
    Ok(if !head.media_type.is_empty() {
        head.media_type
    } else if head.config.is_some_and(|c| c.media_type == DOCKER_CONFIG) {
        DOCKER_MANIFEST.to_string()
    } else {
        OCI_MANIFEST.to_string()
    })
}

/// Splits a sorted list for `?n=` and `?last=` pagination: the names after `last`, at most `n`.
pub fn page(names: Vec<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let after: Vec<String> = names
        .into_iter()
        .filter(|x| last.is_none_or(|l| x.as_str() > l))
        .collect();
    match n {
        Some(n) if after.len() > n => (after.into_iter().take(n).collect(), true),
        _ => (after, false),
    }
}

/// The tags of `images`, sorted, each once.
pub fn tags(images: &[&Image]) -> Vec<String> {
    let tags: BTreeMap<&str, ()> = images
        .iter()
        .filter_map(|i| i.tag.as_deref())
        .map(|t| (t, ()))
        .collect();
    tags.into_keys().map(str::to_string).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_host_repository_and_tag() {
        for (reference, host, repo, tag) in [
            (
                "docker.io/library/busybox:1.36",
                "docker.io",
                "library/busybox",
                Some("1.36"),
            ),
            ("busybox", "docker.io", "library/busybox", Some("latest")),
            (
                "registry.example:5000/team/app:2",
                "registry.example:5000",
                "team/app",
                Some("2"),
            ),
            ("localhost/app", "localhost", "app", Some("latest")),
        ] {
            let (h, r, t) = split_reference(reference).unwrap();
            assert_eq!(
                (h.as_str(), r.as_str(), t.as_deref()),
                (host, repo, tag),
                "{reference}"
            );
        }
        let pinned = format!("docker.io/library/app@sha256:{}", "0".repeat(64));
        assert_eq!(
            split_reference(&pinned).unwrap(),
            ("docker.io".into(), "library/app".into(), None)
        );
        assert_eq!(split_reference(&format!("sha256:{}", "0".repeat(64))), None);
    }

    #[test]
    fn pages_follow_last_and_n() {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            page(names.clone(), Some(2), None),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(
            page(names.clone(), Some(2), Some("b")),
            (vec!["c".into(), "d".into()], false)
        );
        assert_eq!(page(names, None, Some("d")), (vec![], false));
    }
}
