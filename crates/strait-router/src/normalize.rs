//! Request-path normalisation before routing: one canonical spelling per path, so the route that
//! matches and the upstream that receives the path agree on what it names.
//!
//! [`normalize_path`] is pure and total: it takes any bytes and either returns the canonical path
//! or says why the path is refused ([`PathRejection`]); it never panics, and its output
//! normalises to itself. With [`PathOptions::default`] it does, in order:
//!
//! 1. Percent-decoding of the unreserved characters (`A-Z a-z 0-9 - . _ ~`, RFC 3986 §2.3);
//!    the escapes that stay get uppercase hex, and bytes that may not appear raw in a path
//!    (controls, space, `"<>\^`{|}`, non-ASCII) are escaped, so `%7e`, `~` and `%7E` are one path.
//! 2. Encoded slashes and backslashes (`%2F`, `%5C`, a raw `\`) per [`EscapedSlashes`].
//! 3. Merging of repeated slashes, then RFC 3986 §5.2.4 dot-segment removal.
//!
//! Refused whatever the options: `%00`, a `%` not followed by two hex digits, overlong UTF-8
//! escapes (`%C0%AE`, a `.` that lenient decoders accept), and a path that does not start with
//! `/`. Refused when normalising: a `..` that climbs above the root, and a dot segment carrying
//! `;` parameters (`..;`), which Servlet containers treat as `..` after the route has matched.

use std::borrow::Cow;

/// What to do with `%2F` and `%5C` (and a raw `\`, which is treated as `%5C`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// Forward them still encoded; they do not separate segments for routing.
    KeepUnchanged,
    /// Refuse the request: an upstream that decodes them would see a different path.
    #[default]
    RejectRequest,
    /// Decode them to `/` before segments are resolved, as browsers treat `\` in http URLs.
    UnescapeAndForward,
}

/// How a listener normalises request paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathOptions {
    /// Decode unreserved escapes, uppercase the others, and remove dot segments.
    pub normalize: bool,
    /// Collapse `//` into `/`.
    pub merge_slashes: bool,
    /// Encoded slashes and backslashes.
    pub escaped_slashes: EscapedSlashes,
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions {
            normalize: true,
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::RejectRequest,
        }
    }
}

/// Why a path is refused (the request gets a 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathRejection {
    /// The path does not start with `/`.
    NotAbsolute,
    /// `%00`, or a raw NUL byte.
    Nul,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// An overlong UTF-8 sequence in escapes, such as `%C0%AE`.
    OverlongUtf8,
    /// `%2F`, `%5C` or `\` with [`EscapedSlashes::RejectRequest`].
    EscapedSlash,
    /// More `..` segments than there are segments to remove.
    AboveRoot,
    /// `.;…` or `..;…`: a dot segment with path parameters.
    DotSegmentParameters,
    /// A prefix rewrite produced a path outside its replacement (see [`replace_prefix`]).
    OutsideRewrite,
}

// === impl PathRejection ===

impl PathRejection {
    /// A short, bounded label (metrics, logs).
    pub fn reason(self) -> &'static str {
        match self {
            PathRejection::NotAbsolute => "path_not_absolute",
            PathRejection::Nul => "path_nul",
            PathRejection::BadEscape => "path_bad_escape",
            PathRejection::OverlongUtf8 => "path_overlong_utf8",
            PathRejection::EscapedSlash => "path_escaped_slash",
            PathRejection::AboveRoot => "path_above_root",
            PathRejection::DotSegmentParameters => "path_dot_segment_parameters",
            PathRejection::OutsideRewrite => "path_outside_rewrite",
        }
    }

    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            PathRejection::NotAbsolute => "request path must start with /",
            PathRejection::Nul => "NUL in request path",
            PathRejection::BadEscape => "invalid percent-encoding in request path",
            PathRejection::OverlongUtf8 => "overlong UTF-8 in request path",
            PathRejection::EscapedSlash => "encoded slash or backslash in request path",
            PathRejection::AboveRoot => "request path climbs above the root",
            PathRejection::DotSegmentParameters => "dot segment with parameters in request path",
            PathRejection::OutsideRewrite => "request path leaves the route's rewritten prefix",
        }
    }
}

