//! The bundle's container images in each node's containerd (namespace k8s.io, where the
//! kubelet looks): each streamed out of the bundle as an OCI archive into `ctr images import`
//! on the host, with no temporary copy on either side; skipped when containerd already has the
//! name at the same manifest digest; checked present before the step ends. A revert removes
//! the images the run imported that were not there before.
//!
//! Each image gets two names: its tag (`docker.io/demo/app:1`) and its digest name
//! (`docker.io/demo/app@sha256:…`), both given by the archive's index, so one `ctr import`
//! names it both ways ([`with_digest_names`]). A pod that names its image by tag and digest
//! (`app:1@sha256:…`, as AppPackages do) is resolved by containerd's CRI plugin through the
//! digest name only; without it the kubelet would try to pull, and fail air-gapped.
//!
//! Each `ctr` started on a host costs a fraction of a second on a real server and more than
//! one on an emulated one, so the step starts as few as it can: one listing to observe, one
//! import per missing image, one listing to check.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_bootos::{Change, Host, Resource, ResourceError};
use ferry_inventory::facts::Facts;
use ferry_inventory::ssh::shell_quote;
use serde::{Deserialize, Serialize};

use super::bundle::ImageRef;
use super::registry::{ImageSource, HOSTS_DIR};
use super::ClusterRuntime;

/// The step id.
pub const ID: &str = "images";

