//! The upstream response body, which hands its HTTP/1.1 connection back to the pool once the exchange is complete.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::{DirectBody, H1Conn};
use crate::body::{BoxError, IdleTimer};

/// An upstream response body as it was read: by hyper, or on the request's own task.
pub enum UpBody {
    /// Read by hyper's client.
    Hyper(Incoming),
    /// Read without hyper; it pools its own connection (see `direct`).
    Direct(DirectBody),
}

/// An upstream response body that returns its HTTP/1.1 connection when fully read.
pub struct PooledBody {
    inner: Source,
    idle: IdleTimer,
}

/// Where the bytes come from, and the hyper connection to return (with the pool's idle cap).
enum Source {
    Hyper(Incoming, Option<(H1Conn, usize)>),
    Direct(DirectBody),
}

impl PooledBody {
    /// Wraps `inner`; `ret` is the hyper connection to return (HTTP/1.1 only) and the pool's
    /// idle cap (a body read without hyper returns its own).
    pub fn new(inner: UpBody, idle: Duration, ret: Option<(H1Conn, usize)>) -> Self {
        PooledBody {
            inner: match inner {
                UpBody::Hyper(b) => Source::Hyper(b, ret),
                UpBody::Direct(b) => Source::Direct(b),
            },
            idle: IdleTimer::new(idle),
        }
    }

    fn give_back(&mut self) {
        if let Source::Hyper(_, ret) = &mut self.inner {
            if let Some((conn, max)) = ret.take() {
                let pool = conn.slot.pool.clone();
                pool.give_back(conn, max);
            }
        }
    }

    /// The connection is in an unknown state: it is never reused.
    fn abandon(&mut self) {
        match &mut self.inner {
            Source::Hyper(_, ret) => *ret = None,
            Source::Direct(b) => b.abandon(),
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let r = match &mut this.inner {
            Source::Hyper(b, _) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Source::Direct(b) => Pin::new(b).poll_frame(cx),
        };
        match &r {
            Poll::Pending => {
                if let Poll::Ready(e) = this.idle.poll_expired(cx) {
                    // A stalled upstream: the connection is in an unknown state, never reuse it.
                    this.abandon();
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) => {
                this.idle.progressed();
                if this.is_end_stream() {
                    this.give_back();
                }
            }
            Poll::Ready(Some(Err(_))) => this.abandon(),
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Source::Hyper(b, _) => b.is_end_stream(),
            Source::Direct(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Source::Hyper(b, _) => b.size_hint(),
            Source::Direct(b) => b.size_hint(),
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Bodies that end without being polled (HEAD, 204, 304, empty) still free their connection.
        if self.is_end_stream() {
            self.give_back();
        }
    }
}