/// The canonical form of `path` (without its query), borrowed when it already is canonical.
pub fn normalize_path<'a>(
    path: &'a [u8],
    opts: &PathOptions,
) -> Result<Cow<'a, str>, PathRejection> {
    if path.first() != Some(&b'/') {
        return Err(PathRejection::NotAbsolute);
    }
    if is_canonical(path, opts) {
        // `is_canonical` admits only ASCII.
        if let Ok(s) = std::str::from_utf8(path) {
            return Ok(Cow::Borrowed(s));
        }
    }
    let decoded = decode(path, opts)?;
    resolve_segments(&decoded, opts).map(Cow::Owned)
}

/// `path` with its first `prefix_len` bytes (the matched `path_prefix`) replaced by
/// `replacement`, with dot segments resolved; refused when the result leaves `replacement`.
///
/// The pieces are canonical, but the join may create a segment neither had: `/api` matching
/// `/api../x` and replaced by `/v2/` gives `/v2/../x`, which an upstream resolves to `/x`.
pub fn replace_prefix(
    path: &str,
    prefix_len: usize,
    replacement: &str,
) -> Result<String, PathRejection> {
    let rest = path.get(prefix_len..).unwrap_or("");
    let mut joined = String::with_capacity(replacement.len() + rest.len());
    joined.push_str(replacement);
    // Replacing "/api/" by "/" must not produce "//x", and "/api" by "/v2" keeps "/v2/x".
    match rest.strip_prefix('/') {
        Some(r) if joined.ends_with('/') => joined.push_str(r),
        _ => joined.push_str(rest),
    }
    if joined.is_empty() {
        joined.push('/');
    }
    let opts = PathOptions {
        normalize: true,
        // Slashes and escapes the listener kept stay as they are.
        merge_slashes: false,
        escaped_slashes: EscapedSlashes::KeepUnchanged,
    };
    match normalize_path(joined.as_bytes(), &opts) {
        Ok(Cow::Borrowed(_)) => Ok(joined),
        Ok(Cow::Owned(resolved)) if resolved.starts_with(replacement) => Ok(resolved),
        _ => Err(PathRejection::OutsideRewrite),
    }
}

/// RFC 3986 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes that stand for themselves in a canonical path: RFC 3986 `pchar` without `%`, plus `/`.
fn is_plain(b: u8) -> bool {
    PLAIN[usize::from(b)]
}

const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
            );
        i += 1;
    }
    t
};

/// Whether `path` (starting with `/`) is already its own canonical form, decided in one pass
/// without allocating: the common case on the request path.
fn is_canonical(path: &[u8], opts: &PathOptions) -> bool {
    let mut start = 1;
    for i in 1..=path.len() {
        if i < path.len() && path[i] != b'/' {
            if !is_plain(path[i]) {
                return false;
            }
            continue;
        }
        let seg = &path[start..i];
        // An empty last segment is a trailing slash, which stays.
        let bad = match seg.first() {
            None => opts.merge_slashes && i < path.len(),
            Some(b'.') => opts.normalize && is_dotlike(seg),
            Some(_) => false,
        };
        if bad {
            return false;
        }
        start = i + 1;
    }
    true
}

/// A segment that dot-segment removal acts on or refuses: `.`, `..`, or either followed by
/// parameters (`;`, or `%3B`, which a decoding upstream turns into `;`).
fn is_dotlike(seg: &[u8]) -> bool {
    let name = match seg.iter().position(|&b| b == b';' || b == b'%') {
        Some(i) if seg[i] == b';' || starts_3b(&seg[i..]) => &seg[..i],
        Some(_) => return false,
        None => seg,
    };
    name == b"." || name == b".."
}

