//! `docker save` archives (`manifest.json`, `<id>.json` configs, `<id>/layer.tar` layers,
//! possibly symlinked to each other) turned into OCI images: the config stays as it is, each
//! layer tar becomes an uncompressed OCI layer read in place, and an OCI manifest is generated.

use serde::{Deserialize, Serialize};

use super::reference::normalize_reference;
use super::tarscan::{bytes_source, parse_json, Scan};
use super::{
    ImageBlob, ImageError, OciImage, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER_TAR,
    MEDIA_TYPE_OCI_MANIFEST,
};
use crate::Digest;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The parts of an image config this module reads.
#[derive(Deserialize)]
pub(crate) struct ConfigFacts {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct Descriptor<'a> {
    #[serde(rename = "mediaType")]
    pub media_type: &'a str,
    pub digest: Digest,
    pub size: u64,
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

pub(crate) fn images(scan: &Scan) -> Result<Vec<OciImage>, ImageError> {
    let manifest_bytes = scan.read_metadata("manifest.json", "the archive layout")?;
    let saved: Vec<SavedImage> = parse_json(scan, "manifest.json", &manifest_bytes)?;
    if saved.is_empty() {
        return Err(ImageError::BadMetadata {
            path: scan.path.clone(),
            entry: "manifest.json".into(),
            detail: "it lists no images".into(),
        });
    }
    let mut out = Vec::new();
    for image in saved {
        let config_entry = scan.file(&image.config, "manifest.json")?;
        let config_bytes = scan.read_metadata(&image.config, "manifest.json")?;
        let facts: ConfigFacts = parse_json(scan, &image.config, &config_bytes)?;
        let tags: Vec<String> = image
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| normalize_reference(t))
            .collect();
        let id = config_entry.digest.to_string();
        let label = tags.first().cloned().unwrap_or_else(|| id.clone());
        let diff_ids = facts.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        if diff_ids.len() != image.layers.len() {
            return Err(ImageError::BadMetadata {
                path: scan.path.clone(),
                entry: image.config.clone(),
                detail: format!(
                    "{label}: the config lists {} layer diff_ids but manifest.json lists {} layers",
                    diff_ids.len(),
                    image.layers.len()
                ),
            });
        }
        let mut layers = Vec::with_capacity(image.layers.len());
        for (layer_name, diff_id) in image.layers.iter().zip(&diff_ids) {
            let entry = scan.file(layer_name, "manifest.json")?;
            if entry.digest.to_string() != *diff_id {
                return Err(ImageError::DiffIdMismatch {
                    path: scan.path.clone(),
                    layer: format!("{layer_name} (of {label})"),
                    expected: diff_id.clone(),
                    actual: entry.digest,
                });
            }
            layers.push(ImageBlob {
                digest: entry.digest,
                size: entry.size,
                media_type: MEDIA_TYPE_OCI_LAYER_TAR.into(),
                source: scan.source(&entry),
            });
        }
        let config = ImageBlob {
            digest: config_entry.digest,
            size: config_entry.size,
            media_type: MEDIA_TYPE_OCI_CONFIG.into(),
            source: scan.source(&config_entry),
        };
        let manifest_json = manifest_for(&config, &layers);
        let manifest = ImageBlob {
            digest: Digest::of(&manifest_json),
            size: manifest_json.len() as u64,
            media_type: MEDIA_TYPE_OCI_MANIFEST.into(),
            source: bytes_source(manifest_json),
        };
        let refs = if tags.is_empty() { vec![id] } else { tags };
        for reference in refs {
            out.push(OciImage {
                reference,
                manifest: manifest.clone(),
                config: config.clone(),
                layers: layers.clone(),
                os: facts.os.clone(),
                architecture: facts.architecture.clone(),
            });
        }
    }
    Ok(out)
}

/// The OCI image manifest for a config and layers; fixed key order, so deterministic.
fn manifest_for(config: &ImageBlob, layers: &[ImageBlob]) -> Vec<u8> {
    let descriptor = |b: &'_ ImageBlob| Descriptor {
        media_type: MEDIA_TYPE_OCI_LAYER_TAR,
        digest: b.digest,
        size: b.size,
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_OCI_MANIFEST,
        config: Descriptor {
            media_type: MEDIA_TYPE_OCI_CONFIG,
            digest: config.digest,
            size: config.size,
        },
        layers: layers.iter().map(descriptor).collect(),
    };
    // Serializing plain structs of strings and integers cannot fail.
    serde_json::to_vec(&manifest).unwrap_or_default()
}
