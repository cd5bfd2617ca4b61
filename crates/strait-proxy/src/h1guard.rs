//! Strict HTTP/1 request-framing guard between the downstream TCP/TLS stream and hyper.
//!
//! hyper's HTTP/1 server is lenient where a gateway must be strict (bare LF line endings,
//! Content-Length beside Transfer-Encoding, no 408 on a slow head). [`H1Guard`] wraps the
//! downstream stream, sees every request head as raw bytes before hyper does, and refuses
//! anything malformed or ambiguous with its own status line and `connection: close`; valid bytes
//! reach hyper untouched and uncopied:
//!
//! ```ignore
//! let io = hyper_util::rt::TokioIo::new(H1Guard::new(stream, H1Limits::default()));
//! ```
//!
//! The parts:
//! - `head`: byte-at-a-time RFC 9112 head validator; `chunked`: chunked-body framing tracker;
//!   `framing`: the pure state machine `Sniff → Head → Body → Head …`, plus `Passthrough`.
//! - This file is the shell: it moves bytes, writes refusals and runs the two timers.
//!
//! Subtle parts:
//! - A read is validated whole before any of it is returned, so hyper never sees the end of a
//!   head that fails. A refused read is dropped entirely, including any earlier complete
//!   requests it held.
//! - A refusal is written to the stream from `poll_read`; afterwards hyper's writes are
//!   discarded and its reads see EOF, so nothing can follow our response.
//! - After a request with `Upgrade` or `CONNECT`, reads wait until hyper writes the final
//!   response: a `101` (or `2xx` to `CONNECT`) turns the stream into passthrough, anything else
//!   resumes checking. Bytes that arrived behind such a request are held until then.
//! - The idle timer measures time with neither reads nor writes, including time spent by a
//!   service that has not started its response.
//! - Parking (`park`): after `park_after` of quiet between requests the guard tells its connection
//!   task, through a shared [`ParkSignal`], that hyper may be ended without closing the stream.
//!   The same timer serves both deadlines, and the guard itself (framing state, timer) outlives
//!   the hyper connection.

mod chunked;
mod fields;
mod framing;
mod head;
mod park;
mod send;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_io;
#[cfg(test)]
mod tests_park;
#[cfg(test)]
mod tests_prop;

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub(crate) use self::chunked::Decoder;
pub(crate) use self::fields::{narrow, run_of, value_run, whole_line, Event, Fields, TCHAR};
pub(crate) use self::framing::H2_PREFACE;
use self::framing::{Fed, Framing};
pub(crate) use self::head::is_value_byte;
pub(crate) use self::head::Parser as HeadParser;
use self::park::Park;
pub use self::park::{Dormant, ParkHandle, ParkSignal};

/// Limits on request heads and connection timing.
#[derive(Clone, Copy, Debug)]
pub struct H1Limits {
    /// Longest request line (method, target, version), CRLF excluded; beyond it → 414.
    pub max_request_line: usize,
    /// Longest head (request line plus header lines); beyond it → 431. Also caps trailers.
    pub max_head: usize,
    /// Most header lines in one head; beyond it → 431.
    pub max_headers: usize,
    /// Time from the first byte of a head to its end; beyond it → 408.
    pub header_read_timeout: Duration,
    /// Time between requests with neither reads nor writes; beyond it the connection closes.
    pub idle_timeout: Duration,
    /// Quiet time between requests after which a guard with a [`ParkSignal`] offers to park.
    pub park_after: Duration,
    /// Longest time a write may stay blocked (the client takes no byte); then writes fail.
    pub send_timeout: Duration,
}

impl Default for H1Limits {
    fn default() -> Self {
        Self {
            // Matches common proxies (nginx large_client_header_buffers is 8 KiB per line).
            max_request_line: 8192,
            max_head: 65536,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            // Far above the gaps of a busy keep-alive connection (a few ms), far below human pauses.
            park_after: Duration::from_millis(100),
            // nginx's send_timeout.
            send_timeout: Duration::from_secs(60),
        }
    }
}

