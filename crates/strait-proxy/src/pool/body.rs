//! The upstream response body, which hands its HTTP/1.1 connection back to the pool once the exchange is complete.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::H1Conn;
use crate::body::{BoxError, IdleTimer};

/// An upstream response body that returns its HTTP/1.1 connection when fully read.
pub struct PooledBody {
    inner: Incoming,
    idle: IdleTimer,
    ret: Option<(H1Conn, usize)>,
}

impl PooledBody {
    /// Wraps `inner`; `ret` is the connection to return (HTTP/1.1 only) and the pool's idle cap.
    pub fn new(inner: Incoming, idle: Duration, ret: Option<(H1Conn, usize)>) -> Self {
        PooledBody {
            inner,
            idle: IdleTimer::new(idle),
            ret,
        }
    }

    fn give_back(&mut self) {
        if let Some((conn, max)) = self.ret.take() {
            let pool = conn.slot.pool.clone();
            pool.give_back(conn, max);
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
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Pending => {
                if let Poll::Ready(e) = this.idle.poll_expired(cx) {
                    // A stalled upstream: the connection is in an unknown state, never reuse it.
                    this.ret = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) => {
                this.idle.progressed();
                if this.inner.is_end_stream() {
                    this.give_back();
                }
            }
            Poll::Ready(Some(Err(_))) => this.ret = None,
        }
        r.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Bodies that end without being polled (HEAD, 204, 304, empty) still free their connection.
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}
