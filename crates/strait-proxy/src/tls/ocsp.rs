//! OCSP stapling: a DER OCSP response read from a file an agent keeps fresh, checked to be a successful response before it is stapled.

use std::path::Path;

use super::{file_err, TlsError};

/// The response in `path` to staple; `None` while the file does not exist or is empty (an
/// agent may not have fetched one yet, and a missing staple is better than a stale error).
pub(super) fn load(path: &Path) -> Result<Option<Vec<u8>>, TlsError> {
    let bytes = match super::read_pem(path) {
        Ok(b) => b,
        Err(_) if !path.exists() => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    check(&bytes).map_err(|reason| file_err(path, reason))?;
    Ok(Some(bytes))
}

/// One DER element's header at the start of `b`: tag, content start, content length.
fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    if first < 0x80 {
        return Some((tag, 2, first));
    }
    let n = first & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *b.get(2 + i)? as usize;
    }
    Some((tag, 2 + n, len))
}

/// RFC 6960 §4.2.1: `OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0]
/// EXPLICIT ResponseBytes OPTIONAL }`. Only a whole, successful response with its bytes is
/// worth stapling; anything else (a PEM file, an error response, a truncated download) is
/// refused with the reason, and the running configuration stays.
fn check(b: &[u8]) -> Result<(), &'static str> {
    const NOT_DER: &str = "not a DER OCSP response (convert PEM with `openssl ocsp -respin`)";
    let (tag, start, len) = header(b).ok_or(NOT_DER)?;
    if tag != 0x30 || start.checked_add(len) != Some(b.len()) {
        return Err(NOT_DER);
    }
    let body = &b[start..];
    if body.len() < 3 || body[..2] != [0x0a, 0x01] {
        return Err(NOT_DER);
    }
    if body[2] != 0 {
        return Err("the OCSP response's status is not successful (0)");
    }
    match body.get(3) {
        Some(0xa0) => Ok(()),
        _ => Err("the OCSP response holds no response bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_successful_responses_pass_and_others_are_refused() {
        // SEQUENCE { ENUMERATED 0, [0] { SEQUENCE {} } }: the shape, not a signed response.
        let ok = [0x30, 0x07, 0x0a, 0x01, 0x00, 0xa0, 0x02, 0x30, 0x00];
        assert_eq!(check(&ok), Ok(()));
        // Long-form length.
        let mut long = vec![0x30, 0x81, 0x07];
        long.extend_from_slice(&ok[2..]);
        assert_eq!(check(&long), Ok(()));
        // tryLater (3), no bytes.
        assert!(check(&[0x30, 0x03, 0x0a, 0x01, 0x03])
            .unwrap_err()
            .contains("not successful"));
        assert!(check(&[0x30, 0x03, 0x0a, 0x01, 0x00])
            .unwrap_err()
            .contains("no response"));
        assert!(check(&ok[..8]).is_err(), "truncated");
        assert!(check(b"-----BEGIN OCSP").is_err(), "PEM");
        assert!(check(&[0x30]).is_err());
        assert!(check(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
        let mut trailing = ok.to_vec();
        trailing.push(0);
        assert!(check(&trailing).is_err(), "trailing bytes");
    }

    #[test]
    fn a_missing_or_empty_file_staples_nothing() {
        let dir = std::env::temp_dir().join(format!("strait-ocsp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(load(&dir.join("none.der")).unwrap().is_none());
        std::fs::write(dir.join("empty.der"), b"").unwrap();
        assert!(load(&dir.join("empty.der")).unwrap().is_none());
        std::fs::write(dir.join("bad.der"), b"garbage").unwrap();
        let e = load(&dir.join("bad.der")).unwrap_err().to_string();
        assert!(e.contains("bad.der") && e.contains("not a DER"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
