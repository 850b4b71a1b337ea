//! Writing the standard OCI image layout: `index.json` and an OCI archive tar. Output is a
//! function of the images alone (fixed key order, owners, modes and times), so builds are
//! reproducible.
//!
//! Why these structs and not oci-spec's `ImageIndex`/`Descriptor` (issue 16 weighed it): oci-spec
//! 0.10 keeps annotations in a `HashMap`, which serializes in a different order in every process,
//! and each manifest here carries two annotations: index.json, and so the bundle's digest, would
//! change from build to build. Sorting through `serde_json::Value` would sort every key and
//! change today's bytes. The media types and annotation names are the spec's constants (mod.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use serde::Serialize;

use super::verify::VerifyingReader;
use super::{
    ImageBlob, ImageError, OciImage, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME,
    MEDIA_TYPE_OCI_INDEX, OCI_LAYOUT,
};
use crate::Digest;

#[derive(Serialize)]
struct Index<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    manifests: Vec<ManifestDescriptor<'a>>,
}

#[derive(Serialize)]
struct ManifestDescriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: Digest,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform<'a>>,
}

#[derive(Serialize)]
struct Platform<'a> {
    architecture: &'a str,
    os: &'a str,
}

pub(crate) fn index_json(images: &[&OciImage]) -> Vec<u8> {
    let mut seen = BTreeSet::new();
    let manifests = images
        .iter()
        .filter(|img| seen.insert((img.reference.as_str(), img.manifest.digest)))
        .map(|img| {
            let mut annotations = BTreeMap::new();
            if !img.is_untagged() {
                annotations.insert(ANNOTATION_CONTAINERD_NAME, img.reference.as_str());
                annotations.insert(ANNOTATION_REF_NAME, img.reference.as_str());
            }
            ManifestDescriptor {
                media_type: &img.manifest.media_type,
                digest: img.manifest.digest,
                size: img.manifest.size,
                annotations,
                platform: (!img.os.is_empty() || !img.architecture.is_empty()).then_some(
                    Platform {
                        architecture: &img.architecture,
                        os: &img.os,
                    },
                ),
            }
        })
        .collect();
    let index = Index {
        schema_version: 2,
        media_type: MEDIA_TYPE_OCI_INDEX,
        manifests,
    };
    // Serializing plain structs of strings and integers cannot fail.
    serde_json::to_vec(&index).unwrap_or_default()
}

pub(crate) fn write_oci_archive(images: &[&OciImage], out: impl Write) -> Result<(), ImageError> {
    let mut blobs: BTreeMap<Digest, &ImageBlob> = BTreeMap::new();
    for img in images {
        for b in img.blobs() {
            blobs.entry(b.digest).or_insert(b);
        }
    }
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let w = ImageError::Write;
    append_bytes(&mut tar, "oci-layout", OCI_LAYOUT).map_err(w)?;
    append_bytes(&mut tar, "index.json", &index_json(images)).map_err(w)?;
    append_dir(&mut tar, "blobs/").map_err(w)?;
    append_dir(&mut tar, "blobs/sha256/").map_err(w)?;
    for (digest, blob) in blobs {
        let changed = |detail: String| ImageError::BlobChanged {
            digest,
            source_desc: blob.source.describe(),
            detail,
        };
        let reader = blob.source.open().map_err(|e| changed(e.to_string()))?;
        let reader = VerifyingReader::new(reader, digest, blob.size);
        let mut header = file_header(blob.size);
        tar.append_data(
            &mut header,
            format!("blobs/sha256/{}", digest.hex()),
            reader,
        )
        .map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::UnexpectedEof {
                changed(e.to_string())
            } else {
                ImageError::Write(e)
            }
        })?;
    }
    tar.into_inner().and_then(|mut o| o.flush()).map_err(w)?;
    Ok(())
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut h = file_header(data.len() as u64);
    tar.append_data(&mut h, name, data)
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    tar.append_data(&mut h, name, io::empty())
}
