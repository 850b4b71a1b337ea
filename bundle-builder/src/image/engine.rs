//! Images from a running Docker engine, through its HTTP API (no `docker` CLI): every reference
//! is checked first, then all of them are exported in one `GET /images/get` (so shared layers
//! come once), streamed to a spool file, and read like any docker archive. The async client runs
//! on a small private runtime so the builder's API stays blocking.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::errors::Error as BollardError;
use bollard::{ClientVersion, Docker};
use futures_util::StreamExt;

use super::reference::normalize_reference;
use super::{from_archive_with_progress, ImageError, OciImage};
use crate::Digest;

/// Seconds one API request may take; an export of many gigabytes is one request.
const REQUEST_TIMEOUT_SECS: u64 = 3600;
/// Docker 20.10 (Debian's docker.io) speaks API 1.41 at most: the client tries it first (see
/// `negotiated` for newer engines that refuse it).
const CLIENT_VERSION: &ClientVersion = &ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Progress of an export from a Docker engine, for a front end to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineProgress {
    /// The engine has this image (its ID follows).
    Found {
        /// The reference as asked for.
        reference: String,
        /// The engine's image ID (config digest).
        id: String,
    },
    /// So many bytes of the export have been written to the spool file.
    Exported {
        /// Bytes so far.
        bytes: u64,
    },
    /// The export is complete and is being scanned and verified.
    Scanning(super::ScanProgress),
}

/// [`from_engine_with_progress`] without progress reports.
pub fn from_engine(
    docker_host: &str,
    refs: &[String],
    spool_dir: &Path,
) -> Result<Vec<OciImage>, ImageError> {
    from_engine_with_progress(docker_host, refs, spool_dir, &mut |_| {})
}

/// Exports `refs` from the Docker engine at `docker_host` (`unix:///run/docker.sock`, a socket
/// path, or `tcp://host:port`) into a spool file in `spool_dir`, then reads it as a docker
/// archive. Returns one image per reference, in the order given, named by the reference in full
/// form (or by the image ID when the reference was an ID). The returned blobs point into the
/// spool file: keep `spool_dir` until they have been written, then remove it (the spool file
/// is removed here only on failure). An image the engine does not have, or a spool directory
/// too small for the largest image, is refused before anything is exported.
pub fn from_engine_with_progress(
    docker_host: &str,
    refs: &[String],
    spool_dir: &Path,
    progress: &mut dyn FnMut(EngineProgress),
) -> Result<Vec<OciImage>, ImageError> {
    let engine_err = |what: &str, e: &dyn std::fmt::Display| ImageError::Engine {
        host: docker_host.to_string(),
        what: what.to_string(),
        detail: e.to_string(),
    };
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| engine_err("starting the client runtime", &e))?;
    let spool = spool_path(spool_dir, refs);
    let result = runtime.block_on(export(docker_host, refs, &spool, progress));
    let ids = match result {
        Ok(ids) => ids,
        Err(e) => {
            let _ = fs::remove_file(&spool);
            return Err(e);
        }
    };
    let scanned =
        from_archive_with_progress(&spool, &mut |p| progress(EngineProgress::Scanning(p)));
    let images = match scanned {
        Ok(images) => images,
        Err(e) => {
            let _ = fs::remove_file(&spool);
            return Err(e);
        }
    };
    let mut out = Vec::with_capacity(refs.len());
    for (reference, id) in refs.iter().zip(&ids) {
        // Classic engines give the config digest as the image ID; engines on the containerd
        // image store give the manifest (or index) digest; the name is the last resort.
        let wanted = normalize_reference(reference);
        let image = images
            .iter()
            .find(|img| img.config.digest.to_string() == *id)
            .or_else(|| {
                images
                    .iter()
                    .find(|img| img.manifest.digest.to_string() == *id)
            })
            .or_else(|| images.iter().find(|img| img.reference == wanted))
            .ok_or_else(|| ImageError::Engine {
                host: docker_host.to_string(),
                what: format!("exporting {reference}"),
                detail: format!("the export holds no image with ID {id}"),
            })?;
        let mut image = image.clone();
        image.reference = if is_id(reference, id) {
            id.clone()
        } else {
            normalize_reference(reference)
        };
        out.push(image);
    }
    Ok(out)
}

