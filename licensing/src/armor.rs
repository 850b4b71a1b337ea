//! The text armor shared by requests, licenses and key files: BEGIN/END lines, base64 body in
//! 64-column lines and a short SHA-256 checksum line, parsed strictly (see docs/license-format.md).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::error::{LicenseError, Result};

/// Which kind of armored file, with the words used in its lines and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    /// Label in BEGIN/END lines.
    pub label: &'static str,
    /// Name used in error messages.
    pub what: &'static str,
}

pub(crate) const LICENSE: Kind = Kind {
    label: "FERRY LICENSE",
    what: "license file",
};
pub(crate) const REQUEST: Kind = Kind {
    label: "FERRY LICENSE REQUEST",
    what: "license request file",
};
pub(crate) const SIGNING_KEY: Kind = Kind {
    label: "FERRY LICENSE SIGNING KEY",
    what: "license signing key file",
};
pub(crate) const PUBLIC_KEY: Kind = Kind {
    label: "FERRY LICENSE PUBLIC KEY",
    what: "license public key file",
};

const ALL: [Kind; 4] = [LICENSE, REQUEST, SIGNING_KEY, PUBLIC_KEY];

fn checksum(body: &[u8]) -> String {
    hex::encode(&Sha256::digest(body)[..4])
}

/// Armors `body` as `kind`. The body may be a secret: the base64 copy is wiped, and the output is
/// allocated once at its full size so that growing it leaves no copy behind.
pub(crate) fn encode(kind: Kind, body: &[u8]) -> String {
    let b64 = Zeroizing::new(STANDARD.encode(body));
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * kind.label.len() + 64);
    out.push_str(&format!("-----BEGIN {}-----\n", kind.label));
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8 (and borrowed, not copied).
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push('=');
    out.push_str(&checksum(body));
    out.push('\n');
    out.push_str(&format!("-----END {}-----\n", kind.label));
    out
}

/// A line without what mail clients and editors add at its end: CR, spaces and tabs (and nothing
/// else: any other byte is content, and a change to content must fail).
fn trim_end(line: &str) -> &str {
    line.trim_end_matches([' ', '\t', '\r'])
}

/// Parses an armored `kind` block and returns its body bytes. What mail clients and editors do to
/// text is not content: CRLF line ends, trailing spaces, and blank lines before, inside or after
/// the block are all ignored (the checksum still covers every body byte).
pub(crate) fn decode(kind: Kind, input: &[u8]) -> Result<Vec<u8>> {
    let malformed = |detail: &str| LicenseError::Malformed {
        what: kind.what,
        detail: detail.to_owned(),
    };
    if input.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(LicenseError::Empty { what: kind.what });
    }
    let text = std::str::from_utf8(input).map_err(|_| malformed("it is not text"))?;
    let mut lines = text.split('\n').map(trim_end).filter(|l| !l.is_empty());
    let begin = format!("-----BEGIN {}-----", kind.label);
    let end = format!("-----END {}-----", kind.label);
    let first = lines.next().unwrap_or_default();
    if first != begin {
        let found = ALL
            .iter()
            .find(|k| first == format!("-----BEGIN {}-----", k.label))
            .map(|k| format!(" (this is a {})", k.what))
            .unwrap_or_default();
        return Err(LicenseError::NotArmored {
            what: kind.what,
            label: kind.label,
            found,
        });
    }
    if !text.split('\n').map(trim_end).any(|l| l == end) {
        return Err(LicenseError::Truncated {
            what: kind.what,
            label: kind.label,
        });
    }
    // The body of a key or request file is a secret: no copy of it outlives this call (the
    // capacity is enough from the start, so growing never leaves a copy behind).
    let mut b64 = Zeroizing::new(String::with_capacity(input.len()));
    let mut sum: Option<&str> = None;
    let mut ended = false;
    for line in lines.by_ref() {
        if line == end {
            ended = true;
            break;
        }
        if sum.is_some() {
            return Err(malformed("text follows the checksum line"));
        }
        if let Some(s) = line.strip_prefix('=') {
            sum = Some(s);
        } else if line.len() > 64 {
            return Err(malformed("a body line has the wrong length"));
        } else {
            b64.push_str(line);
        }
    }
    if !ended {
        return Err(LicenseError::Truncated {
            what: kind.what,
            label: kind.label,
        });
    }
    if lines.next().is_some() {
        return Err(malformed("text follows the END line"));
    }
    let Some(sum) = sum else {
        return Err(malformed("the checksum line is missing"));
    };
    let body = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| malformed("the body is not valid base64"))?;
    if body.is_empty() {
        return Err(LicenseError::Empty { what: kind.what });
    }
    if sum != checksum(&body) {
        return Err(LicenseError::Checksum { what: kind.what });
    }
    Ok(body)
}

