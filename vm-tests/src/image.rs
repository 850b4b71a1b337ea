//! The base image: built once from `image/recipe.sh` with debootstrap, cached under a hash of the
//! recipe and the mirror, shared read-only by every VM through qcow2 overlays.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::TestbedError;

/// The image recipe (a shell script run as root), embedded so its hash names the cache entry.
pub const RECIPE: &str = include_str!("../image/recipe.sh");

/// A built base image: a raw ext4 root file system plus the kernel and initrd to boot it.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The raw ext4 image (never written to; VMs write to their overlays).
    pub disk: PathBuf,
    /// The kernel, booted directly by qemu.
    pub kernel: PathBuf,
    /// The initrd that goes with the kernel.
    pub initrd: PathBuf,
}

impl BaseImage {
    /// Returns the cached image, building it first if this recipe and mirror have none yet.
    /// Concurrent callers (threads or processes) wait for one build instead of starting their own.
    pub fn ensure() -> Result<BaseImage, TestbedError> {
        crate::testbed::preflight()?;
        let mirror = mirror()?;
        let images = cache_dir().join("images");
        fs::create_dir_all(&images)
            .map_err(TestbedError::io(format!("creating {}", images.display())))?;
        let key = recipe_key(&mirror);
        let dir = images.join(&key);
        let image = BaseImage {
            disk: dir.join("base.img"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
        };
        if image.is_complete() {
            return Ok(image);
        }
        let lock_path = images.join(format!("{key}.lock"));
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(TestbedError::io(format!("opening {}", lock_path.display())))?;
        let _lock =
            Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, e)| TestbedError::Io {
                what: format!("locking {}", lock_path.display()),
                source: e.into(),
            })?;
        if image.is_complete() {
            return Ok(image);
        }
        // A build killed half-way leaves its work directory behind; the recipe refuses an existing
        // output directory, so clear both.
        remove_leftovers(&images, &key);
        let script = images.join(format!("{key}.recipe.sh"));
        fs::write(&script, RECIPE)
            .map_err(TestbedError::io(format!("writing {}", script.display())))?;
        let log_path = images.join(format!("{key}.log"));
        let log = File::create(&log_path)
            .map_err(TestbedError::io(format!("creating {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(TestbedError::io("duplicating the build log handle"))?;
        eprintln!(
            "vm-tests: building the VM base image once from {mirror} into {} (a few minutes; log: {})",
            dir.display(),
            log_path.display()
        );
        let status = Command::new("bash")
            .arg(&script)
            .arg(&mirror)
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .status()
            .map_err(TestbedError::io("running bash for the image recipe"))?;
        if !status.success() || !image.is_complete() {
            return Err(TestbedError::ImageBuild {
                cause: format!("recipe.sh exited with {status}"),
                log: log_path,
            });
        }
        Ok(image)
    }

    fn is_complete(&self) -> bool {
        self.disk.is_file() && self.kernel.is_file() && self.initrd.is_file()
    }

    /// The image's cache directory (saved states of VMs booted from it live below it).
    pub(crate) fn dir(&self) -> &Path {
        self.disk.parent().unwrap_or(Path::new("."))
    }
}

fn remove_leftovers(images: &Path, key: &str) {
    let Ok(entries) = fs::read_dir(images) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == key || name.starts_with(&format!("{key}.work.")) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Where images and testbed run directories live: `FERRY_VM_CACHE`, else `target/ferry-vm` of
/// this workspace.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERRY_VM_CACHE") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("target")
        });
    target.join("ferry-vm")
}

fn recipe_key(mirror: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(RECIPE.as_bytes());
    hash.update(b"\0");
    hash.update(mirror.as_bytes());
    let digest = hash.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The Debian mirror this machine's apt uses (`FERRY_VM_MIRROR` overrides it), read at run time
/// so no host name is written into the code.
pub(crate) fn mirror() -> Result<String, TestbedError> {
    if let Ok(m) = std::env::var("FERRY_VM_MIRROR") {
        return Ok(m);
    }
    let deb822 = Path::new("/etc/apt/sources.list.d/debian.sources");
    if let Ok(text) = fs::read_to_string(deb822) {
        if let Some(uri) = mirror_from_deb822(&text) {
            return Ok(uri);
        }
    }
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
        if let Some(uri) = mirror_from_list(&text) {
            return Ok(uri);
        }
    }
    Err(TestbedError::Unavailable(
        "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list; set FERRY_VM_MIRROR".into(),
    ))
}

/// The first URI of a deb822 stanza that serves the plain `bookworm` suite.
fn mirror_from_deb822(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
            })
        };
        let suites = field("Suites").unwrap_or_default();
        if !suites.split_whitespace().any(|s| s == "bookworm") {
            continue;
        }
        if let Some(uris) = field("URIs") {
            if let Some(first) = uris.split_whitespace().next() {
                return Some(first.to_string());
            }
        }
    }
    None
}

/// The URI of the first `deb URI bookworm ...` line.
fn mirror_from_list(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line
            .split_whitespace()
            .filter(|w| !w.starts_with('[') && !w.ends_with(']'));
        (words.next()? == "deb").then_some(())?;
        let uri = words.next()?;
        (words.next()? == "bookworm").then(|| uri.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_mirror_of_the_bookworm_stanza_not_security() {
        let text = "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n\
                    Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(
            mirror_from_deb822(text).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn reads_the_mirror_of_a_one_line_sources_list() {
        let text = "# x\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            mirror_from_list(text).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn a_different_mirror_or_recipe_names_a_different_image() {
        assert_ne!(recipe_key("http://a/debian"), recipe_key("http://b/debian"));
        assert_eq!(recipe_key("http://a/debian").len(), 16);
    }
}
