//! HTTP/2 downstream connection guard: wraps the (decrypted) stream under hyper's HTTP/2 server
//! and enforces what the h2 crate has no knob for, from frame headers alone.
//!
//! - `header_read_timeout` for the first request (a connection that sent only the preface, or
//!   HEADERS without END_HEADERS, is closed) and for any header block left unfinished;
//! - `idle_timeout` with no stream open: the connection is asked to close gracefully (GOAWAY),
//!   and closed if it has not after `ping_timeout`; the client's PINGs and SETTINGS do not count;
//! - `send_timeout`: a stream whose flow-control window the client has kept at zero is reset
//!   (`CANCEL` both ways, so h2 drops it and hyper drops the response body, which closes the
//!   upstream connection); a connection-level zero window, or a socket write that makes no
//!   progress, closes the connection;
//! - a control-frame budget (`state::FLOOD_BURST` frames plus `FLOOD_REFILL_PER_SEC` a second,
//!   plus what requests and data earn): a flood gets `GOAWAY(ENHANCE_YOUR_CALM)` and a close;
//! - refusals the codec sends (`RST_STREAM`/`GOAWAY` with a client-fault code) are counted.
//!
//! Bytes pass unchanged; those to the client are gathered by `coalesce` so that the responses
//! ready in one scheduler round leave in one write. The guard puts frames of its own in only
//! at frame boundaries: `RST_STREAM` towards h2 as if the client had sent it, and
//! `RST_STREAM`/`GOAWAY` towards the client. The parts: `scan` (frame boundaries), `state`
//! (the pure decisions).

mod coalesce;
mod scan;
mod state;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use self::coalesce::Coalesce;
pub(crate) use self::state::H2Limits;
use self::state::{Action, Close, H2State};
use crate::reject::{Reason, Reporter};

/// `CANCEL` (RFC 9113 §7).
const CANCEL: u32 = 0x8;
/// `ENHANCE_YOUR_CALM` (RFC 9113 §7).
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// Frames of our own waiting for a boundary in one direction.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    pos: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    fn push(&mut self, frame: &[u8]) {
        if self.is_empty() {
            self.bytes.clear();
            self.pos = 0;
        }
        self.bytes.extend_from_slice(frame);
    }

    fn rest(&self) -> &[u8] {
        &self.bytes[self.pos..]
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
        if self.is_empty() {
            // Rare: let the allocation go.
            self.bytes = Vec::new();
            self.pos = 0;
        }
    }
}

/// Wraps a downstream HTTP/2 stream; see the module docs.
pub(crate) struct H2Guard<IO> {
    io: Coalesce<IO>,
    state: H2State,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    /// When the state last acted on its deadlines.
    handled: Option<Instant>,
    /// Whether the timer has been polled (so a wake-up is registered).
    polled: bool,
    to_server: Pending,
    to_client: Pending,
    closed: bool,
    reporter: Reporter,
    /// Notified when the connection has been idle for `idle_timeout`: the connection task then
    /// asks hyper for a graceful close.
    idle: Arc<Notify>,
}

// === impl H2Guard ===

impl<IO> H2Guard<IO> {
    /// Wraps `io`, a connection accepted at `created` whose next byte is the client preface.
    pub(crate) fn new(
        io: IO,
        limits: H2Limits,
        created: Instant,
        reporter: Reporter,
        idle: Arc<Notify>,
    ) -> Self {
        let state = H2State::new(limits, created);
        let first = state.deadline().unwrap_or(created);
        Self {
            io: Coalesce::new(io),
            state,
            timer: Box::pin(tokio::time::sleep_until(first)),
            armed: Some(first),
            handled: None,
            polled: false,
            to_server: Pending::default(),
            to_client: Pending::default(),
            closed: false,
            reporter,
            idle,
        }
    }

