//! The text armor shared by requests, licenses and key files: BEGIN/END lines, base64 body in
//! 64-column lines and a short SHA-256 checksum line, parsed strictly (see docs/license-format.md).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

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

/// Armors `body` as `kind`.
pub(crate) fn encode(kind: Kind, body: &[u8]) -> String {
    let b64 = STANDARD.encode(body);
    let mut out = format!("-----BEGIN {}-----\n", kind.label);
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push('=');
    out.push_str(&checksum(body));
    out.push('\n');
    out.push_str(&format!("-----END {}-----\n", kind.label));
    out
}

/// Parses an armored `kind` block and returns its body bytes.
pub(crate) fn decode(kind: Kind, input: &[u8]) -> Result<Vec<u8>> {
    let malformed = |detail: &str| LicenseError::Malformed {
        what: kind.what,
        detail: detail.to_owned(),
    };
    if input.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(LicenseError::Empty { what: kind.what });
    }
    let text = std::str::from_utf8(input).map_err(|_| malformed("it is not text"))?;
    let text = text.replace("\r\n", "\n");
    let mut lines = text.split('\n');
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
    if !text.lines().any(|l| l == end) {
        return Err(LicenseError::Truncated {
            what: kind.what,
            label: kind.label,
        });
    }
    let mut b64 = String::new();
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
        } else if line.is_empty() || line.len() > 64 {
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
    // After END: nothing, or exactly one final newline.
    let rest: Vec<&str> = lines.collect();
    if !(rest.is_empty() || rest == [""]) {
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
    fn names_the_kind_of_a_wrong_file() {
        let text = encode(REQUEST, b"x");
        let err = decode(LICENSE, text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("this is a license request file"), "{err}");
    }
}