/// A refusal the guard sent, for its metrics and access log line.
#[derive(Clone, Copy, Debug)]
pub struct Refusal<'a> {
    /// Why.
    pub rejection: Rejection,
    /// The start of the refused request's request line (possibly cut short, or empty).
    pub line: &'a [u8],
    /// When.
    pub at: std::time::Instant,
    /// Refused inside a body whose head an earlier read had handed on: the request path has
    /// the request and accounts for it.
    pub in_body: bool,
}

/// Why the guard refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Malformed or ambiguous framing; the text is for logs, not for the peer.
    BadRequest(&'static str),
    /// Too many header lines, or too many head bytes.
    HeadersTooLarge,
    /// The request line is too long.
    UriTooLong,
    /// The head did not arrive within the header read timeout.
    HeaderTimeout,
}

// === impl Rejection ===

impl Rejection {
    /// The HTTP status code sent for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::BadRequest(_) => 400,
            Rejection::HeadersTooLarge => 431,
            Rejection::UriTooLong => 414,
            Rejection::HeaderTimeout => 408,
        }
    }

    fn phrase(&self) -> &'static str {
        match self {
            Rejection::BadRequest(_) => "Bad Request",
            Rejection::HeadersTooLarge => "Request Header Fields Too Large",
            Rejection::UriTooLong => "URI Too Long",
            Rejection::HeaderTimeout => "Request Timeout",
        }
    }

    /// The complete response written to the peer.
    fn response(&self) -> Vec<u8> {
        let body = format!("strait: {}\n", self.phrase());
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.status(),
            self.phrase(),
            body.len(),
        )
        .into_bytes()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.phrase())?;
        if let Rejection::BadRequest(reason) = self {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// Which deadline the timer is set to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Armed {
    Off,
    Idle,
    /// Header read timeout for the head with this number.
    Header(u64),
    /// Bound on writing our refusal to a peer that does not read.
    Refusal,
}

/// Progress writing a refusal.
#[derive(Debug)]
enum Refusing {
    Write { response: Vec<u8>, written: usize },
    Flush,
    Shutdown,
    Done,
}

/// Wraps a downstream stream and enforces strict HTTP/1 request framing; see the module docs.
#[derive(Debug)]
pub struct H1Guard<IO> {
    io: IO,
    limits: H1Limits,
    framing: Framing,
    /// Bytes read behind a possibly-switching request, not yet given to hyper. Allocated only then.
    held: Vec<u8>,
    held_pos: usize,
    rejection: Option<Rejection>,
    refusing: Option<Refusing>,
    /// Set when the idle timer ended the connection: reads see EOF.
    idle_closed: bool,
    /// Created on first use and then only reset, so requests cost no timer allocation.
    timer: Option<Pin<Box<Sleep>>>,
    armed: Armed,
    /// The last read or write (or creation): the idle timeout counts from it.
    last_activity: Instant,
    /// The last activity or resumption after a park: the park deadline counts from it. A
    /// wake-up that brings no bytes (a TLS record's first fragment) must not extend the idle
    /// timeout, or a client trickling partial records would keep its connection forever.
    park_from: Instant,
    /// hyper's read waiting for a response to a possibly-switching request.
    read_waker: Option<Waker>,
    /// Shared with the connection task when this connection may park.
    park: Option<Park>,
    /// The park deadline passed with no activity since: the timer now waits for the idle deadline.
    park_fired: bool,
    /// The last write was refused for now: hyper holds unwritten bytes.
    write_blocked: bool,
    /// Bytes a previous hyper read and left unprocessed, already checked; they are read first.
    replay: Bytes,
    /// When the refusal was decided (for its access log line).
    rejected_at: Option<std::time::Instant>,
    /// Heads handed on to hyper so far (a refused read hands on none of its bytes).
    passed_heads: u64,
    /// Since when writes have been blocked, and the timer for the send timeout.
    send_blocked: Option<Instant>,
    send_timer: Option<Pin<Box<Sleep>>>,
}

// === impl H1Guard ===

