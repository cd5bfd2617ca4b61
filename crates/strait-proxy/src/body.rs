//! The one body type that travels through the proxy in both directions, without boxing.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use std::sync::Arc;

use strait_observe::{Observer, RequestRecord};

use crate::pool::{ConnSlot, PooledBody};
use crate::replay::ReplayBody;

/// Boxed error for body streams (only allocated on failure).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body: streamed from a peer, or produced by Strait itself.
pub enum ProxyBody {
    /// No body.
    Empty,
    /// A complete body (direct responses, errors).
    Full(Option<Bytes>),
    /// Streamed from the downstream client (idle timeout, optional size cap).
    Downstream(Streamed),
    /// Streamed from the downstream client and kept for a retry (see `replay`).
    Replay(ReplayBody),
    /// Streamed from an upstream; returns its connection to the pool at the end.
    Upstream(PooledBody),
    /// A response whose end finishes the request's record (access log, spans); boxed, as it
    /// exists only when observability is configured.
    Observed(Box<Observed>),
    /// Passed through body filters (only when a filter asks for its body).
    Filtered(Box<crate::filtered::Filtered>),
    /// A response whose end runs the chain's end hooks (only when a filter has one).
    Ended(Box<crate::filtered::Ended>),
}

impl ProxyBody {
    /// Tells `slot` when this request body has been sent completely (at once if it is empty),
    /// so its connection is pooled only after both directions end.
    pub fn notify_sent(&mut self, slot: &Arc<ConnSlot>) {
        match self {
            ProxyBody::Downstream(b) if !b.inner.is_end_stream() => b.slot = Some(slot.clone()),
            ProxyBody::Replay(b) => b.notify_sent(slot),
            ProxyBody::Filtered(b) => b.notify_sent(slot),
            _ => slot.request_sent(),
        }
    }

    /// A complete body from bytes.
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        if b.is_empty() {
            ProxyBody::Empty
        } else {
            ProxyBody::Full(Some(b))
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Downstream(b) => Pin::new(b).poll_frame(cx),
            ProxyBody::Replay(b) => Pin::new(b).poll_frame(cx),
            ProxyBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            ProxyBody::Observed(b) => Pin::new(&mut **b).poll_frame(cx),
            ProxyBody::Filtered(b) => Pin::new(&mut **b).poll_frame(cx),
            ProxyBody::Ended(b) => Pin::new(&mut **b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Downstream(b) => b.inner.is_end_stream(),
            ProxyBody::Replay(b) => b.is_end_stream(),
            ProxyBody::Upstream(b) => b.is_end_stream(),
            ProxyBody::Observed(b) => b.inner.is_end_stream(),
            ProxyBody::Filtered(b) => b.is_end_stream(),
            ProxyBody::Ended(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Downstream(b) => b.inner.size_hint(),
            ProxyBody::Replay(b) => b.size_hint(),
            ProxyBody::Upstream(b) => b.size_hint(),
            ProxyBody::Observed(b) => b.inner.size_hint(),
            ProxyBody::Filtered(b) => b.size_hint(),
            ProxyBody::Ended(b) => b.size_hint(),
        }
    }
}

/// A streamed body whose peer stopped sending for longer than the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("body idle for longer than {0:?}")]
pub struct IdleTimeout(pub Duration);

/// A body filter stopped the stream; the reason is its label.
#[derive(Debug, thiserror::Error)]
#[error("body rejected by a filter: {0}")]
pub struct BodyAborted(pub &'static str);

/// A request body larger than `limits.max_request_body`.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// The client's request body failed (it closed mid-body, or the HTTP/1 guard refused its
/// framing): the client's fault, not the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("request body from the client failed: {0}")]
pub struct ClientBodyError(#[source] pub BoxError);

/// Whether a failed upstream exchange was caused by the client's request body.
pub fn client_body_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<ClientBodyError>() {
            return true;
        }
        src = s.source();
    }
    false
}

/// Idle-time enforcement for a streamed body; the timer is only created once the peer makes us wait.
pub struct IdleTimer {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    /// A timer allowing `limit` between frames.
    pub fn new(limit: Duration) -> Self {
        IdleTimer { limit, sleep: None }
    }

    /// Call after the inner body made progress.
    pub fn progressed(&mut self) {
        if let Some(s) = self.sleep.as_mut() {
            s.as_mut().reset(Instant::now() + self.limit);
        }
    }

    /// Call when the inner body is pending: arms the timer, reports expiry.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<IdleTimeout> {
        let limit = self.limit;
        let s = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        s.as_mut().poll(cx).map(|()| IdleTimeout(limit))
    }
}

/// The downstream request body as the connection delivers it: hyper's for HTTP/1 and HTTP/2,
/// an HTTP/3 request stream's. One enum rather than a box, so HTTP/1 and HTTP/2 pay nothing.
pub enum Downstream {
    /// HTTP/1 or HTTP/2.
    Hyper(Incoming),
    /// HTTP/3 (boxed: the stream state is large, and only this path should carry it).
    H3(Box<crate::h3conn::H3Body>),
}

impl From<Incoming> for Downstream {
    fn from(b: Incoming) -> Self {
        Downstream::Hyper(b)
    }
}

impl Body for Downstream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Downstream::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Downstream::H3(b) => Pin::new(&mut **b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Downstream::Hyper(b) => b.is_end_stream(),
            Downstream::H3(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Downstream::Hyper(b) => b.size_hint(),
            Downstream::H3(b) => b.size_hint(),
        }
    }
}

/// The downstream request body on its way to an upstream.
pub struct Streamed {
    inner: Downstream,
    idle: IdleTimer,
    remaining: Option<u64>,
    /// Told when the body has been sent completely.
    slot: Option<Arc<ConnSlot>>,
}

impl Streamed {
    /// Wraps `inner`; `max` = 0 means no size cap.
    pub fn new(inner: Downstream, idle: Duration, max: u64) -> Self {
        Streamed {
            inner,
            idle: IdleTimer::new(idle),
            remaining: (max > 0).then_some(max),
            slot: None,
        }
    }

    fn sent(&mut self) {
        if let Some(s) = self.slot.take() {
            s.request_sent();
        }
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => match this.idle.poll_expired(cx) {
                Poll::Ready(e) => Poll::Ready(Some(Err(e.into()))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.progressed();
                if let (Some(rem), Some(data)) = (this.remaining.as_mut(), frame.data_ref()) {
                    let n = data.len() as u64;
                    if n > *rem {
                        return Poll::Ready(Some(Err(BodyTooLarge(*rem).into())));
                    }
                    *rem -= n;
                }
                if this.inner.is_end_stream() {
                    this.sent();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.sent();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(ClientBodyError(e))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts the bytes sent and finishes the request record when it ends,
/// fails, or is dropped (client gone), whichever comes first.
pub struct Observed {
    inner: ProxyBody,
    record: Option<RequestRecord>,
    observer: Arc<Observer>,
}

impl Observed {
    /// Wraps the response body `inner` of the request described by `record`.
    pub fn new(inner: ProxyBody, record: RequestRecord, observer: Arc<Observer>) -> Self {
        Observed {
            inner,
            record: Some(record),
            observer,
        }
    }

    fn finish(&mut self) {
        if let Some(r) = self.record.take() {
            self.observer.finish(r);
        }
    }
}

impl Body for Observed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(rec), Some(d)) = (this.record.as_mut(), frame.data_ref()) {
                    rec.bytes_out += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(_) => this.finish(),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        self.finish();
    }
}
