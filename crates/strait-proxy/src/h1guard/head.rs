//! Strict, streaming RFC 9112 request-head validator: one byte at a time (whole lines at once when they arrive whole), no buffering, no I/O.
//!
//! Because every decision is made from the byte just seen plus a few counters, feeding a head in
//! one slice or in many gives the same outcome, and nothing of a head is ever copied.

use super::fields::{narrow, run_of, target_run, value_run, whole_line, Event, Fields, TCHAR};
use super::{H1Limits, Rejection};

/// How the body following a valid head is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No Content-Length and no Transfer-Encoding: requests then have no body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why the connection may stop being HTTP/1 after this request's response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpgradeKind {
    /// The request carried an `Upgrade` header: a `101` switches protocols.
    Header,
    /// The request was `CONNECT`: hyper turns a `2xx` into a tunnel (and a `101` as well).
    Connect,
}

/// The facts about a complete, valid head that the framing layer needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Body framing.
    pub body: BodyKind,
    /// Whether the response may turn the connection into something else.
    pub upgrade: Option<UpgradeKind>,
}

/// Where in the head the next byte lands.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Before the request line; empty lines may be skipped here.
    Leading,
    /// Saw CR of a leading empty line.
    LeadingLf,
    Method,
    TargetStart,
    Target,
    /// Index into `HTTP/1.x` of the next expected byte (7 is the minor digit, 8 the CR).
    Version(u8),
    /// Saw the CR ending the request line.
    RequestLineLf,
    Fields(Fields),
}

/// Progress through optional whitespace, a token, optional whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ows {
    Lead,
    Token,
    Trail,
}

/// The field whose value is being read, when its value matters for framing.
#[derive(Clone, Copy, Debug)]
enum Field {
    Other,
    Length { phase: Ows, value: u64 },
    Coding { phase: Ows, matched: u8 },
}

/// Field names whose presence or value matters, lowercase; bit `i` of `Parser::names` is `NAMES[i]`.
const NAMES: [&[u8]; 3] = [b"content-length", b"transfer-encoding", b"upgrade"];
const CONTENT_LENGTH: u8 = 1 << 0;
const TRANSFER_ENCODING: u8 = 1 << 1;
const UPGRADE: u8 = 1 << 2;
const CHUNKED: &[u8] = b"chunked";
const CONNECT: &[u8] = b"CONNECT";
const VERSION: &[u8] = b"HTTP/1.";
/// Bytes of the request line kept, for the access log line of a refused request.
pub(crate) const LINE_CAPTURE: usize = 64;

/// The limits a head is checked against: [`H1Limits`]' size limits, kept compact because every
/// connection holds a copy in its framing state and one in its parser.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadLimits {
    max_request_line: u32,
    max_head: u32,
    max_headers: u32,
}

// === impl HeadLimits ===

impl HeadLimits {
    /// The longest head (and trailer section).
    pub(crate) fn max_head(&self) -> usize {
        self.max_head as usize
    }

    /// The most header lines in a head (and trailer fields).
    pub(crate) fn max_headers(&self) -> usize {
        self.max_headers as usize
    }
}

impl From<H1Limits> for HeadLimits {
    fn from(l: H1Limits) -> Self {
        let cap = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            max_request_line: cap(l.max_request_line),
            max_head: cap(l.max_head),
            max_headers: cap(l.max_headers),
        }
    }
}

/// Incremental validator for one request head.
#[derive(Clone, Debug)]
pub(crate) struct Parser {
    limits: HeadLimits,
    state: State,
    /// Bytes of the head so far, leading empty lines included (they cost the peer nothing else).
    head_len: usize,
    /// Bytes of the request line so far, CRLF excluded.
    line_len: usize,
    headers: usize,
    /// Bytes of the method matching `CONNECT` so far; `u8::MAX` once it cannot match.
    connect: u8,
    http10: bool,
    /// Candidate bits of `NAMES` still matching the field name being read, and its length.
    names: u8,
    name_len: usize,
    field: Field,
    content_length: Option<u64>,
    chunked: bool,
    upgrade: bool,
    /// The start of the request line.
    line: [u8; LINE_CAPTURE],
}

