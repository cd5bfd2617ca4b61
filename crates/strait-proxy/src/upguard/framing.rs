//! The upstream guard's pure core: follows one connection's responses (head, body, next head)
//! against the requests written on it, and says which bytes pass as they are and which heads
//! hyper gets instead of the bytes that carried them. No I/O.

use super::head::{Framed, Parser};
use super::requests::{Kind, Requests};
use crate::h1guard::Decoder;

/// Upstream trailer sections are bounded like heads; they are rare (gRPC uses HTTP/2).
const MAX_TRAILER: usize = 16 * 1024;
const MAX_TRAILERS: usize = 100;
/// Buffer room kept by a connection between exchanges; more is freed (see `shed`).
pub(crate) const SMALL: usize = 1024;

#[derive(Clone, Debug)]
enum Phase {
    Head(Parser),
    Length(u64),
    Chunked(Decoder),
    /// A body delimited by the close of the connection, or a tunnel: bytes pass unexamined.
    Opaque,
    /// The last response this connection may carry has ended.
    Done,
}

/// What to hand hyper for one read, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// These bytes of the read, as they are.
    Pass(std::ops::Range<usize>),
    /// A complete head that began in an earlier read or was rewritten, instead of the bytes
    /// that carried it.
    Head(Vec<u8>),
}

/// One upstream connection's response framing.
#[derive(Clone, Debug)]
pub(crate) struct Framing {
    max_head: usize,
    phase: Phase,
    /// The bytes of a head begun in an earlier read, held back until it is complete.
    carried: Vec<u8>,
    requests: Requests,
    /// The current response is the connection's last.
    closing: bool,
}

// === impl Framing ===

impl Framing {
    /// A connection whose response heads may take `max_head` bytes.
    pub(crate) fn new(max_head: usize) -> Self {
        Self {
            max_head,
            phase: Phase::Head(Parser::new(max_head)),
            carried: Vec::new(),
            requests: Requests::new(),
            closing: false,
        }
    }

    /// Whether the connection is between exchanges: every request answered, no byte of a next
    /// response read, and it may carry another.
    pub(crate) fn is_at_rest(&self) -> bool {
        matches!(&self.phase, Phase::Head(p) if p.is_unstarted())
            && self.carried.is_empty()
            && !self.closing
            && self.requests.is_idle()
    }

    /// Records a request without a body (to `HEAD` or not) about to be written whole past
    /// [`Framing::on_written`]; false when it must be written through it.
    pub(crate) fn expect_request(&mut self, head: bool) -> bool {
        let kind = if head { Kind::Head } else { Kind::Other };
        !matches!(self.phase, Phase::Opaque | Phase::Done) && self.requests.expect(kind)
    }

    /// Room held by the carry buffer (tests).
    #[cfg(test)]
    pub(crate) fn carried_room(&self) -> usize {
        self.carried.capacity()
    }

    /// Frees the room a long head left in the carry buffer (it is empty between exchanges).
    pub(crate) fn shed(&mut self) {
        if self.carried.capacity() > SMALL {
            self.carried = Vec::new();
        }
    }

    /// Bytes hyper wrote (requests).
    pub(crate) fn on_written(&mut self, bytes: &[u8]) {
        // After a switch to a tunnel (or a body that ends with the connection) nothing written
        // is a request any more.
        if !matches!(self.phase, Phase::Opaque) {
            self.requests.feed(bytes);
        }
    }

    /// Classifies one read's bytes into `out`; an error refuses the whole read.
    pub(crate) fn feed(&mut self, buf: &[u8], out: &mut Vec<Segment>) -> Result<(), &'static str> {
        let mut i = 0;
        let pass = |out: &mut Vec<Segment>, from: usize, to: usize| {
            if from == to {
                return;
            }
            if let Some(Segment::Pass(r)) = out.last_mut() {
                if r.end == from {
                    r.end = to;
                    return;
                }
            }
            out.push(Segment::Pass(from..to));
        };
        while i < buf.len() {
            match &mut self.phase {
                Phase::Head(parser) => {
                    if self.requests.is_lost() {
                        // Hyper's own stream could not be followed: trust hyper from here on,
                        // with any bytes held back handed on first.
                        if !self.carried.is_empty() {
                            out.push(Segment::Head(std::mem::take(&mut self.carried)));
                        }
                        self.phase = Phase::Opaque;
                        continue;
                    }
                    let (n, head) = parser.feed(&buf[i..])?;
                    let Some(head) = head else {
                        self.carried.extend_from_slice(&buf[i..]);
                        return Ok(());
                    };
                    if self.carried.is_empty() && head.rewrite.is_none() {
                        // The common case: the whole head is in this read, as it is.
                        pass(out, i, i + n);
                    } else {
                        let mut bytes = std::mem::take(&mut self.carried);
                        bytes.extend_from_slice(&buf[i..i + n]);
                        head.apply(&mut bytes);
                        out.push(Segment::Head(bytes));
                    }
                    i += n;
                    let (status, framed) = (head.status, head.framed);
                    self.closing |= head.rewrite.is_some();
                    if (100..200).contains(&status) && status != 101 {
                        // Interim: the final response to the same request follows.
                        self.phase = Phase::Head(Parser::new(self.max_head));
                        continue;
                    }
                    let kind = self.requests.next().ok_or("response without a request")?;
                    self.phase = match (kind, status, framed) {
                        (_, 101, _) | (Kind::Connect, 200..=299, _) => Phase::Opaque,
                        (Kind::Head, ..) | (_, 204 | 304, _) => self.next_response(),
                        (_, _, Framed::Chunked) => {
                            Phase::Chunked(Decoder::new(MAX_TRAILER, MAX_TRAILERS))
                        }
                        (_, _, Framed::Length(0)) => self.next_response(),
                        (_, _, Framed::Length(n)) => Phase::Length(n),
                        (_, _, Framed::UntilClose) => Phase::Opaque,
                    };
                }
                Phase::Length(left) => {
                    let take = (*left).min((buf.len() - i) as u64) as usize;
                    pass(out, i, i + take);
                    i += take;
                    *left -= take as u64;
                    if *left == 0 {
                        self.phase = self.next_response();
                    }
                }
                Phase::Chunked(decoder) => {
                    let (n, end) = decoder.feed(&buf[i..]).map_err(|r| match r {
                        crate::h1guard::Rejection::BadRequest(reason) => reason,
                        _ => "invalid chunked framing",
                    })?;
                    pass(out, i, i + n);
                    i += n;
                    if end {
                        self.phase = self.next_response();
                    }
                }
                Phase::Opaque => {
                    pass(out, i, buf.len());
                    i = buf.len();
                }
                Phase::Done => return Err("bytes after the connection's last response"),
            }
        }
        Ok(())
    }

    fn next_response(&self) -> Phase {
        if self.closing {
            Phase::Done
        } else {
            Phase::Head(Parser::new(self.max_head))
        }
    }
}
