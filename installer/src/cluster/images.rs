//! The bundle's container images in each node's containerd (namespace k8s.io, where the
//! kubelet looks): each streamed out of the bundle as an OCI archive into `ctr images import`
//! on the host, with no temporary copy on either side; skipped when containerd already has the
//! name at the same manifest digest; checked present before the step ends. A revert removes
//! the images the run imported that were not there before.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_bootos::{Change, Host, Resource, ResourceError};
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::shell_quote;
use serde::{Deserialize, Serialize};

use super::bundle::ImageRef;
use super::ClusterRuntime;

/// The step id.
pub const ID: &str = "images";

/// The images a node must have.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Images {
    /// The bundle's images.
    pub images: Vec<ImageRef>,
    /// The bundle, absent when rebuilt from a journal.
    #[serde(skip)]
    pub runtime: Option<Arc<ClusterRuntime>>,
}

/// containerd's k8s.io images: name and manifest digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Present {
    /// `(name, digest)`, sorted.
    pub images: Vec<(String, String)>,
}

async fn list(host: &dyn Host) -> Result<Present, ResourceError> {
    let out = host
        .run("command -v ctr >/dev/null 2>&1 || exit 0; ctr -n k8s.io images ls 2>/dev/null")
        .await?;
    if !out.success() {
        return Err(ResourceError::Refused(format!(
            "{}: cannot list containerd's images ({}): {}; fix: check that containerd runs \
             (baseline.container-runtime)",
            host.name(),
            out.described,
            out.stderr.trim()
        )));
    }
    let mut images: Vec<(String, String)> = out
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?;
            let _kind = f.next()?;
            let digest = f.next()?;
            Some((name.to_string(), digest.to_string()))
        })
        .collect();
    images.sort();
    Ok(Present { images })
}

impl Images {
    fn missing<'a>(&'a self, p: &Present) -> Vec<&'a ImageRef> {
        self.images
            .iter()
            .filter(|i| !p.images.iter().any(|(n, d)| n == &i.name && d == &i.digest))
            .collect()
    }
}

#[async_trait]
impl Resource for Images {
    type State = Present;

    fn id(&self) -> String {
        ID.to_string()
    }

    fn supports(&self, _facts: &Facts) -> Result<(), String> {
        Ok(())
    }

    async fn observe(&self, host: &dyn Host) -> Result<Present, ResourceError> {
        list(host).await
    }

    fn diff(&self, p: &Present) -> Vec<Change> {
        self.missing(p)
            .into_iter()
            .map(|i| {
                let from = if p.images.iter().any(|(n, _)| n == &i.name) {
                    "another digest"
                } else {
                    "absent"
                };
                Change::new(format!("image {}", i.name), from, i.digest.clone())
            })
            .collect()
    }

    async fn apply(&self, host: &dyn Host, p: &Present) -> Result<(), ResourceError> {
        let rt = self.runtime.as_ref().ok_or_else(|| {
            ResourceError::Refused("the bundle is not open (a step rebuilt from a journal)".into())
        })?;
        for image in self.missing(p) {
            let archive = rt.bundle.image_archive(&image.item).map_err(|e| {
                ResourceError::Refused(format!("streaming {} from the bundle: {e}", image.item))
            })?;
            let out = host
                .run_piped(
                    "ctr -n k8s.io images import - 2>&1 || \
                     { echo 'ctr images import failed' >&2; exit 1; }",
                    archive,
                )
                .await?;
            if !out.success() {
                return Err(ResourceError::Check(format!(
                    "importing {} into containerd failed ({}): {}",
                    image.name,
                    out.described,
                    out.stdout
                        .lines()
                        .chain(out.stderr.lines())
                        .rfind(|l| !l.trim().is_empty())
                        .unwrap_or("")
                )));
            }
        }
        let now = list(host).await?;
        let still: Vec<&str> = self.missing(&now).iter().map(|i| i.name.as_str()).collect();
        if !still.is_empty() {
            return Err(ResourceError::Check(format!(
                "containerd on {} does not list {} after the import; fix: check the bundle \
                 with `ferry bundle verify --deep`",
                host.name(),
                still.join(", ")
            )));
        }
        Ok(())
    }

    async fn revert(&self, host: &dyn Host, before: &Present) -> Result<(), ResourceError> {
        let now = list(host).await?;
        let ours: Vec<String> = now
            .images
            .iter()
            .filter(|(n, d)| {
                !before.images.iter().any(|(bn, _)| bn == n)
                    && self.images.iter().any(|i| &i.name == n && &i.digest == d)
            })
            .map(|(n, _)| shell_quote(n))
            .collect();
        if ours.is_empty() {
            return Ok(());
        }
        host.run_ok(&format!(
            "ctr -n k8s.io images rm {} >/dev/null",
            ours.join(" ")
        ))
        .await?;
        Ok(())
    }
}
