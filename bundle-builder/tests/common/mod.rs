//! Shared helpers for the bundle tests: inputs made on the spot, a key pair, a build call.
#![allow(clippy::unwrap_used)]
#![allow(dead_code, missing_docs)]

use std::fs;
use std::path::{Path, PathBuf};

use ferry_bundle::{build, BuildOptions, BuildSummary, BundleSpec, Digest, PublicKey, SigningKey};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
    pub public: PublicKey,
}

impl Fixture {
    /// A directory with: payload (text file), tree/ (a directory with a subdir, an executable
    /// and an inside symlink), random.bin (incompressible), and a key pair.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let text: String = (0..4000)
            .map(|i| format!("line {i} of the payload\n"))
            .collect();
        fs::write(p.join("payload"), &text).unwrap();
        fs::create_dir_all(p.join("tree/sub")).unwrap();
        fs::write(p.join("tree/sub/a.txt"), "alpha\n".repeat(100)).unwrap();
        fs::write(p.join("tree/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p.join("tree/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("sub/a.txt", p.join("tree/link")).unwrap();
        fs::write(p.join("random.bin"), pseudo_random(300_000, 7)).unwrap();
        let key = p.join("key");
        let sk = SigningKey::generate().unwrap();
        sk.write_pair(&key).unwrap();
        Fixture {
            dir,
            key,
            public: sk.public(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_spec(&self, body: &str) -> PathBuf {
        let spec = self.path().join("bundle.toml");
        fs::write(
            &spec,
            format!("[bundle]\nname = \"demo\"\nversion = \"1.0.0\"\n\n{body}"),
        )
        .unwrap();
        spec
    }

    pub fn standard_spec(&self) -> PathBuf {
        self.write_spec(
            "[[files]]\nname = \"payload\"\npath = \"payload\"\n\n\
             [[files]]\nname = \"tree\"\npath = \"tree\"\n\n\
             [[files]]\nname = \"random\"\npath = \"random.bin\"\n\n\
             [[files]]\nname = \"payload-again\"\npath = \"payload\"\n",
        )
    }

    pub fn build(
        &self,
        spec: &Path,
        out: &Path,
        part: Option<u64>,
    ) -> Result<BuildSummary, ferry_bundle::BundleError> {
        let spec = BundleSpec::load(spec)?;
        build(
            &spec,
            &BuildOptions {
                output: out.to_path_buf(),
                sign_key: Some(SigningKey::load(&self.key).unwrap()),
                max_part_size: part,
                source_date_epoch: 1_700_000_000,
                docker_host: None,
                threads: 0,
            },
            &mut |_| {},
        )
    }
}

/// Deterministic incompressible bytes (xorshift).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    ferry_tests::noise::bytes(len, seed)
}

pub fn sha(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
}

/// Every file under `dir` (relative), for "nothing else was written" checks.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The entries of a single-file bundle, as (name, bytes), read with the canonical parser.
pub fn read_raw(path: &Path) -> Vec<(String, Vec<u8>)> {
    let data = fs::read(path).unwrap();
    let mut out = vec![];
    let mut pos = 0;
    loop {
        let h: [u8; 512] = data[pos..pos + 512].try_into().unwrap();
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let p = ferry_bundle::tarfmt::parse(&h).unwrap();
        let start = pos + 512;
        out.push((p.name, data[start..start + p.size as usize].to_vec()));
        pos = start + p.size as usize + ferry_bundle::tarfmt::padding(p.size) as usize;
    }
    out
}

/// Writes entries as a canonical bundle tar (mtime as the fixture uses).
pub fn write_raw(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut out = vec![];
    for (name, bytes) in entries {
        out.extend_from_slice(&ferry_bundle::tarfmt::header(
            name,
            bytes.len() as u64,
            1_700_000_000,
        ));
        out.extend_from_slice(bytes);
        out.resize(
            out.len() + ferry_bundle::tarfmt::padding(bytes.len() as u64) as usize,
            0,
        );
    }
    out.resize(out.len() + 1024, 0);
    fs::write(path, out).unwrap();
}

/// Applies `edit` to the manifest JSON, then re-signs it with the fixture key (a bundle that
/// is signed but wrong inside, as a broken builder could make it).
pub fn edit_manifest(
    entries: &mut [(String, Vec<u8>)],
    key: &Path,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let at = entries
        .iter()
        .position(|(n, _)| n == "manifest.json")
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&entries[at].1).unwrap();
    edit(&mut v);
    let bytes = serde_json::to_vec_pretty(&v).unwrap();
    let sig = SigningKey::load(key).unwrap().sign_to_bytes(&bytes);
    entries[at].1 = bytes;
    if let Some(s) = entries.iter_mut().find(|(n, _)| n == "manifest.sig") {
        s.1 = sig;
    }
}

/// A signed bundle with one item `evil` whose tree blob is `tree_tar` (raw bytes), made by
/// hand, for testing what extraction refuses.
pub fn bundle_with_tree(path: &Path, key: &Path, tree_tar: Vec<u8>) {
    let d = Digest::of(&tree_tar);
    let manifest = serde_json::json!({
        "format": "ferry-bundle/1", "name": "evil", "version": "1", "created": 1_700_000_000u64,
        "blobs": [{"digest": d, "size": tree_tar.len(), "compression": "none",
                   "stored_size": tree_tar.len(), "stored_sha256": d}],
        "items": [{"name": "evil", "version": null, "arch": null, "kind": "file",
                   "contents": [{"path": "evil", "digest": d, "size": tree_tar.len(), "form": "tree", "mode": 493}]}]
    });
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    let sig = SigningKey::load(key).unwrap().sign_to_bytes(&bytes);
    write_raw(
        path,
        &[
            (format!("blobs/sha256/{}", d.hex()), tree_tar),
            ("manifest.json".into(), bytes),
            ("manifest.sig".into(), sig),
        ],
    );
}

/// One raw tar entry with any name (even `..`), type and link target, as an attacker writes it.
pub fn raw_tar_entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}
