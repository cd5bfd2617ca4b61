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

/// The length of the field line at the start of `buf` when it is complete and valid (a name, a
/// colon, a value, CRLF) and its name is none of `tracked`; `None` leaves the line to the
/// byte-at-a-time path, which decides every line the same way and names what is wrong. Most
/// field lines arrive whole and concern no rule: this checks each in one pass.
pub(crate) fn plain_line(buf: &[u8], tracked: &[&[u8]]) -> Option<usize> {
    let run = |from: usize, class: u8| {
        buf[from..]
            .iter()
            .position(|&b| CLASS[usize::from(b)] & class == 0)
            .map(|n| from + n)
    };
    // A name is a run of tchar, ended by the colon (a byte no tchar is).
    let colon = run(0, NAME_BYTE)?;
    let name = &buf[..colon];
    if name.is_empty() || buf[colon] != b':' || tracked.iter().any(|n| name.eq_ignore_ascii_case(n))
    {
        return None;
    }
    // A value is a run of value bytes, ended by CRLF (neither is a value byte).
    let cr = run(colon + 1, VALUE_BYTE)?;
    (buf[cr..].starts_with(b"\r\n")).then_some(cr + 2)
}

/// [`plain_line`]'s byte classes: a name byte ([`is_tchar`]), a value byte ([`is_value_byte`]).
const NAME_BYTE: u8 = 1;
const VALUE_BYTE: u8 = 2;
const CLASS: [u8; 256] = {
    let mut t = [0; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = if is_tchar(b as u8) { NAME_BYTE } else { 0 }
            | if is_value_byte(b as u8) {
                VALUE_BYTE
            } else {
                0
            };
        b += 1;
    }
    t
};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_passes_in_one_go_only_when_every_byte_would() {
        assert_eq!(plain_line(b"server: nginx\r\nx", &[]), Some(15));
        assert_eq!(plain_line(b"a:\r\n", &[]), Some(4));
        for line in [
            &b"server: nginx\r"[..],
            b"server: nginx\n",
            b"server: ng\rinx\r\n",
            b": nginx\r\n",
            b"server : nginx\r\n",
            b" server: nginx\r\n",
            b"Content-Length: 1\r\n",
        ] {
            assert_eq!(plain_line(line, &[b"content-length"]), None, "{line:?}");
        }
        for b in 0..=255u8 {
            let line = [b'n', b':', b'v', b, b'v', b'\r', b'\n'];
            let value = plain_line(&line, &[]).is_some();
            assert_eq!(value, is_value_byte(b), "value byte {b:#x}");
            let line = [b'n', b, b'n', b':', b'v', b'\r', b'\n'];
            // A colon there ends the name early: `n` with the value `n:v`.
            let name = is_tchar(b) || b == b':';
            assert_eq!(plain_line(&line, &[]).is_some(), name, "name byte {b:#x}");
        }
    }
}
