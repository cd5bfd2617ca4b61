//! Strict RFC 9112 response-head validator for upstream responses: one byte at a time, except
//! runs of bytes no rule looks at (the reason phrase, untracked names and values), which are
//! checked in one tight loop. It keeps offsets, not bytes: the caller keeps the bytes of a head
//! that spans reads, and rewrites a head with both Content-Length and Transfer-Encoding. No I/O.

use crate::h1guard::{is_value_byte, narrow, run_of, value_run, whole_line, Event, Fields, TCHAR};

/// How the body after a valid response head is framed, by its own fields (the request method
/// and the status may still rule out a body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framed {
    /// `Transfer-Encoding: chunked` (any Content-Length beside it was rewritten away).
    Chunked,
    /// `Content-Length: n`.
    Length(u64),
    /// Neither: the body runs until the connection closes.
    UntilClose,
}

/// A complete, valid response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: u16,
    pub framed: Framed,
    /// The Content-Length line (offsets in the head) that must become [`CLOSE`] before hyper
    /// sees the head; the connection must not carry another response (RFC 9112 §6.3).
    pub rewrite: Option<(usize, usize)>,
}

impl Head {
    /// Rewrites `bytes`, the whole head, as hyper must see it.
    pub(crate) fn apply(&self, bytes: &mut [u8]) {
        if let Some((start, end)) = self.rewrite {
            let line = &mut bytes[start..end];
            line.fill(b' ');
            line[..CLOSE.len()].copy_from_slice(CLOSE);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Index into `HTTP/1.` of the next expected byte; 7 is the minor digit.
    Version(u8),
    /// After the version: one SP.
    VersionSp,
    Status(u8),
    /// After the status code: SP and a reason, or the end of the line.
    StatusEnd,
    Reason,
    StatusLf,
    Fields(Fields),
}

/// Field names whose value matters; bit `i` of `Parser::names` is `NAMES[i]`.
const NAMES: [&[u8]; 2] = [b"content-length", b"transfer-encoding"];
const CONTENT_LENGTH: u8 = 1;
const TRANSFER_ENCODING: u8 = 2;
const CHUNKED: &[u8] = b"chunked";
const VERSION: &[u8] = b"HTTP/1.";
/// What replaces a Content-Length line beside Transfer-Encoding: the same length (padded with
/// trailing whitespace, which is not part of a field value), and hyper will not reuse the
/// connection. The shortest Content-Length line, `content-length:0`, is exactly this long.
const CLOSE: &[u8] = b"connection:close";

#[derive(Clone, Copy, Debug)]
enum Field {
    Other,
    /// Content-Length: its value so far, and whether a digit (then whitespace) was seen.
    Length {
        value: u64,
        digits: bool,
        done: bool,
    },
    /// Transfer-Encoding: bytes of `chunked` matched, and whether trailing whitespace began.
    Coding {
        matched: u8,
        done: bool,
    },
}

/// Incremental validator for one response head.
#[derive(Clone, Debug)]
pub(crate) struct Parser {
    max_head: usize,
    /// Bytes of the head consumed so far.
    len: usize,
    state: State,
    status: u16,
    http10: bool,
    names: u8,
    name_len: usize,
    field: Field,
    line_start: usize,
    content_length: Option<(u64, usize, usize)>,
    chunked: bool,
}

// === impl Parser ===

impl Parser {
    /// A validator for a head of at most `max_head` bytes.
    pub(crate) fn new(max_head: usize) -> Self {
        Self {
            max_head,
            len: 0,
            state: State::Version(0),
            status: 0,
            http10: false,
            names: 0,
            name_len: 0,
            field: Field::Other,
            line_start: 0,
            content_length: None,
            chunked: false,
        }
    }

    /// Whether no byte of a head has been read yet.
    pub(crate) fn is_unstarted(&self) -> bool {
        self.len == 0
    }

    /// Consumes bytes of `buf` up to and including the end of the head: how many, and the head
    /// when it ended among them.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Result<(usize, Option<Head>), &'static str> {
        let mut i = 0;
        while i < buf.len() {
            if self.len == self.max_head {
                return Err("response head too large");
            }
            // Most lines are whole in the read: each is checked in one pass, and only a
            // tracked field's value goes through the rules byte by byte. The byte-at-a-time
            // path decides every other line the same way, and names what is wrong.
            let room = (self.max_head - self.len).min(buf.len() - i);
            if self.state == State::Fields(Fields::LineStart) {
                if let Some(line) = whole_line(&buf[i..i + room], &NAMES) {
                    if let Some(t) = line.tracked {
                        self.line_start = self.len;
                        self.names = 1 << t;
                        self.name_len = NAMES[t].len();
                        self.name_end()?;
                        for &b in &buf[i + line.colon + 1..i + line.len - 2] {
                            self.value_byte(b)?;
                        }
                    }
                    i += line.len;
                    self.len += line.len;
                    if line.tracked.is_some() {
                        self.value_end()?;
                    }
                    continue;
                }
            } else if self.state == State::Version(0) {
                if let Some((n, status, http10)) = status_line(&buf[i..i + room]) {
                    self.status = status;
                    self.http10 = http10;
                    self.state = State::Fields(Fields::LineStart);
                    i += n;
                    self.len += n;
                    continue;
                }
            }
            let b = buf[i];
            i += 1;
            self.len += 1;
            if self.byte(b)? {
                return Ok((i, Some(self.finish())));
            }
            // Most of a head is bytes no rule tracks: skip them in one loop. The byte that
            // ends a run goes through `byte` like any other.
            let room = (self.max_head - self.len).min(buf.len() - i);
            let rest = &buf[i..i + room];
            let run = match self.state {
                State::Reason | State::Fields(Fields::Value)
                    if matches!(self.field, Field::Other) =>
                {
                    value_run(rest)
                }
                State::Fields(Fields::Name) if self.names == 0 => {
                    let run = run_of(&TCHAR, rest);
                    self.name_len += run;
                    run
                }
                _ => continue,
            };
            i += run;
            self.len += run;
        }
        Ok((buf.len(), None))
    }

    fn byte(&mut self, b: u8) -> Result<bool, &'static str> {
        self.state = match (self.state, b) {
            (State::Version(i), b)
                if usize::from(i) < VERSION.len() && b == VERSION[usize::from(i)] =>
            {
                State::Version(i + 1)
            }
            (State::Version(7), b'0' | b'1') => {
                self.http10 = b == b'0';
                State::VersionSp
            }
            (State::Version(_), _) => return Err("invalid status line"),
            (State::VersionSp, b' ') => State::Status(0),
            (State::Status(n), b'0'..=b'9') => {
                self.status = self.status * 10 + u16::from(b - b'0');
                if n == 2 && self.status < 100 {
                    return Err("invalid status code");
                }
                if n == 2 {
                    State::StatusEnd
                } else {
                    State::Status(n + 1)
                }
            }
            (State::StatusEnd, b' ') => State::Reason,
            (State::StatusEnd | State::Reason, b'\r') => State::StatusLf,
            (State::Reason, b) if is_value_byte(b) => State::Reason,
            (State::VersionSp | State::Status(_) | State::StatusEnd | State::Reason, _) => {
                return Err("invalid status line")
            }
            (State::StatusLf, b'\n') => State::Fields(Fields::LineStart),
            (State::StatusLf, _) => return Err("bare CR"),
            (State::Fields(fields), b) => {
                let (next, event) = fields.step(b)?;
                match event {
                    Some(Event::NameStart(b)) => {
                        self.line_start = self.len - 1;
                        self.names = CONTENT_LENGTH | TRANSFER_ENCODING;
                        self.name_len = 0;
                        self.name_byte(b);
                    }
                    Some(Event::Name(b)) => self.name_byte(b),
                    Some(Event::NameEnd) => self.name_end()?,
                    Some(Event::Value(b)) => self.value_byte(b)?,
                    Some(Event::ValueEnd) => self.value_end()?,
                    Some(Event::End) => return Ok(true),
                    None => {}
                }
                State::Fields(next)
            }
        };
        Ok(false)
    }

