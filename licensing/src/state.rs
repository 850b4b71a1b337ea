//! The license state kept on a site: activation records, the installed license and the MACed
//! guard (highest time seen, installed sequence). Files are written atomically; records holding
//! secrets are mode 0600.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{LicenseError, Result};
use crate::file::LicenseFile;
use crate::keys::IssuerPublicKey;
use crate::model::License;
use crate::request::ActivationRequest;
use crate::verify::{self, Guards, SiteFacts, Verified};

/// The default state directory on a site.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ferry/license";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardFile {
    v: u32,
    license: String,
    sequence: u64,
    high_water: i64,
    mac: String,
}

fn guard_mac(activation: &ActivationRequest, g: &Guards) -> String {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(activation.secret.bytes());
    ikm[32..].copy_from_slice(&activation.fingerprint.digest());
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA-256's output limit.
    Hkdf::<Sha256>::new(None, ikm.as_ref())
        .expand(b"ferry-license guard v1", key.as_mut())
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
    let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(key.as_ref())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"ferry-license-guard v1\0");
    mac.update(g.license.as_bytes());
    mac.update(&[0]);
    mac.update(&g.sequence.to_be_bytes());
    mac.update(&g.high_water.to_be_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Parses a guard file and checks its MAC under `activation`'s key.
fn read_guard(
    bytes: &[u8],
    activation: &ActivationRequest,
) -> std::result::Result<Guards, &'static str> {
    let g: GuardFile = serde_json::from_slice(bytes).map_err(|_| "the guard file is not valid")?;
    let guards = Guards {
        license: g.license,
        sequence: g.sequence,
        high_water: g.high_water,
    };
    // Both are hex of the same length; a timing difference reveals nothing useful offline.
    if g.v != 1 || g.mac != guard_mac(activation, &guards) {
        return Err("its MAC does not match");
    }
    Ok(guards)
}

/// Whether a guard file claims to belong to license `id`.
fn guard_names(bytes: &[u8], id: &str) -> bool {
    serde_json::from_slice::<GuardFile>(bytes).is_ok_and(|g| g.license == id)
}

/// A license file checked against the site (see `StateDir::check_input`).
struct Checked {
    file: LicenseFile,
    activation: ActivationRequest,
    verified: Verified,
    installed: Option<(License, ActivationRequest, Guards)>,
}

/// Writes `data` to `path` atomically: a new temporary file in the same directory (random name,
/// created exclusively, never through a link), fsync, rename over `path` (a symlink there is
/// replaced, not followed).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |action, source| LicenseError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A fresh, unpredictable temporary name, created exclusively (O_CREAT|O_EXCL): a file or
    // symlink planted at that name makes the open fail instead of being followed or reused.
    let (tmp, mut f) = {
        let mut attempt = 0;
        loop {
            let mut suffix = [0u8; 8];
            getrandom::getrandom(&mut suffix).map_err(|e| {
                io(
                    "choosing a temporary name for",
                    std::io::Error::other(e.to_string()),
                )
            })?;
            let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(suffix)));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)
            {
                Ok(f) => break (tmp, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => {
                    attempt += 1;
                }
                Err(e) => return Err(io("creating a temporary file for", e)),
            }
        }
    };
    let result = (|| {
        // rename() replaces a symlink at `path` itself; it never writes through it.
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| io("writing", e))
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LicenseError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        }),
    }
}

/// The installed license as the site sees it now.
#[derive(Debug)]
pub struct Status {
    /// The installed license, if any could be opened.
    pub license: Option<License>,
    /// The outcome of checking it (`NotInstalled` when there is none).
    pub result: Result<Verified>,
}

