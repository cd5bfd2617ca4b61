//! Hand-built HTTP/2 frames over raw TCP, for what a real client never sends: floods, unfinished
//! header blocks, a preface and nothing else, a reader that stops. Headers are HPACK literals
//! without indexing or Huffman coding, so no encoder state is needed; responses are read as
//! frame headers (type, flags, stream, error codes), not decoded.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
pub mod ty {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
}

/// Error codes.
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// One frame.
pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A SETTINGS frame with `(id, value)` entries.
pub fn settings(entries: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in entries {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(ty::SETTINGS, 0, 0, &p)
}

/// A WINDOW_UPDATE frame.
pub fn window_update(stream: u32, inc: u32) -> Vec<u8> {
    frame(ty::WINDOW_UPDATE, 0, stream, &inc.to_be_bytes())
}

/// An RST_STREAM frame.
pub fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(ty::RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// HPACK integer with an `n`-bit prefix, first byte ORed with `high`.
fn integer(out: &mut Vec<u8>, high: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(high | v as u8);
        return;
    }
    out.push(high | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literal fields without indexing (RFC 7541 §6.2.2), new names, no Huffman.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        integer(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        integer(&mut out, 0, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The pseudo-headers of a GET for `path`, plus `extra` fields.
pub fn get_block(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "localhost"),
        (":path", path),
    ];
    fields.extend_from_slice(extra);
    block(&fields)
}

/// A complete GET on `stream` in one HEADERS frame.
pub fn get(stream: u32, path: &str) -> Vec<u8> {
    frame(
        ty::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        stream,
        &get_block(path, &[]),
    )
}

/// A frame read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub ty: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of an RST_STREAM or GOAWAY.
    pub fn code(&self) -> Option<u32> {
        let at = match self.ty {
            ty::RST_STREAM => 0,
            ty::GOAWAY => 4,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// How a read ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Frame(Frame),
    Closed,
    TimedOut,
}

/// A raw HTTP/2 client connection.
pub struct H2Raw {
    pub tcp: TcpStream,
    buf: Vec<u8>,
}

impl H2Raw {
    /// Connects and sends nothing.
    pub async fn connect_silent(addr: SocketAddr) -> H2Raw {
        let tcp = crate::within(
            Duration::from_secs(5),
            "h2 connect",
            TcpStream::connect(addr),
        )
        .await
        .expect("h2 connect");
        H2Raw {
            tcp,
            buf: Vec::new(),
        }
    }

    /// Connects and sends the preface and an empty SETTINGS frame.
    pub async fn connect(addr: SocketAddr) -> H2Raw {
        let mut c = H2Raw::connect_silent(addr).await;
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(&[]));
        c.send(&hello).await;
        c
    }

    /// Writes `bytes`; a peer that already closed is not an error here.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.tcp.write_all(bytes).await;
    }

    /// Writes `bytes`, reporting whether the peer took them.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    /// The next frame, or how reading ended within `limit`.
    pub async fn read(&mut self, limit: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        ty: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([
                            self.buf[5],
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]) & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Read::Frame(f);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Err(_) => return Read::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => return Read::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads (and acknowledges nothing) until the peer closes; the frames seen, or `None` when
    /// the connection was still open after `limit`.
    pub async fn until_closed(&mut self, limit: Duration) -> Option<Vec<Frame>> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Read::Frame(f) => seen.push(f),
                Read::Closed => return Some(seen),
                Read::TimedOut => return None,
            }
        }
    }

    /// Frames until one matching `want`, or `None` on close or after `limit`.
    pub async fn until(&mut self, limit: Duration, want: impl Fn(&Frame) -> bool) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Read::Frame(f) if want(&f) => return Some(f),
                Read::Frame(_) => {}
                _ => return None,
            }
        }
    }
}
