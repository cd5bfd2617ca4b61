//! The guard's side of parking: ending an idle hyper connection without closing the stream.
//!
//! Between requests, once the stream has had neither reads nor writes for `park_after`, the
//! guard sets [`ParkSignal`]'s ready flag. The connection task (`crate::h1conn`) reads it after
//! each poll of hyper and, when no response is outstanding either, ends hyper: while the signal
//! says `parking`, the guard skips hyper's shutdown of the stream. The task keeps the guard, so
//! the framing state and the timer carry on; it waits for the stream to become readable (the
//! guard's timer now runs the idle timeout, [`H1Guard::poll_idle_timeout`]) and serves the next
//! request with a fresh hyper connection, which first reads what the previous one had read
//! and not processed ([`H1Guard::replay`]).
//!
//! The park deadline and the idle deadline share the guard's one timer, so parking costs no timer
//! allocation and, on a busy connection, no timer reset beyond those the guard already does.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use super::framing::{self, Framing};
use super::{Armed, H1Guard, H1Limits};

/// Parking state shared by a guard, its connection task and the service's responses.
///
/// Every access happens on the connection's own task (hyper polls the guard and the service
/// inline), so relaxed atomics suffice: task polls are ordered by the runtime.
#[derive(Debug, Default)]
pub struct ParkSignal {
    /// The guard saw `park_after` of quiet between requests, with nothing left to write.
    ready: AtomicBool,
    /// The task is ending hyper to park: the guard must not shut the stream down.
    parking: AtomicBool,
    /// Responses the service started that hyper has not yet taken completely.
    inflight: AtomicU32,
    /// The service has been called on this connection at least once.
    served: AtomicBool,
}

// === impl ParkSignal ===

impl ParkSignal {
    /// Whether the connection may be parked now: quiet, and no response outstanding.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.inflight.load(Ordering::Relaxed) == 0
    }

    /// Whether the task is ending hyper to park.
    pub fn is_parking(&self) -> bool {
        self.parking.load(Ordering::Relaxed)
    }

    /// Marks the start (true) or the end (false) of ending hyper for a park.
    pub fn set_parking(&self, parking: bool) {
        self.parking.store(parking, Ordering::Relaxed);
        if !parking {
            self.ready.store(false, Ordering::Relaxed);
        }
    }

    /// A response has begun (the service was called); pair with [`ParkSignal::response_done`].
    pub fn response_started(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        self.served.store(true, Ordering::Relaxed);
    }

    /// Whether a request has reached the service on this connection.
    pub fn has_served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    /// hyper has taken the whole response (or dropped it).
    pub fn response_done(&self) {
        self.inflight.fetch_sub(1, Ordering::Relaxed);
    }

    fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

impl AsRef<ParkSignal> for ParkSignal {
    fn as_ref(&self) -> &ParkSignal {
        self
    }
}

/// How a guard reaches its [`ParkSignal`]: usually the connection's shared info, which embeds it,
/// so parking adds no allocation.
pub type ParkHandle = Arc<dyn AsRef<ParkSignal> + Send + Sync>;

/// A parked connection's guard, put away without its stream: what the next guard over the same
/// stream needs, about a fifth of a live guard's size (see [`H1Guard::hibernate`]).
///
/// A guard is a few hundred bytes, mostly framing state for a head in progress; a parked
/// connection has none in progress, so its task need not hold one.
#[derive(Debug)]
pub struct Dormant {
    framing: framing::Dormant,
    last_activity: Instant,
    passed_heads: u64,
    /// Armed at the idle deadline, which nothing moves while the connection sleeps.
    timer: Pin<Box<Sleep>>,
    park: Option<Park>,
}

// === impl Dormant ===

impl Dormant {
    /// Ready once the idle timeout has passed: the connection is then closed.
    pub fn poll_idle_timeout(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.timer.as_mut().poll(cx)
    }
}

/// A [`ParkHandle`] with a `Debug` impl, as the guard derives `Debug`.
pub(super) struct Park(ParkHandle);

// === impl Park ===

impl Park {
    pub(super) fn signal(&self) -> &ParkSignal {
        (*self.0).as_ref()
    }
}

impl fmt::Debug for Park {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.signal(), f)
    }
}

// === impl H1Guard (parking) ===

impl<IO> H1Guard<IO> {
    /// Lets this guard signal when its connection may park (after `park_after` of quiet).
    pub fn set_park(&mut self, handle: ParkHandle) {
        self.park = Some(Park(handle));
    }

    /// Gives back bytes hyper read and did not process; they are read again before anything else.
    ///
    /// They must be exactly what this guard passed to hyper last (it checked them already). Only
    /// the bytes are kept: `bytes` usually views hyper's whole read buffer, which must not stay
    /// alive with a parked connection.
    pub fn replay(&mut self, bytes: &[u8]) {
        debug_assert!(self.replay.is_empty(), "replay over unread replay");
        if !bytes.is_empty() {
            self.replay = Bytes::copy_from_slice(bytes);
        }
    }

    /// Whether a read would return bytes without touching the stream.
    pub fn has_buffered(&self) -> bool {
        !self.replay.is_empty() || self.held_pos < self.held.len()
    }

