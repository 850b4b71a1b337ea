//! OCI archives (a tar of an OCI image layout: `oci-layout`, `index.json`, `blobs/sha256/…`)
//! taken as they are: manifests, configs and layers keep their bytes and media types (gzip
//! layers stay gzip); every blob used is checked against its name and its descriptor's size.
//!
//! The few fields read are ferry's own structs, not oci-spec's: those are the written model's
//! too (layout.rs says why it is not oci-spec's), and a reader of archives from many tools
//! should not refuse a descriptor for a field it never uses.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::docker_archive::ConfigFacts;
use super::reference::normalize_reference;
use super::tarscan::{parse_json, Scan};
use super::{ImageBlob, ImageError, OciImage, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use crate::Digest;

const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MAX_INDEX_DEPTH: usize = 4;

#[derive(Deserialize)]
struct Layout {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: String,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize, Clone)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize, Clone)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

pub(crate) fn images(scan: &Scan) -> Result<Vec<OciImage>, ImageError> {
    let layout_bytes = scan.read_metadata("oci-layout", "the OCI image layout")?;
    let layout: Layout = parse_json(scan, "oci-layout", &layout_bytes)?;
    if layout.image_layout_version != "1.0.0" {
        return Err(ImageError::Unsupported {
            path: scan.path.clone(),
            what: format!(
                "OCI layout version {} (only 1.0.0 is known)",
                layout.image_layout_version
            ),
        });
    }
    let index_bytes = scan.read_metadata("index.json", "the OCI image layout")?;
    let index: Index = parse_json(scan, "index.json", &index_bytes)?;
    let mut out = Vec::new();
    for d in &index.manifests {
        collect(scan, d, name_of(d), "index.json", 0, &mut out)?;
    }
    if out.is_empty() {
        return Err(ImageError::BadMetadata {
            path: scan.path.clone(),
            entry: "index.json".into(),
            detail: "it lists no image manifests".into(),
        });
    }
    Ok(out)
}

/// The name an index descriptor gives its image, in full form where it is a full reference.
fn name_of(d: &Descriptor) -> Option<String> {
    if let Some(name) = d.annotations.get(ANNOTATION_CONTAINERD_NAME) {
        return Some(name.clone());
    }
    let name = d.annotations.get(ANNOTATION_REF_NAME)?;
    // A bare tag ("latest") names no repository; keep it as written.
    Some(if name.contains('/') || name.contains(':') {
        normalize_reference(name)
    } else {
        name.clone()
    })
}

fn collect(
    scan: &Scan,
    d: &Descriptor,
    name: Option<String>,
    named_by: &str,
    depth: usize,
    out: &mut Vec<OciImage>,
) -> Result<(), ImageError> {
    // Docker 25+ stores build attestations as manifests beside the image; they are not images.
    if d.annotations.contains_key("vnd.docker.reference.type") {
        return Ok(());
    }
    if d.media_type == super::MEDIA_TYPE_OCI_INDEX || d.media_type == MEDIA_TYPE_DOCKER_LIST {
        if depth >= MAX_INDEX_DEPTH {
            return Err(ImageError::Unsupported {
                path: scan.path.clone(),
                what: format!("image indexes nested deeper than {MAX_INDEX_DEPTH} levels"),
            });
        }
        blob(scan, d, named_by)?;
        let entry = blob_entry(&d.digest);
        let bytes = scan.read_metadata(&entry, named_by)?;
        let index: Index = parse_json(scan, &entry, &bytes)?;
        for child in &index.manifests {
            // A multi-platform index exported for one platform lacks the others' blobs.
            if !scan.has(&blob_entry(&child.digest)) {
                continue;
            }
            let child_name = name.clone().or_else(|| name_of(child));
            collect(scan, child, child_name, &entry, depth + 1, out)?;
        }
        return Ok(());
    }
    let manifest_blob = blob(scan, d, named_by)?;
    let entry = blob_entry(&d.digest);
    let bytes = scan.read_metadata(&entry, named_by)?;
    let manifest: Manifest = parse_json(scan, &entry, &bytes)?;
    let mut manifest_blob = manifest_blob;
    if manifest_blob.media_type.is_empty() {
        manifest_blob.media_type = manifest.media_type.clone();
    }
    let config = blob(scan, &manifest.config, &entry)?;
    let config_entry = blob_entry(&manifest.config.digest);
    let config_bytes = scan.read_metadata(&config_entry, &entry)?;
    let facts: ConfigFacts = parse_json(scan, &config_entry, &config_bytes)?;
    let layers = manifest
        .layers
        .iter()
        .map(|l| blob(scan, l, &entry))
        .collect::<Result<Vec<_>, _>>()?;
    let platform = d.platform.clone();
    let pick = |from_config: &str, from_index: Option<&str>| {
        if from_config.is_empty() {
            from_index.unwrap_or_default().to_string()
        } else {
            from_config.to_string()
        }
    };
    out.push(OciImage {
        reference: name.unwrap_or_else(|| config.digest.to_string()),
        os: pick(&facts.os, platform.as_ref().map(|p| p.os.as_str())),
        architecture: pick(
            &facts.architecture,
            platform.as_ref().map(|p| p.architecture.as_str()),
        ),
        manifest: manifest_blob,
        config,
        layers,
    });
    Ok(())
}

fn blob_entry(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// The blob a descriptor points at, checked against the descriptor's digest and size.
fn blob(scan: &Scan, d: &Descriptor, named_by: &str) -> Result<ImageBlob, ImageError> {
    let digest: Digest = d.digest.parse().map_err(|_| ImageError::Unsupported {
        path: scan.path.clone(),
        what: format!(
            "{named_by} names blob {:?}; only sha256 digests are supported",
            d.digest
        ),
    })?;
    let name = blob_entry(&d.digest);
    let entry = scan.file(&name, named_by)?;
    if entry.digest != digest {
        return Err(ImageError::BlobMismatch {
            path: scan.path.clone(),
            entry: name,
            detail: format!("hashes to {}", entry.digest),
        });
    }
    if entry.size != d.size {
        return Err(ImageError::BlobMismatch {
            path: scan.path.clone(),
            entry: name,
            detail: format!(
                "has {} bytes but {named_by} declares {}",
                entry.size, d.size
            ),
        });
    }
    Ok(ImageBlob {
        digest,
        size: entry.size,
        media_type: d.media_type.clone(),
        source: scan.source(&entry),
    })
}