/// A site's license state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state directory at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn request_path(&self, id: &str) -> PathBuf {
        // Ids are hex; anything else cannot name a file here (no path tricks from a license).
        let safe: String = id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(32)
            .collect();
        self.root.join("requests").join(format!("{safe}.json"))
    }

    fn license_path(&self) -> PathBuf {
        self.root.join("license.lic")
    }

    fn guard_path(&self) -> PathBuf {
        self.root.join("guard.json")
    }

    /// Pins the vendor public keys given at activation, so later checks can use them.
    pub fn pin_keys(&self, keys: &[IssuerPublicKey]) -> Result<()> {
        for k in keys {
            let path = self.root.join("trusted").join(format!("{}.pub", k.id()));
            write_atomic(&path, k.to_armored().as_bytes(), 0o644)?;
        }
        Ok(())
    }

    /// The vendor public keys pinned at activation (empty when none).
    pub fn pinned_keys(&self) -> Result<Vec<IssuerPublicKey>> {
        let dir = self.root.join("trusted");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(LicenseError::Io {
                    action: "reading",
                    path: dir,
                    source,
                })
            }
        };
        let mut keys = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| LicenseError::Io {
                    action: "reading",
                    path: dir.clone(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|e| e == "pub") {
                let bytes = read_opt(&path)?.unwrap_or_default();
                keys.push(IssuerPublicKey::from_armored(&bytes)?);
            }
        }
        Ok(keys)
    }

    /// Keeps the activation record of a request (mode 0600); returns its path.
    pub fn save_request(&self, req: &ActivationRequest) -> Result<PathBuf> {
        let path = self.request_path(&req.id);
        write_atomic(&path, &req.to_json(), 0o600)?;
        Ok(path)
    }

    /// Loads the activation record for request `id`.
    pub fn load_request(&self, id: &str) -> Result<ActivationRequest> {
        let path = self.request_path(id);
        let bytes = Zeroizing::new(read_opt(&path)?.ok_or_else(|| LicenseError::NoActivation {
            request: id.to_owned(),
            path: path.clone(),
        })?);
        ActivationRequest::from_json(&bytes)
    }

    /// The installed license file, if any.
    pub fn installed_file(&self) -> Result<Option<LicenseFile>> {
        read_opt(&self.license_path())?
            .map(|b| LicenseFile::parse(&b))
            .transpose()
    }

    /// Opens the installed license and its guards (MAC checked). `None` when nothing is installed.
    /// `opened` is a license already opened by the caller: when it is the installed one, it is
    /// not opened a second time (verification runs on every install step, so this matters).
    fn installed(
        &self,
        trusted: &[IssuerPublicKey],
        opened: Option<(&LicenseFile, &License, &ActivationRequest)>,
    ) -> Result<Option<(License, ActivationRequest, Guards)>> {
        let Some(file) = self.installed_file()? else {
            return Ok(None);
        };
        let (license, activation) = match opened {
            Some((f, l, a)) if *f == file => (l.clone(), a.clone()),
            _ => {
                file.verify_signature(trusted)?;
                let activation = self.load_request(file.request_id())?;
                (file.decrypt(&activation)?, activation)
            }
        };
        let path = self.guard_path();
        let tampered = |detail: &str| LicenseError::GuardTampered {
            path: path.clone(),
            detail: detail.to_owned(),
        };
        let bytes = read_opt(&path)?.ok_or_else(|| tampered("the guard file is missing"))?;
        let guards = read_guard(&bytes, &activation).map_err(&tampered)?;
        if guards.license != license.id || guards.sequence != license.sequence {
            return Err(tampered("it belongs to another license"));
        }
        Ok(Some((license, activation, guards)))
    }

    /// Takes in a copy of the guard kept on another host of the site (`origin` names it) when
    /// it belongs to the installed license and has seen a later time: a jump host restored
    /// from a backup cannot forget what the hosts have seen. A copy for another license is
    /// ignored (that host missed an activation); an edited copy is refused. Returns whether the
    /// copy raised the highest time seen.
    pub fn adopt_guard(
        &self,
        trusted: &[IssuerPublicKey],
        copy: &[u8],
        origin: &Path,
    ) -> Result<bool> {
        let Some((license, activation, mine)) = self.installed(trusted, None)? else {
            return Ok(false);
        };
        let theirs = read_guard(copy, &activation).map_err(|detail| LicenseError::GuardTampered {
            path: origin.to_owned(),
            detail: detail.to_owned(),
        });
        let theirs = match theirs {
            Ok(g) => g,
            // Another license's guard does not verify under this license's key: ignore it
            // when it names another license, refuse it when it claims to be this one's.
            Err(_) if !guard_names(copy, &license.id) => return Ok(false),
            Err(e) => return Err(e),
        };
        if theirs.license != license.id
            || theirs.sequence != license.sequence
            || theirs.high_water <= mine.high_water
        {
            return Ok(false);
        }
        self.write_guard(&activation, &theirs)?;
        Ok(true)
    }

    fn write_guard(&self, activation: &ActivationRequest, g: &Guards) -> Result<()> {
        let file = GuardFile {
            v: 1,
            license: g.license.clone(),
            sequence: g.sequence,
            high_water: g.high_water,
            mac: guard_mac(activation, g),
        };
        write_atomic(
            &self.guard_path(),
            &serde_json::to_vec(&file).unwrap_or_default(),
            0o600,
        )
    }

    /// Raises the highest time seen to `now` when it is higher.
    fn record_time(&self, activation: &ActivationRequest, g: &Guards, now: i64) -> Result<()> {
        if now > g.high_water {
            self.write_guard(
                activation,
                &Guards {
                    high_water: now,
                    ..g.clone()
                },
            )?;
        }
        Ok(())
    }

    /// What `verify` and `activate` share: parse, check the signature, load this site's request,
    /// decrypt, read the installed license and guards, and check the license against the site.
    fn check_input(
        &self,
        input: &[u8],
        trusted: &[IssuerPublicKey],
        site: &SiteFacts,
    ) -> Result<Checked> {
        let file = LicenseFile::parse(input)?;
        // Signature first: nothing unauthenticated decides which state file is read.
        file.verify_signature(trusted)?;
        let activation = self.load_request(file.request_id())?;
        let license = file.decrypt(&activation)?;
        let installed = self.installed(trusted, Some((&file, &license, &activation)))?;
        let guards = installed.as_ref().map(|(_, _, g)| g);
        let verified = verify::check(license, site, guards)?;
        Ok(Checked {
            file,
            activation,
            verified,
            installed,
        })
    }

    /// Verifies `input` (a license file) against the site and the installed guards, raising the
    /// highest time seen. Installs nothing.
    pub fn verify(
        &self,
        input: &[u8],
        trusted: &[IssuerPublicKey],
        site: &SiteFacts,
    ) -> Result<Verified> {
        let Checked {
            verified,
            installed,
            ..
        } = self.check_input(input, trusted, site)?;
        if let Some((_, act, g)) = &installed {
            self.record_time(act, g, site.now)?;
        }
        Ok(verified)
    }

    /// Verifies `input` and installs it as the site's license, with fresh guards.
    pub fn activate(
        &self,
        input: &[u8],
        trusted: &[IssuerPublicKey],
        site: &SiteFacts,
    ) -> Result<Verified> {
        let Checked {
            file,
            activation,
            verified,
            installed,
        } = self.check_input(input, trusted, site)?;
        let guards = installed.as_ref().map(|(_, _, g)| g);
        let high_water = guards.map_or(site.now, |g| g.high_water.max(site.now));
        let g = Guards {
            license: verified.license.id.clone(),
            sequence: verified.license.sequence,
            high_water,
        };
        // License first, then guard: a crash between leaves a guard that names another license,
        // which is refused until activate runs again; never a new license with old guards accepted.
        write_atomic(&self.license_path(), file.to_armored().as_bytes(), 0o644)?;
        self.write_guard(&activation, &g)?;
        Ok(verified)
    }

    /// The installed license checked against the site now (raises the highest time seen).
    pub fn status(&self, trusted: &[IssuerPublicKey], site: &SiteFacts) -> Status {
        let installed = match self.installed(trusted, None) {
            Ok(Some(i)) => i,
            Ok(None) => {
                return Status {
                    license: None,
                    result: Err(LicenseError::NotInstalled(self.root.clone())),
                }
            }
            Err(e) => {
                // Show what can still be read, so the person sees which license is in trouble.
                let license = self.installed_file().ok().flatten().and_then(|f| {
                    let act = self.load_request(f.request_id()).ok()?;
                    verify::open(&f, trusted, &act).ok()
                });
                return Status {
                    license,
                    result: Err(e),
                };
            }
        };
        let (license, activation, guards) = installed;
        let result = verify::check(license.clone(), site, Some(&guards))
            .and_then(|v| self.record_time(&activation, &guards, site.now).map(|()| v));
        Status {
            license: Some(license),
            result,
        }
    }
}
