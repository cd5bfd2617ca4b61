//! Request tracing without an SDK on the request path: context in, a start decision, ids, context out.
//!
//! A request gets a [`TraceCtx`] from [`Tracer::start`] (trace id from the caller or new, a
//! server span id, the start decision); each upstream attempt gets a client span id and a
//! `traceparent` from [`Tracer::inject`]. Spans exist only as fields of the request record;
//! the end decision ([`sampler::end`]) picks which become OTLP spans in the exporter task.

pub mod context;
pub mod export;
pub mod otlp;
pub mod sampler;

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::HeaderMap;

use crate::record::TraceCtx;
use context::{SpanId, TraceId};

/// Sampling settings in force, plus the live (possibly adapted) ratio.
#[derive(Debug)]
pub struct Policy {
    /// Configured ratio (the ceiling when adapting).
    pub ratio: f64,
    /// Follow the caller's sampled flag.
    pub parent_based: bool,
    /// Keep 5xx.
    pub always_on_error: bool,
    /// Keep requests at least this slow.
    pub latency: Option<Duration>,
    /// Adaptive target, 0 = off.
    pub target_per_second: f64,
    /// The ratio requests read.
    pub live: sampler::LiveRatio,
}

impl Policy {
    /// From configuration.
    pub fn new(s: &strait_config::Sampling) -> Self {
        Policy {
            ratio: s.ratio,
            parent_based: s.parent_based,
            always_on_error: s.always_on_error,
            latency: s.latency_threshold,
            target_per_second: s.target_per_second,
            live: sampler::LiveRatio::new(s.ratio),
        }
    }
}

/// The request path's view of tracing for one snapshot.
pub struct Tracer {
    pub(crate) policy: std::sync::Arc<Policy>,
    /// Read and write W3C `traceparent`.
    pub w3c: bool,
    /// Read and write B3.
    pub b3: bool,
    pub(crate) queue: export::ExportQueue,
}

impl Tracer {
    /// Extracts the caller's context and makes the start decision; `rand` yields uniform u64s.
    pub fn start(&self, headers: &HeaderMap, rand: &mut dyn FnMut() -> u64) -> TraceCtx {
        let parent = context::extract(headers, self.w3c, self.b3);
        let p = &self.policy;
        let inherited = if p.parent_based {
            parent.and_then(|c| c.sampled)
        } else {
            None
        };
        let sampled = match inherited {
            Some(s) => s,
            None => {
                if p.target_per_second > 0.0 {
                    p.live.decisions.fetch_add(1, Ordering::Relaxed);
                }
                sampler::start(None, false, p.live.threshold(), rand())
            }
        };
        TraceCtx {
            trace_id: parent.map_or_else(|| trace_id(rand), |c| c.trace_id),
            span_id: span_id(rand),
            parent: parent.map(|c| c.span_id),
            sampled,
        }
    }

    /// Writes the context for an upstream attempt whose client span is `attempt`.
    pub fn inject(&self, headers: &mut HeaderMap, t: &TraceCtx, attempt: &SpanId) {
        if self.w3c {
            headers.insert(
                context::TRACEPARENT.clone(),
                context::traceparent(&t.trace_id, attempt, t.sampled),
            );
        }
        if self.b3 {
            context::inject_b3(headers, &t.trace_id, attempt, &t.span_id, t.sampled);
        }
    }
}

/// A new non-zero span id.
pub fn span_id(rand: &mut dyn FnMut() -> u64) -> SpanId {
    (rand() | 1).to_be_bytes()
}

fn trace_id(rand: &mut dyn FnMut() -> u64) -> TraceId {
    let mut id = [0; 16];
    id[..8].copy_from_slice(&rand().to_be_bytes());
    id[8..].copy_from_slice(&(rand() | 1).to_be_bytes());
    id
}
