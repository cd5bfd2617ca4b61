//! What the requests hyper wrote on an upstream connection ask of their responses: a response
//! to `HEAD` has no body whatever its fields say, one to `CONNECT` may turn into a tunnel.
//! A lenient scanner of hyper's own output (its framing is right by construction): it finds
//! each request's method and where its body ends. No I/O.

use std::collections::VecDeque;

use crate::h1guard::Decoder;

/// What a response must be read as, by its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `HEAD`: no body.
    Head,
    /// `CONNECT`: a `2xx` is a tunnel.
    Connect,
    Other,
}

#[derive(Clone, Debug)]
enum State {
    Method,
    /// The rest of the request line.
    Line,
    LineStart,
    /// A field line; `name` bytes matched against the fields that frame the body.
    Field,
    EndLf,
    Length(u64),
    Chunked(Decoder),
}

/// Requests written and not yet answered, in order.
#[derive(Clone, Debug)]
pub(crate) struct Requests {
    state: State,
    method: [u8; 8],
    method_len: usize,
    /// The current field line's first bytes, lowercased.
    line: [u8; 48],
    line_len: usize,
    content_length: u64,
    chunked: bool,
    pending: VecDeque<Kind>,
    /// The written stream could not be followed: responses can no longer be checked.
    lost: bool,
}

// === impl Requests ===

impl Requests {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Method,
            method: [0; 8],
            method_len: 0,
            line: [0; 48],
            line_len: 0,
            content_length: 0,
            chunked: false,
            pending: VecDeque::new(),
            lost: false,
        }
    }

    /// The oldest request without a final response.
    pub(crate) fn next(&mut self) -> Option<Kind> {
        self.pending.pop_front()
    }

    /// Whether every request written has been answered and none is half written.
    pub(crate) fn is_idle(&self) -> bool {
        !self.lost
            && self.pending.is_empty()
            && matches!(self.state, State::Method)
            && self.method_len == 0
    }

    /// Records a request without a body that the caller writes whole past the scanner, which
    /// then need not read it; false when the scanner must read it (it is mid-request).
    pub(crate) fn expect(&mut self, kind: Kind) -> bool {
        let fresh = matches!(self.state, State::Method) && self.method_len == 0;
        if self.lost || !fresh || self.pending.len() >= 16 {
            return false;
        }
        self.pending.push_back(kind);
        true
    }

    /// Whether the written stream could not be followed.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost
    }

    /// Bytes hyper wrote.
    pub(crate) fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() && !self.lost {
            match &mut self.state {
                State::Length(left) => {
                    let take = (*left).min(buf.len() as u64);
                    *left -= take;
                    buf = &buf[take as usize..];
                    if *left == 0 {
                        self.state = State::Method;
                    }
                }
                State::Chunked(decoder) => match decoder.feed(buf) {
                    Ok((n, end)) => {
                        buf = &buf[n..];
                        if end {
                            self.state = State::Method;
                        }
                    }
                    Err(_) => self.lost = true,
                },
                // The rest of a line: only a field line's first bytes matter.
                State::Line | State::Field => {
                    let eol = memchr::memchr(b'\n', buf);
                    let take = eol.unwrap_or(buf.len());
                    if matches!(self.state, State::Field) {
                        let kept = take.min(self.line.len().saturating_sub(self.line_len));
                        for &b in &buf[..kept] {
                            self.field_byte(b);
                        }
                        self.line_len += take - kept;
                    }
                    let Some(eol) = eol else {
                        break;
                    };
                    self.byte(b'\n');
                    buf = &buf[eol + 1..];
                }
                _ => {
                    self.byte(buf[0]);
                    buf = &buf[1..];
                }
            }
        }
    }

    fn byte(&mut self, b: u8) {
        match (&self.state, b) {
            (State::Method, b' ') => {
                // A method longer than the buffer is none of the ones that matter.
                let method = self.method.get(..self.method_len).unwrap_or_default();
                let kind = match method {
                    b"HEAD" => Kind::Head,
                    b"CONNECT" => Kind::Connect,
                    _ => Kind::Other,
                };
                if self.pending.len() >= 16 {
                    self.lost = true;
                }
                self.pending.push_back(kind);
                self.state = State::Line;
            }
            (State::Method, b) => {
                if let Some(slot) = self.method.get_mut(self.method_len) {
                    *slot = b;
                }
                self.method_len += 1;
            }
            (State::Line, b'\n') => self.state = State::LineStart,
            (State::Line, _) => {}
            (State::LineStart, b'\r') => self.state = State::EndLf,
            // Only Content-Length and Transfer-Encoding lines are read; others are skipped.
            (State::LineStart, b'c' | b'C' | b't' | b'T') => {
                self.line_len = 0;
                self.field_byte(b);
                self.state = State::Field;
            }
            (State::LineStart, _) => self.state = State::Line,
            (State::Field, b'\n') => {
                self.field_end();
                self.state = State::LineStart;
            }
            (State::Field, b) => self.field_byte(b),
            (State::EndLf, _) => {
                self.method_len = 0;
                let (chunked, length) = (self.chunked, self.content_length);
                self.chunked = false;
                self.content_length = 0;
                self.state = if chunked {
                    State::Chunked(Decoder::new(usize::MAX, usize::MAX))
                } else if length > 0 {
                    State::Length(length)
                } else {
                    State::Method
                };
            }
            (State::Length(_) | State::Chunked(_), _) => {}
        }
    }

    fn field_byte(&mut self, b: u8) {
        if let Some(slot) = self.line.get_mut(self.line_len) {
            *slot = b.to_ascii_lowercase();
        }
        self.line_len += 1;
    }

    fn field_end(&mut self) {
        let line = &self.line[..self.line_len.min(self.line.len())];
        if let Some(v) = line.strip_prefix(b"content-length:") {
            let digits = v.iter().filter(|b| b.is_ascii_digit());
            self.content_length =
                digits.fold(0u64, |n, d| n.saturating_mul(10) + u64::from(d - b'0'));
        } else if let Some(v) = line.strip_prefix(b"transfer-encoding:") {
            self.chunked = v.windows(7).any(|w| w == b"chunked");
        }
    }
}
