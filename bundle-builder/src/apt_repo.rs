//! Flat apt repositories built from a directory of `.deb` files: the packages copied beside a
//! `Packages` index (each package's control fields, `Filename`, `Size`, `SHA256`, as
//! apt-ftparchive writes them), `Packages.gz`, and a `Release` file with the indexes' SHA256
//! sums. A host reads it as `deb [trusted=yes] file:DIR ./`: the bundle's signature is what
//! vouches for it. The output is a function of the packages alone (sorted, no dates), so a
//! bundle build stays reproducible.
//!
//! Before anything is written the set is checked for closure: every `Depends` and
//! `Pre-Depends` relation of every package must be met by a package of the set (its name or a
//! `Provides`, at a version that satisfies the relation, ordered as dpkg orders versions) or by
//! a package the caller says the distribution's hosts already have. A set that is not closed is
//! refused with every unmet relation, the package that needs it, and the field it is in.
//!
//! Package files are read here (ar, then control.tar.gz, .xz, .zst or plain), not with
//! dpkg-deb: a vendor may build bundles on any machine.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Errors building a repository.
#[derive(Debug, thiserror::Error)]
pub enum AptRepoError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A `.deb` file is not a Debian package ferry can read.
    #[error("{path} is not a readable Debian package: {why}")]
    NotADeb {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The directory holds no `.deb` file.
    #[error("{0}: no .deb files in it")]
    Empty(PathBuf),
    /// Two files are the same package, version and architecture.
    #[error("{first} and {second} are both {package}")]
    Duplicate {
        /// `name version arch`.
        package: String,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// Relations no package of the set (nor the distribution's base) meets.
    #[error(
        "the packages for {distro} are not closed; add these or the packages that provide \
         them:\n{}",
        .missing.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n")
    )]
    NotClosed {
        /// The distribution named in the bundle spec.
        distro: String,
        /// Every unmet relation.
        missing: Vec<Unmet>,
    },
}

/// One relation nothing in the set meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    /// The relation as the package writes it: `libfoo (>= 1.2) | libbar`.
    pub relation: String,
    /// The package that needs it: `app 1.0`.
    pub needed_by: String,
    /// `Depends` or `Pre-Depends`.
    pub field: &'static str,
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (needed by {}, {})",
            self.relation, self.needed_by, self.field
        )
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatRepo {
    /// `name version arch` of each package, in index order.
    pub packages: Vec<String>,
    /// The architectures named (`all` left out).
    pub architectures: Vec<String>,
}

/// One package read from its file.
#[derive(Debug, Clone)]
struct Deb {
    file: PathBuf,
    file_name: String,
    control: String,
    name: String,
    version: String,
    arch: String,
    depends: Vec<(&'static str, String)>,
    provides: Vec<Alternative>,
    size: u64,
    sha256: String,
}

/// `name (op version)`, one alternative of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Alternative {
    name: String,
    constraint: Option<(String, String)>,
}

/// Builds a flat repository in `out` (created; must not hold another repository) from the
/// `.deb` files directly in `debs`, for `distro`; `base` names the packages every host of
/// that distribution already has (relations on them count as met, at any version).
pub fn write_flat_repo(
    debs: &Path,
    out: &Path,
    distro: &str,
    base: &BTreeSet<String>,
) -> Result<FlatRepo, AptRepoError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AptRepoError::Io { path, source }
    };
    let mut files: Vec<PathBuf> = fs::read_dir(debs)
        .map_err(io_err(debs))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(AptRepoError::Empty(debs.to_path_buf()));
    }
    let mut set: BTreeMap<(String, String, String), Deb> = BTreeMap::new();
    for f in &files {
        let deb = read_deb(f)?;
        let key = (deb.name.clone(), deb.version.clone(), deb.arch.clone());
        if let Some(first) = set.get(&key) {
            return Err(AptRepoError::Duplicate {
                package: format!("{} {} {}", key.0, key.1, key.2),
                first: first.file_name.clone(),
                second: deb.file_name,
            });
        }
        set.insert(key, deb);
    }
    let missing = unmet(set.values(), base);
    if !missing.is_empty() {
        return Err(AptRepoError::NotClosed {
            distro: distro.to_string(),
            missing,
        });
    }

    fs::create_dir_all(out).map_err(io_err(out))?;
    let mut index = String::new();
    for deb in set.values() {
        let dest = out.join(&deb.file_name);
        fs::copy(&deb.file, &dest).map_err(io_err(&dest))?;
        index.push_str(deb.control.trim_end());
        index.push_str(&format!(
            "\nFilename: ./{}\nSize: {}\nSHA256: {}\n\n",
            deb.file_name, deb.size, deb.sha256
        ));
    }
    let mut gz = Vec::new();
    {
        // No name and time 0 in the gzip header: the same packages give the same bytes.
        let mut enc = flate2::GzBuilder::new()
            .mtime(0)
            .write(&mut gz, flate2::Compression::best());
        enc.write_all(index.as_bytes()).map_err(io_err(out))?;
        enc.finish().map_err(io_err(out))?;
    }
    let architectures: Vec<String> = set
        .values()
        .map(|d| d.arch.clone())
        .filter(|a| a != "all")
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Architectures is left out for a set of `all` packages alone: apt reads an empty list as
    // "supports none".
    let mut release = format!("Origin: ferry\nLabel: ferry\nSuite: {distro}\n");
    if !architectures.is_empty() {
        release.push_str(&format!("Architectures: {}\n", architectures.join(" ")));
    }
    release.push_str("SHA256:\n");
    for (name, bytes) in [("Packages", index.as_bytes()), ("Packages.gz", &gz[..])] {
        release.push_str(&format!(
            " {} {} {name}\n",
            hex::encode(Sha256::digest(bytes)),
            bytes.len()
        ));
    }
    for (name, bytes) in [
        ("Packages", index.as_bytes()),
        ("Packages.gz", &gz[..]),
        ("Release", release.as_bytes()),
    ] {
        let p = out.join(name);
        fs::write(&p, bytes).map_err(io_err(&p))?;
    }
    Ok(FlatRepo {
        packages: set.keys().map(|(n, v, a)| format!("{n} {v} {a}")).collect(),
        architectures,
    })
}