    /// Puts bytes read from the stream before the guard existed in front of it; they are checked
    /// as they are read, like any other.
    pub fn unread(&mut self, bytes: &[u8]) {
        debug_assert!(!self.has_buffered(), "unread over buffered bytes");
        self.held = bytes.to_vec();
        self.held_pos = 0;
    }

    /// The connection is parked, or not yet served: from now on only the idle timeout applies,
    /// until [`H1Guard::resume`].
    pub fn parked(&mut self) {
        if !self.park_fired {
            self.park_fired = true;
            // Re-arm at the idle deadline on the next poll.
            self.arm(Armed::Off);
        }
    }

    /// Serving resumes after a park: the park deadline counts from now again (the idle timeout
    /// still from the last bytes read or written).
    pub fn resume(&mut self) {
        self.park_from = Instant::now();
        self.unfire_park();
    }

    /// Whether [`H1Guard::hibernate`] keeps everything this guard holds: the stream sits
    /// between requests with nothing read ahead, pending, refused or blocked.
    pub fn can_hibernate(&self) -> bool {
        self.quiet()
            && self.rejection.is_none()
            && self.read_waker.is_none()
            && self.send_blocked.is_none()
    }

    /// Between requests with nothing read ahead, awaited, refused or blocked: what parking
    /// needs on the guard's side.
    fn quiet(&self) -> bool {
        self.framing.is_idle()
            && !self.framing.awaiting_response()
            && !self.has_buffered()
            && !self.write_blocked
            && self.refusing.is_none()
            && !self.idle_closed
    }

    /// Parks the connection and puts the guard away: its stream, and what a guard made by
    /// [`H1Guard::wake`] continues from. `None` (the guard dropped, closing a plain stream)
    /// unless [`H1Guard::can_hibernate`].
    pub fn hibernate(mut self) -> Option<(IO, Dormant)> {
        if !self.can_hibernate() {
            return None;
        }
        let framing = self.framing.dormant()?;
        self.parked();
        // The timer goes exactly to the idle deadline (created if new): armed, it may sit
        // earlier, as activity moves the deadline without resetting it.
        self.arm(Armed::Off);
        self.arm(Armed::Idle);
        let timer = self.timer.take()?;
        let dormant = Dormant {
            framing,
            last_activity: self.last_activity,
            passed_heads: self.passed_heads,
            timer,
            park: self.park.take(),
        };
        Some((self.io, dormant))
    }

    /// A guard over `io` where [`H1Guard::hibernate`] left off, still parked: call
    /// [`H1Guard::resume`] before serving.
    pub fn wake(io: IO, limits: H1Limits, d: Dormant) -> Self {
        let mut guard = Self::new(io, limits);
        guard.framing = Framing::wake(limits, d.framing);
        guard.last_activity = d.last_activity;
        guard.passed_heads = d.passed_heads;
        guard.timer = Some(d.timer);
        guard.armed = Armed::Idle;
        guard.park_fired = true;
        guard.park = d.park;
        guard
    }

    /// Polls the idle timeout while no hyper connection reads; ready once it has passed.
    pub fn poll_idle_timeout(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let want = self.wanted();
        self.arm(want);
        if self.poll_expired(cx) && self.armed == Armed::Idle {
            self.idle_closed = true;
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// The wrapped stream, for a connection that turned out not to be HTTP/1.
    pub fn into_inner(self) -> IO {
        self.io
    }

    /// The next deadline while idle: parking first, then the idle timeout.
    pub(super) fn idle_due(&self) -> Instant {
        // Keep-alive is earned by a first request: before it, silence gets only the header time.
        let idle = if self.framing.heads() == 0 {
            self.limits.header_read_timeout
        } else {
            self.limits.idle_timeout
        };
        let idle_at = self.last_activity + idle;
        if self.park_due() {
            (self.park_from + self.limits.park_after).min(idle_at)
        } else {
            idle_at
        }
    }

    /// Whether the park deadline is still ahead of the idle deadline.
    pub(super) fn park_due(&self) -> bool {
        self.park.is_some() && !self.park_fired
    }

    /// The park deadline passed: signal readiness if nothing is in progress on the guard's side.
    pub(super) fn fire_park(&mut self) {
        self.park_fired = true;
        let quiet = self.quiet();
        if let Some(park) = &self.park {
            park.signal().set_ready(quiet);
        }
    }

    /// Activity after the park deadline: withdraw readiness and aim the timer at parking again.
    pub(super) fn unfire_park(&mut self) {
        self.park_fired = false;
        if let Some(park) = &self.park {
            park.signal().set_ready(false);
        }
        if self.armed == Armed::Idle {
            // The park deadline is earlier than the idle one the timer waits for.
            self.arm(Armed::Off);
        }
    }

    /// Tracks whether hyper's last write was refused for now (it then holds unwritten bytes).
    pub(super) fn note_write<T>(&mut self, result: &Poll<io::Result<T>>) {
        let blocked = result.is_pending();
        if blocked != self.write_blocked {
            self.write_blocked = blocked;
            if blocked && self.park_fired {
                self.unfire_park();
            }
        }
    }
}
