//! What the cluster phase takes from the bundle: the k3s binary and air-gap image archive,
//! and the container images, each streamed out of the bundle (read and verified on the way)
//! straight to the hosts: no temporary copy on the jump host.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ferry_bundle::image::normalize_reference;
use ferry_bundle::{Bundle, Digest, ItemKind, PublicKey};
use ferry_inventory::transfer::UploadSource;
use serde::{Deserialize, Serialize};

use crate::config::{BundleRef, Distribution, InstallConfig};

/// One file of the bundle: its blob, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Its name in the bundle (`k3s/k3s`).
    pub path: String,
    /// The sha256 of its content, hex.
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

/// A bundle image: the name containerd gives it and its manifest digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// The bundle item.
    pub item: String,
    /// The full name (`docker.io/library/busybox:1.36`).
    pub name: String,
    /// `sha256:...` of its manifest.
    pub digest: String,
}

/// The bundle, opened once (signature checked), with what the cluster needs from it.
pub struct ClusterBundle {
    bundle: Bundle,
    /// The k3s version the bundle carries.
    pub version: String,
    /// The k3s binary.
    pub binary: BlobRef,
    /// The air-gap image archive.
    pub airgap: BlobRef,
    /// Every image item.
    pub images: Vec<ImageRef>,
}

impl std::fmt::Debug for ClusterBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBundle")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The bundle file (`path` under the air-gap archive's file name) an air-gap archive goes to.
pub fn airgap_dest(airgap: &BlobRef) -> String {
    let name = airgap
        .path
        .rsplit('/')
        .next()
        .unwrap_or("k3s-airgap-images.tar");
    format!("/var/lib/rancher/k3s/agent/images/{name}")
}

impl ClusterBundle {
    /// Opens the answer file's bundle for the cluster phase and checks it has what
    /// `[cluster]` asks for. `Ok(None)` when no distribution is installed.
    pub fn open(cfg: &InstallConfig) -> anyhow::Result<Option<ClusterBundle>> {
        if cfg.cluster.settings.distribution == Distribution::None {
            return Ok(None);
        }
        let Some(bref) = &cfg.bundle else {
            anyhow::bail!(
                "cluster.distribution = \"k3s\" needs a bundle with k3s in it; set `bundle` and \
                 `bundle-pubkey` in the answer file"
            );
        };
        Self::open_ref(bref, cfg.cluster.settings.version.as_deref()).map(Some)
    }

    pub(super) fn open_ref(bref: &BundleRef, want: Option<&str>) -> anyhow::Result<ClusterBundle> {
        let key = PublicKey::load(&bref.pubkey)
            .with_context(|| format!("bundle-pubkey {}", bref.pubkey.display()))?;
        let bundle = Bundle::open(&bref.path, Some(&key))
            .with_context(|| format!("bundle {}", bref.path.display()))?;
        let shown = bref.path.display();
        let k3s = bundle
            .manifest()
            .items
            .iter()
            .find(|i| i.kind == ItemKind::K3s)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "cluster.distribution: bundle {shown} has no k3s; build it with a [k3s] \
                     section (binary and air-gap images)"
                )
            })?;
        let version = k3s.version.clone().unwrap_or_default();
        if let Some(want) = want {
            if want != version {
                anyhow::bail!(
                    "cluster.version: k3s {want} is not in bundle {shown}, which has k3s \
                     {version}; remove the key to take the bundle's, or bring a bundle with {want}"
                );
            }
        }
        let blob = |c: &ferry_bundle::manifest::Content| BlobRef {
            path: c.path.clone(),
            sha256: c.digest.hex(),
            size: c.size,
        };
        let binary = k3s
            .contents
            .iter()
            .find(|c| c.path == "k3s/k3s")
            .map(blob)
            .ok_or_else(|| {
                anyhow::anyhow!("bundle {shown}: its k3s item has no binary (k3s/k3s); rebuild it")
            })?;
        let airgap = k3s
            .contents
            .iter()
            .find(|c| c.path != "k3s/k3s")
            .map(blob)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "bundle {shown}: its k3s item has no air-gap image archive, so the nodes \
                     could not start their system pods offline; rebuild it with \
                     [k3s] airgap-images"
                )
            })?;
        let images = bundle
            .manifest()
            .items
            .iter()
            .filter_map(|i| match &i.kind {
                ItemKind::Image {
                    reference,
                    manifest_digest,
                    ..
                } => Some(ImageRef {
                    item: i.name.clone(),
                    name: normalize_reference(reference),
                    digest: format!("sha256:{}", manifest_digest.hex()),
                }),
                _ => None,
            })
            .collect();
        Ok(ClusterBundle {
            bundle,
            version,
            binary,
            airgap,
            images,
        })
    }

    /// The bundle itself (its layout, for the registry the apply runs).
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// A stream of one of its files, for [`ferry_bootos::Host::upload_from`].
    pub fn source(self: &Arc<Self>, blob: &BlobRef) -> BlobSource {
        BlobSource {
            bundle: self.clone(),
            blob: blob.clone(),
        }
    }

    /// A stream of an image as an OCI archive (what `ctr images import` reads), each image in
    /// it named by its digest as well ([`super::images::with_digest_names`]). Written by a
    /// thread of its own into a pipe, so memory stays constant whatever the image's size.
    pub fn image_archive(self: &Arc<Self>, item: &str) -> std::io::Result<Box<dyn Read + Send>> {
        let (reader, mut writer) = std::io::pipe()?;
        let (me, item) = (self.clone(), item.to_string());
        std::thread::spawn(move || {
            // A failure closes the pipe early: the importer sees a cut archive and fails, and
            // the verification error is in the host's step error through its output.
            let named = &super::images::with_digest_names;
            if let Err(e) = me
                .bundle
                .write_image_archive_with(&item, &mut writer, named)
            {
                tracing::warn!("streaming image {item} from the bundle: {e}");
            }
        });
        Ok(Box::new(reader))
    }
}

/// One bundle file as an upload source.
pub struct BlobSource {
    bundle: Arc<ClusterBundle>,
    blob: BlobRef,
}

impl UploadSource for BlobSource {
    fn describe(&self) -> PathBuf {
        PathBuf::from(format!(
            "{} in bundle {}",
            self.blob.path,
            self.bundle.bundle.path().display()
        ))
    }

    fn size(&self) -> u64 {
        self.blob.size
    }

    fn sha256(&self) -> &str {
        &self.blob.sha256
    }

    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let digest = Digest::from_hex(&self.blob.sha256)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut r = self
            .bundle
            .bundle
            .open_blob(&digest)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // A compressed blob cannot seek: read past the part already sent.
        std::io::copy(&mut (&mut r).take(offset), &mut std::io::sink())?;
        Ok(Box::new(r))
    }
}
