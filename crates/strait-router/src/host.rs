//! Host patterns (exact, wildcard suffix, any) and the request-host normalisation they match.
//!
//! Both sides are normalised the same way: the port dropped and IPv6 literals written in
//! brackets (`[::1]`). Patterns are also lowercased; request hosts are not, because the index
//! compares ignoring ASCII case.

/// Longest normalised request host the index can match: DNS names stop at 253 bytes, and a
/// bracketed IPv6 literal is far shorter. Longer hosts only reach any-host routes.
pub(crate) const MAX_HOST: usize = 256;

/// A compiled host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// `*`: every host, including an empty one.
    Any,
    /// A normalised exact host.
    Exact(Box<[u8]>),
    /// From `*.example.com`: the suffix `.example.com`, which needs a non-empty label before it.
    Suffix(Box<[u8]>),
}

// === impl HostPattern ===

impl HostPattern {
    /// Parses one pattern as written in a route.
    pub(crate) fn parse(pattern: &str) -> Result<Self, &'static str> {
        if pattern == "*" {
            return Ok(Self::Any);
        }
        if pattern.is_empty() {
            return Err("empty host; use \"*\" for any host");
        }
        if pattern.len() > MAX_HOST - 2 {
            return Err("longer than a DNS name can be");
        }
        if let Some(rest) = pattern.strip_prefix("*.") {
            check_name(rest)?;
            let mut suffix = Vec::with_capacity(rest.len() + 1);
            suffix.push(b'.');
            suffix.extend(rest.bytes().map(|b| b.to_ascii_lowercase()));
            return Ok(Self::Suffix(suffix.into()));
        }
        if pattern.contains('*') {
            return Err("'*' is allowed only as a whole leading label, as in *.example.com");
        }
        if let Some(inner) = pattern.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or("IPv6 literal without a closing ']' (ports are not allowed)")?;
            return ipv6(inner);
        }
        match pattern.bytes().filter(|&b| b == b':').count() {
            0 => {
                check_name(pattern)?;
                Ok(Self::Exact(lower(pattern.as_bytes()).into()))
            }
            1 => Err("a host pattern must not carry a port; request ports are ignored"),
            _ => ipv6(pattern),
        }
    }

    /// Whether every host this pattern matches is also matched by `self`.
    pub(crate) fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (Self::Any, _) => true,
            (_, Self::Any) => false,
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Suffix(s), Self::Exact(e)) => e.len() > s.len() && e.ends_with(s),
            // `*.a.b.com` only matches hosts that `*.b.com` matches too.
            (Self::Suffix(s), Self::Suffix(t)) => t.ends_with(s),
            (Self::Exact(_), Self::Suffix(_)) => false,
        }
    }
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty host name");
    }
    let bad = |b: u8| {
        b.is_ascii_whitespace()
            || b.is_ascii_control()
            || matches!(
                b,
                b'/' | b'*' | b':' | b'@' | b'[' | b']' | b'?' | b'#' | b'\\'
            )
    };
    if name.bytes().any(bad) {
        return Err("invalid character in host name");
    }
    Ok(())
}

fn ipv6(inner: &str) -> Result<HostPattern, &'static str> {
    let ok = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    if inner.is_empty() || !inner.bytes().all(ok) {
        return Err("invalid IPv6 literal");
    }
    let mut out = Vec::with_capacity(inner.len() + 2);
    out.push(b'[');
    out.extend(lower(inner.as_bytes()));
    out.push(b']');
    Ok(HostPattern::Exact(out.into()))
}

fn lower(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|b| b.to_ascii_lowercase()).collect()
}

/// Normalises a request host for the index: drops the port and brackets a bare IPv6 literal
/// (copying into `buf` only then). Case is left alone because the index compares ignoring
/// ASCII case. Returns `None` when the result is longer than [`MAX_HOST`], which no real host
/// name is.
pub(crate) fn normalize<'a>(host: &'a str, buf: &'a mut [u8; MAX_HOST]) -> Option<&'a [u8]> {
    let bytes = host.as_bytes();
    let name = if bytes.first() == Some(&b'[') {
        // `[::1]:80`: everything after the bracket is the port.
        let end = bytes
            .iter()
            .position(|&b| b == b']')
            .map_or(bytes.len(), |i| i + 1);
        &bytes[..end]
    } else {
        let mut colons = bytes.iter().enumerate().filter(|(_, &b)| b == b':');
        match (colons.next(), colons.next()) {
            (None, _) => bytes,
            (Some((i, _)), None) => &bytes[..i],
            // Several colons and no brackets: a bare IPv6 literal, which has no port.
            (Some(_), Some(_)) => {
                let len = bytes.len() + 2;
                if len > MAX_HOST {
                    return None;
                }
                buf[0] = b'[';
                buf[1..len - 1].copy_from_slice(bytes);
                buf[len - 1] = b']';
                return Some(&buf[..len]);
            }
        }
    };
    (name.len() <= MAX_HOST).then_some(name)
}

/// The suffixes of a normalised host that a wildcard pattern could be keyed by: each one starts
/// at a `.` with at least one byte before it.
pub(crate) fn suffixes(host: &[u8]) -> impl Iterator<Item = &[u8]> {
    host.iter()
        .enumerate()
        .skip(1)
        .filter(|(_, &b)| b == b'.')
        .map(move |(i, _)| &host[i..])
}
