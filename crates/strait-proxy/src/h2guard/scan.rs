//! Incremental HTTP/2 frame scanner for one direction of a connection: finds frame boundaries
//! and reads frame headers plus the first bytes of small payloads; payloads are skipped, never
//! copied. No I/O, no clock.

/// The client connection preface (RFC 9113 §3.4), which precedes the client's first frame.
pub(crate) const PREFACE_LEN: usize = 24;
/// Payload bytes kept per frame: enough for sixteen SETTINGS entries, GOAWAY's code,
/// RST_STREAM's and WINDOW_UPDATE's fields; the rest of a payload is skipped.
pub(crate) const CAPTURE: usize = 96;

/// Frame types (RFC 9113 §6).
pub(crate) mod ty {
    pub(crate) const DATA: u8 = 0x0;
    pub(crate) const HEADERS: u8 = 0x1;
    pub(crate) const RST_STREAM: u8 = 0x3;
    pub(crate) const SETTINGS: u8 = 0x4;
    pub(crate) const GOAWAY: u8 = 0x7;
    pub(crate) const WINDOW_UPDATE: u8 = 0x8;
    pub(crate) const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113 §6).
pub(crate) mod flag {
    pub(crate) const END_STREAM: u8 = 0x1;
    pub(crate) const ACK: u8 = 0x1;
    pub(crate) const END_HEADERS: u8 = 0x4;
}

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHead {
    pub len: u32,
    pub ty: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHead {
    /// Whether `flag` is set.
    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Scanner state for one byte stream.
#[derive(Clone, Debug)]
pub(crate) struct Scanner {
    /// Preface bytes still to skip.
    preface: usize,
    head: [u8; 9],
    have: u8,
    /// The frame whose payload is being read, and how much of it is left.
    frame: Option<(FrameHead, u32)>,
    captured: [u8; CAPTURE],
    got: usize,
}

// === impl Scanner ===

impl Scanner {
    /// A scanner at the start of the client's stream (which opens with the preface).
    pub(crate) fn client() -> Self {
        Self::with_preface(PREFACE_LEN)
    }

    /// A scanner at the start of the server's stream (frames from the first byte).
    pub(crate) fn server() -> Self {
        Self::with_preface(0)
    }

    fn with_preface(preface: usize) -> Self {
        Self {
            preface,
            head: [0; 9],
            have: 0,
            frame: None,
            captured: [0; CAPTURE],
            got: 0,
        }
    }

    /// Whether the bytes so far end exactly at a frame boundary (after the preface), so a frame
    /// of our own may be put in between.
    pub(crate) fn at_boundary(&self) -> bool {
        self.preface == 0 && self.have == 0 && self.frame.is_none()
    }

    /// Scans `bytes`, calling `on_frame` with each frame that ends among them (its header and
    /// the first [`CAPTURE`] bytes of its payload).
    pub(crate) fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(FrameHead, &[u8])) {
        while !bytes.is_empty() {
            if self.preface > 0 {
                let n = self.preface.min(bytes.len());
                self.preface -= n;
                bytes = &bytes[n..];
                continue;
            }
            let Some((head, left)) = &mut self.frame else {
                let n = (9 - usize::from(self.have)).min(bytes.len());
                let at = usize::from(self.have);
                self.head[at..at + n].copy_from_slice(&bytes[..n]);
                self.have += n as u8;
                bytes = &bytes[n..];
                if self.have == 9 {
                    self.have = 0;
                    let h = &self.head;
                    let head = FrameHead {
                        len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                        ty: h[3],
                        flags: h[4],
                        // The reserved bit is ignored (RFC 9113 §4.1).
                        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                    };
                    self.got = 0;
                    if head.len == 0 {
                        on_frame(head, &[]);
                    } else {
                        self.frame = Some((head, head.len));
                    }
                }
                continue;
            };
            let n = (*left as usize).min(bytes.len());
            let keep = n.min(CAPTURE - self.got);
            self.captured[self.got..self.got + keep].copy_from_slice(&bytes[..keep]);
            self.got += keep;
            *left -= n as u32;
            bytes = &bytes[n..];
            if *left == 0 {
                let head = *head;
                self.frame = None;
                on_frame(head, &self.captured[..self.got]);
            }
        }
    }
}

/// Builds a frame (for the frames the guard puts into a stream itself).
pub(crate) fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A big-endian `u32` at `at` in a captured payload, if it is there.
pub(crate) fn u32_at(payload: &[u8], at: usize) -> Option<u32> {
    let b = payload.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
