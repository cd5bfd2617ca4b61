//! Parked plain HTTP/1 connections held in a few sets per listener, each set driven by one task, instead of one task per connection.
//!
//! A parked, hibernated connection needs only its socket, its dormant guard state and what ties
//! it to the listener. As a task of its own it also cost the task (768 bytes with its future)
//! and a drain waiter. Here it is one entry of a `FuturesUnordered` (about 300 bytes), which
//! wakes only the entry whose socket or idle timer fired; drain closes a whole set at once. The
//! next bytes from the client spawn a task that serves the connection until it parks again.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::{stopped, ListenerCtx, TrackGuard};
use crate::h1guard::Dormant;
use crate::handler::ConnInfo;

/// Entries a set keeps room for between wake-ups (a burst's room is given back).
const SPARE: usize = 64;

/// A parked connection: everything its serving task held, without the task.
pub(super) struct Sleeper {
    pub ctx: Arc<ListenerCtx>,
    pub tcp: TcpStream,
    pub dormant: Dormant,
    pub info: Arc<ConnInfo>,
    pub held: (OwnedSemaphorePermit, TrackGuard),
}

/// The parked connections of one listener, in shards each driven by one task.
pub(super) struct Sleepers {
    shards: Box<[Arc<Shard>]>,
}

struct Shard {
    inbox: Mutex<Inbox>,
    waker: AtomicWaker,
}

#[derive(Default)]
struct Inbox {
    new: Vec<Sleeper>,
    /// The shard's task ended (drain): connections that park now close.
    closed: bool,
}

impl Sleepers {
    /// Starts one set per core; each closes its connections when `stop` turns true.
    pub(super) fn start(stop: &watch::Receiver<bool>) -> Arc<Sleepers> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
        let shards = (0..n)
            .map(|_| {
                let shard = Arc::new(Shard {
                    inbox: Mutex::new(Inbox::default()),
                    waker: AtomicWaker::new(),
                });
                tokio::spawn(run(shard.clone(), stop.clone()));
                shard
            })
            .collect();
        Arc::new(Sleepers { shards })
    }

    /// Hands a parked connection to a set, or closes it if drain has begun.
    pub(super) fn put(&self, s: Sleeper) {
        let shard = &self.shards[usize::from(s.info.client.port()) % self.shards.len()];
        let mut inbox = shard.inbox.lock().unwrap_or_else(|e| e.into_inner());
        if inbox.closed {
            drop(inbox);
            drop(Sleeping(Some(s)));
            return;
        }
        inbox.new.push(s);
        drop(inbox);
        shard.waker.wake();
    }
}

/// Drives one set: takes parked connections in, hands each one whose client sent bytes to a
/// new serving task, drops those whose idle timeout fired or that failed; on drain, serves
/// what has already arrived (as a connection with a task would) and closes the rest.
async fn run(shard: Arc<Shard>, stop: watch::Receiver<bool>) {
    let _closing = CloseOnEnd(shard.clone());
    let mut set = FuturesUnordered::new();
    let mut taken = Vec::new();
    let mut drain = stop.clone();
    let mut drained = pin!(stopped(&mut drain));
    poll_fn(|cx| {
        shard.waker.register(cx.waker());
        let draining = drained.as_mut().poll(cx).is_ready();
        {
            let mut inbox = shard.inbox.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut inbox.new, &mut taken);
        }
        set.extend(taken.drain(..).map(|s| Sleeping(Some(s))));
        taken.shrink_to(SPARE);
        // Readiness before drain: a request that has arrived is served, then the connection
        // closes; it is not reset with its bytes unread.
        while let Poll::Ready(Some(woke)) = set.poll_next_unpin(cx) {
            if let Some(s) = woke {
                tokio::spawn(s.ctx.clone().resume(s, stop.clone()));
            }
        }
        if draining {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    // Dropping the set closes the connections still in it (Sleeping's drop counts them out).
}

/// Closes a shard when its task ends, however it ends: connections that park later are closed,
/// not left in an inbox nobody empties (holding their slots and stalling drain).
struct CloseOnEnd(Arc<Shard>);

impl Drop for CloseOnEnd {
    fn drop(&mut self) {
        let left = {
            let mut inbox = self.0.inbox.lock().unwrap_or_else(|e| e.into_inner());
            inbox.closed = true;
            std::mem::take(&mut inbox.new)
        };
        left.into_iter().for_each(|s| drop(Sleeping(Some(s))));
    }
}

/// One parked connection in a set: ready with it when its client sends bytes; with nothing
/// when its idle timeout fires or its socket fails (it is then closed).
struct Sleeping(Option<Sleeper>);

impl Future for Sleeping {
    type Output = Option<Sleeper>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Sleeper>> {
        let s = self.0.as_mut().expect("polled after it ended");
        match crate::h1conn::poll_asleep(&s.tcp, &mut s.dormant, cx) {
            Poll::Ready(true) => Poll::Ready(self.0.take()),
            Poll::Ready(false) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Sleeping {
    fn drop(&mut self) {
        // A connection that ends here (idle timeout, failure, drain) leaves the open count.
        if let Some(s) = &self.0 {
            s.ctx.active.dec();
        }
    }
}
