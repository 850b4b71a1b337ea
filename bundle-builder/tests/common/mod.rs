//! Shared helpers for the bundle tests: inputs made on the spot, a key pair, a build call.
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
        let text: String = (0..4000).map(|i| format!("line {i} of the payload\n")).collect();
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
        fs::write(&spec, format!("[bundle]\nname = \"demo\"\nversion = \"1.0.0\"\n\n{body}")).unwrap();
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

    pub fn build(&self, spec: &Path, out: &Path, part: Option<u64>) -> Result<BuildSummary, ferry_bundle::BundleError> {
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
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
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