    /// Polls the timer at the state's next deadline; ready when it has passed.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(mut due) = self.state.deadline() else {
            return Poll::Pending;
        };
        // A deadline that was already due when the state last acted must not make us spin.
        if self.handled.is_some_and(|h| due <= h) {
            due = self
                .handled
                .map_or(due, |h| h + std::time::Duration::from_millis(1));
        }
        if self.armed != Some(due) {
            self.timer.as_mut().reset(due);
            self.armed = Some(due);
        }
        self.polled = true;
        self.timer.as_mut().poll(cx)
    }

    /// After the state changed: keeps the timer at its next deadline, registered with this
    /// task, and has the task polled again when a deadline has already passed.
    fn rearm(&mut self, cx: &mut Context<'_>) {
        if self.polled && self.state.deadline() == self.armed {
            // Unchanged, and this task already waits on it.
            return;
        }
        if self.poll_timer(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
    }

    /// Acts on every deadline that has passed.
    fn on_timeout(&mut self, now: Instant) {
        self.handled = Some(now);
        loop {
            match self.state.on_timeout(now) {
                Action::None => return,
                Action::Idle => self.idle.notify_one(),
                Action::Reset(streams) => {
                    tracing::debug!(
                        ?streams,
                        "h2 client took no data for send_timeout: resetting"
                    );
                    for id in streams {
                        let rst = scan::frame(scan::ty::RST_STREAM, 0, id, &CANCEL.to_be_bytes());
                        self.to_server.push(&rst);
                        self.to_client.push(&rst);
                    }
                }
                Action::Close(why) => return self.close(why),
            }
        }
    }

    fn close(&mut self, why: Close) {
        tracing::debug!(?why, "closing h2 connection");
        match why {
            Close::HeaderTimeout { partial: true } => self.reporter.reject(Reason::HeaderTimeout),
            Close::Flood => {
                self.reporter.reject(Reason::H2Flood);
                let mut payload = self.state.last_stream().to_be_bytes().to_vec();
                payload.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
                self.to_client
                    .push(&scan::frame(scan::ty::GOAWAY, 0, 0, &payload));
            }
            _ => {}
        }
        self.closed = true;
    }
}

impl<IO: AsyncWrite + Unpin> H2Guard<IO> {
    /// Writes our own frames to the client when the server's stream is at a frame boundary.
    /// Ready when none are left.
    fn poll_to_client(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.to_client.is_empty() && self.state.write_at_boundary() {
            match Pin::new(&mut self.io).poll_write(cx, self.to_client.rest()) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.to_client.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.to_client.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// A closed connection's best-effort `GOAWAY`, with whatever the client was still owed,
    /// written now: h2 will not flush again.
    fn poll_last_words(&mut self, cx: &mut Context<'_>) {
        if self.poll_to_client(cx).is_ready() {
            let _ = self.io.poll_drain(cx);
        }
    }

    /// Common path of the write calls: our frames first, then `write` (the server's bytes).
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut Coalesce<IO>>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if self.closed {
            self.poll_last_words(cx);
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let result = match self.poll_to_client(cx) {
            Poll::Ready(Ok(())) => write(Pin::new(&mut self.io), cx),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.state.write_at_boundary() => Poll::Pending,
            // Our frames wait for the end of the frame the server is writing.
            Poll::Pending => write(Pin::new(&mut self.io), cx),
        };
        if result.is_pending() {
            if let Some(e) = self.write_blocked(cx) {
                return Poll::Ready(Err(e));
            }
        }
        result
    }

    /// A write could not proceed: runs the send timeout; the error when it closed the connection.
    fn write_blocked(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.state.on_write_blocked(Instant::now());
        if self.poll_timer(cx).is_ready() {
            self.on_timeout(Instant::now());
            if self.closed {
                return Some(io::ErrorKind::TimedOut.into());
            }
            // New frames of ours, or a reset: let the connection task go round again.
            cx.waker().wake_by_ref();
        }
        None
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for H2Guard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.closed {
                this.poll_last_words(cx);
                return Poll::Ready(Ok(()));
            }
            if !this.to_server.is_empty() && this.state.read_at_boundary() {
                let rest = this.to_server.rest();
                let n = rest.len().min(buf.remaining());
                buf.put_slice(&rest[..n]);
                this.to_server.advance(n);
                return Poll::Ready(Ok(()));
            }
            // Our frames for the client go out even when the server has nothing to write.
            let _ = this.poll_to_client(cx);
            let before = buf.filled().len();
            match Pin::new(&mut this.io).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {
                    let got = &buf.filled()[before..];
                    if got.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    if let Err(why) = this.state.on_read(got, Instant::now()) {
                        buf.set_filled(before);
                        this.close(why);
                        continue;
                    }
                    this.rearm(cx);
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            if this.poll_timer(cx).is_pending() {
                return Poll::Pending;
            }
            this.on_timeout(Instant::now());
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for H2Guard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = this.poll_write_with(cx, |io, cx| io.poll_write(cx, buf));
        if let Poll::Ready(Ok(n)) = result {
            let mut report = |r| this.reporter.reject(r);
            this.state.on_write(&buf[..n], Instant::now(), &mut report);
            this.rearm(cx);
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = this.poll_write_with(cx, |io, cx| io.poll_write_vectored(cx, bufs));
        if let Poll::Ready(Ok(n)) = result {
            let now = Instant::now();
            let mut report = |r| this.reporter.reject(r);
            for b in crate::vectored::written(bufs, n) {
                this.state.on_write(b, now, &mut report);
            }
            this.rearm(cx);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = if this.poll_to_client(cx).is_pending() && this.state.write_at_boundary() {
            Poll::Pending
        } else {
            Pin::new(&mut this.io).poll_flush(cx)
        };
        if result.is_pending() {
            if let Some(e) = this.write_blocked(cx) {
                return Poll::Ready(Err(e));
            }
        }
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
