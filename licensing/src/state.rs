//! The license state kept on a site: activation records, the installed license and the guards
//! (highest time seen, highest sequence installed). Each guard is kept in more than one place,
//! guard.json and inside every activation record, and the copies are checked against each other:
//! removing files makes checks fail closed instead of starting over. Files are written
//! atomically; records holding secrets are mode 0600.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{LicenseError, Result};
use crate::file::LicenseFile;
use crate::keys::TrustRoot;
use crate::model::License;
use crate::request::{secret_json, ActivationRequest};
use crate::verify::{self, Guards, SiteFacts, Verified, CLOCK_TOLERANCE_SECS};

/// The default state directory on a site.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ferry/license";

/// What a guard records. `generation` counts every time the guards moved (an activation, a raised
/// highest time): a request remembers the generation it was made at, which is how a license can
/// prove it was issued after the guards last moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Mark {
    /// The installed license, `None` before the first activation.
    license: Option<String>,
    /// The highest sequence installed.
    sequence: u64,
    /// The highest time seen.
    high_water: i64,
    /// How many times the guards moved.
    generation: u64,
}

/// guard.json: the site's guard, MACed under the activation record it names (the installed
/// license's). Fields spelled out rather than flattened: serde cannot refuse unknown fields
/// through `flatten`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardFile {
    v: u32,
    request: String,
    license: Option<String>,
    sequence: u64,
    high_water: i64,
    generation: u64,
    mac: String,
}

impl GuardFile {
    fn mark(&self) -> Mark {
        Mark {
            license: self.license.clone(),
            sequence: self.sequence,
            high_water: self.high_water,
            generation: self.generation,
        }
    }
}

/// The guard kept inside an activation record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordGuard {
    license: Option<String>,
    sequence: u64,
    high_water: i64,
    generation: u64,
    mac: String,
}

impl RecordGuard {
    fn new(mark: Mark, mac: String) -> Self {
        Self {
            license: mark.license,
            sequence: mark.sequence,
            high_water: mark.high_water,
            generation: mark.generation,
            mac,
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            license: self.license.clone(),
            sequence: self.sequence,
            high_water: self.high_water,
            generation: self.generation,
        }
    }
}

/// An activation record as written (borrows the request: it is not `Clone`).
#[derive(Serialize)]
struct RecordOut<'a> {
    v: u32,
    request: &'a ActivationRequest,
    made_at: u64,
    guard: RecordGuard,
}

/// An activation record as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn {
    v: u32,
    request: ActivationRequest,
    made_at: u64,
    guard: RecordGuard,
}

/// A parsed activation record whose guard MAC verified.
struct Record {
    request: ActivationRequest,
    /// The generation of the site's guards when the request was made.
    made_at: u64,
    mark: Mark,
}

/// Where a guard is kept: the MAC names it, so a copy cannot be moved from one place to another.
#[derive(Clone, Copy)]
enum Place {
    Site,
    Record { made_at: u64 },
}

