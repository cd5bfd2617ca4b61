//! Upstream HTTP/1 responses checked with the rigour of the request guard, between the upstream
//! connection and hyper's client (wrapped in `pool::connect_h1`).
//!
//! hyper's client is lenient where a gateway must be strict: it takes bare LF line endings, and
//! a response with both Content-Length and Transfer-Encoding reached the client with the
//! upstream's Content-Length (so `hello` could arrive as `he`, with the rest read as the next
//! response on a kept-alive connection). [`UpstreamGuard`] validates every response head
//! bytewise (status line, field syntax, Content-Length, Transfer-Encoding, no obs-fold, no bare
//! CR or LF) and every chunked body's framing, following the requests hyper writes so that a
//! response to `HEAD` has no body. A violation fails the read: hyper answers the request with an
//! error (502) and closes the connection; nothing ambiguous is passed on. A response with both
//! fields is read by Transfer-Encoding (RFC 9112 §6.3) and its Content-Length line becomes
//! `connection: close` before hyper sees it, so hyper drops the length and does not reuse the
//! connection.
//!
//! A read is validated whole before any of it is handed on, so a head followed by a bad chunk
//! in the same read is a 502, not a truncated response. Body bytes, and heads that arrive whole
//! in one read, pass uncopied; a head split across reads is held back and the read that
//! completes it is copied once (heads are small).

mod framing;
mod head;
mod requests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_prop;

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) use self::framing::{Framing, Segment};

/// Largest read buffer of an upstream HTTP/1 connection, and so its longest response head
/// (four times nginx's default `proxy_buffer_size`, twice HAProxy's buffer). With hyper's and
/// h2's buffers, it bounds what a response whose client stopped reading pins in memory.
pub(crate) const MAX_READ_BUF: usize = 32 * 1024;

/// Wraps an upstream connection; see the module docs.
pub(crate) struct UpstreamGuard<IO> {
    io: IO,
    framing: Framing,
    /// Checked bytes waiting for hyper (after a read that held a head).
    out: Vec<u8>,
    out_pos: usize,
    failed: Option<&'static str>,
    segments: Vec<Segment>,
    /// The upstream ended its side (a FIN, or a TLS close_notify that may come without one).
    eof: bool,
}

// === impl UpstreamGuard ===

impl<IO> UpstreamGuard<IO> {
    /// Wraps `io`, a fresh connection.
    pub(crate) fn new(io: IO) -> Self {
        Self {
            io,
            framing: Framing::new(MAX_READ_BUF),
            out: Vec::new(),
            out_pos: 0,
            failed: None,
            segments: Vec::new(),
            eof: false,
        }
    }

    /// Whether the connection rests between exchanges with nothing checked and unread, so a
    /// fresh guard may take it over.
    pub(crate) fn is_at_rest(&self) -> bool {
        self.failed.is_none()
            && !self.eof
            && self.out_pos == self.out.len()
            && self.framing.is_at_rest()
    }

    /// Frees buffer room a long or split head left behind, so an idle connection keeps little;
    /// small buffers stay for the next exchange.
    pub(crate) fn shed(&mut self) {
        if self.out.capacity() > framing::SMALL {
            self.out = Vec::new();
        }
        if self.segments.capacity() > 8 {
            self.segments = Vec::new();
        }
        self.framing.shed();
    }

    /// Room held by the carry buffer of a split head (tests).
    #[cfg(test)]
    pub(crate) fn framing_room(&self) -> usize {
        self.framing.carried_room()
    }

    /// Records a request without a body about to be written whole to [`UpstreamGuard::io_mut`],
    /// so the guard need not scan it; false when it must be written through the guard.
    pub(crate) fn expect_request(&mut self, head: bool) -> bool {
        self.failed.is_none() && self.framing.expect_request(head)
    }

    /// The wrapped connection, to write a request [`UpstreamGuard::expect_request`] recorded.
    pub(crate) fn io_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The wrapped connection, to look at.
    pub(crate) fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The wrapped connection.
    pub(crate) fn into_inner(self) -> IO {
        self.io
    }

    fn error(reason: &'static str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("invalid upstream response: {reason}"),
        )
    }

    /// Hands out checked bytes waiting in `out`.
    fn take_out(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.out.len() - self.out_pos);
        buf.put_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for UpstreamGuard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(reason) = this.failed {
                return Poll::Ready(Err(Self::error(reason)));
            }
            if this.out_pos < this.out.len() {
                this.take_out(buf);
                return Poll::Ready(Ok(()));
            }
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            let got = &buf.filled()[before..];
            if got.is_empty() {
                this.eof |= buf.remaining() > 0;
                return Poll::Ready(Ok(()));
            }
            this.segments.clear();
            if let Err(reason) = this.framing.feed(got, &mut this.segments) {
                tracing::debug!(reason, "refusing an upstream response");
                buf.set_filled(before);
                this.failed = Some(reason);
                continue;
            }
            match this.segments.as_slice() {
                // Bytes as they are (body, whole heads): they stay where they are.
                [Segment::Pass(r)] if r.start == 0 => {
                    buf.set_filled(before + r.end);
                    return Poll::Ready(Ok(()));
                }
                // Only part of a head so far: it is held back; read on.
                [] => {
                    buf.set_filled(before);
                    continue;
                }
                _ => {}
            }
            // A head was completed or begun in this read: rebuild what hyper gets.
            let got = got.to_vec();
            buf.set_filled(before);
            for seg in this.segments.drain(..) {
                match seg {
                    Segment::Pass(r) => this.out.extend_from_slice(&got[r]),
                    Segment::Head(bytes) => this.out.extend_from_slice(&bytes),
                }
            }
            if this.out.is_empty() {
                // Only part of a head so far: read on.
                continue;
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for UpstreamGuard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        this.framing.on_written(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        for b in crate::vectored::written(bufs, n) {
            this.framing.on_written(b);
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
