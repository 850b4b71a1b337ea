//! Container images as OCI blobs. Reads `docker save` archives, OCI archives and a Docker
//! engine's export (through its API) into [`OciImage`]s whose blobs point into the archive in
//! place, checks every layer's digest while scanning, and writes the standard OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) that containerd, skopeo and crane read.
//!
//! Nothing here buffers a layer: archives are scanned once, hashing each entry as a stream, and
//! blobs are later read straight out of the archive by byte range.

mod docker_archive;
mod engine;
mod layout;
mod oci_archive;
mod reference;
mod tarscan;
mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{BlobSource, Digest};

pub use engine::{from_engine, from_engine_with_progress, EngineProgress};
pub use reference::normalize_reference;
pub use verify::VerifyingReader;

/// Media type of an OCI image manifest.
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image config.
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of an uncompressed OCI layer (what `docker save` holds).
pub const MEDIA_TYPE_OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Annotation holding the full image name, read by containerd's `ctr images import`.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming a reference. ferry writes the full reference here too (valid in the
/// OCI ref grammar, and unique where two images share a tag), so `skopeo` can address an image
/// as `oci-archive:FILE:docker.io/library/busybox:latest`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The exact content of the `oci-layout` file of an OCI image layout.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// One blob of an image: its content address, size, media type and where its bytes are.
#[derive(Clone, Debug)]
pub struct ImageBlob {
    /// sha256 of the blob's bytes exactly as stored (compressed layers stay compressed).
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// OCI (or Docker) media type, as the manifest names it.
    pub media_type: String,
    /// Where to read the bytes: usually a range inside the source archive, or generated JSON.
    pub source: BlobSource,
}

/// A container image ready to be stored in an OCI image layout.
#[derive(Clone, Debug)]
pub struct OciImage {
    /// Full normalized reference (`docker.io/library/busybox:latest`); for an image that no
    /// tag names, its config digest (`sha256:…`, the Docker image ID).
    pub reference: String,
    /// The image manifest (generated for docker archives, taken as-is from OCI archives).
    pub manifest: ImageBlob,
    /// The image config JSON.
    pub config: ImageBlob,
    /// The layers, base first.
    pub layers: Vec<ImageBlob>,
    /// Operating system from the config (`linux`).
    pub os: String,
    /// CPU architecture from the config (`amd64`).
    pub architecture: String,
}

impl OciImage {
    /// Every blob of the image: manifest, config, then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &ImageBlob> {
        [&self.manifest, &self.config]
            .into_iter()
            .chain(self.layers.iter())
    }

    /// True when [`OciImage::reference`] is a bare digest rather than a name.
    pub fn is_untagged(&self) -> bool {
        self.reference.starts_with("sha256:")
    }
}