fn starts_3b(s: &[u8]) -> bool {
    s.len() >= 3 && s[..3].eq_ignore_ascii_case(b"%3B")
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%XY` at `path[i..]` encodes, if `path[i]` starts a valid escape.
fn escape_at(path: &[u8], i: usize) -> Option<u8> {
    if path.get(i) != Some(&b'%') {
        return None;
    }
    let hi = hex_value(*path.get(i + 1)?)?;
    let lo = hex_value(*path.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

/// The byte at `path[i..]`, escaped or raw: escaped and raw non-ASCII bytes end up as the same
/// escape, so a sequence is judged the same however it was spelt.
fn byte_at(path: &[u8], i: usize) -> Option<u8> {
    escape_at(path, i).or_else(|| path.get(i).copied())
}

/// Whether the byte `lead`, followed by the byte at `path[next..]`, starts an overlong UTF-8
/// sequence: `C0`/`C1` always do; `E0` before `80..=9F` and `F0` before `80..=8F` do.
fn is_overlong(lead: u8, path: &[u8], next: usize) -> bool {
    match lead {
        0xC0 | 0xC1 => true,
        0xE0 => byte_at(path, next).is_some_and(|b| (0x80..=0x9F).contains(&b)),
        0xF0 => byte_at(path, next).is_some_and(|b| (0x80..=0x8F).contains(&b)),
        _ => false,
    }
}

/// Appends an escape as written (`hex` are two hex digits), uppercased when normalising.
fn push_escape(out: &mut String, hex: [u8; 2], uppercase: bool) {
    out.push('%');
    for h in hex {
        out.push(char::from(if uppercase {
            h.to_ascii_uppercase()
        } else {
            h
        }));
    }
}

fn push_encoded(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    push_escape(
        out,
        [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]],
        true,
    );
}

/// Step 1 and 2: one ASCII string in which only a literal `/` separates segments.
fn decode(path: &[u8], opts: &PathOptions) -> Result<String, PathRejection> {
    let mut out = String::with_capacity(path.len() + path.len() / 4);
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            let v = escape_at(path, i).ok_or(PathRejection::BadEscape)?;
            match v {
                0 => return Err(PathRejection::Nul),
                b'/' | b'\\' => escaped_slash(&mut out, v, opts)?,
                v if opts.normalize && is_unreserved(v) => out.push(char::from(v)),
                v if is_overlong(v, path, i + 3) => return Err(PathRejection::OverlongUtf8),
                _ => push_escape(&mut out, [path[i + 1], path[i + 2]], opts.normalize),
            }
            i += 3;
            continue;
        }
        match b {
            0 => return Err(PathRejection::Nul),
            b'\\' => escaped_slash(&mut out, b, opts)?,
            b if is_plain(b) => out.push(char::from(b)),
            b if is_overlong(b, path, i + 1) => return Err(PathRejection::OverlongUtf8),
            b => push_encoded(&mut out, b),
        }
        i += 1;
    }
    Ok(out)
}

fn escaped_slash(out: &mut String, b: u8, opts: &PathOptions) -> Result<(), PathRejection> {
    match opts.escaped_slashes {
        EscapedSlashes::RejectRequest => Err(PathRejection::EscapedSlash),
        // A backslash is a separator wherever it is decoded (browsers, Windows servers).
        EscapedSlashes::UnescapeAndForward => {
            out.push('/');
            Ok(())
        }
        EscapedSlashes::KeepUnchanged => {
            push_encoded(out, b);
            Ok(())
        }
    }
}

/// Step 3: merge slashes and remove dot segments over `/`-separated segments.
fn resolve_segments(path: &str, opts: &PathOptions) -> Result<String, PathRejection> {
    let mut out = String::with_capacity(path.len());
    // Where each kept segment's `/` sits in `out`, so `..` can drop the last one.
    let mut starts: Vec<usize> = Vec::new();
    let segments = path.get(1..).unwrap_or("");
    let count = segments.split('/').count();
    for (i, seg) in segments.split('/').enumerate() {
        let last = i + 1 == count;
        if opts.normalize && is_dotlike(seg.as_bytes()) {
            if seg != "." && seg != ".." {
                return Err(PathRejection::DotSegmentParameters);
            }
            if seg == ".." {
                let start = starts.pop().ok_or(PathRejection::AboveRoot)?;
                out.truncate(start);
            }
            if last {
                out.push('/');
            }
            continue;
        }
        if seg.is_empty() && opts.merge_slashes {
            if last {
                out.push('/');
            }
            continue;
        }
        starts.push(out.len());
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
