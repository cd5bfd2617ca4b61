//! Bodies passed through the body filters of a route's chain, and the wrapper that runs the chain's end hooks when a response ends.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use strait_core::{BodyFilter, BodyFlow, Chain, ChainRun, ErrorKind, Outcome, Side};

use crate::body::{BodyAborted, BoxError, ProxyBody};

/// A body whose data chunks go through body filters, in order, before being passed on.
pub struct Filtered {
    inner: ProxyBody,
    filters: Vec<Box<dyn BodyFilter>>,
    /// The end was passed through the filters (they flushed what they held).
    flushed: bool,
    /// Every filter passes the data on unchanged, so the length is the inner body's.
    observers: bool,
}

impl Filtered {
    /// Runs `inner`'s data through `filters` (not empty).
    pub fn new(inner: ProxyBody, filters: Vec<Box<dyn BodyFilter>>) -> Self {
        let observers = filters.iter().all(|f| f.observes_only());
        Filtered {
            inner,
            filters,
            flushed: false,
            observers,
        }
    }

    /// Tells `slot` when the body underneath has been read completely.
    pub fn notify_sent(&mut self, slot: &std::sync::Arc<crate::pool::ConnSlot>) {
        self.inner.notify_sent(slot);
    }

    /// Passes `data` through every filter; `None` while one holds it.
    fn run(&mut self, data: Bytes, end: bool) -> Result<Option<Bytes>, BodyAborted> {
        let mut data = data;
        for f in &mut self.filters {
            match f.on_data(data, end) {
                BodyFlow::Pass(d) => data = d,
                // Held: later filters see it when the holder passes it on.
                BodyFlow::Hold if !end => return Ok(None),
                BodyFlow::Hold => data = Bytes::new(),
                BodyFlow::Abort(reason) => return Err(BodyAborted(reason)),
            }
        }
        Ok(Some(data))
    }
}

impl Body for Filtered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.flushed {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.flushed = true;
                    match this.run(Bytes::new(), true) {
                        Err(e) => return Poll::Ready(Some(Err(e.into()))),
                        Ok(Some(d)) if !d.is_empty() => {
                            return Poll::Ready(Some(Ok(Frame::data(d))))
                        }
                        Ok(_) => return Poll::Ready(None),
                    }
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = match frame.into_data() {
                        Ok(data) => {
                            let end = this.inner.is_end_stream();
                            this.flushed = end;
                            match this.run(data, end) {
                                Err(e) => return Poll::Ready(Some(Err(e.into()))),
                                Ok(None) => continue,
                                Ok(Some(d)) => Frame::data(d),
                            }
                        }
                        Err(mut frame) => {
                            if let Some(t) = frame.trailers_mut() {
                                for f in &mut this.filters {
                                    f.on_trailers(t);
                                }
                            }
                            frame
                        }
                    };
                    return Poll::Ready(Some(Ok(frame)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.flushed
    }

    fn size_hint(&self) -> SizeHint {
        if self.observers {
            return self.inner.size_hint();
        }
        // Filters may change the length: nothing is promised.
        SizeHint::default()
    }
}

/// What the end hooks are told about a request, gathered on the request path.
pub struct EndState {
    /// The route's chain.
    pub chain: Chain,
    /// The request's run through it.
    pub run: ChainRun,
    /// Status sent.
    pub status: u16,
    /// The failure, if any.
    pub error: Option<(ErrorKind, Side)>,
    /// Attempts made.
    pub attempts: u32,
    /// Upstream and endpoint of the last attempt.
    pub upstream: Option<std::sync::Arc<str>>,
    /// Endpoint of the last attempt.
    pub endpoint: Option<std::sync::Arc<str>>,
    /// When the request head arrived.
    pub start: Instant,
}

/// A response body that runs the chain's end hooks when it ends, fails, or is dropped.
pub struct Ended {
    inner: ProxyBody,
    state: Option<EndState>,
    bytes_out: u64,
}

impl Ended {
    /// Wraps `inner`.
    pub fn new(inner: ProxyBody, state: EndState) -> Self {
        Ended {
            inner,
            state: Some(state),
            bytes_out: 0,
        }
    }

    fn finish(&mut self, interrupted: bool) {
        let Some(mut s) = self.state.take() else {
            return;
        };
        let error = s
            .error
            .or(interrupted.then_some((ErrorKind::Upstream, Side::Downstream)));
        let outcome = Outcome {
            status: s.status,
            error,
            attempts: s.attempts,
            duration: elapsed(s.start),
            upstream: s.upstream.as_deref(),
            endpoint: s.endpoint.as_deref(),
            denied_by: s.chain.denied_by(&s.run),
            bytes_out: self.bytes_out,
        };
        s.chain.on_end(&outcome, &mut s.run);
    }
}

fn elapsed(start: Instant) -> Duration {
    start.elapsed()
}

impl Body for Ended {
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
                if let Some(d) = frame.data_ref() {
                    this.bytes_out += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish(false);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(true),
            Poll::Ready(None) => this.finish(false),
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

impl Drop for Ended {
    fn drop(&mut self) {
        // Dropped before its end: the client went away (or the body was empty and never polled).
        let interrupted = !self.inner.is_end_stream();
        self.finish(interrupted);
    }
}
