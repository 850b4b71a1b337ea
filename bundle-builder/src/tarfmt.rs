//! The canonical tar headers of the outer container. The writer makes them, the reader rebuilds
//! them from the parsed name, size and mtime and demands the same 512 bytes, so any changed bit
//! in a header is caught (see docs/bundle-format.md).

/// Size of a tar block.
pub const BLOCK: u64 = 512;

/// Sizes from here on are written in GNU base-256.
const OCTAL_LIMIT: u64 = 0o77777777777;

/// Builds the canonical header for a regular file `name` of `size` bytes.
pub fn header(name: &str, size: u64, mtime: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.as_bytes();
    let n = &n[..n.len().min(99)];
    h[..n.len()].copy_from_slice(n);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    if size <= OCTAL_LIMIT {
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    let mtime = mtime.min(OCTAL_LIMIT);
    h[136..148].copy_from_slice(format!("{mtime:011o}\0").as_bytes());
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// What a header says, if it is canonical.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Entry name.
    pub name: String,
    /// Content size.
    pub size: u64,
    /// Modification time.
    pub mtime: u64,
}

/// Parses a header and checks it is exactly the canonical one. `Err` says what is wrong.
pub fn parse(h: &[u8; 512]) -> Result<Parsed, String> {
    let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
    let shown = String::from_utf8_lossy(&h[..name_end]).into_owned();
    // The checksum first: a damaged header is reported as damaged, whatever field was hit.
    let mut copy = *h;
    copy[148..156].copy_from_slice(b"        ");
    let sum: u64 = copy.iter().map(|&b| u64::from(b)).sum();
    if octal(&h[148..156]) != Some(sum) {
        return Err(format!(
            "tar header of entry {shown:?} is damaged (checksum mismatch)"
        ));
    }
    if h[156] != b'0' {
        return Err(format!(
            "entry {shown:?} is not a regular file (tar type {:?}): a ferry bundle holds no links, directories or devices",
            h[156] as char
        ));
    }
    let not_canonical = || {
        format!("tar header of entry {shown:?} is not the canonical ferry header (changed after build?)")
    };
    let name = std::str::from_utf8(&h[..name_end])
        .map_err(|_| format!("entry name {shown:?} is not UTF-8"))?
        .to_string();
    let size = if h[124] == 0x80 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[128..136]);
        u64::from_be_bytes(b)
    } else {
        octal(&h[124..136]).ok_or_else(not_canonical)?
    };
    let mtime = octal(&h[136..148]).ok_or_else(not_canonical)?;
    let parsed = Parsed { name, size, mtime };
    if header(&parsed.name, size, mtime) != *h {
        return Err(not_canonical());
    }
    Ok(parsed)
}

fn octal(field: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// Zero bytes that pad `size` up to a whole block.
pub fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_small_and_huge_sizes() {
        for size in [0, 1, 511, 512, OCTAL_LIMIT, OCTAL_LIMIT + 1, 20 << 30] {
            let h = header("blobs/sha256/ab", size, 1_700_000_000);
            assert_eq!(
                parse(&h).unwrap(),
                Parsed {
                    name: "blobs/sha256/ab".into(),
                    size,
                    mtime: 1_700_000_000
                }
            );
        }
    }

    #[test]
    fn any_flipped_bit_in_a_header_is_caught() {
        let h = header("manifest.json", 12345, 7);
        for byte in 0..512 {
            for bit in 0..8 {
                let mut bad = h;
                bad[byte] ^= 1 << bit;
                assert!(parse(&bad).is_err(), "flip at byte {byte} bit {bit} passed");
            }
        }
    }

    #[test]
    fn gnu_tar_reads_the_headers() {
        let mut data = header("hello.txt", 5, 0).to_vec();
        data.extend_from_slice(b"hello");
        data.resize(1024 + 1024, 0);
        let mut ar = tar::Archive::new(data.as_slice());
        let mut names = vec![];
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            names.push(e.path().unwrap().display().to_string());
        }
        assert_eq!(names, ["hello.txt"]);
    }
}