// === impl Parser ===

impl Parser {
    /// A validator waiting for the first byte of a head.
    pub(crate) fn new(limits: impl Into<HeadLimits>) -> Self {
        Self {
            limits: limits.into(),
            state: State::Leading,
            head_len: 0,
            line_len: 0,
            headers: 0,
            connect: 0,
            http10: false,
            names: 0,
            name_len: 0,
            field: Field::Other,
            content_length: None,
            chunked: false,
            upgrade: false,
            line: [0; LINE_CAPTURE],
        }
    }

    /// The start of the request line so far (at most [`LINE_CAPTURE`] bytes).
    pub(crate) fn request_line(&self) -> &[u8] {
        let n = match self.state {
            State::Leading | State::LeadingLf => 0,
            _ => self.line_len,
        };
        &self.line[..n.min(LINE_CAPTURE)]
    }

    /// Whether any byte of this head has arrived (drives the header-read timer).
    pub(crate) fn started(&self) -> bool {
        self.head_len > 0
    }

    /// Consumes bytes of `buf` up to and including the end of the head.
    ///
    /// Returns how many bytes were consumed and, when the head ended among them, its facts; the
    /// bytes after the head belong to the body or the next request.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Result<(usize, Option<Head>), Rejection> {
        let mut i = 0;
        while i < buf.len() {
            // Most lines are whole in the read: each is checked in one pass, and only a
            // tracked field's value goes through the rules byte by byte. The byte-at-a-time
            // path decides every other line the same way, and names what is wrong.
            let room = self
                .limits
                .max_head()
                .saturating_sub(self.head_len)
                .min(buf.len() - i);
            if matches!(self.state, State::Fields(Fields::LineStart))
                && self.headers < self.limits.max_headers as usize
            {
                if let Some(line) = whole_line(&buf[i..i + room], &NAMES) {
                    self.headers += 1;
                    if let Some(t) = line.tracked {
                        self.names = 1 << t;
                        self.name_len = NAMES[t].len();
                        self.name_end()?;
                        for &b in &buf[i + line.colon + 1..i + line.len - 2] {
                            self.value_byte(b)?;
                        }
                        self.value_end()?;
                    }
                    self.head_len += line.len;
                    i += line.len;
                    continue;
                }
            } else if matches!(self.state, State::Leading) {
                if let Some((n, method, http10)) = self.whole_request_line(&buf[i..i + room]) {
                    let line = &buf[i..i + n];
                    self.line_len = n;
                    let kept = n.min(LINE_CAPTURE);
                    self.line[..kept].copy_from_slice(&line[..kept]);
                    self.connect = if &line[..method] == CONNECT {
                        CONNECT.len() as u8
                    } else {
                        u8::MAX
                    };
                    self.http10 = http10;
                    self.state = State::Fields(Fields::LineStart);
                    self.head_len += n + 2;
                    i += n + 2;
                    continue;
                }
            }
            let b = buf[i];
            i += 1;
            if let Some(head) = self.byte(b)? {
                return Ok((i, Some(head)));
            }
            // Most of a head is bytes no rule tracks: skip them in one loop, up to the head
            // limit. The byte that ends a run goes through `byte` like any other.
            let room = self
                .limits
                .max_head()
                .saturating_sub(self.head_len)
                .min(buf.len() - i);
            let rest = &buf[i..i + room];
            let run = match self.state {
                State::Fields(Fields::Value) if matches!(self.field, Field::Other) => {
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
            self.head_len += run;
        }
        Ok((buf.len(), None))
    }

    fn byte(&mut self, b: u8) -> Result<Option<Head>, Rejection> {
        self.head_len += 1;
        if matches!(
            self.state,
            State::Method | State::TargetStart | State::Target | State::Version(0..8)
        ) {
            self.line_len += 1;
            if self.line_len > self.limits.max_request_line as usize {
                return Err(Rejection::UriTooLong);
            }
            if let Some(slot) = self.line.get_mut(self.line_len - 1) {
                *slot = b;
            }
        }
        if self.head_len > self.limits.max_head() {
            return Err(Rejection::HeadersTooLarge);
        }
        self.state = match (self.state, b) {
            (State::Leading, b'\r') => State::LeadingLf,
            (State::LeadingLf, b'\n') => State::Leading,
            (State::Leading, b) if is_tchar(b) => {
                self.line_len = 1;
                self.line[0] = b;
                self.method_byte(b);
                State::Method
            }
            (State::Leading, _) => return bad("invalid method"),
            (State::Method, b' ') => State::TargetStart,
            (State::Method, b) if is_tchar(b) => {
                self.method_byte(b);
                State::Method
            }
            (State::Method, _) => return bad("invalid method"),
            (State::TargetStart | State::Target, b) if is_vchar(b) => State::Target,
            (State::Target, b' ') => State::Version(0),
            (State::TargetStart | State::Target, _) => return bad("invalid request-target"),
            (State::Version(i), b)
                if usize::from(i) < VERSION.len() && b == VERSION[usize::from(i)] =>
            {
                State::Version(i + 1)
            }
            (State::Version(7), b'0' | b'1') => {
                self.http10 = b == b'0';
                State::Version(8)
            }
            (State::Version(8), b'\r') => State::RequestLineLf,
            (State::Version(_), _) => return bad("invalid http version"),
            (State::RequestLineLf, b'\n') => State::Fields(Fields::LineStart),
            (State::Fields(fields), b) => {
                let (next, event) = fields.step(b).map_err(Rejection::BadRequest)?;
                match event {
                    Some(Event::NameStart(b)) => {
                        self.headers += 1;
                        if self.headers > self.limits.max_headers as usize {
                            return Err(Rejection::HeadersTooLarge);
                        }
                        self.names = CONTENT_LENGTH | TRANSFER_ENCODING | UPGRADE;
                        self.name_len = 0;
                        self.name_byte(b);
                    }
                    Some(Event::Name(b)) => self.name_byte(b),
                    Some(Event::NameEnd) => self.name_end()?,
                    Some(Event::Value(b)) => self.value_byte(b)?,
                    Some(Event::ValueEnd) => self.value_end()?,
                    Some(Event::End) => return Ok(Some(self.finish())),
                    None => {}
                }
                State::Fields(next)
            }
            (State::LeadingLf | State::RequestLineLf, _) => return bad("bare CR"),
        };
        Ok(None)
    }

    /// A whole, valid request line at the start of `buf` (a method, SP, a target of visible
    /// bytes, SP, `HTTP/1.x`, CRLF) within the request-line limit: its length without the CRLF,
    /// the method's length, and whether the version is 1.0. `None` leaves the line to the
    /// byte-at-a-time path, which decides it the same way and names what is wrong.
    fn whole_request_line(&self, buf: &[u8]) -> Option<(usize, usize, bool)> {
        let method = run_of(&TCHAR, buf);
        if method == 0 || buf.get(method) != Some(&b' ') {
            return None;
        }
        let target = method + 1;
        let end = target + target_run(&buf[target..]);
        if end == target || buf.get(end) != Some(&b' ') {
            return None;
        }
        let version = buf.get(end + 1..end + 11)?;
        if &version[..7] != VERSION
            || !matches!(version[7], b'0' | b'1')
            || &version[8..] != b"\r\n"
        {
            return None;
        }
        let len = end + 9;
        (len <= self.limits.max_request_line as usize).then_some((len, method, version[7] == b'0'))
    }

    fn method_byte(&mut self, b: u8) {
        let i = usize::from(self.connect);
        self.connect = if i < CONNECT.len() && CONNECT[i] == b {
            self.connect + 1
        } else {
            u8::MAX
        };
    }

    fn name_byte(&mut self, b: u8) {
        narrow(&mut self.names, &NAMES, self.name_len, b);
        self.name_len += 1;
    }

    /// The colon: decide which field this is and reject ambiguous framing as early as possible.
    fn name_end(&mut self) -> Result<(), Rejection> {
        let names = self.names;
        let is = |bit: u8, name: &[u8]| names & bit != 0 && self.name_len == name.len();
        self.field = Field::Other;
        if is(CONTENT_LENGTH, NAMES[0]) {
            if self.content_length.is_some() {
                return bad("duplicate content-length");
            }
            if self.chunked {
                return bad("content-length with transfer-encoding");
            }
            self.field = Field::Length {
                phase: Ows::Lead,
                value: 0,
            };
        } else if is(TRANSFER_ENCODING, NAMES[1]) {
            if self.chunked {
                return bad("duplicate transfer-encoding");
            }
            if self.content_length.is_some() {
                return bad("content-length with transfer-encoding");
            }
            if self.http10 {
                return bad("transfer-encoding in http/1.0");
            }
            self.field = Field::Coding {
                phase: Ows::Lead,
                matched: 0,
            };
        } else if is(UPGRADE, NAMES[2]) {
            self.upgrade = true;
        }
        Ok(())
    }

    fn value_byte(&mut self, b: u8) -> Result<(), Rejection> {
        let ws = b == b' ' || b == b'\t';
        match &mut self.field {
            Field::Other => {}
            Field::Length { phase, value } => match (*phase, b) {
                (Ows::Lead | Ows::Trail, _) if ws => {}
                (Ows::Token, _) if ws => *phase = Ows::Trail,
                (Ows::Lead | Ows::Token, b'0'..=b'9') => {
                    *phase = Ows::Token;
                    *value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')))
                        .ok_or(Rejection::BadRequest("content-length overflow"))?;
                }
                _ => return bad("invalid content-length"),
            },
            Field::Coding { phase, matched } => match (*phase, b) {
                (Ows::Lead | Ows::Trail, _) if ws => {}
                (Ows::Token, _) if ws && usize::from(*matched) == CHUNKED.len() => {
                    *phase = Ows::Trail
                }
                (Ows::Lead | Ows::Token, b)
                    if CHUNKED.get(usize::from(*matched)) == Some(&b.to_ascii_lowercase()) =>
                {
                    *phase = Ows::Token;
                    *matched += 1;
                }
                _ => return bad("unsupported transfer-encoding"),
            },
        }
        Ok(())
    }

    fn value_end(&mut self) -> Result<(), Rejection> {
        match self.field {
            Field::Other => {}
            Field::Length {
                phase: Ows::Lead, ..
            } => return bad("invalid content-length"),
            Field::Length { value, .. } => self.content_length = Some(value),
            Field::Coding { matched, .. } if usize::from(matched) == CHUNKED.len() => {
                self.chunked = true
            }
            Field::Coding { .. } => return bad("unsupported transfer-encoding"),
        }
        self.field = Field::Other;
        Ok(())
    }

    fn finish(&self) -> Head {
        let body = match (self.chunked, self.content_length) {
            (true, _) => BodyKind::Chunked,
            (false, Some(n)) => BodyKind::Length(n),
            (false, None) => BodyKind::None,
        };
        let upgrade = if usize::from(self.connect) == CONNECT.len() {
            Some(UpgradeKind::Connect)
        } else if self.upgrade {
            Some(UpgradeKind::Header)
        } else {
            None
        };
        Head { body, upgrade }
    }
}

fn bad<T>(reason: &'static str) -> Result<T, Rejection> {
    Err(Rejection::BadRequest(reason))
}

/// RFC 9110 `tchar`: the bytes of a token (methods, field names).
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'!' | b'#' | b'$' | b'%' | b'&'
        | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// Visible ASCII (`VCHAR`), as allowed in a request-target.
pub(crate) const fn is_vchar(b: u8) -> bool {
    matches!(b, 0x21..=0x7e)
}

/// Visible bytes of a field value: `VCHAR` or `obs-text`.
const fn is_field_vchar(b: u8) -> bool {
    is_vchar(b) || b >= 0x80
}

/// Any byte inside a field value (also a trailer's, or a reason phrase): `field-vchar`, SP or
/// HTAB.
pub(crate) const fn is_value_byte(b: u8) -> bool {
    is_field_vchar(b) || b == b' ' || b == b'\t'
}