/// Every relation of `set` that neither the set nor `base` meets.
fn unmet<'a>(set: impl Iterator<Item = &'a Deb> + Clone, base: &BTreeSet<String>) -> Vec<Unmet> {
    let met = |alt: &Alternative| {
        base.contains(&alt.name)
            || set.clone().any(|d| {
                (d.name == alt.name && satisfies(Some(&d.version), &alt.constraint))
                    || d.provides.iter().any(|p| {
                        p.name == alt.name
                            && satisfies(p.constraint.as_ref().map(|(_, v)| v), &alt.constraint)
                    })
            })
    };
    let mut out = Vec::new();
    for d in set.clone() {
        for (field, relation) in &d.depends {
            if !parse_alternatives(relation).iter().any(met) {
                out.push(Unmet {
                    relation: relation.clone(),
                    needed_by: format!("{} {}", d.name, d.version),
                    field,
                });
            }
        }
    }
    out
}

/// Whether `have` (a package's version, or a Provides' `= version`, or none for an unversioned
/// Provides) meets `want`. An unversioned Provides meets only an unversioned relation (policy
/// 7.5).
fn satisfies(have: Option<&String>, want: &Option<(String, String)>) -> bool {
    let Some((op, want)) = want else {
        return true;
    };
    let Some(have) = have else {
        return false;
    };
    let (Ok(have), Ok(want)) = (
        have.parse::<debversion::Version>(),
        want.parse::<debversion::Version>(),
    ) else {
        return false;
    };
    let ord = have.cmp(&want);
    match op.as_str() {
        "<<" => ord.is_lt(),
        "<=" | "<" => ord.is_le(),
        "=" => ord.is_eq(),
        ">=" | ">" => ord.is_ge(),
        ">>" => ord.is_gt(),
        _ => false,
    }
}

/// `a (>= 1) | b:any [amd64]` into its alternatives (architecture lists and build profiles are
/// left out: a binary package's relations hold for its own architecture).
fn parse_alternatives(relation: &str) -> Vec<Alternative> {
    relation
        .split('|')
        .filter_map(|alt| {
            let alt = alt.trim();
            let end = alt
                .find(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '<' | ':'))
                .unwrap_or(alt.len());
            let name = alt[..end].to_string();
            if name.is_empty() {
                return None;
            }
            let constraint = alt.find('(').and_then(|open| {
                let inner = alt[open + 1..].split(')').next()?.trim();
                let split = inner
                    .find(|c: char| !matches!(c, '<' | '>' | '='))
                    .unwrap_or(inner.len());
                let (op, version) = inner.split_at(split);
                Some((op.trim().to_string(), version.trim().to_string()))
            });
            Some(Alternative { name, constraint })
        })
        .collect()
}

/// The fields of one control stanza (continuation lines joined).
fn fields(control: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in control.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| out.get_mut(k)) {
                v.push('\n');
                v.push_str(line);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.insert(k.trim().to_string(), v.trim().to_string());
            last = Some(k.trim().to_string());
        }
    }
    out
}

