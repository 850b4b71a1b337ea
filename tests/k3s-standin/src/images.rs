//! The node's container runtime as k3s uses an external one (`--container-runtime-endpoint`):
//! wait for containerd, import every air-gap archive of `<data-dir>/agent/images/` into
//! namespace `k8s.io` with `ctr` (`.tar` as is; `.tar.gz`/`.tgz` and `.tar.zst`/`.tzst`
//! decompressed on the way, streamed into `ctr images import -`), and read registries.yaml.
//! Nothing is ever pulled: a missing image is reported and the attempt logged as
//! `pull attempted: NAME`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::log;

/// The containerd namespace Kubernetes' images live in.
pub const NAMESPACE: &str = "k8s.io";

/// A containerd reached through `ctr`.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// containerd's socket path.
    pub socket: String,
}

impl Runtime {
    /// The runtime at `endpoint` (`unix:///run/containerd/containerd.sock` or a plain path).
    pub fn from_endpoint(endpoint: &str) -> Runtime {
        Runtime {
            socket: endpoint.trim_start_matches("unix://").to_string(),
        }
    }

    /// `ctr --address SOCKET --namespace k8s.io`.
    pub fn ctr(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ctr");
        c.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(NAMESPACE)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Runs `ctr ARGS`; returns stdout, or stderr as the error.
    pub async fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .ctr()
            .args(args)
            .output()
            .await
            .map_err(|e| format!("running ctr: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// containerd's version (`1.6.20~ds1`), once it answers. Readiness is asked with
    /// `ctr plugins ls`, not `ctr version`: the latter also reads containerd's introspection
    /// UUID, and a host that lost power just after containerd first started keeps an empty
    /// UUID file ("invalid UUID length: 0") while containerd serves the CRI as before, which is
    /// all k3s asks of it.
    pub async fn version(&self) -> Result<String, String> {
        self.run(&["plugins", "ls"]).await?;
        let Ok(out) = self.run(&["version"]).await else {
            return Ok("unknown".into());
        };
        let server = out.split("Server:").nth(1).unwrap_or_default();
        Ok(server
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Version:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into()))
    }

    /// Waits until containerd answers, logging as k3s does meanwhile. Returns its version.
    pub async fn wait_ready(&self) -> String {
        let mut last_log = Instant::now() - Duration::from_secs(60);
        loop {
            match self.version().await {
                Ok(v) => return v,
                Err(e) => {
                    if last_log.elapsed() > Duration::from_secs(10) {
                        log::info(format!("Waiting for containerd startup: {e}"));
                        last_log = Instant::now();
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The image names containerd has in `k8s.io`.
    pub async fn images(&self) -> Vec<String> {
        self.run(&["images", "ls", "-q"])
            .await
            .map(|o| o.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Whether `reference` (normalized the way containerd names images) is present.
    pub async fn has_image(&self, reference: &str) -> bool {
        let want = normalize(reference);
        self.images().await.contains(&want)
    }

    /// Imports every archive of `dir`, in name order. Archives k3s does not take are logged
    /// and skipped.
    pub async fn import_dir(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            log::info(format!(
                "No images directory {}; nothing to import",
                dir.display()
            ));
            return;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let name = file.to_string_lossy().to_string();
            let lower = name.to_lowercase();
            let kind = if lower.ends_with(".tar") {
                Compression::None
            } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
                Compression::Gzip
            } else if lower.ends_with(".tar.zst") || lower.ends_with(".tzst") {
                Compression::Zstd
            } else if lower.ends_with(".txt") {
                log::info(format!(
                    "Image list {name} asks for pulls; the k3s stand-in never pulls: skipped"
                ));
                continue;
            } else {
                log::warn(format!(
                    "Unhandled file in the images directory, skipped: {name}"
                ));
                continue;
            };
            let started = Instant::now();
            log::info(format!("Importing images from {name}"));
            match self.import(&file, kind).await {
                Ok(images) => log::info(format!(
                    "Imported images from {name} in {:?}: {}",
                    started.elapsed(),
                    images.join(", ")
                )),
                Err(e) => log::error(format!("Unable to import images from {name}: {e}")),
            }
        }
    }

    async fn import(&self, file: &Path, kind: Compression) -> Result<Vec<String>, String> {
        let mut child = self
            .ctr()
            .args(["images", "import", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running ctr: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("ctr has no stdin")?;
        let path = file.to_path_buf();
        // Decompression runs on a blocking thread; chunks go through a small channel to ctr.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
        let reader = tokio::task::spawn_blocking(move || -> Result<(), String> {
            use std::io::Read;
            let f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            let mut r: Box<dyn Read> = match kind {
                Compression::None => Box::new(f),
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
                Compression::Zstd => {
                    Box::new(zstd::stream::read::Decoder::new(f).map_err(|e| e.to_string())?)
                }
            };
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = r.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    return Ok(());
                }
                if tx.blocking_send(buf[..n].to_vec()).is_err() {
                    return Ok(());
                }
            }
        });
        while let Some(chunk) = rx.recv().await {
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        drop(stdin);
        let read = reader.await.map_err(|e| e.to_string())?;
        let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
        read?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix("unpacking "))
            .map(|l| l.split(" (").next().unwrap_or(l).to_string())
            .collect())
    }
}

#[derive(Clone, Copy)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The name containerd gives `reference` (`busybox` → `docker.io/library/busybox:latest`), as
/// the CRI plugin resolves a pod's image (docker's `ParseDockerRef`): a reference with both a
/// tag and a digest keeps only the digest (`app:1@sha256:…` → `docker.io/library/app@sha256:…`),
/// so an image imported by tag alone does not satisfy it: the importer must also name it
/// `REPO@DIGEST` (ferry's images step does), or the kubelet tries to pull.
pub fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if let Some(d) = digest {
        if let Some((repo, _tag)) = last.split_once(':') {
            let keep = full.len() - last.len() + repo.len();
            full.truncate(keep);
        }
        return format!("{full}@{d}");
    }
    if !last.contains(':') {
        full.push_str(":latest");
    }
    full
}

/// Reads registries.yaml (k3s's `--private-registry`) and logs what it says. With an external
/// containerd, k3s writes no containerd configuration from it, and neither does the stand-in.
pub fn read_registries(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        log::info(format!(
            "No private registry config file {}",
            path.display()
        ));
        return;
    };
    match serde_yaml_ng::from_str::<serde_json::Value>(&text) {
        Ok(v) => {
            let mirrors: Vec<String> = v["mirrors"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, e)| format!("{k} -> {}", e["endpoint"]))
                        .collect()
                })
                .unwrap_or_default();
            log::info(format!(
                "Using private registry config file at {}: mirrors [{}]; with an external containerd (--container-runtime-endpoint) k3s leaves containerd's registry configuration alone",
                path.display(),
                mirrors.join(", ")
            ));
        }
        Err(e) => log::error(format!(
            "Failed to parse private registry config {}: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    #[test]
    fn references_normalize_as_containerd_names_them() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("ferry/app:1"), "docker.io/ferry/app:1");
        assert_eq!(
            normalize("registry.local:5000/a/b"),
            "registry.local:5000/a/b:latest"
        );
        assert_eq!(
            normalize("docker.io/library/busybox:1"),
            "docker.io/library/busybox:1"
        );
        assert_eq!(
            normalize("demo/shop:1@sha256:ab"),
            "docker.io/demo/shop@sha256:ab"
        );
        assert_eq!(
            normalize("registry.local:5000/a/b@sha256:ab"),
            "registry.local:5000/a/b@sha256:ab"
        );
    }
}
