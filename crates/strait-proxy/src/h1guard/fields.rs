//! RFC 9112 field-line syntax, one byte at a time or a whole line at once: shared by the request guard's head parser and
//! the upstream response guard's, which differ only in the start line and the fields they track.

use super::head::{is_tchar, is_value_byte, is_vchar};

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

/// A complete, valid field line at the start of a buffer, as [`whole_line`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// The line's length, CRLF included.
    pub len: usize,
    /// The colon's offset: the value is `colon + 1..len - 2`.
    pub colon: usize,
    /// Which of the tracked names the line has (ASCII case ignored), if any.
    pub tracked: Option<usize>,
}

/// The field line at the start of `buf` when it is complete and valid (a name, a colon, a
/// value, CRLF), with which of `tracked` it names; `None` leaves the line to the byte-at-a-time
/// path, which decides every line the same way and names what is wrong. Most field lines arrive
/// whole: this checks each in one pass, and the caller reads only a tracked line's value.
pub(crate) fn whole_line(buf: &[u8], tracked: &[&[u8]]) -> Option<Line> {
    // A name is a run of tchar, ended by the colon (a byte no tchar is).
    let colon = buf.iter().position(|&b| !TCHAR[usize::from(b)])?;
    let name = &buf[..colon];
    if name.is_empty() || buf[colon] != b':' {
        return None;
    }
    // A value is a run of value bytes, ended by CRLF (neither is a value byte).
    let cr = colon + 1 + value_run(&buf[colon + 1..]);
    if !buf[cr..].starts_with(b"\r\n") {
        return None;
    }
    Some(Line {
        len: cr + 2,
        colon,
        tracked: tracked.iter().position(|n| name.eq_ignore_ascii_case(n)),
    })
}

/// [`whole_line`]'s length for a line none of `tracked` names.
#[cfg(test)]
pub(crate) fn plain_line(buf: &[u8], tracked: &[&[u8]]) -> Option<usize> {
    whole_line(buf, tracked)
        .filter(|l| l.tracked.is_none())
        .map(|l| l.len)
}

/// How many leading bytes of `buf` are value bytes ([`is_value_byte`]): values are most of a
/// head's bytes.
pub(crate) fn value_run(buf: &[u8]) -> usize {
    word_run(buf, &VALUE, 0x20, false)
}

/// How many leading bytes of `buf` are [`is_vchar`]: a request target is often the longest part
/// of a request line.
pub(crate) fn target_run(buf: &[u8]) -> usize {
    word_run(buf, &VCHAR, 0x21, true)
}

/// How many leading bytes of `buf` are in `table`, eight per step while no byte of the word is
/// below `below`, equal to 0x7f or (with `high`) from 0x80: `table` must hold no other byte. A
/// flagged byte `table` holds (HTAB in a value) continues the run.
fn word_run(buf: &[u8], table: &[bool; 256], below: u8, high: bool) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let mut i = 0;
    while let Some(chunk) = buf.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // A borrow only starts at a byte flagged rightly and runs upwards, so the lowest flag
        // is the first flagged byte.
        let low = x.wrapping_sub(ONES * u64::from(below)) & !x & HIGH;
        let del = x ^ (ONES * 0x7f);
        let del = del.wrapping_sub(ONES) & !del & HIGH;
        let flags = low | del | if high { x & HIGH } else { 0 };
        if flags == 0 {
            i += 8;
            continue;
        }
        let at = i + (flags.trailing_zeros() / 8) as usize;
        if !table[usize::from(buf[at])] {
            return at;
        }
        i = at + 1;
    }
    i + run_of(table, &buf[i..])
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

/// Bytes of a request target ([`is_vchar`]).
pub(crate) const VCHAR: [bool; 256] = table!(is_vchar);

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

    #[test]
    fn runs_eight_at_a_time_stop_where_the_table_does() {
        // Every byte at every offset of a 20-byte run, amid bytes of the run.
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut buf: Vec<u8> = (0..20)
                    .map(|i| if i % 3 == 0 { 0xa5 } else { b'x' })
                    .collect();
                buf[at] = b;
                assert_eq!(value_run(&buf), run_of(&VALUE, &buf), "byte {b:#x} at {at}");
                let mut buf = [b'/'; 20];
                buf[at] = b;
                assert_eq!(
                    target_run(&buf),
                    run_of(&VCHAR, &buf),
                    "byte {b:#x} at {at}"
                );
            }
        }
        assert_eq!(value_run(b""), 0);
        assert_eq!(value_run(b"abc\r\n"), 3);
        assert_eq!(value_run(&[b'v'; 17]), 17);
    }

    proptest::proptest! {
        /// Several stop bytes and tabs in one word: the lowest flag is the first stop.
        #[test]
        fn runs_agree_with_the_table(
            buf in proptest::collection::vec(
                proptest::sample::select(b"\t\r\n\x00\x1f\x20\x21\x7e\x7f\x80\xffa/?%".to_vec()),
                0..40,
            )
        ) {
            proptest::prop_assert_eq!(value_run(&buf), run_of(&VALUE, &buf));
            proptest::prop_assert_eq!(target_run(&buf), run_of(&VCHAR, &buf));
        }
    }

    #[test]
    fn a_whole_line_says_which_tracked_name_it_has() {
        let tracked: &[&[u8]] = &[b"content-length", b"upgrade"];
        assert_eq!(
            whole_line(b"Content-Length: 12 \r\nx", tracked),
            Some(Line {
                len: 21,
                colon: 14,
                tracked: Some(0)
            })
        );
        assert_eq!(
            whole_line(b"UPGRADE:\r\n", tracked).and_then(|l| l.tracked),
            Some(1)
        );
        assert_eq!(
            whole_line(b"upgrades: x\r\n", tracked).and_then(|l| l.tracked),
            None
        );
        assert_eq!(whole_line(b"content-length: 1\r", tracked), None);
    }
}
