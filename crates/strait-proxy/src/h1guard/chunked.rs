//! Strict, streaming tracker of RFC 9112 chunked framing: finds where a chunked body ends.
//!
//! It validates the framing bytes one at a time and skips chunk data in bulk; it never decodes
//! or copies the body, so the bytes hyper sees are exactly the bytes that arrived.

use super::head::{is_tchar, is_value_byte};
use super::Rejection;

/// Longest chunk-size line (size plus extensions) accepted; real clients send a few bytes.
const MAX_SIZE_LINE: usize = 4096;
/// Extension bytes accepted over a whole body: hyper refuses 16 KiB of them with an error that
/// would surface as an upstream failure (502), so the guard refuses first, with a 400.
const MAX_EXTENSIONS: usize = 8 * 1024;
/// Trailer section bytes accepted at most, for the same reason (hyper's trailer limit is 16 KiB).
pub(crate) const MAX_TRAILER: usize = 8 * 1024;
/// Sixteen hex digits fill a `u64`, so no size that passes this check can overflow.
const MAX_SIZE_DIGITS: u8 = 16;

/// Where in the chunked body the next byte lands.
#[derive(Clone, Copy, Debug)]
enum State {
    Size,
    /// Whitespace after the size: only `;` (an extension) may follow.
    SizeWs,
    Ext,
    /// Saw the CR ending the size line.
    SizeLf,
    /// Bytes of chunk data still to come.
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    /// Saw the CR ending a trailer field line.
    TrailerLf,
    /// Saw the CR of the empty line that ends the body.
    EndLf,
}

/// Incremental tracker for one chunked body.
#[derive(Clone, Debug)]
pub(crate) struct Decoder {
    state: State,
    size: u64,
    digits: u8,
    line_len: usize,
    trailer_len: usize,
    max_trailer: usize,
    /// Extension bytes so far, across all chunks.
    extensions: usize,
    /// Trailer fields so far, and the most allowed.
    trailers: usize,
    max_trailers: usize,
}

// === impl Decoder ===

impl Decoder {
    /// A tracker at the start of a chunked body whose trailer section may take `max_trailer`
    /// bytes in at most `max_trailers` fields.
    pub(crate) fn new(max_trailer: usize, max_trailers: usize) -> Self {
        Self {
            state: State::Size,
            size: 0,
            digits: 0,
            line_len: 0,
            trailer_len: 0,
            max_trailer,
            extensions: 0,
            trailers: 0,
            max_trailers,
        }
    }

    /// Consumes bytes of `buf` up to and including the end of the body.
    ///
    /// Returns how many bytes were consumed and whether the body ended among them.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Result<(usize, bool), Rejection> {
        let mut i = 0;
        while i < buf.len() {
            if let State::Data(left) = self.state {
                // Chunk data is opaque: skip as much of it as this read holds.
                let take = left.min((buf.len() - i) as u64);
                i += take as usize;
                self.state = if take == left {
                    State::DataCr
                } else {
                    State::Data(left - take)
                };
                continue;
            }
            let b = buf[i];
            i += 1;
            if self.byte(b)? {
                return Ok((i, true));
            }
        }
        Ok((i, false))
    }

    /// Bytes of chunk data due before the next framing byte (0 outside chunk data).
    pub(crate) fn data_left(&self) -> u64 {
        match self.state {
            State::Data(left) => left,
            _ => 0,
        }
    }

    /// Consumes framing bytes of `buf` until chunk data begins or the body ends, for a reader
    /// that takes the data out itself (see [`Decoder::consume_data`]).
    ///
    /// Returns how many bytes were consumed and whether the body ended among them.
    pub(crate) fn feed_framing(&mut self, buf: &[u8]) -> Result<(usize, bool), Rejection> {
        let mut i = 0;
        while i < buf.len() && !matches!(self.state, State::Data(_)) {
            let b = buf[i];
            i += 1;
            if self.byte(b)? {
                return Ok((i, true));
            }
        }
        Ok((i, false))
    }

    /// Takes `n` bytes of chunk data, at most [`Decoder::data_left`].
    pub(crate) fn consume_data(&mut self, n: u64) {
        if let State::Data(left) = self.state {
            self.state = if n >= left {
                State::DataCr
            } else {
                State::Data(left - n)
            };
        }
    }

    fn byte(&mut self, b: u8) -> Result<bool, Rejection> {
        if matches!(self.state, State::Size | State::SizeWs | State::Ext) {
            self.line_len += 1;
            if self.line_len > MAX_SIZE_LINE {
                return bad("chunk-size line too long");
            }
        }
        if matches!(
            self.state,
            State::TrailerStart
                | State::TrailerName
                | State::TrailerValue
                | State::TrailerLf
                | State::EndLf
        ) {
            self.trailer_len += 1;
            if self.trailer_len > self.max_trailer {
                return bad("trailer section too large");
            }
        }
        self.state = match (self.state, b) {
            (State::Size, b) if b.is_ascii_hexdigit() => {
                self.digits += 1;
                if self.digits > MAX_SIZE_DIGITS {
                    return bad("chunk size overflow");
                }
                // Cannot overflow: at most 16 hex digits reach here.
                self.size = (self.size << 4) | u64::from(hex_value(b));
                State::Size
            }
            (State::Size, _) if self.digits == 0 => return bad("invalid chunk size"),
            (State::Size, b';') | (State::SizeWs, b';') => State::Ext,
            (State::Size, b'\r') => State::SizeLf,
            (State::Size | State::SizeWs, b' ' | b'\t') => State::SizeWs,
            (State::Size | State::SizeWs, _) => return bad("invalid chunk size"),
            (State::Ext, b'\r') => State::SizeLf,
            (State::Ext, b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => {
                self.extensions += 1;
                if self.extensions > MAX_EXTENSIONS {
                    return bad("chunk extensions too large");
                }
                State::Ext
            }
            (State::Ext, _) => return bad("invalid chunk extension"),
            (State::SizeLf, b'\n') => {
                let size = self.size;
                self.size = 0;
                self.digits = 0;
                self.line_len = 0;
                if size == 0 {
                    State::TrailerStart
                } else {
                    State::Data(size)
                }
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataCr, _) => return bad("chunk data longer than its size"),
            (State::DataLf, b'\n') => State::Size,
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart, b) if is_tchar(b) => {
                self.trailers += 1;
                if self.trailers > self.max_trailers {
                    return bad("too many trailer fields");
                }
                State::TrailerName
            }
            (State::TrailerName, b) if is_tchar(b) => State::TrailerName,
            (State::TrailerStart, _) => return bad("invalid trailer field"),
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerName, _) => return bad("invalid trailer field"),
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, b) if is_value_byte(b) => State::TrailerValue,
            (State::TrailerValue, _) => return bad("invalid trailer value"),
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => return Ok(true),
            (State::SizeLf | State::DataLf | State::TrailerLf | State::EndLf, _) => {
                return bad("bare CR in chunked framing")
            }
            // Data is skipped in bulk by `feed` and never reaches here.
            (State::Data(_), _) => State::Data(0),
        };
        Ok(false)
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

fn bad<T>(reason: &'static str) -> Result<T, Rejection> {
    Err(Rejection::BadRequest(reason))
}
