//! `ferry bundle` subcommands.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `ferry bundle ...`
#[derive(Debug, Subcommand)]
pub enum BundleCmd {
    /// Build a signed bundle from a bundle.toml.
    Build(BuildArgs),
    /// Check a bundle's signature, every part, every header and every blob.
    Verify(VerifyArgs),
    /// Show a bundle's bill of materials.
    Inspect(InspectArgs),
    /// Write one item, or all items, out of a bundle.
    Extract(ExtractArgs),
}

/// `ferry bundle build`
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The bundle.toml describing the items (paths in it are relative to it).
    #[arg(value_name = "BUNDLE_TOML")]
    pub spec: PathBuf,
    /// The bundle file to write (split bundles: OUT.partNNN and OUT.parts).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Private key to sign the bundle with (from `ferry key generate`).
    #[arg(long, value_name = "KEY", env = "FERRY_SIGN_KEY")]
    pub sign_key: Option<PathBuf>,
    /// Split into parts of at most this size: bytes; K, M, G, T or KiB, MiB, GiB, TiB (powers
    /// of 1024); KB, MB, GB, TB (powers of 1000, as media are labelled); or `fat32` for FAT32
    /// media (4 GiB less one byte, the largest file FAT32 holds; 4G is one byte too many).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_part_size: Option<u64>,
    /// Docker engine for images with `engine = true` (unix:///run/docker.sock).
    #[arg(long, value_name = "URL", env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// Compression threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Replace OUT (and OUT.parts) when it exists; without it an existing bundle is kept.
    #[arg(long)]
    pub force: bool,
}

/// `ferry bundle verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle (its file, or NAME / NAME.parts of a split bundle).
    pub bundle: PathBuf,
    /// The signer's public key (PREFIX.pub from `ferry key generate`).
    #[arg(long, value_name = "PUBKEY")]
    pub pubkey: PathBuf,
    /// Also decompress every blob and check its content digest.
    #[arg(long)]
    pub deep: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ferry bundle inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle (its file, or NAME / NAME.parts of a split bundle).
    pub bundle: PathBuf,
    /// Check the signature with this public key as well.
    #[arg(long, value_name = "PUBKEY")]
    pub pubkey: Option<PathBuf>,
    /// Print the bill of materials as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ferry bundle extract`
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The bundle (its file, or NAME / NAME.parts of a split bundle).
    pub bundle: PathBuf,
    /// The item to extract (all items when omitted).
    pub item: Option<String>,
    /// Directory to write into (created if missing; nothing in it is overwritten).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Check the signature with this public key first (required, unless
    /// --insecure-skip-signature).
    #[arg(long, value_name = "PUBKEY")]
    pub pubkey: Option<PathBuf>,
    /// Extract without checking who signed the bundle (blob digests are still
    /// checked): anyone who could change the bundle chooses what is written.
    #[arg(long, conflicts_with = "pubkey")]
    pub insecure_skip_signature: bool,
    /// Write an image item as an OCI archive DIR/NAME.tar (for `ctr images import`).
    #[arg(long, requires = "item")]
    pub oci_archive: bool,
}

/// The largest file FAT32 can hold: 4 GiB less one byte (its size field is 32 bits).
pub const FAT32_MAX_FILE: u64 = (1 << 32) - 1;

/// Parses a part size as `split -b` and `truncate -s` read one: a bare prefix or one with
/// `iB` is a power of 1024 (`4G` = `4GiB` = 4,294,967,296), a prefix with `B` alone is a power
/// of 1000 (`4GB` = 4,000,000,000, as media are labelled: `4.7GB` fits a DVD). `fat32` is
/// [`FAT32_MAX_FILE`]. The numbers are read by the `parse-size` crate (fractions, `1_000`
/// digit groups, exact to the byte).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    if lower == "fat32" {
        return Ok(FAT32_MAX_FILE);
    }
    let bad =
        || format!("{s:?} is not a size: use bytes, a number with K, M, G or T (700M), or fat32");
    // parse-size reads `KB` and `K` alike (both binary or both decimal): `KB` is told apart
    // here. A lone `b` is bytes either way.
    let decimal = lower
        .strip_suffix('b')
        .and_then(|rest| rest.chars().last())
        .is_some_and(|c| matches!(c, 'k' | 'm' | 'g' | 't' | 'p' | 'e'));
    let config = if decimal {
        parse_size::Config::new().with_decimal()
    } else {
        parse_size::Config::new().with_binary()
    };
    // A sign is no size (parse-size reads `-0.4` as 0 bytes after rounding).
    if t.starts_with(['-', '+']) {
        return Err(bad());
    }
    let bytes = config.parse_size(t).map_err(|_| bad())?;
    if bytes < 64 * 1024 {
        return Err(format!("{s:?} is too small: parts must be at least 64K"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn reads_sizes_people_write() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("700M"), Ok(700 << 20));
        assert_eq!(parse_size("700MiB"), Ok(700 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        // Issue 11 item 1: 4G is 4,294,967,296 bytes, one more than FAT32 holds.
        assert_eq!(parse_size("fat32"), Ok(4_294_967_295));
        assert_eq!(parse_size("FAT32"), Ok(4_294_967_295));
        assert_eq!(parse_size("4G"), Ok(super::FAT32_MAX_FILE + 1));
        for bad in ["", "G", "-1G", "4X", "12"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    /// `4G` and `4GiB` are powers of 1024; `4GB` is what a medium's label means, powers of
    /// 1000. Reading `4.7GB` as binary made parts (5,046,586,573 bytes) that no DVD holds.
    #[test]
    fn a_size_with_b_alone_is_decimal_as_on_a_medium_label() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("4gib"), Ok(4 << 30));
        assert_eq!(parse_size("4GB"), Ok(4_000_000_000));
        assert_eq!(parse_size("4.7GB"), Ok(4_700_000_000));
        assert_eq!(parse_size("700MB"), Ok(700_000_000));
        // 64,000 bytes: under the 64K (65,536) floor.
        assert!(parse_size("64KB").is_err());
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("65536b"), Ok(65536));
    }
}