fn mark_mac(activation: &ActivationRequest, place: Place, m: &Mark) -> String {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(activation.secret.bytes());
    ikm[32..].copy_from_slice(&activation.fingerprint.digest());
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA-256's output limit.
    Hkdf::<Sha256>::new(None, ikm.as_ref())
        .expand(b"ferry-license guard v2", key.as_mut())
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
    let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(key.as_ref())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"ferry-license-guard v2\0");
    match place {
        Place::Site => mac.update(b"site\0"),
        Place::Record { made_at } => {
            mac.update(b"record\0");
            mac.update(&made_at.to_be_bytes());
        }
    }
    mac.update(activation.id.as_bytes());
    mac.update(&[0]);
    mac.update(m.license.as_deref().unwrap_or_default().as_bytes());
    mac.update(&[0]);
    mac.update(&m.sequence.to_be_bytes());
    mac.update(&m.high_water.to_be_bytes());
    mac.update(&m.generation.to_be_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `mac` is the MAC of `m` (both are hex of the same length; a timing difference reveals
/// nothing useful to someone offline with the files).
fn mac_ok(activation: &ActivationRequest, place: Place, m: &Mark, mac: &str) -> bool {
    mark_mac(activation, place, m) == mac
}

/// What a license is checked against: every guard the site holds, taken together.
#[derive(Debug, Default)]
struct Aggregate {
    /// The highest generation of any guard.
    generation: u64,
    /// The highest time seen by the guards of that generation (older ones may hold a time the
    /// vendor reset).
    high_water: i64,
    /// The highest sequence any guard has seen installed.
    sequence: u64,
    /// The installed license as the newest guard naming one says.
    license: Option<String>,
}

impl Aggregate {
    fn of<'a>(marks: impl Iterator<Item = &'a Mark>) -> Self {
        let marks: Vec<&Mark> = marks.collect();
        let generation = marks.iter().map(|m| m.generation).max().unwrap_or(0);
        Self {
            generation,
            high_water: marks
                .iter()
                .filter(|m| m.generation == generation)
                .map(|m| m.high_water)
                .max()
                .unwrap_or(0),
            sequence: marks.iter().map(|m| m.sequence).max().unwrap_or(0),
            license: marks
                .iter()
                .filter(|m| m.license.is_some())
                .max_by_key(|m| m.generation)
                .and_then(|m| m.license.clone()),
        }
    }
}

/// Every guard in a state directory: the activation records and guard.json, each checked.
struct Scan {
    records: Vec<Record>,
    /// guard.json when its MAC verified: (request id, mark).
    guard: Option<(String, Mark)>,
    /// Whether a guard.json file exists at all (even one that fails).
    guard_present: bool,
    /// Files that failed to parse or verify: (path, what is wrong).
    damaged: Vec<(PathBuf, String)>,
}

impl Scan {
    fn marks(&self) -> impl Iterator<Item = &Mark> {
        self.records
            .iter()
            .map(|r| &r.mark)
            .chain(self.guard.as_ref().map(|(_, m)| m))
    }
}

/// A license file checked against the site (see `StateDir::check_input`).
struct Checked {
    file: LicenseFile,
    record: Record,
    verified: Verified,
    scan: Scan,
    aggregate: Aggregate,
}

/// Writes `data` to `path` atomically: a new temporary file in the same directory (random name,
/// created exclusively, never through a link), fsync, rename over `path` (a symlink there is
/// replaced, not followed).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    write_via_temporary(path, data, mode, true)
}

/// Writes `data` to `path` like [`write_atomic`], but only when nothing exists at `path`: the
/// file appears whole or not at all, and an existing file (or link) there is never replaced,
/// even one created while this runs. A path that exists fails with `AlreadyExists`.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    write_via_temporary(path, data, mode, false)
}