    fn name_byte(&mut self, b: u8) {
        narrow(&mut self.names, &NAMES, self.name_len, b);
        self.name_len += 1;
    }

    fn name_end(&mut self) -> Result<(), &'static str> {
        let is = |bit: u8, i: usize| self.names & bit != 0 && self.name_len == NAMES[i].len();
        self.field = Field::Other;
        if is(CONTENT_LENGTH, 0) {
            if self.content_length.is_some() {
                return Err("duplicate content-length");
            }
            self.field = Field::Length {
                value: 0,
                digits: false,
                done: false,
            };
        } else if is(TRANSFER_ENCODING, 1) {
            if self.chunked {
                return Err("duplicate transfer-encoding");
            }
            if self.http10 {
                return Err("transfer-encoding in an HTTP/1.0 response");
            }
            self.field = Field::Coding {
                matched: 0,
                done: false,
            };
        }
        Ok(())
    }

    fn value_byte(&mut self, b: u8) -> Result<(), &'static str> {
        let ws = b == b' ' || b == b'\t';
        match &mut self.field {
            Field::Other => {}
            Field::Length {
                value,
                digits,
                done,
            } => match b {
                _ if ws => *done |= *digits,
                b'0'..=b'9' if !*done => {
                    *digits = true;
                    *value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')))
                        .ok_or("content-length overflow")?;
                }
                _ => return Err("invalid content-length"),
            },
            Field::Coding { matched, done } => match b {
                _ if ws => *done |= *matched > 0,
                b if !*done
                    && CHUNKED.get(usize::from(*matched)) == Some(&b.to_ascii_lowercase()) =>
                {
                    *matched += 1
                }
                _ => return Err("unsupported transfer-encoding"),
            },
        }
        Ok(())
    }

    fn value_end(&mut self) -> Result<(), &'static str> {
        // The field line ends before its CR, the last byte consumed.
        let end = self.len - 2;
        match self.field {
            Field::Other => {}
            Field::Length { digits: false, .. } => return Err("invalid content-length"),
            Field::Length { value, .. } => {
                self.content_length = Some((value, self.line_start, end))
            }
            Field::Coding { matched, .. } if usize::from(matched) == CHUNKED.len() => {
                self.chunked = true
            }
            Field::Coding { .. } => return Err("unsupported transfer-encoding"),
        }
        self.field = Field::Other;
        Ok(())
    }

    fn finish(&mut self) -> Head {
        let (framed, rewrite) = match (self.chunked, self.content_length) {
            // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and the connection
            // must close after this response.
            (true, Some((_, start, end))) => (Framed::Chunked, Some((start, end))),
            (true, None) => (Framed::Chunked, None),
            (false, Some((n, _, _))) => (Framed::Length(n), None),
            (false, None) => (Framed::UntilClose, None),
        };
        Head {
            status: self.status,
            framed,
            rewrite,
        }
    }
}

/// A whole, valid status line at the start of `buf` (`HTTP/1.x`, a code from 100 to 999, an
/// optional reason, CRLF): its length, the status and whether the version is 1.0. `None`
/// leaves the line to the byte-at-a-time path, which decides it the same way.
fn status_line(buf: &[u8]) -> Option<(usize, u16, bool)> {
    let start = buf.get(..13)?;
    let (version, code) = (&start[..9], &start[9..12]);
    if &version[..7] != VERSION || !matches!(version[7], b'0' | b'1') || version[8] != b' ' {
        return None;
    }
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = code.iter().fold(0, |s, &d| s * 10 + u16::from(d - b'0'));
    let end = match start[12] {
        b' ' => 13 + value_run(&buf[13..]),
        b'\r' => 12,
        _ => return None,
    };
    (status >= 100 && buf[end..].starts_with(b"\r\n")).then_some((
        end + 2,
        status,
        version[7] == b'0',
    ))
}
