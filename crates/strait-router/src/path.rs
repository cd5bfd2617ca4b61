//! Path matching that the index cannot decide alone: templates and full-match regexes.

use regex::Regex;

/// Wraps a pattern so it must match the whole input. The pattern is compiled unwrapped first so
/// that a stray `)` cannot close our group and change the meaning.
pub(crate) fn full_match(pattern: &str) -> Result<String, regex::Error> {
    regex::Regex::new(pattern)?;
    Ok(format!(r"\A(?:{pattern})\z"))
}

/// Compiles a regex that must match a whole path.
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&full_match(pattern)?)
}

/// A literal prefix every path matching `pattern` (a regex that compiles) starts with, so the
/// route can sit deeper in the trie and most lookups never run it. Conservative: it reads only
/// bytes that mean themselves in any regex context outside a class or group, gives up on any
/// `|` (an alternation could make the prefix optional), and drops the last byte when a
/// quantifier follows it.
pub(crate) fn regex_literal_prefix(pattern: &str) -> &str {
    if pattern.contains('|') {
        return "";
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'%' | b',');
    let len = pattern.bytes().take_while(|&b| plain(b)).count();
    match pattern.as_bytes().get(len) {
        Some(b'*' | b'+' | b'?' | b'{') => &pattern[..len.saturating_sub(1)],
        _ => &pattern[..len],
    }
}

/// One `/`-separated piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Must equal the path segment.
    Literal(Box<str>),
    /// `{name}`: any non-empty segment.
    Param,
    /// `{*name}`: the rest of the path, possibly empty; always last.
    Rest,
}

/// A compiled path template such as `/users/{id}/files/{*path}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    segments: Box<[Segment]>,
    /// Length of the text before the first `{`: every matching path starts with it.
    literal_len: usize,
}

// === impl Template ===

impl Template {
    /// Parses a template; the error says what is wrong.
    pub(crate) fn parse(template: &str) -> Result<Self, &'static str> {
        if !template.starts_with('/') {
            return Err("a template must start with '/'");
        }
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let mut parts = template.split('/').peekable();
        while let Some(part) = parts.next() {
            let Some(inner) = part.strip_prefix('{') else {
                if part.contains(['{', '}']) {
                    return Err("'{' and '}' must enclose a whole segment");
                }
                segments.push(Segment::Literal(part.into()));
                continue;
            };
            let name = inner
                .strip_suffix('}')
                .ok_or("'{' and '}' must enclose a whole segment")?;
            let (name, rest) = match name.strip_prefix('*') {
                Some(name) => (name, true),
                None => (name, false),
            };
            if name.is_empty() {
                return Err("a parameter needs a name");
            }
            if name.contains(['{', '}', '*']) {
                return Err("invalid character in parameter name");
            }
            if names.contains(&name) {
                return Err("duplicate parameter name");
            }
            names.push(name);
            if rest {
                if parts.peek().is_some() {
                    return Err("{*name} must be the last segment");
                }
                segments.push(Segment::Rest);
            } else {
                segments.push(Segment::Param);
            }
        }
        let literal_len = template.find('{').unwrap_or(template.len());
        Ok(Self {
            segments: segments.into(),
            literal_len,
        })
    }

    /// The length of the literal text every matching path starts with.
    pub(crate) fn literal_len(&self) -> usize {
        self.literal_len
    }

    /// Whether `path` matches the whole template.
    pub(crate) fn matches(&self, path: &str) -> bool {
        let mut rest = path;
        for (i, segment) in self.segments.iter().enumerate() {
            // Segments after the first are each introduced by a '/'.
            if i > 0 {
                match rest.strip_prefix('/') {
                    Some(r) => rest = r,
                    None => return false,
                }
            }
            // A byte scan: `str::find(char)` has setup costs that dominate on short segments.
            let end = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
            let (head, tail) = rest.split_at(end);
            match segment {
                Segment::Rest => return true,
                Segment::Literal(literal) if head == &**literal => {}
                Segment::Param if !head.is_empty() => {}
                _ => return false,
            }
            rest = tail;
        }
        rest.is_empty()
    }
}