impl<IO> H1Guard<IO> {
    /// Wraps `io`, which must be at the very start of the (decrypted) byte stream.
    pub fn new(io: IO, limits: H1Limits) -> Self {
        Self {
            io,
            limits,
            framing: Framing::new(limits),
            held: Vec::new(),
            held_pos: 0,
            rejection: None,
            refusing: None,
            idle_closed: false,
            timer: None,
            armed: Armed::Off,
            last_activity: Instant::now(),
            park_from: Instant::now(),
            read_waker: None,
            park: None,
            park_fired: false,
            write_blocked: false,
            replay: Bytes::new(),
            rejected_at: None,
            passed_heads: 0,
            send_blocked: None,
            send_timer: None,
        }
    }

    /// The refusal sent on this connection, if any (for metrics and logs).
    pub fn rejection(&self) -> Option<Rejection> {
        self.rejection
    }

    /// The refusal sent on this connection, if any: see [`Refusal`].
    pub fn refused(&self) -> Option<Refusal<'_>> {
        Some(Refusal {
            rejection: self.rejection?,
            line: self.framing.request_line(),
            at: self.rejected_at?,
            in_body: self.framing.in_body() && self.passed_heads == self.framing.heads(),
        })
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The wrapped stream, for a parked connection's checks on it (no HTTP byte passes here).
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    fn reject(&mut self, rejection: Rejection) {
        self.rejection = Some(rejection);
        self.rejected_at = Some(std::time::Instant::now());
        self.refusing = Some(Refusing::Write {
            response: rejection.response(),
            written: 0,
        });
        self.arm(Armed::Refusal);
    }

    /// Points the timer at the deadline for `want`, unless it already is.
    fn arm(&mut self, want: Armed) {
        if want == self.armed {
            return;
        }
        self.armed = want;
        let now = Instant::now();
        let deadline = match want {
            Armed::Off => return,
            Armed::Idle => self.idle_due(),
            Armed::Header(_) | Armed::Refusal => now + self.limits.header_read_timeout,
        };
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    /// The deadline the framing state calls for.
    fn wanted(&self) -> Armed {
        if self.framing.is_passthrough() || self.framing.awaiting_response() {
            Armed::Off
        } else if let Some(head) = self.framing.reading_head() {
            Armed::Header(head)
        } else if self.framing.is_idle() {
            Armed::Idle
        } else {
            Armed::Off
        }
    }

    /// Polls the armed timer; true when its deadline has really passed.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.armed == Armed::Off {
            return false;
        }
        loop {
            let Some(timer) = &mut self.timer else {
                return false;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.armed != Armed::Idle {
                return true;
            }
            // Activity since arming pushes the deadline instead of resetting on every byte.
            let fired = timer.deadline();
            let due = self.idle_due();
            if due <= fired && self.park_due() {
                self.fire_park();
            } else if due <= fired {
                return true;
            }
            let due = self.idle_due();
            if let Some(timer) = &mut self.timer {
                timer.as_mut().reset(due);
            }
        }
    }

    fn note_activity(&mut self) {
        self.last_activity = Instant::now();
        self.park_from = self.last_activity;
        if self.park_fired {
            self.unfire_park();
        }
    }

    /// Moves queued bytes into `buf`; returns how many.
    fn take_held(&mut self, buf: &mut ReadBuf<'_>) -> usize {
        let n = buf.remaining().min(self.held.len() - self.held_pos);
        buf.put_slice(&self.held[self.held_pos..self.held_pos + n]);
        self.held_pos += n;
        if self.held_pos == self.held.len() {
            // Release it: holding is rare and the buffer can be as large as one read.
            self.held = Vec::new();
            self.held_pos = 0;
        }
        n
    }