/// The images a node must have.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Images {
    /// The bundle's images.
    pub images: Vec<ImageRef>,
    /// Imported from the jump host, or pulled through the site registry.
    #[serde(default)]
    pub source: ImageSource,
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
        // No ctr, or a containerd not started yet (the baseline, an earlier step, starts it):
        // no images. A containerd that runs and does not answer is an error. The socket is
        // ctr's own default, or the one CONTAINERD_ADDRESS names, as ctr reads it.
        .run(
            "command -v ctr >/dev/null 2>&1 || exit 0; \
             [ -S \"${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}\" ] || \
               systemctl is-active --quiet containerd 2>/dev/null || exit 0; \
             ctr -n k8s.io images ls",
        )
        .await?;
    if !out.success() {
        return Err(ResourceError::Refused(format!(
            "{}: containerd runs but cannot list its images ({}): {}; fix: check it with \
             `systemctl status containerd` (baseline.container-runtime)",
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

/// `docker.io/demo/app:1` at `sha256:…` → `docker.io/demo/app@sha256:…` (the tag, after the
/// last `/`, dropped; a name already by digest is kept as it is).
pub fn digest_name(name: &str, digest: &str) -> String {
    if name.contains('@') {
        return name.to_string();
    }
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let repo = match name[slash..].find(':') {
        Some(colon) => &name[..slash + colon],
        None => name,
    };
    format!("{repo}@{digest}")
}

/// Annotation naming an image for containerd's importer (`ctr images import`).
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// An OCI layout's `index.json` with every named manifest listed once more under its digest
/// name ([`digest_name`]), so `ctr images import` gives the image both names (it makes one
/// image per named entry of the index, and the manifest's content is the same).
pub fn with_digest_names(index: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut doc: serde_json::Value =
        serde_json::from_slice(&index).map_err(|e| format!("not JSON: {e}"))?;
    let Some(manifests) = doc
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return Err("no manifests list".into());
    };
    let named = |m: &serde_json::Value| {
        m.pointer(&format!("/annotations/{CONTAINERD_NAME}"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let mut extra = Vec::new();
    for m in manifests.iter() {
        let (Some(name), Some(digest)) = (named(m), m["digest"].as_str()) else {
            continue;
        };
        let alias = digest_name(&name, digest);
        let listed = manifests
            .iter()
            .chain(&extra)
            .any(|o| named(o).as_deref() == Some(alias.as_str()));
        if alias != name && !listed {
            let mut entry = m.clone();
            entry["annotations"] = serde_json::json!({ CONTAINERD_NAME: alias });
            extra.push(entry);
        }
    }
    manifests.extend(extra);
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}

fn has(p: &Present, name: &str, digest: &str) -> bool {
    p.images.iter().any(|(n, d)| n == name && d == digest)
}

impl Images {
    /// Images not in containerd by both names at their digest.
    fn missing<'a>(&'a self, p: &Present) -> Vec<&'a ImageRef> {
        self.images
            .iter()
            .filter(|i| {
                !has(p, &i.name, &i.digest) || !has(p, &digest_name(&i.name, &i.digest), &i.digest)
            })
            .collect()
    }

    /// Every name this step gives, with its digest.
    fn names(&self) -> Vec<(String, String)> {
        self.images
            .iter()
            .flat_map(|i| {
                [
                    (i.name.clone(), i.digest.clone()),
                    (digest_name(&i.name, &i.digest), i.digest.clone()),
                ]
            })
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
                let from = if has(p, &i.name, &i.digest) {
                    "not named by digest"
                } else if p.images.iter().any(|(n, _)| n == &i.name) {
                    "another digest"
                } else {
                    "absent"
                };
                Change::new(
                    format!("image {}", i.name),
                    from,
                    format!("{} ({})", i.digest, self.source.describe()),
                )
            })
            .collect()
    }

    async fn apply(&self, host: &dyn Host, p: &Present) -> Result<(), ResourceError> {
        if let ImageSource::Mirror { endpoint, server } = &self.source {
            pull(host, &self.missing(p), endpoint, server).await?;
        }
        let rt = self.runtime.as_ref().ok_or_else(|| {
            ResourceError::Refused("the bundle is not open (a step rebuilt from a journal)".into())
        })?;
        // What was just observed, unless the pulls changed it.
        let pulled;
        let p = if matches!(self.source, ImageSource::Mirror { .. }) {
            pulled = list(host).await?;
            &pulled
        } else {
            p
        };
        for image in self.missing(p) {
            if has(p, &image.name, &image.digest) {
                // Imported before, only its digest name is missing (a node of an older run).
                tag_by_digest(host, image).await?;
                continue;
            }
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
        let names = self.names();
        let ours: Vec<String> = now
            .images
            .iter()
            .filter(|(n, d)| {
                // Our names, and the image-id name (`sha256:<config>`) containerd's CRI plugin
                // adds to an image imported into k8s.io, at one of our digests.
                let ours = names.iter().any(|(sn, sd)| sn == n && sd == d)
                    || (n.starts_with("sha256:") && self.images.iter().any(|i| &i.digest == d));
                ours && !before.images.iter().any(|(bn, _)| bn == n)
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

/// Pulls `images` through the site registry's mirror (the hosts.toml of [`HOSTS_DIR`]), all at
/// once: containerd fetches each image's layers three at a time, every node in parallel.
async fn pull(
    host: &dyn Host,
    images: &[&ImageRef],
    endpoint: &str,
    server: &str,
) -> Result<(), ResourceError> {
    if images.is_empty() {
        return Ok(());
    }
    let mut script = String::from("pids=''; ");
    for i in images {
        let n = shell_quote(&i.name);
        script.push_str(&format!(
            "( out=$(ctr -n k8s.io images pull --hosts-dir {HOSTS_DIR} {n} 2>&1) || \
             {{ printf 'pulling %s: %s\\n' {n} \"$(printf '%s' \"$out\" | tail -n 1)\"; exit 1; }} ) & \
             pids=\"$pids $!\"; "
        ));
    }
    script.push_str("rc=0; for p in $pids; do wait $p || rc=1; done; exit $rc");
    let out = host.run(&script).await?;
    if !out.success() {
        return Err(ResourceError::Check(format!(
            "{} could not pull its images from the registry on {server} (https://{endpoint}): \
             {}; fix: check `systemctl status ferry-registry` on {server} and that {} reaches \
             it",
            host.name(),
            out.stdout
                .lines()
                .chain(out.stderr.lines())
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("; "),
            host.name()
        )));
    }
    Ok(())
}

/// Names `image` by its digest as well (`ctr images tag --force`: a stale digest name of
/// another image cannot exist, the digest is the name).
async fn tag_by_digest(host: &dyn Host, image: &ImageRef) -> Result<(), ResourceError> {
    let by_digest = digest_name(&image.name, &image.digest);
    if by_digest != image.name {
        host.run_ok(&format!(
            "ctr -n k8s.io images tag --force {} {} >/dev/null",
            shell_quote(&image.name),
            shell_quote(&by_digest)
        ))
        .await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{digest_name, with_digest_names};

    #[test]
    fn the_index_names_each_image_by_its_digest_too() {
        let index = br#"{"schemaVersion":2,"manifests":[
            {"mediaType":"m","digest":"sha256:aa","size":1,"annotations":{
              "io.containerd.image.name":"docker.io/demo/app:1",
              "org.opencontainers.image.ref.name":"1"}},
            {"mediaType":"m","digest":"sha256:bb","size":1,"annotations":{
              "io.containerd.image.name":"docker.io/demo/db@sha256:bb"}},
            {"mediaType":"m","digest":"sha256:cc","size":1}]}"#;
        let out: serde_json::Value =
            serde_json::from_slice(&with_digest_names(index.to_vec()).unwrap()).unwrap();
        let names: Vec<(&str, &str)> = out["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["digest"].as_str().unwrap(),
                    m["annotations"]["io.containerd.image.name"]
                        .as_str()
                        .unwrap_or("-"),
                )
            })
            .collect();
        // The digest name is added once, for the tagged image only; entries keep their order.
        assert_eq!(
            names,
            [
                ("sha256:aa", "docker.io/demo/app:1"),
                ("sha256:bb", "docker.io/demo/db@sha256:bb"),
                ("sha256:cc", "-"),
                ("sha256:aa", "docker.io/demo/app@sha256:aa"),
            ]
        );
        assert_eq!(
            out["manifests"][3]["size"], 1,
            "the descriptor is kept whole"
        );
        let again = with_digest_names(serde_json::to_vec(&out).unwrap()).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&again).unwrap(),
            out
        );
        for bad in [&b"not json"[..], br#"{"manifests":3}"#] {
            assert!(with_digest_names(bad.to_vec()).is_err());
        }
    }

    #[test]
    fn digest_names_drop_the_tag_only() {
        let d = "sha256:ab";
        assert_eq!(
            digest_name("docker.io/demo/app:1", d),
            "docker.io/demo/app@sha256:ab"
        );
        assert_eq!(
            digest_name("registry.local:5000/a/b:2.0", d),
            "registry.local:5000/a/b@sha256:ab"
        );
        assert_eq!(
            digest_name("registry.local:5000/a/b", d),
            "registry.local:5000/a/b@sha256:ab"
        );
        assert_eq!(
            digest_name("docker.io/demo/app@sha256:cd", d),
            "docker.io/demo/app@sha256:cd"
        );
    }
}
