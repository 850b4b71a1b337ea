//! Deterministic incompressible bytes (xorshift64) for tests and benchmarks: a payload that
//! compression cannot shrink, so transfer and storage figures are not flattered, and the same
//! seed gives the same bytes on every run.

use std::io::Write;
use std::path::Path;

/// An endless stream of pseudo-random bytes.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    /// A stream from `seed` (any value; zero is mapped to a valid state).
    pub fn new(seed: u64) -> Self {
        Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Fills `buf`.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// `len` bytes from `seed`.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    Noise::new(seed).fill(&mut out);
    out
}

/// Writes `size` bytes from `seed` to `path` without holding them in memory.
pub fn write_file(path: &Path, size: u64, seed: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut noise = Noise::new(seed);
    let mut buf = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        noise.fill(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()
}
