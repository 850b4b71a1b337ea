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
    /// Split into parts of at most this size: bytes, or with K, M, G, T (powers of 1024), or
    /// `fat32` for FAT32 media (4 GiB less one byte, the largest file FAT32 holds; 4G is one
    /// byte too many).
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

/// Parses `4G`, `700M`, `1.5G`, `4096`, `64KiB` into bytes (powers of 1024), and `fat32` into
/// [`FAT32_MAX_FILE`].
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    if lower == "fat32" {
        return Ok(FAT32_MAX_FILE);
    }
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (num, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1u64 << 10),
        Some('m') => (&body[..body.len() - 1], 1 << 20),
        Some('g') => (&body[..body.len() - 1], 1 << 30),
        Some('t') => (&body[..body.len() - 1], 1 << 40),
        _ => (body, 1),
    };
    let bad =
        || format!("{s:?} is not a size: use bytes, a number with K, M, G or T (700M), or fat32");
    let value: f64 = num.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 1.0 {
        return Err(bad());
    }
    let bytes = value * mult as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(bad());
    }
    let bytes = bytes as u64;
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
}