async fn export(
    docker_host: &str,
    refs: &[String],
    spool: &Path,
    progress: &mut dyn FnMut(EngineProgress),
) -> Result<Vec<String>, ImageError> {
    let engine_err = |what: String, e: BollardError| ImageError::Engine {
        host: docker_host.to_string(),
        what,
        detail: e.to_string(),
    };
    let docker = negotiated(docker_host)
        .await
        .map_err(|e| engine_err("connecting".into(), e))?;
    let mut ids = Vec::with_capacity(refs.len());
    let mut largest = 0u64;
    for reference in refs {
        match docker.inspect_image(reference).await {
            Ok(inspect) => {
                largest = largest.max(inspect.size.unwrap_or_default().max(0) as u64);
                let id = inspect.id.unwrap_or_default();
                progress(EngineProgress::Found {
                    reference: reference.clone(),
                    id: id.clone(),
                });
                ids.push(id);
            }
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(ImageError::UnknownImage {
                    host: docker_host.to_string(),
                    reference: reference.clone(),
                })
            }
            Err(e) => return Err(engine_err(format!("looking up {reference}"), e)),
        }
    }
    // The export holds at least the largest image whole; refuse before writing if even that
    // cannot fit. (Shared layers make a closer estimate impossible without per-layer sizes;
    // running out later is still reported, and the partial spool file removed.)
    let available =
        free_space(spool.parent().unwrap_or(spool)).map_err(|source| ImageError::Spool {
            path: spool.to_path_buf(),
            source,
        })?;
    if largest > available {
        return Err(ImageError::SpoolSpace {
            dir: spool.parent().unwrap_or(spool).to_path_buf(),
            needed: largest,
            available,
        });
    }
    let spool_err = |source| ImageError::Spool {
        path: spool.to_path_buf(),
        source,
    };
    let mut file = File::create(spool).map_err(spool_err)?;
    let names: Vec<&str> = refs.iter().map(String::as_str).collect();
    let mut stream = docker.export_images(&names);
    let mut written = 0u64;
    let mut next_report = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| engine_err("exporting images".into(), e))?;
        file.write_all(&chunk).map_err(spool_err)?;
        written += chunk.len() as u64;
        if written >= next_report {
            progress(EngineProgress::Exported { bytes: written });
            next_report = written + 16 * 1024 * 1024;
        }
    }
    file.sync_all().map_err(spool_err)?;
    progress(EngineProgress::Exported { bytes: written });
    Ok(ids)
}

/// A client speaking an API version the engine accepts. Engines refuse versions above their
/// own (Docker 20.10 stops at 1.41) and, from Docker 29 on, below 1.44; so ferry tries 1.41
/// first and, if the engine refuses it, starts from the newest version the client knows and
/// lets the engine lower it.
async fn negotiated(docker_host: &str) -> Result<Docker, BollardError> {
    let old = connect(docker_host, CLIENT_VERSION)?;
    match old.negotiate_version().await {
        Ok(docker) => Ok(docker),
        Err(first) => match connect(docker_host, bollard::API_DEFAULT_VERSION) {
            Ok(new) => new.negotiate_version().await.map_err(|_| first),
            Err(_) => Err(first),
        },
    }
}

fn connect(docker_host: &str, version: &ClientVersion) -> Result<Docker, BollardError> {
    if docker_host.starts_with("tcp://") || docker_host.starts_with("http://") {
        Docker::connect_with_http(docker_host, REQUEST_TIMEOUT_SECS, version)
    } else {
        Docker::connect_with_unix(docker_host, REQUEST_TIMEOUT_SECS, version)
    }
}

fn free_space(dir: &Path) -> std::io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok((stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64))
}

/// True when the user named the image by (a prefix of) its ID rather than by a name.
fn is_id(reference: &str, id: &str) -> bool {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    let asked = reference.strip_prefix("sha256:").unwrap_or(reference);
    !asked.is_empty() && asked.bytes().all(|b| b.is_ascii_hexdigit()) && hex.starts_with(asked)
}

fn spool_path(spool_dir: &Path, refs: &[String]) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let key = Digest::of(refs.join("\n").as_bytes()).hex();
    spool_dir.join(format!(
        "engine-export-{}-{}-{n}.tar",
        &key[..12],
        std::process::id()
    ))
}
