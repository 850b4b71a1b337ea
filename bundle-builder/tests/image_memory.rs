//! Reading an image archive and writing its OCI archive streams: peak memory does not grow
//! with the size of a layer. (Its own test binary, so the process's peak RSS is this test's.)
#![allow(clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};

use ferry_bundle::image::{self, OciImage};
use ferry_bundle::Digest;
use serde_json::json;
use sha2::{Digest as _, Sha256};

const LAYER_FILE_SIZE: u64 = 256 * 1024 * 1024;
const ALLOWED_GROWTH_KIB: u64 = 48 * 1024;

fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Bytes that do not compress and do not repeat in a short cycle.
struct Noise(u64);
impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let b = self.0.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        Ok(buf.len())
    }
}

#[test]
fn memory_stays_flat_for_a_large_layer() {
    let dir = tempfile::tempdir().unwrap();
    // A layer tar holding one big file, written to disk in chunks.
    let layer_path = dir.path().join("layer.tar");
    {
        let mut t = tar::Builder::new(BufWriter::new(File::create(&layer_path).unwrap()));
        let mut h = tar::Header::new_gnu();
        h.set_size(LAYER_FILE_SIZE);
        h.set_mode(0o644);
        t.append_data(
            &mut h,
            "big.bin",
            Noise(0x9e37_79b9_7f4a_7c15).take(LAYER_FILE_SIZE),
        )
        .unwrap();
        t.into_inner().unwrap().flush().unwrap();
    }
    let mut hasher = Sha256::new();
    io::copy(&mut File::open(&layer_path).unwrap(), &mut hasher).unwrap();
    let diff_id = Digest::from_bytes(hasher.finalize().into());
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]}}))
    .unwrap();
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let manifest = serde_json::to_vec(&json!([{"Config": config_name,
        "RepoTags": ["ferry/big:1"], "Layers": ["big/layer.tar"]}]))
    .unwrap();
    let archive = dir.path().join("big-save.tar");
    {
        let mut t = tar::Builder::new(BufWriter::new(File::create(&archive).unwrap()));
        let mut h = tar::Header::new_gnu();
        h.set_size(config.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, &config_name, &config[..]).unwrap();
        t.append_path_with_name(&layer_path, "big/layer.tar")
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(manifest.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, "manifest.json", &manifest[..])
            .unwrap();
        t.into_inner().unwrap().flush().unwrap();
    }
    fs::remove_file(&layer_path).unwrap();

    // Reset the peak (Linux: "5" clears VmHWM); without it, the baseline is the peak so far.
    let _ = fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss_kib();
    let images = image::from_archive(&archive).unwrap();
    assert_eq!(images[0].layers[0].digest, diff_id);
    let refs: Vec<&OciImage> = images.iter().collect();
    let out = dir.path().join("oci.tar");
    image::write_oci_archive(&refs, BufWriter::new(File::create(&out).unwrap())).unwrap();
    let grew = peak_rss_kib().saturating_sub(before);
    assert!(
        grew < ALLOWED_GROWTH_KIB,
        "peak RSS grew by {grew} KiB reading and writing a {} MiB layer",
        LAYER_FILE_SIZE >> 20
    );
    assert!(fs::metadata(&out).unwrap().len() > LAYER_FILE_SIZE);
    eprintln!(
        "peak RSS growth: {grew} KiB for a {} MiB layer",
        LAYER_FILE_SIZE >> 20
    );
}