fn write_via_temporary(path: &Path, data: &[u8], mode: u32, replace: bool) -> Result<()> {
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
        f.write_all(data)?;
        f.sync_all()?;
        if replace {
            // rename() replaces a symlink at `path` itself; it never writes through it.
            std::fs::rename(&tmp, path)?;
        } else {
            // link() fails when anything exists at `path`, atomically; then the name goes.
            std::fs::hard_link(&tmp, path)?;
            std::fs::remove_file(&tmp)?;
        }
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

    fn requests_dir(&self) -> PathBuf {
        self.root.join("requests")
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.root.join(Self::record_file(id))
    }

    /// The activation record of request `id`, relative to the state directory.
    pub fn record_file(id: &str) -> PathBuf {
        // Ids are hex; anything else cannot name a file here (no path tricks from a license).
        let safe: String = id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(32)
            .collect();
        Path::new("requests").join(format!("{safe}.json"))
    }

    fn license_path(&self) -> PathBuf {
        self.root.join("license.lic")
    }

    fn guard_path(&self) -> PathBuf {
        self.root.join("guard.json")
    }

    fn missing(&self, detail: String) -> LicenseError {
        LicenseError::StateMissing {
            path: self.root.clone(),
            detail,
        }
    }

    /// Keeps the activation record of a request (mode 0600), its guard seeded with what the
    /// site's guards say now; returns its path.
    pub fn save_request(&self, req: &ActivationRequest) -> Result<PathBuf> {
        let scan = self.scan()?;
        let agg = Aggregate::of(scan.marks());
        let mark = Mark {
            license: agg.license,
            sequence: agg.sequence,
            high_water: agg.high_water,
            generation: agg.generation,
        };
        self.write_record(req, agg.generation, mark)
    }

    fn write_record(&self, req: &ActivationRequest, made_at: u64, mark: Mark) -> Result<PathBuf> {
        let path = self.record_path(&req.id);
        let mac = mark_mac(req, Place::Record { made_at }, &mark);
        let out = RecordOut {
            v: 2,
            request: req,
            made_at,
            guard: RecordGuard::new(mark, mac),
        };
        write_atomic(&path, &secret_json(&out), 0o600)?;
        Ok(path)
    }

    /// Reads and checks the activation record of request `id`.
    fn load_record(&self, id: &str) -> Result<Record> {
        let path = self.record_path(id);
        let bytes = Zeroizing::new(read_opt(&path)?.ok_or_else(|| LicenseError::NoActivation {
            request: id.to_owned(),
            path: path.clone(),
        })?);
        Self::parse_record(&bytes, &path)
    }

    fn parse_record(bytes: &[u8], path: &Path) -> Result<Record> {
        let tampered = |detail: &str| LicenseError::GuardTampered {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        let r: RecordIn = serde_json::from_slice(bytes).map_err(|e| {
            tampered(&format!(
                "the activation record is not valid ({})",
                crate::request::redact_serde(&e)
            ))
        })?;
        if r.v != 2 {
            return Err(tampered("the activation record has an unknown version"));
        }
        // The same checks as a request file: the id must match the secret and fingerprint.
        let request = r.request.validated()?;
        let place = Place::Record { made_at: r.made_at };
        let mark = r.guard.mark();
        if !mac_ok(&request, place, &mark, &r.guard.mac) {
            return Err(tampered("the guard in the activation record fails its MAC"));
        }
        Ok(Record {
            request,
            made_at: r.made_at,
            mark,
        })
    }

    /// Loads the activation request kept in the record for request `id`.
    pub fn load_request(&self, id: &str) -> Result<ActivationRequest> {
        self.load_record(id).map(|r| r.request)
    }

    /// Parses guard.json and checks its MAC under `record`.
    fn parse_guard(bytes: &[u8], record: &Record) -> std::result::Result<Mark, &'static str> {
        let g: GuardFile =
            serde_json::from_slice(bytes).map_err(|_| "the guard file is not valid")?;
        if g.v != 2 || g.request != record.request.id {
            return Err("the guard file belongs to another request");
        }
        let mark = g.mark();
        if !mac_ok(&record.request, Place::Site, &mark, &g.mac) {
            return Err("its MAC does not match");
        }
        Ok(mark)
    }

    /// The request a guard file names, unchecked (to find the record that checks it).
    fn guard_request(bytes: &[u8]) -> Option<String> {
        serde_json::from_slice::<GuardFile>(bytes)
            .ok()
            .map(|g| g.request)
    }

    fn write_guard(&self, record: &Record, mark: &Mark) -> Result<()> {
        let file = GuardFile {
            v: 2,
            request: record.request.id.clone(),
            license: mark.license.clone(),
            sequence: mark.sequence,
            high_water: mark.high_water,
            generation: mark.generation,
            mac: mark_mac(&record.request, Place::Site, mark),
        };
        // Plain data: serialising cannot fail.
        write_atomic(
            &self.guard_path(),
            &serde_json::to_vec(&file).unwrap_or_default(),
            0o600,
        )
    }

    /// Reads every guard: every activation record and guard.json.
    fn scan(&self) -> Result<Scan> {
        let dir = self.requests_dir();
        let mut scan = Scan {
            records: Vec::new(),
            guard: None,
            guard_present: false,
            damaged: Vec::new(),
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e.collect::<std::io::Result<Vec<_>>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
        .map_err(|source| LicenseError::Io {
            action: "reading",
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = Zeroizing::new(read_opt(&path)?.unwrap_or_default());
            match Self::parse_record(&bytes, &path) {
                Ok(r) => scan.records.push(r),
                Err(e) => scan.damaged.push((path, e.to_string())),
            }
        }
        let path = self.guard_path();
        if let Some(bytes) = read_opt(&path)? {
            scan.guard_present = true;
            let record = Self::guard_request(&bytes)
                .and_then(|id| scan.records.iter().find(|r| r.request.id == id));
            match record.map(|r| Self::parse_guard(&bytes, r)) {
                Some(Ok(mark)) => {
                    let id = record.map(|r| r.request.id.clone()).unwrap_or_default();
                    scan.guard = Some((id, mark));
                }
                Some(Err(detail)) => scan.damaged.push((path, detail.into())),
                None => scan
                    .damaged
                    .push((path, "it names no activation record kept here".into())),
            }
        }
        Ok(scan)
    }

    /// The installed license file, if any.
    pub fn installed_file(&self) -> Result<Option<LicenseFile>> {
        read_opt(&self.license_path())?
            .map(|b| LicenseFile::parse(&b))
            .transpose()
    }

    /// The installed license with its record and the guard of guard.json, after checking that
    /// the guard copies agree on which license is installed. `opened` is a license the caller
    /// already opened: when it is the installed one, it is not opened a second time.
    fn installed(
        &self,
        trusted: &TrustRoot,
        opened: Option<(&LicenseFile, &License)>,
    ) -> Result<Option<(License, Record, Mark)>> {
        let Some(file) = self.installed_file()? else {
            return Ok(None);
        };
        file.verify_signature(trusted)?;
        let record = self.load_record(file.request_id())?;
        let license = match opened {
            Some((f, l)) if *f == file => l.clone(),
            _ => file.decrypt(&record.request)?,
        };
        let path = self.guard_path();
        let bytes = read_opt(&path)?.ok_or_else(|| {
            self.missing(format!(
                "guard.json is missing beside the installed license {}",
                license.id
            ))
        })?;
        let guard =
            Self::parse_guard(&bytes, &record).map_err(|detail| LicenseError::GuardTampered {
                path: path.clone(),
                detail: detail.to_owned(),
            })?;
        let names = |m: &Mark| {
            m.license.as_deref() == Some(license.id.as_str()) && m.sequence == license.sequence
        };
        let other = |m: &Mark| m.license.as_deref().unwrap_or("none").to_owned();
        if !names(&record.mark) {
            return Err(self.missing(format!(
                "the activation record of request {} says license {} is installed, license.lic holds {}",
                record.request.id,
                other(&record.mark),
                license.id
            )));
        }
        if !names(&guard) {
            return Err(self.missing(format!(
                "guard.json says license {} is installed, license.lic holds {}",
                other(&guard),
                license.id
            )));
        }
        Ok(Some((license, record, guard)))
    }

    /// The guards an installed license is checked against.
    fn guards_for(license: &License, aggregate: &Aggregate) -> Guards {
        Guards {
            license: license.id.clone(),
            sequence: aggregate.sequence,
            high_water: aggregate.high_water,
            clock_reset: false,
        }
    }

    /// Raises the highest time seen to `now` in both copies of the installed license's guard
    /// (its activation record and guard.json), one generation on.
    fn record_time(
        &self,
        record: &Record,
        guard: &Mark,
        aggregate: &Aggregate,
        now: i64,
    ) -> Result<()> {
        if now <= aggregate.high_water {
            return Ok(());
        }
        let mark = Mark {
            high_water: now,
            generation: aggregate.generation + 1,
            ..guard.clone()
        };
        self.write_record(&record.request, record.made_at, mark.clone())?;
        self.write_guard(record, &mark)
    }

    /// Takes in a copy of the guard kept on another host of the site (`origin` names it) when it
    /// belongs to the installed license and has seen a later time: a jump host restored from a
    /// backup cannot forget what the hosts have seen, and one whose guard.json was lost gets it
    /// back. Both copies here are raised to that time, one generation on. A copy for another
    /// request or license is ignored (that host missed an activation); an edited copy is
    /// refused. Returns whether the copy was taken in.
    pub fn adopt_guard(&self, trusted: &TrustRoot, copy: &[u8], origin: &Path) -> Result<bool> {
        let Some(file) = self.installed_file()? else {
            return Ok(false);
        };
        file.verify_signature(trusted)?;
        let record = self.load_record(file.request_id())?;
        if Self::guard_request(copy).is_some_and(|id| id != record.request.id) {
            return Ok(false);
        }
        let theirs =
            Self::parse_guard(copy, &record).map_err(|detail| LicenseError::GuardTampered {
                path: origin.to_owned(),
                detail: detail.to_owned(),
            })?;
        if theirs.license != record.mark.license || theirs.sequence != record.mark.sequence {
            return Ok(false);
        }
        let aggregate = Aggregate::of(self.scan()?.marks());
        let guard_present = self.guard_path().exists();
        if guard_present && theirs.high_water <= aggregate.high_water {
            return Ok(false);
        }
        // Their copy as it is when it is newer than anything here (so the copies on the hosts
        // and here stay byte for byte the same); else one generation past what is here, so
        // that it counts.
        let mark = if theirs.generation > aggregate.generation {
            theirs
        } else {
            Mark {
                high_water: theirs.high_water.max(aggregate.high_water),
                generation: aggregate.generation + 1,
                ..theirs
            }
        };
        self.write_record(&record.request, record.made_at, mark.clone())?;
        self.write_guard(&record, &mark)?;
        Ok(true)
    }

    /// What `verify` and `activate` share: parse, check the signature, load this site's record,
    /// decrypt, read every guard, and check the license against the site and the guards.
    fn check_input(&self, input: &[u8], trusted: &TrustRoot, site: &SiteFacts) -> Result<Checked> {
        let file = LicenseFile::parse(input)?;
        // Signature first: nothing unauthenticated decides which state file is read.
        file.verify_signature(trusted)?;
        let record = self.load_record(file.request_id())?;
        let license = file.decrypt(&record.request)?;
        let scan = self.scan()?;
        let aggregate = Aggregate::of(scan.marks());
        let guards = Guards {
            license: aggregate.license.clone().unwrap_or_default(),
            sequence: aggregate.sequence,
            high_water: aggregate.high_water,
            clock_reset: record.made_at == aggregate.generation,
        };
        let verified = verify::check(license, site, Some(&guards))?;
        Ok(Checked {
            file,
            record,
            verified,
            scan,
            aggregate,
        })
    }

    /// Verifies `input` (a license file) against the site and every guard. When it is the
    /// installed license, the guard copies must agree, and the highest time seen is raised.
    /// Installs nothing.
    pub fn verify(&self, input: &[u8], trusted: &TrustRoot, site: &SiteFacts) -> Result<Verified> {
        let Checked {
            file,
            verified,
            aggregate,
            ..
        } = self.check_input(input, trusted, site)?;
        if self.installed_file()?.as_ref() == Some(&file) {
            if let Some((license, record, guard)) =
                self.installed(trusted, Some((&file, &verified.license)))?
            {
                // The installed license never gets the vendor reset: it was issued before.
                let guards = Self::guards_for(&license, &aggregate);
                verify::check(license, site, Some(&guards))?;
                self.record_time(&record, &guard, &aggregate, site.now)?;
            }
        }
        Ok(verified)
    }

    /// Verifies `input` and installs it as the site's license: every activation record and
    /// guard.json then name it, with the highest time seen.
    pub fn activate(
        &self,
        input: &[u8],
        trusted: &TrustRoot,
        site: &SiteFacts,
    ) -> Result<Verified> {
        let Checked {
            file,
            record,
            verified,
            scan,
            aggregate,
        } = self.check_input(input, trusted, site)?;
        let now = site.now;
        // A vendor reset (the clock guard waived) may lower the highest time seen to now; a
        // clock within the tolerance never lowers it.
        let high_water = if now >= aggregate.high_water.saturating_sub(CLOCK_TOLERANCE_SECS) {
            now.max(aggregate.high_water)
        } else {
            now
        };
        let mark = Mark {
            license: Some(verified.license.id.clone()),
            sequence: verified.license.sequence,
            high_water,
            generation: aggregate.generation + 1,
        };
        // Records first, then the license, then guard.json: a crash in between leaves copies
        // that disagree (refused until activate runs again), never a new license with old
        // guards accepted. The records at the new generation carry the new time, so running
        // activate again checks against them, not against a time the reset replaced.
        for r in scan
            .records
            .iter()
            .filter(|r| r.request.id != record.request.id)
        {
            self.write_record(&r.request, r.made_at, mark.clone())?;
        }
        self.write_record(&record.request, record.made_at, mark.clone())?;
        write_atomic(&self.license_path(), file.to_armored().as_bytes(), 0o644)?;
        self.write_guard(&record, &mark)?;
        Ok(verified)
    }

    /// The installed license checked against the site now (raises the highest time seen). With
    /// no license.lic but guards that say one was installed, fails closed: the state was removed.
    pub fn status(&self, trusted: &TrustRoot, site: &SiteFacts) -> Status {
        let installed = match self.installed(trusted, None) {
            Ok(Some(i)) => i,
            Ok(None) => {
                return Status {
                    license: None,
                    result: Err(self.without_license()),
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
        let (license, record, guard) = installed;
        let result = self.scan().and_then(|scan| {
            let aggregate = Aggregate::of(scan.marks());
            let guards = Self::guards_for(&license, &aggregate);
            let v = verify::check(license.clone(), site, Some(&guards))?;
            self.record_time(&record, &guard, &aggregate, site.now)?;
            Ok(v)
        });
        Status {
            license: Some(license),
            result,
        }
    }

    /// Why there is no license: never installed, or installed and then removed.
    fn without_license(&self) -> LicenseError {
        let scan = match self.scan() {
            Ok(s) => s,
            Err(e) => return e,
        };
        if scan.guard_present {
            return self.missing("license.lic was removed but guard.json is still there".into());
        }
        if let Some(r) = scan.records.iter().find(|r| r.mark.license.is_some()) {
            return self.missing(format!(
                "license.lic was removed, but the activation record of request {} says license {} was installed",
                r.request.id,
                r.mark.license.as_deref().unwrap_or_default()
            ));
        }
        if let Some((path, detail)) = scan.damaged.into_iter().next() {
            return LicenseError::GuardTampered { path, detail };
        }
        LicenseError::NotInstalled(self.root.clone())
    }
}
