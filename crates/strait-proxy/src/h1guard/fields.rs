//! RFC 9112 field-line syntax, one byte at a time: shared by the request guard's head parser and
//! the upstream response guard's, which differ only in the start line and the fields they track.

use super::head::{is_tchar, is_value_byte};

/// Where in the field section the next byte lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fields {
    /// Start of a field line, or of the blank line that ends the section.
    LineStart,
    Name,
    Value,
    /// Saw the CR ending a field line.
    ValueLf,
    /// Saw the CR of the blank line.
    EndLf,
}

/// What a byte meant, for the parser tracking particular fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The first byte of a field name.
    NameStart(u8),
    /// A further byte of the name.
    Name(u8),
    /// The colon after the name.
    NameEnd,
    /// A byte of the value (leading and trailing whitespace included).
    Value(u8),
    /// The end of a field line.
    ValueEnd,
    /// The end of the section.
    End,
}

// === impl Fields ===

impl Fields {
    /// The state after `b`, with what it meant; an error names the syntax broken.
    pub(crate) fn step(self, b: u8) -> Result<(Fields, Option<Event>), &'static str> {
        Ok(match (self, b) {
            (Fields::LineStart, b'\r') => (Fields::EndLf, None),
            (Fields::LineStart, b' ' | b'\t') => return Err("obsolete line folding"),
            (Fields::LineStart, b) if is_tchar(b) => (Fields::Name, Some(Event::NameStart(b))),
            (Fields::LineStart, _) => return Err("invalid field name"),
            (Fields::Name, b':') => (Fields::Value, Some(Event::NameEnd)),
            (Fields::Name, b) if is_tchar(b) => (Fields::Name, Some(Event::Name(b))),
            (Fields::Name, _) => return Err("invalid field name"),
            (Fields::Value, b'\r') => (Fields::ValueLf, None),
            (Fields::Value, b) if is_value_byte(b) => (Fields::Value, Some(Event::Value(b))),
            (Fields::Value, _) => return Err("invalid field value"),
            (Fields::ValueLf, b'\n') => (Fields::LineStart, Some(Event::ValueEnd)),
            (Fields::EndLf, b'\n') => (Fields::EndLf, Some(Event::End)),
            (Fields::ValueLf | Fields::EndLf, _) => return Err("bare CR"),
        })
    }
}

/// Narrows `candidates` (bit `i` for `names[i]`, lowercase) to the names whose byte at `at` is
/// `b`, ASCII case ignored: which tracked field a name is, decided without buffering it.
pub(crate) fn narrow(candidates: &mut u8, names: &[&[u8]], at: usize, b: u8) {
    let b = b.to_ascii_lowercase();
    for (bit, name) in names.iter().enumerate() {
        if name.get(at) != Some(&b) {
            *candidates &= !(1 << bit);
        }
    }
}

/// `pred` as a lookup table, for the loops that skip runs of bytes.
macro_rules! table {
    ($pred:path) => {{
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            t[b] = $pred(b as u8);
            b += 1;
        }
        t
    }};
}

/// Bytes that may run on inside a reason phrase or a field value ([`is_value_byte`]).
pub(crate) const VALUE: [bool; 256] = table!(is_value_byte);

/// Bytes that may run on inside a field name ([`is_tchar`]).
pub(crate) const TCHAR: [bool; 256] = table!(is_tchar);

/// How many leading bytes of `buf` are in `table`: a run no rule needs to see one at a time.
pub(crate) fn run_of(table: &[bool; 256], buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| !table[usize::from(b)])
        .unwrap_or(buf.len())
}
