//! Checks for individual values: host names, header names, regexes, path templates, addresses.
//!
//! Each returns the normalized value or a one-line reason; callers attach the position.

use std::net::{Ipv4Addr, Ipv6Addr};

use http::header::{HeaderName, HeaderValue};
use http::Method;

/// Compiled regexes are bounded so a hostile config cannot make validation eat memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`; returned lowercased.
pub(crate) fn hostname(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    let ok = !lower.is_empty()
        && lower.len() <= 253
        && lower.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(lower)
    } else {
        Err(format!(
            "`{s}` is not a valid host name (dot-separated labels of letters, digits and '-')"
        ))
    }
}

/// A route host: an exact name, `*.suffix`, or `*`; returned lowercased.
pub(crate) fn host_pattern(s: &str) -> Result<String, String> {
    if s == "*" {
        return Ok("*".into());
    }
    if let Some(suffix) = s.strip_prefix("*.") {
        return hostname(suffix).map(|h| format!("*.{h}"));
    }
    if s.contains('*') {
        return Err(format!(
            "invalid host `{s}`: `*` is only allowed as the whole first label \
             (`*.example.com`) or alone (`*`)"
        ));
    }
    if s.contains(':') {
        return Err(format!(
            "invalid host `{s}`: write the host name without a port"
        ));
    }
    hostname(s)
}

/// A header name, returned lowercased.
pub(crate) fn header_name(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    HeaderName::from_bytes(lower.as_bytes())
        .map(|_| lower)
        .map_err(|_| format!("`{s}` is not a valid header name"))
}

/// A header value: visible ASCII, spaces and tabs (no line breaks).
pub(crate) fn header_value(s: &str) -> Result<(), String> {
    HeaderValue::from_str(s).map(|_| ()).map_err(|_| {
        format!(
            "header value {s:?} contains characters not allowed in a header (e.g. a line break)"
        )
    })
}

/// An uppercase HTTP method token.
pub(crate) fn method(s: &str) -> Result<Method, String> {
    let upper = s.to_ascii_uppercase();
    if s != upper {
        return Err(format!("methods are uppercase: write `{upper}`, not `{s}`"));
    }
    Method::from_bytes(s.as_bytes()).map_err(|_| format!("`{s}` is not a valid HTTP method token"))
}

/// A regex that will be used as a full match; returns why it does not compile.
pub(crate) fn regex(pattern: &str) -> Result<(), String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(|_| ())
        .map_err(|e| {
            // The regex crate's message spans several lines (pattern, caret, reason);
            // diagnostics are one line, so keep the reason.
            let text = e.to_string();
            let reason = text
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or(text.lines().last().unwrap_or("does not compile"))
                .trim()
                .to_owned();
            format!("invalid regex `{pattern}`: {reason}")
        })
}

/// A path used for matching or rewriting: starts with `/`, no whitespace.
pub(crate) fn path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("path `{s}` must start with `/`"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "path `{s}` must not contain spaces or control characters"
        ));
    }
    Ok(())
}

/// A path template: `/` separated segments, each literal, `{name}` (one segment) or,
/// last only, `{*name}` (the remainder).
pub(crate) fn template(s: &str) -> Result<(), String> {
    path(s)?;
    let segments: Vec<&str> = s[1..].split('/').collect();
    let mut names: Vec<&str> = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        if !seg.contains(['{', '}']) {
            continue;
        }
        let inner = seg
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| {
                format!(
                    "invalid path template `{s}`: `{seg}` must be a whole segment \
                     such as `{{id}}` or `{{*rest}}`"
                )
            })?;
        let (name, rest) = match inner.strip_prefix('*') {
            Some(n) => (n, true),
            None => (inner, false),
        };
        if !is_identifier(name) {
            return Err(format!(
                "invalid path template `{s}`: parameter `{inner}` must be a name of letters, \
                 digits and '_'"
            ));
        }
        if rest && i + 1 != segments.len() {
            return Err(format!(
                "invalid path template `{s}`: `{{*{name}}}` must be the last segment"
            ));
        }
        if names.contains(&name) {
            return Err(format!(
                "invalid path template `{s}`: parameter `{name}` appears twice"
            ));
        }
        names.push(name);
    }
    Ok(())
}

/// An endpoint address `host:port`: host is IPv4, `[IPv6]` or a DNS name; port 1..=65535.
pub(crate) fn endpoint_address(s: &str) -> Result<(), String> {
    if s.contains("://") {
        return Err(format!(
            "endpoint `{s}` must be host:port, without a scheme (set `protocol`/`tls` instead)"
        ));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("endpoint `{s}` needs a port, as in host:port"));
    };
    match port.parse::<u16>() {
        Ok(p) if p != 0 => {}
        _ => return Err(format!("endpoint `{s}`: port `{port}` must be 1 to 65535")),
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("endpoint `{s}`: `{inner}` is not an IPv6 address"));
    }
    if host.contains(':') {
        return Err(format!(
            "endpoint `{s}`: write IPv6 addresses in brackets, as in [::1]:8080"
        ));
    }
    let looks_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if looks_numeric {
        return host
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| format!("endpoint `{s}`: `{host}` is not an IPv4 address"));
    }
    hostname(host)
        .map(|_| ())
        .map_err(|e| format!("endpoint {e}"))
}

/// Whether `b` may appear in an RFC 9110 token (methods, header names, Upgrade protocols).
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Letters, digits and `_`, not starting with a digit: path template parameters and
/// environment variable names.
pub(crate) fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Longest endpoint label name or value: labels are metric and log values, kept short.
pub(crate) const MAX_LABEL_LEN: usize = 63;

/// An endpoint label name (`region`, `version`, `app.kubernetes.io/zone` is not one): a
/// letter, then letters, digits, `_`, `-` or `.`.
pub(crate) fn label_name(s: &str) -> Result<(), String> {
    let ok = s.len() <= MAX_LABEL_LEN
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a label name: a letter, then letters, digits, `_`, `-` or `.`, at most {MAX_LABEL_LEN} characters"
        ))
    }
}

/// An endpoint label value (also a colour, sent in a header): letters, digits, `_`, `-` or `.`.
pub(crate) fn label_value(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_LABEL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a label value: letters, digits, `_`, `-` or `.`, 1 to {MAX_LABEL_LEN} characters"
        ))
    }
}