/// Parses a file of several armored `kind` blocks (a key set), one body per block. Blank lines
/// and `#` comment lines may stand between blocks.
pub(crate) fn decode_all(kind: Kind, input: &str) -> Result<Vec<Vec<u8>>> {
    let begin = format!("-----BEGIN {}-----", kind.label);
    let end = format!("-----END {}-----", kind.label);
    let mut bodies = Vec::new();
    let mut block: Option<String> = None;
    for line in input.split('\n').map(trim_end) {
        match &mut block {
            None if line.is_empty() || line.starts_with('#') => {}
            None if line == begin => block = Some(format!("{line}\n")),
            None => {
                return Err(LicenseError::Malformed {
                    what: kind.what,
                    detail: format!(
                        "`{}` stands outside a key block",
                        line.chars().take(40).collect::<String>()
                    ),
                })
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
                if line == end {
                    bodies.push(decode(kind, b.as_bytes())?);
                    block = None;
                }
            }
        }
    }
    if block.is_some() {
        return Err(LicenseError::Truncated {
            what: kind.what,
            label: kind.label,
        });
    }
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_crlf() {
        let body =
            b"hello armored world, long enough to need two lines of base64 text here".to_vec();
        let text = encode(LICENSE, &body);
        assert_eq!(decode(LICENSE, text.as_bytes()).unwrap(), body);
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(decode(LICENSE, crlf.as_bytes()).unwrap(), body);
        let no_final_newline = text.trim_end();
        assert_eq!(decode(LICENSE, no_final_newline.as_bytes()).unwrap(), body);
    }

    #[test]
    fn reads_a_block_the_way_a_mail_client_leaves_it() {
        let body =
            b"hello armored world, long enough to need two lines of base64 text here".to_vec();
        let text = encode(LICENSE, &body);
        // Blank lines before, between and after, CRLF line ends, trailing spaces and tabs.
        let mailed = format!("\r\n\n{}\n\n", text.replace('\n', " \t\r\n\r\n"));
        assert_eq!(decode(LICENSE, mailed.as_bytes()).unwrap(), body);
        // A lone CR line end (a pasted Mac file) is not a line end: still refused, not misread.
        assert!(decode(LICENSE, text.replace('\n', "\r").as_bytes()).is_err());
    }

    #[test]
    fn reads_a_key_set_with_comments_and_refuses_stray_text() {
        let a = encode(PUBLIC_KEY, &[1; 32]);
        let b = encode(PUBLIC_KEY, &[2; 32]);
        let set = format!("# vendor key 2026\n{a}\n# vendor key 2027\n{b}");
        assert_eq!(
            decode_all(PUBLIC_KEY, &set).unwrap(),
            vec![vec![1; 32], vec![2; 32]]
        );
        assert_eq!(decode_all(PUBLIC_KEY, "").unwrap(), Vec::<Vec<u8>>::new());
        assert!(decode_all(PUBLIC_KEY, &format!("{a}stray\n")).is_err());
        assert!(decode_all(PUBLIC_KEY, &a[..a.len() - 10]).is_err());
    }

    #[test]
    fn names_the_kind_of_a_wrong_file() {
        let text = encode(REQUEST, b"x");
        let err = decode(LICENSE, text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("this is a license request file"), "{err}");
    }
}
