//! A request body that can be sent again: the bytes read from the client are kept (up to a cap) so a retry replays them before reading on (as linkerd's `ReplayBody`).
//!
//! Every attempt gets its own [`ReplayBody`] over one shared state. Data chunks are `Bytes`, so
//! keeping them costs a reference count, not a copy. A body that grows past the cap stops
//! being kept; from then on no retry may send it ([`ReplayBody::is_replayable`]), and the
//! memory is freed. Attempts run one after the other, but a failed attempt's body may still be
//! held by its connection task for a moment, so the state sits behind a mutex (one uncontended
//! lock per chunk).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, ProxyBody};
use crate::pool::ConnSlot;

struct State {
    /// The client's body, read by whichever attempt gets past the kept chunks first.
    source: ProxyBody,
    kept: Vec<Bytes>,
    kept_len: u64,
    max: u64,
    /// False once the body outgrew `max` (nothing is kept any more).
    replayable: bool,
    trailers: Option<HeaderMap>,
    /// The source has ended.
    ended: bool,
}

/// One attempt's view of a replayable request body.
pub struct ReplayBody {
    state: Arc<Mutex<State>>,
    /// Next kept chunk this attempt sends.
    pos: usize,
    trailers_sent: bool,
    /// Told when this attempt's body has been sent completely.
    slot: Option<Arc<ConnSlot>>,
}

impl ReplayBody {
    /// Wraps the client's body, keeping up to `max` bytes for retries. `None` when the declared
    /// length already exceeds `max` (the body is then streamed once, as usual).
    pub fn try_new(source: ProxyBody, max: u64) -> Result<Self, ProxyBody> {
        if source.size_hint().lower() > max {
            return Err(source);
        }
        Ok(ReplayBody {
            state: Arc::new(Mutex::new(State {
                source,
                kept: Vec::new(),
                kept_len: 0,
                max,
                replayable: true,
                trailers: None,
                ended: false,
            })),
            pos: 0,
            trailers_sent: false,
            slot: None,
        })
    }

    /// A fresh view for the next attempt, if the body can still be replayed whole.
    pub fn replay(&self) -> Option<ReplayBody> {
        self.is_replayable().then(|| ReplayBody {
            state: self.state.clone(),
            pos: 0,
            trailers_sent: false,
            slot: None,
        })
    }

    /// Whether everything read so far was kept.
    pub fn is_replayable(&self) -> bool {
        self.lock().replayable
    }

    /// Tells `slot` when this attempt's body has been sent completely.
    pub fn notify_sent(&mut self, slot: &Arc<ConnSlot>) {
        if self.is_end_stream() {
            slot.request_sent();
        } else {
            self.slot = Some(slot.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sent(&mut self) {
        if let Some(s) = self.slot.take() {
            s.request_sent();
        }
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let mut st = this.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(chunk) = st.kept.get(this.pos) {
            this.pos += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        if st.ended {
            if !this.trailers_sent {
                this.trailers_sent = true;
                if let Some(t) = st.trailers.clone() {
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
            }
            drop(st);
            this.sent();
            return Poll::Ready(None);
        }
        let r = Pin::new(&mut st.source).poll_frame(cx);
        match r {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                st.ended = true;
                drop(st);
                this.trailers_sent = true;
                this.sent();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(data) => {
                        if st.replayable && st.kept_len + data.len() as u64 <= st.max {
                            st.kept_len += data.len() as u64;
                            st.kept.push(data.clone());
                            this.pos = st.kept.len();
                        } else if st.replayable {
                            st.replayable = false;
                            st.kept = Vec::new();
                        }
                        Frame::data(data)
                    }
                    Err(frame) => match frame.into_trailers() {
                        Ok(t) => {
                            st.trailers = Some(t.clone());
                            this.trailers_sent = true;
                            Frame::trailers(t)
                        }
                        Err(other) => other,
                    },
                };
                if st.source.is_end_stream() {
                    st.ended = true;
                    drop(st);
                    if !this.trailers_sent || frame.is_trailers() {
                        this.sent();
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let st = self.lock();
        st.ended && self.pos >= st.kept.len() && (self.trailers_sent || st.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        let st = self.lock();
        // What this attempt has yet to send: the kept chunks it has not sent, then the rest.
        let kept: u64 = st.kept[self.pos.min(st.kept.len())..]
            .iter()
            .map(|b| b.len() as u64)
            .sum();
        if st.ended {
            return SizeHint::with_exact(kept);
        }
        let rest = st.source.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + kept);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + kept);
        }
        hint
    }
}