fn read_deb(path: &Path) -> Result<Deb, AptRepoError> {
    let bad = |why: String| AptRepoError::NotADeb {
        path: path.to_path_buf(),
        why,
    };
    let bytes = fs::read(path).map_err(|source| AptRepoError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let control = control_of(&bytes).map_err(bad)?;
    let f = fields(&control);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let (name, version, arch) = (get("Package"), get("Version"), get("Architecture"));
    if name.is_empty() || version.is_empty() || arch.is_empty() {
        return Err(bad(
            "its control file lacks Package, Version or Architecture".into(),
        ));
    }
    let mut depends = Vec::new();
    for field in ["Pre-Depends", "Depends"] {
        if let Some(v) = f.get(field) {
            depends.extend(
                v.split(',')
                    .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
                    .filter(|r| !r.is_empty())
                    .map(|r| (field, r)),
            );
        }
    }
    let provides = f
        .get("Provides")
        .map(|p| p.split(',').flat_map(parse_alternatives).collect())
        .unwrap_or_default();
    Ok(Deb {
        file: path.to_path_buf(),
        file_name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        control,
        name,
        version,
        arch,
        depends,
        provides,
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    })
}

/// The `control` file inside a `.deb`: an ar archive whose `control.tar[.gz|.xz|.zst]` member
/// holds it.
fn control_of(deb: &[u8]) -> Result<String, String> {
    let mut rest = deb
        .strip_prefix(b"!<arch>\n")
        .ok_or("no ar archive header")?;
    while rest.len() >= 60 {
        let (header, body) = rest.split_at(60);
        let name = String::from_utf8_lossy(&header[..16]);
        let name = name.trim_end().trim_end_matches('/');
        let size: usize = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .map_err(|_| format!("member {name:?} has no size"))?;
        let data = body
            .get(..size)
            .ok_or_else(|| format!("member {name:?} is cut short"))?;
        if let Some(ext) = name.strip_prefix("control.tar") {
            let mut tar_bytes = Vec::new();
            let unpacked = match ext {
                "" => {
                    tar_bytes.extend_from_slice(data);
                    Ok(())
                }
                ".gz" => flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut tar_bytes)
                    .map(|_| ()),
                ".xz" => lzma_rs::xz_decompress(&mut io::BufReader::new(data), &mut tar_bytes)
                    .map_err(|e| io::Error::other(e.to_string())),
                ".zst" => zstd::stream::read::Decoder::new(data)
                    .and_then(|mut d| d.read_to_end(&mut tar_bytes))
                    .map(|_| ()),
                other => {
                    return Err(format!(
                        "control.tar{other} is a compression ferry does not read"
                    ))
                }
            };
            unpacked.map_err(|e| format!("{name}: {e}"))?;
            let mut tar = tar::Archive::new(&tar_bytes[..]);
            for entry in tar.entries().map_err(|e| format!("{name}: {e}"))? {
                let mut entry = entry.map_err(|e| format!("{name}: {e}"))?;
                let path = entry.path().map_err(|e| format!("{name}: {e}"))?;
                if path == Path::new("./control") || path == Path::new("control") {
                    let mut text = String::new();
                    entry
                        .read_to_string(&mut text)
                        .map_err(|e| format!("{name}: control: {e}"))?;
                    return Ok(text);
                }
            }
            return Err(format!("{name} holds no control file"));
        }
        rest = &body[(size + size % 2).min(body.len())..];
    }
    Err("no control.tar member".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_relations_as_policy_writes_them() {
        assert_eq!(
            parse_alternatives("libc6 (>= 2.36) | libc6.1:any [amd64]"),
            [
                Alternative {
                    name: "libc6".into(),
                    constraint: Some((">=".into(), "2.36".into()))
                },
                Alternative {
                    name: "libc6.1".into(),
                    constraint: None
                },
            ]
        );
        let has = |v: &str| Some(v.to_string());
        let want = |op: &str, v: &str| Some((op.to_string(), v.to_string()));
        assert!(satisfies(
            has("1.6.20-1").as_ref(),
            &want(">=", "1.6.20~ds1-1+deb12u3")
        ));
        assert!(!satisfies(
            has("1.6.20~rc1").as_ref(),
            &want(">=", "1.6.20")
        ));
        assert!(satisfies(has("2.0").as_ref(), &want(">>", "1.9")));
        assert!(
            !satisfies(has("2.0").as_ref(), &want(">>", "1:1.0")),
            "an epoch counts first"
        );
        assert!(
            !satisfies(None, &want(">=", "1")),
            "an unversioned Provides"
        );
        assert!(satisfies(None, &None));
    }
}
