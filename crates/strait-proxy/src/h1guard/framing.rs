//! The guard's pure core: classifies each downstream byte as head, body or opaque, and watches
//! response status lines for protocol switches. No I/O, no clock.

use super::chunked::{Decoder, MAX_TRAILER};
use super::head::{BodyKind, HeadLimits, Parser, UpgradeKind, LINE_CAPTURE};
use super::{H1Limits, Rejection};

/// The HTTP/2 prior-knowledge connection preface (RFC 9113 §3.4).
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the downstream byte stream is carrying at this point.
#[derive(Clone, Debug)]
enum Phase {
    /// Start of connection; this many bytes of the HTTP/2 preface matched so far.
    Sniff(usize),
    Head(Parser),
    /// Content-Length body; bytes still to come.
    Length(u64),
    Chunked(Decoder),
    /// Not HTTP/1 (HTTP/2, or after a protocol switch): bytes pass unexamined forever.
    Passthrough,
}

/// Framing between requests, reduced to what differs from a fresh connection's (a parser
/// that has seen no byte holds nothing else, and the response sniff matters only while a
/// switch is awaited).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dormant {
    /// Still at the connection's start, where an HTTP/2 preface is looked for.
    sniffing: bool,
    heads: u64,
    last_line: ([u8; LINE_CAPTURE], u8),
}

/// Outcome of feeding one read's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    /// Every byte is valid and may go to hyper.
    All,
    /// The first `n` bytes may go to hyper; the rest follow a request that may switch
    /// protocols, so they must wait until its response is seen.
    Hold(usize),
    /// Nothing of this read may go to hyper.
    Reject(Rejection),
}

/// Downstream framing state for one connection.
#[derive(Clone, Debug)]
pub(crate) struct Framing {
    limits: HeadLimits,
    phase: Phase,
    /// Set when a request that may switch protocols has been read and its final response not
    /// yet seen.
    upgrade: Option<UpgradeKind>,
    sniff: ResponseSniff,
    /// Complete heads so far, so the shell can tell a new head from the one it timed.
    heads: u64,
    /// The start of the last complete head's request line, for a refusal inside its body.
    last_line: ([u8; LINE_CAPTURE], u8),
}

// === impl Framing ===

impl Framing {
    /// Framing at the start of a connection.
    pub(crate) fn new(limits: H1Limits) -> Self {
        Self {
            limits: limits.into(),
            phase: Phase::Sniff(0),
            upgrade: None,
            sniff: ResponseSniff::default(),
            heads: 0,
            last_line: ([0; LINE_CAPTURE], 0),
        }
    }

    /// What survives a park between requests, if the stream sits between them with nothing
    /// pending (no byte of the next head, no response awaited): see [`Dormant`].
    pub(crate) fn dormant(&self) -> Option<Dormant> {
        if !self.is_idle() || self.upgrade.is_some() {
            return None;
        }
        Some(Dormant {
            sniffing: matches!(self.phase, Phase::Sniff(_)),
            heads: self.heads,
            last_line: self.last_line,
        })
    }

    /// Framing again as [`Framing::dormant`] left it.
    pub(crate) fn wake(limits: H1Limits, d: Dormant) -> Self {
        let limits: HeadLimits = limits.into();
        Self {
            limits,
            phase: if d.sniffing {
                Phase::Sniff(0)
            } else {
                Phase::Head(Parser::new(limits))
            },
            upgrade: None,
            sniff: ResponseSniff::default(),
            heads: d.heads,
            last_line: d.last_line,
        }
    }

    /// The start of the request line of the head being read, or else of the last one.
    pub(crate) fn request_line(&self) -> &[u8] {
        match &self.phase {
            Phase::Head(parser) if parser.started() => parser.request_line(),
            Phase::Sniff(matched) if *matched > 0 => &H2_PREFACE[..*matched],
            _ => &self.last_line.0[..usize::from(self.last_line.1)],
        }
    }

    /// Complete heads so far.
    pub(crate) fn heads(&self) -> u64 {
        self.heads
    }

    /// Whether a body is being read (its head has been passed on).
    pub(crate) fn in_body(&self) -> bool {
        matches!(self.phase, Phase::Length(_) | Phase::Chunked(_))
    }

    /// Whether the stream is no longer HTTP/1 and passes unexamined.
    pub(crate) fn is_passthrough(&self) -> bool {
        matches!(self.phase, Phase::Passthrough)
    }

    /// Whether reads must wait for the response to a request that may switch protocols.
    pub(crate) fn awaiting_response(&self) -> bool {
        self.upgrade.is_some() && self.is_idle()
    }

    /// Whether the stream sits between requests with no byte of the next head received.
    pub(crate) fn is_idle(&self) -> bool {
        match &self.phase {
            Phase::Sniff(matched) => *matched == 0,
            Phase::Head(parser) => !parser.started(),
            _ => false,
        }
    }

    /// The number of the head being read, if part of one has arrived.
    pub(crate) fn reading_head(&self) -> Option<u64> {
        match &self.phase {
            Phase::Sniff(matched) if *matched > 0 => Some(self.heads),
            Phase::Head(parser) if parser.started() => Some(self.heads),
            _ => None,
        }
    }