/// Why images could not be read, exported or written. Each message names the cause and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The archive file could not be read.
    #[error("reading image archive {path}: {source}")]
    Io {
        /// The archive.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is a tar but holds neither `manifest.json` nor `index.json` + `oci-layout`.
    #[error("{path} is neither a docker archive (no manifest.json) nor an OCI archive (no index.json and oci-layout): give a `docker save` or OCI image archive")]
    NotAnImageArchive {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a tar at all.
    #[error("{path} is not a tar archive ({detail}): give a `docker save` or OCI image archive")]
    NotATar {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// The tar ends early or an entry is damaged.
    #[error("image archive {path} is truncated or corrupt: {detail}; copy or export it again")]
    Corrupt {
        /// The archive.
        path: PathBuf,
        /// What is wrong, naming the entry.
        detail: String,
    },
    /// A file the archive's own metadata names is absent.
    #[error("image archive {path} has no entry {entry}, which {named_by} names: the archive is incomplete; export it again")]
    MissingEntry {
        /// The archive.
        path: PathBuf,
        /// The missing entry.
        entry: String,
        /// Which metadata file names it.
        named_by: String,
    },
    /// A JSON metadata file does not parse or lacks a required field.
    #[error("image archive {path}: {entry} is not valid image metadata: {detail}")]
    BadMetadata {
        /// The archive.
        path: PathBuf,
        /// The entry.
        entry: String,
        /// The parse error.
        detail: String,
    },
    /// A docker-archive layer's sha256 differs from the config's `rootfs.diff_ids`.
    #[error("image archive {path}: layer {layer} has {actual} but its config's rootfs.diff_ids says {expected}: the layer is corrupt; export the image again")]
    DiffIdMismatch {
        /// The archive.
        path: PathBuf,
        /// The layer entry and the image it belongs to.
        layer: String,
        /// diff_id from the config.
        expected: String,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// An OCI blob's bytes do not hash to its name, or its size differs from the descriptor.
    #[error(
        "image archive {path}: blob {entry} {detail}: the archive is corrupt; export it again"
    )]
    BlobMismatch {
        /// The archive.
        path: PathBuf,
        /// The blob entry.
        entry: String,
        /// What differs.
        detail: String,
    },
    /// Something valid but not handled (a foreign digest algorithm, a compressed outer archive…).
    #[error("image archive {path}: {what}")]
    Unsupported {
        /// The archive.
        path: PathBuf,
        /// What, and what to do instead.
        what: String,
    },
    /// The Docker engine does not have an image that was asked for.
    #[error(
        "the Docker engine at {host} has no image {reference}: pull, load or build it there first"
    )]
    UnknownImage {
        /// The engine address.
        host: String,
        /// The missing reference.
        reference: String,
    },
    /// The Docker engine could not be reached or refused a request.
    #[error("Docker engine at {host}: {what}: {detail}")]
    Engine {
        /// The engine address.
        host: String,
        /// What was being done.
        what: String,
        /// The engine's or transport's error.
        detail: String,
    },
    /// The spool file for an engine export could not be written.
    #[error(
        "writing the image export to {path}: {source}; check free space in the spool directory"
    )]
    Spool {
        /// The spool file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The spool directory cannot hold the export.
    #[error("the spool directory {dir} has {available} bytes free but the image export needs at least {needed}: free space there or choose another directory")]
    SpoolSpace {
        /// The spool directory.
        dir: PathBuf,
        /// Bytes needed at least (the largest image).
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// A blob's bytes changed between scanning and writing.
    #[error("blob {digest} from {source_desc} changed since it was read: {detail}")]
    BlobChanged {
        /// The expected digest.
        digest: Digest,
        /// Where the bytes come from.
        source_desc: String,
        /// What differs.
        detail: String,
    },
    /// Writing an OCI archive failed.
    #[error("writing OCI archive: {0}")]
    Write(std::io::Error),
}

/// Reads a docker-archive (`docker save`, both the classic and the OCI-flavoured format of
/// Docker 25+) or an OCI image archive (a tar of an OCI image layout); the kind is detected
/// from the entries. Every entry is hashed once as a stream: docker layers are checked against
/// the config's `rootfs.diff_ids`, OCI blobs against their names. The returned blobs reference
/// the archive in place (`BlobSource::Range`), so the file must stay in place while they are used.
pub fn from_archive(path: &Path) -> Result<Vec<OciImage>, ImageError> {
    from_archive_with_progress(path, &mut |_| {})
}

/// How far the scan of an archive has come, for a front end to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanProgress {
    /// Bytes of the archive read and hashed so far.
    pub scanned: u64,
    /// The archive's size.
    pub total: u64,
}

/// [`from_archive`], reporting the scan's progress every few megabytes (and once at the end).
pub fn from_archive_with_progress(
    path: &Path,
    progress: &mut dyn FnMut(ScanProgress),
) -> Result<Vec<OciImage>, ImageError> {
    let scan = tarscan::Scan::of(path, progress)?;
    if scan.has("index.json") && scan.has("oci-layout") {
        oci_archive::images(&scan)
    } else if scan.has("manifest.json") {
        docker_archive::images(&scan)
    } else {
        Err(ImageError::NotAnImageArchive {
            path: path.to_path_buf(),
        })
    }
}

/// The `index.json` of an OCI image layout holding `images`: one manifest descriptor per image,
/// annotated with `io.containerd.image.name` and `org.opencontainers.image.ref.name`, both the
/// full reference. Untagged images get no name annotations. Same input,
/// same bytes: keys have a fixed order and images keep the order given.
pub fn index_json(images: &[&OciImage]) -> Vec<u8> {
    layout::index_json(images)
}

/// Writes `images` as an OCI archive (a tar of an OCI image layout) to `out`: `oci-layout`,
/// `index.json`, then each distinct blob once under `blobs/sha256/`, sorted by digest, with
/// fixed owners, modes and times so the output is reproducible. Each blob is streamed from its
/// source and checked against its digest and size while it is written.
pub fn write_oci_archive(images: &[&OciImage], out: impl Write) -> Result<(), ImageError> {
    layout::write_oci_archive(images, out)
}
