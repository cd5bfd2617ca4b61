//! Idle upstream HTTP/1.1 connections at rest: hyper's dispatcher and buffers are freed and only the socket is kept, watched by one task per pool.
//!
//! A live pooled connection holds hyper's dispatcher task, its request channel and its read and
//! write buffers: about 40 KB, for a socket that may wait minutes for its next request. After
//! [`REST_AFTER`] unused, the pool drops hyper's sender; the connection's driver (this module's
//! `drive`, which polls hyper without letting it shut the socket) then gets the socket back
//! and, when hyper and the response guard agree that it is between exchanges with nothing
//! unread, puts it in the pool bare. A request that takes it checks that nothing arrived
//! meanwhile and starts hyper afresh on it, which costs a few microseconds against a connect's
//! round trip. Resting sockets stay registered with the reactor, and one watcher task per pool
//! drops any the upstream closes (or writes to) as soon as it does, as the live driver would.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWriteExt, ReadBuf};

use super::{lock, ConnSlot, EndpointPool, H1Conn, Held, Idle, UpstreamIo};
use crate::body::ProxyBody;
use crate::upguard::{UpstreamGuard, MAX_READ_BUF};

/// How long a pooled HTTP/1.1 connection stays live while unused before it rests.
pub const REST_AFTER: Duration = Duration::from_millis(250);

/// How long closing a connection may take (a TLS close_notify to an upstream not reading).
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// A connection's socket with its response guard, which stays with it between exchanges.
pub(super) type Io = UpstreamGuard<UpstreamIo>;

/// A pooled connection at rest, or taken to be written and read without hyper: its socket and
/// its slot, nothing of hyper.
pub struct Resting {
    /// Boxed once per connection: it moves between the pool and requests by pointer.
    io: Box<Io>,
    slot: Arc<ConnSlot>,
}

impl Resting {
    /// A bare connection.
    pub(super) fn new(io: Box<Io>, slot: Arc<ConnSlot>) -> Self {
        Resting { io, slot }
    }

    /// Its socket and slot.
    pub(super) fn into_parts(self) -> (Box<Io>, Arc<ConnSlot>) {
        (self.io, self.slot)
    }

    /// Whether the socket has nothing to read (no data, no FIN, no error); registers `cx` to
    /// be woken when that changes.
    pub(super) fn quiet(&self, cx: &mut Context<'_>) -> bool {
        let tcp = match self.io.get_ref() {
            UpstreamIo::Tcp(s) => s,
            UpstreamIo::Tls(s) => s.get_ref().0,
        };
        // Not readable since a read last found it empty: nothing came, and no syscall is needed.
        if tcp.poll_read_ready(cx).is_pending() {
            return true;
        }
        let mut byte = [0u8; 1];
        tcp.poll_peek(cx, &mut ReadBuf::new(&mut byte)).is_pending()
    }

    /// The connection live again, unless the upstream closed or wrote to it meanwhile.
    pub(super) async fn wake(self) -> Option<H1Conn> {
        if !self.quiet(&mut Context::from_waker(Waker::noop())) {
            return None;
        }
        start_h1(self.io, self.slot).await.ok()
    }
}

/// Starts hyper's HTTP/1.1 client on `io` and spawns the connection's driver.
pub(super) async fn start_h1(io: Box<Io>, slot: Arc<ConnSlot>) -> hyper::Result<H1Conn> {
    slot.rest.store(false, Ordering::Release);
    let (tx, conn) = http1::Builder::new()
        .max_buf_size(MAX_READ_BUF)
        .handshake(TokioIo::new(*io))
        .await?;
    tokio::spawn(drive(conn, slot.clone()));
    Ok(H1Conn { tx, slot })
}

