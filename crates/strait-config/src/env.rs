//! `${VAR}` and `${VAR:-default}` references in config files, expanded in the text before YAML parsing, with a column map so diagnostics still point at what was written.
//!
//! Expansion is textual, as `envsubst` does, so a reference works in any YAML position (plain,
//! quoted, or inside a flow collection `{ cert: ${CERT} }`). Three rules keep that safe:
//! a value holding a line break is refused (it could add YAML structure and would shift every
//! line number after it), a line that is a `#` comment is left alone (commented-out settings
//! often name variables that are not set), and `$${` is a literal `${`.
//! Only config files are expanded; documents written through the admin API or stored in etcd
//! are taken as written.

use std::collections::HashMap;

use crate::diag::{Diagnostic, Errors, Pos};

#[cfg(test)]
mod tests;

/// A config text with its references expanded, and how to find the written column of any
/// position in it. Line numbers never change: references and values are single-line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The text YAML reads.
    pub text: String,
    /// Per changed line (1-based), its pieces in order.
    lines: HashMap<u64, Vec<Piece>>,
}

/// A run of output columns that came from one place in the source: copied text, or a
/// reference's value (every column of which maps to the reference's `$`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    out: u64,
    out_len: u64,
    src: u64,
    src_len: u64,
    copied: bool,
}

impl Expanded {
    /// The position in the written text of `at`, a position in [`Expanded::text`].
    pub fn source_pos(&self, at: Pos) -> Pos {
        let (line, col) = at;
        let Some(pieces) = self.lines.get(&line) else {
            return at;
        };
        for p in pieces {
            if col < p.out + p.out_len {
                return (
                    line,
                    if p.copied {
                        p.src + (col - p.out)
                    } else {
                        p.src
                    },
                );
            }
        }
        // Past the last piece (an error at the end of the line).
        let last = pieces.last().copied().unwrap_or(Piece {
            out: 1,
            out_len: 0,
            src: 1,
            src_len: 0,
            copied: true,
        });
        let past = col.saturating_sub(last.out + last.out_len);
        (line, last.src + last.src_len + past)
    }

    /// Whether any reference was expanded.
    pub fn changed(&self) -> bool {
        !self.lines.is_empty()
    }
}

/// Expands the references in `text` from the process environment.
pub fn expand_env(source: &str, text: &str) -> Result<Expanded, Errors> {
    expand(text, &|name| match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable `{name}` is not valid UTF-8"))
        }
    })
    .map_err(|errs| {
        Errors(
            errs.into_iter()
                .map(|(at, msg)| Diagnostic::new(source, at, msg))
                .collect(),
        )
    })
}

/// A variable's value: `Ok(None)` when unset, `Err` when it cannot be used.
pub type Lookup<'a> = dyn Fn(&str) -> Result<Option<String>, String> + 'a;

/// Expands `text` with `lookup`; every problem is reported with its written position.
pub fn expand(text: &str, lookup: &Lookup<'_>) -> Result<Expanded, Vec<(Pos, String)>> {
    if !text.contains("${") {
        return Ok(Expanded {
            text: text.to_string(),
            lines: HashMap::new(),
        });
    }
    let mut out = String::with_capacity(text.len());
    let mut lines = HashMap::new();
    let mut errors = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i as u64 + 1;
        if !line.contains("${") || line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let pieces = expand_line(line, n, lookup, &mut out, &mut errors);
        if pieces.iter().any(|p| !p.copied || p.src_len != p.out_len) {
            lines.insert(n, pieces);
        }
    }
    if errors.is_empty() {
        Ok(Expanded { text: out, lines })
    } else {
        Err(errors)
    }
}

/// The pieces of one line, and the next column in the written and in the expanded text
/// (1-based, counted in characters, as the YAML reader counts them).
struct Cursor {
    pieces: Vec<Piece>,
    src: u64,
    out: u64,
}

impl Cursor {
    fn push(&mut self, src_len: u64, out_len: u64, copied: bool) {
        self.pieces.push(Piece {
            out: self.out,
            out_len,
            src: self.src,
            src_len,
            copied,
        });
        self.src += src_len;
        self.out += out_len;
    }
}

/// Appends `line` expanded to `out`; returns its pieces, collects its errors.
fn expand_line(
    line: &str,
    n: u64,
    lookup: &Lookup<'_>,
    out: &mut String,
    errors: &mut Vec<(Pos, String)>,
) -> Vec<Piece> {
    let mut c = Cursor {
        pieces: Vec::new(),
        src: 1,
        out: 1,
    };
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        c.push(chars(before), chars(before), true);
        if let Some(after) = from.strip_prefix("$${") {
            // The escape: `$${` is a literal `${`.
            out.push_str("${");
            c.push(3, 2, false);
            rest = after;
            continue;
        }
        let Some(body) = from.strip_prefix("${") else {
            out.push('$');
            c.push(1, 1, true);
            rest = &from[1..];
            continue;
        };
        let here = (n, c.src);
        let Some(end) = body.find('}') else {
            errors.push((here, "`${` without a closing `}` on this line: write `${NAME}` or `${NAME:-default}`, or `$${` for a literal `${`".into()));
            out.push_str(from);
            c.push(chars(from), chars(from), true);
            return c.pieces;
        };
        let reference = &body[..end];
        let value = resolve(reference, lookup).unwrap_or_else(|e| {
            errors.push((here, e));
            String::new()
        });
        out.push_str(&value);
        c.push(chars(&from[..end + 3]), chars(&value), false);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    c.push(chars(rest), chars(rest), true);
    c.pieces
}

/// The value of `NAME` or `NAME:-default` (the text between `${` and `}`).
fn resolve(reference: &str, lookup: &Lookup<'_>) -> Result<String, String> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    if !crate::validate::values::is_identifier(name) {
        return Err(format!(
            "`${{{reference}}}` is not a variable reference: write `${{NAME}}` or `${{NAME:-default}}` (NAME of letters, digits and `_`), or `$${{` for a literal `${{`"
        ));
    }
    let value = lookup(name)?;
    let value = match (value, default) {
        // As in the shell, `:-` also replaces an empty value.
        (Some(v), Some(d)) if v.is_empty() => d.to_string(),
        (Some(v), _) => v,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(format!(
                "environment variable `{name}` is not set: set it, give a default with `${{{name}:-default}}`, or write `$${{` for a literal `${{`"
            ))
        }
    };
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "environment variable `{name}` holds a line break: a substituted value must fit on one line"
        ));
    }
    Ok(value)
}

fn chars(s: &str) -> u64 {
    s.chars().count() as u64
}
