//! "Verify while reading": a reader that hashes what passes through and fails at end of input
//! when the bytes do not match the expected digest and size, so no consumer ever sees a clean
//! EOF on wrong data.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::Digest;

/// Wraps a reader; returns an `InvalidData` error instead of EOF when the bytes read do not
/// have exactly `size` bytes and the sha256 `digest`.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: Digest,
    size: u64,
    seen: u64,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// Checks `inner` against `expected` and `size` as it is read.
    pub fn new(inner: R, expected: Digest, size: u64) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            expected,
            size,
            seen: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            self.seen += n as u64;
            if self.seen > self.size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("more than the expected {} bytes", self.size),
                ));
            }
            return Ok(n);
        }
        self.done = true;
        if self.seen != self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} bytes where {} were expected", self.seen, self.size),
            ));
        }
        let actual = Digest::from_bytes(std::mem::take(&mut self.hasher).finalize().into());
        if actual != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("sha256 is {actual}, expected {}", self.expected),
            ));
        }
        Ok(0)
    }
}

/// Hashes a reader to its end without keeping its bytes; returns the digest and the length.
/// `read_so_far` is called after every chunk with the bytes read until then.
pub(crate) fn hash_reader(
    mut r: impl Read,
    read_so_far: &mut dyn FnMut(u64),
) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        read_so_far(total);
    }
    Ok((Digest::from_bytes(hasher.finalize().into()), total))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passes_matching_bytes_and_refuses_a_flipped_bit() {
        let data = b"layer bytes".to_vec();
        let d = Digest::of(&data);
        let mut ok = Vec::new();
        VerifyingReader::new(&data[..], d, data.len() as u64)
            .read_to_end(&mut ok)
            .unwrap();
        assert_eq!(ok, data);

        let mut bad = data.clone();
        bad[0] ^= 1;
        let err = VerifyingReader::new(&bad[..], d, data.len() as u64)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("sha256 is"), "{err}");

        let err = VerifyingReader::new(&data[..5], d, data.len() as u64)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("5 bytes where 11"), "{err}");
    }
}