/// Runs hyper's side of one connection until it ends; then rests the socket if the pool asked
/// for that and the connection is cleanly between exchanges, and closes it otherwise.
async fn drive(mut conn: http1::Connection<TokioIo<Io>, ProxyBody>, slot: Arc<ConnSlot>) {
    let ended = poll_fn(|cx| {
        // A request that may switch protocols needs hyper's upgrade hand-over, which only the
        // shutting-down poll gives; the flag is set before the request reaches hyper.
        if slot.upgrade.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        conn.poll_without_shutdown(cx).map(Some)
    })
    .await;
    match ended {
        None => {
            // For the rest of the connection's life, even if the upstream refused the switch:
            // such a connection is closed, not rested, when the pool would rest it.
            let _ = conn.with_upgrades().await;
        }
        Some(Ok(())) => {
            let parts = conn.into_parts();
            let guard = parts.io.into_inner();
            let clean = parts.read_buf.is_empty() && guard.is_at_rest();
            if clean && slot.rest.load(Ordering::Acquire) {
                let mut guard = guard;
                guard.shed();
                let pool = slot.pool.clone();
                let r = Resting {
                    io: Box::new(guard),
                    slot,
                };
                pool.shelve(r, Shelf::BehindLive, usize::MAX);
            } else {
                let mut io = guard.into_inner();
                let _ = tokio::time::timeout(CLOSE_WITHIN, io.shutdown()).await;
            }
        }
        Some(Err(_)) => {}
    }
}

/// Where a bare connection goes in the idle list (taken from the back).
pub(super) enum Shelf {
    /// Taken next: a connection whose exchange just ended.
    Next,
    /// Behind the live ones: a connection the pool sent to rest.
    BehindLive,
}

impl EndpointPool {
    /// Puts a bare connection in the idle list under the watcher, unless `max` are idle already
    /// or the upstream closed or wrote to it.
    pub(super) fn shelve(self: &Arc<Self>, r: Resting, shelf: Shelf, max: usize) {
        let watcher = {
            let idle = lock(&self.idle);
            if idle.conns.len() >= max {
                return;
            }
            idle.watcher.clone()
        };
        // The check may read the socket: outside the lock.
        if let Some(w) = &watcher {
            if !r.quiet(&mut Context::from_waker(w)) {
                return;
            }
        }
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        if idle.watcher.is_none() {
            // The watcher's first poll registers every resting socket.
            idle.watcher = Some(Waker::noop().clone());
            tokio::spawn(watch(self.clone()));
        }
        let held = Held::Resting(r);
        match shelf {
            Shelf::Next => idle.conns.push_back(Idle { held, since: now }),
            Shelf::BehindLive => {
                // Newest resting first once the live ones are taken: the oldest then reach the
                // idle timeout and the pool shrinks back after a burst, and no request is sent
                // on the connection nearest the upstream's own idle close.
                let at = idle
                    .conns
                    .iter()
                    .position(|c| matches!(c.held, Held::Live(_)))
                    .unwrap_or(idle.conns.len());
                // It was unused for at least REST_AFTER when the pool sent it to rest.
                let since = now.checked_sub(REST_AFTER).unwrap_or(now);
                idle.conns.insert(at, Idle { held, since });
            }
        }
        drop(idle);
        self.freed.notify_one();
    }
}

/// Drops the pool's resting connections that the upstream closes or writes to, as they do;
/// ends when none rests.
async fn watch(pool: Arc<EndpointPool>) {
    poll_fn(|cx| {
        let mut closed = Vec::new();
        let mut idle = lock(&pool.idle);
        let mut resting = 0;
        for _ in 0..idle.conns.len() {
            let Some(c) = idle.conns.pop_front() else {
                break;
            };
            if let Held::Resting(r) = &c.held {
                if !r.quiet(cx) {
                    closed.push(c);
                    continue;
                }
                resting += 1;
            }
            idle.conns.push_back(c);
        }
        let done = resting == 0;
        idle.watcher = (!done).then(|| cx.waker().clone());
        drop(idle);
        drop(closed);
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}