    /// Classifies the bytes of one read, in order.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Fed {
        let mut i = 0;
        while i < buf.len() {
            let rest = &buf[i..];
            match &mut self.phase {
                Phase::Passthrough => return Fed::All,
                Phase::Sniff(matched) => {
                    let want = &H2_PREFACE[*matched..];
                    let same = want.iter().zip(rest).take_while(|(a, b)| a == b).count();
                    if same == want.len() {
                        self.phase = Phase::Passthrough;
                        return Fed::All;
                    }
                    if same == rest.len() {
                        *matched += same;
                        return Fed::All;
                    }
                    // Not HTTP/2: the preface bytes earlier reads delivered were a head's start.
                    let earlier = *matched;
                    let mut parser = Parser::new(self.limits);
                    match parser.feed(&H2_PREFACE[..earlier]) {
                        Ok((_, None)) => self.phase = Phase::Head(parser),
                        Ok((_, Some(_))) => {
                            return Fed::Reject(Rejection::BadRequest("h2 preface"))
                        }
                        Err(rejection) => return Fed::Reject(rejection),
                    }
                }
                Phase::Head(parser) => match parser.feed(rest) {
                    Err(rejection) => return Fed::Reject(rejection),
                    Ok((_, None)) => return Fed::All,
                    Ok((n, Some(head))) => {
                        i += n;
                        self.heads += 1;
                        let line = parser.request_line();
                        self.last_line.0[..line.len()].copy_from_slice(line);
                        self.last_line.1 = line.len() as u8;
                        if head.upgrade.is_some() {
                            self.upgrade = head.upgrade;
                            self.sniff = ResponseSniff::default();
                        }
                        match head.body {
                            BodyKind::None | BodyKind::Length(0) => {}
                            BodyKind::Length(n) => {
                                self.phase = Phase::Length(n);
                                continue;
                            }
                            BodyKind::Chunked => {
                                let trailer = self.limits.max_head().min(MAX_TRAILER);
                                let decoder = Decoder::new(trailer, self.limits.max_headers());
                                self.phase = Phase::Chunked(decoder);
                                continue;
                            }
                        }
                        if let Some(fed) = self.next_head(i, buf.len()) {
                            return fed;
                        }
                    }
                },
                Phase::Length(left) => {
                    let take = (*left).min(rest.len() as u64);
                    i += take as usize;
                    *left -= take;
                    if *left > 0 {
                        return Fed::All;
                    }
                    if let Some(fed) = self.next_head(i, buf.len()) {
                        return fed;
                    }
                }
                Phase::Chunked(decoder) => match decoder.feed(rest) {
                    Err(rejection) => return Fed::Reject(rejection),
                    Ok((_, false)) => return Fed::All,
                    Ok((n, true)) => {
                        i += n;
                        if let Some(fed) = self.next_head(i, buf.len()) {
                            return fed;
                        }
                    }
                },
            }
        }
        Fed::All
    }

    /// A message ended at `at`: expect the next head, unless the response may switch protocols.
    fn next_head(&mut self, at: usize, len: usize) -> Option<Fed> {
        self.phase = Phase::Head(Parser::new(self.limits));
        match self.upgrade {
            Some(_) if at < len => Some(Fed::Hold(at)),
            Some(_) => Some(Fed::All),
            None => None,
        }
    }

    /// Notes response bytes hyper wrote; returns true when reads that were waiting may resume.
    pub(crate) fn on_written(&mut self, bytes: &[u8]) -> bool {
        let Some(kind) = self.upgrade else {
            return false;
        };
        match self.sniff.feed(bytes, kind) {
            Verdict::Pending => false,
            Verdict::Switched => {
                self.upgrade = None;
                self.phase = Phase::Passthrough;
                true
            }
            Verdict::Final => {
                self.upgrade = None;
                true
            }
        }
    }
}

/// What the response to a possibly-switching request turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Pending,
    /// hyper hands the connection to an upgrade: it is no longer HTTP/1.
    Switched,
    /// An ordinary final response: HTTP/1 continues.
    Final,
}

/// Reads response status lines from the start of the written stream, skipping interim (1xx)
/// responses, until the final one.
#[derive(Clone, Debug, Default)]
struct ResponseSniff {
    /// `HTTP/1.1 NNN` is exactly 12 bytes.
    prefix: [u8; 12],
    len: usize,
    /// Inside an interim response: how much of its closing CRLFCRLF matched.
    skipping: Option<u8>,
}

// === impl ResponseSniff ===

impl ResponseSniff {
    fn feed(&mut self, bytes: &[u8], kind: UpgradeKind) -> Verdict {
        let mut i = 0;
        while i < bytes.len() {
            if let Some(matched) = self.skipping {
                let b = bytes[i];
                i += 1;
                let matched = match (matched, b) {
                    (0 | 2, b'\r') => matched + 1,
                    (1 | 3, b'\n') => matched + 1,
                    (_, b'\r') => 1,
                    _ => 0,
                };
                self.skipping = if matched == 4 { None } else { Some(matched) };
                continue;
            }
            let take = (self.prefix.len() - self.len).min(bytes.len() - i);
            self.prefix[self.len..self.len + take].copy_from_slice(&bytes[i..i + take]);
            self.len += take;
            i += take;
            if self.len < self.prefix.len() {
                return Verdict::Pending;
            }
            self.len = 0;
            match (status(&self.prefix), kind) {
                (Some(101), _) | (Some(200..=299), UpgradeKind::Connect) => {
                    return Verdict::Switched
                }
                (Some(100..=199), _) => self.skipping = Some(0),
                // Anything else, including bytes that are not a status line, keeps HTTP/1
                // checking on: if hyper did switch after all, the peer is refused, not trusted.
                _ => return Verdict::Final,
            }
        }
        Verdict::Pending
    }
}

/// The status code of `HTTP/1.x NNN`.
fn status(line: &[u8; 12]) -> Option<u16> {
    if !line.starts_with(b"HTTP/1.") || !matches!(line[7], b'0' | b'1') || line[8] != b' ' {
        return None;
    }
    line[9..].iter().try_fold(0u16, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u16::from(d - b'0'))
    })
}