    /// Records written bytes; wakes a waiting read when the response decided the protocol.
    fn wrote(&mut self, bytes: &[u8]) {
        if self.framing.on_written(bytes) {
            if let Some(waker) = self.read_waker.take() {
                waker.wake();
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> H1Guard<IO> {
    /// Drives the refusal out, then reports EOF; gives up quietly if the peer will not take it.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let io = Pin::new(&mut self.io);
            let step = match &mut self.refusing {
                None | Some(Refusing::Done) => return Poll::Ready(Ok(())),
                Some(Refusing::Write { response, written }) => {
                    match io.poll_write(cx, &response[*written..]) {
                        Poll::Ready(Ok(n)) if n > 0 => {
                            *written += n;
                            if *written < response.len() {
                                continue;
                            }
                            Poll::Ready(Refusing::Flush)
                        }
                        Poll::Ready(_) => Poll::Ready(Refusing::Done),
                        Poll::Pending => Poll::Pending,
                    }
                }
                Some(Refusing::Flush) => io.poll_flush(cx).map(|_| Refusing::Shutdown),
                Some(Refusing::Shutdown) => io.poll_shutdown(cx).map(|_| Refusing::Done),
            };
            match step {
                Poll::Ready(next) => self.refusing = Some(next),
                Poll::Pending if self.poll_expired(cx) => self.refusing = Some(Refusing::Done),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for H1Guard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusing.is_some() {
            return this.poll_refuse(cx);
        }
        if !this.replay.is_empty() {
            // Checked when first read: hand back as is, before anything newer.
            let n = buf.remaining().min(this.replay.len());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            return Poll::Ready(Ok(()));
        }
        if this.idle_closed {
            return Poll::Ready(Ok(()));
        }
        if this.framing.is_passthrough() {
            if this.held_pos < this.held.len() {
                this.take_held(buf);
                return Poll::Ready(Ok(()));
            }
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        if this.framing.awaiting_response() {
            this.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        this.arm(this.wanted());
        if this.poll_expired(cx) {
            if this.armed == Armed::Idle {
                this.idle_closed = true;
                return Poll::Ready(Ok(()));
            }
            this.reject(Rejection::HeaderTimeout);
            return this.poll_refuse(cx);
        }

        let before = buf.filled().len();
        let from_held = this.held_pos < this.held.len();
        if from_held {
            this.take_held(buf);
        } else {
            match Pin::new(&mut this.io).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        let got = buf.filled().len() - before;
        if got == 0 {
            return Poll::Ready(Ok(()));
        }
        this.note_activity();
        match this.framing.feed(&buf.filled()[before..]) {
            Fed::All => {}
            Fed::Hold(n) => {
                let tail = &buf.filled()[before + n..];
                if from_held {
                    // The tail is still in `held` (or was just released with it).
                    if this.held.is_empty() {
                        this.held = tail.to_vec();
                    } else {
                        this.held_pos -= tail.len();
                    }
                } else {
                    this.held = tail.to_vec();
                    this.held_pos = 0;
                }
                buf.set_filled(before + n);
            }
            Fed::Reject(rejection) => {
                buf.set_filled(before);
                this.reject(rejection);
                return this.poll_refuse(cx);
            }
        }
        this.passed_heads = this.framing.heads();
        // Arm now so the header timer counts from this read, not from hyper's next poll.
        let want = this.wanted();
        this.arm(want);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for H1Guard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refusing.is_some() {
            // Our refusal is the last thing the peer reads.
            return Poll::Ready(Ok(buf.len()));
        }
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        let result = this.track_send(cx, result);
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                this.note_activity();
                this.wrote(&buf[..n]);
            }
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refusing.is_some() {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        let result = this.track_send(cx, result);
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                this.note_activity();
                for buf in crate::vectored::written(bufs, n) {
                    this.wrote(buf);
                }
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusing.is_some() {
            return Poll::Ready(Ok(()));
        }
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.track_flush(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusing.is_some() {
            // Let the refusal out first; it ends with its own shutdown.
            return this.poll_refuse(cx);
        }
        if this.park.as_ref().is_some_and(|p| p.signal().is_parking()) {
            // hyper is being ended to park: the stream stays open for the next request.
            return Poll::Ready(Ok(()));
        }
        let result = Pin::new(&mut this.io).poll_shutdown(cx);
        this.track_flush(cx, result)
    }
}
