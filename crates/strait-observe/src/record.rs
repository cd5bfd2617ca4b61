//! The per-request record: filled on the request path from data already at hand, finished when the response body ends.
//!
//! It only exists when the access log or tracing is configured. Finishing moves it behind
//! an `Arc` and offers it to the access log writer and (when the sampling decision keeps it)
//! the trace exporter through bounded queues; formatting and encoding happen off the request path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Uri, Version};

use crate::trace::context::{SpanId, TraceId};
use crate::RouteStats;

/// Trace identity of one request (the server span).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceCtx {
    /// The trace (the caller's, or new).
    pub trace_id: TraceId,
    /// Our server span.
    pub span_id: SpanId,
    /// The caller's span, if the request carried a valid context.
    pub parent: Option<SpanId>,
    /// The start decision, sent upstream as the `sampled` flag.
    pub sampled: bool,
}

/// One upstream attempt (a client span).
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Client span id (the `traceparent` parent id the upstream saw).
    pub span_id: SpanId,
    /// When the attempt started.
    pub start: Instant,
    /// Until the response head or the failure.
    pub duration: Duration,
    /// Upstream name.
    pub upstream: Arc<str>,
    /// Endpoint address.
    pub endpoint: Arc<str>,
    /// Response status, 0 when none arrived.
    pub status: u16,
    /// Why the attempt failed (`connect`, `timeout`, `upstream`), if it did.
    pub error: Option<&'static str>,
    /// The failure in detail (cause included), for the span's status message.
    pub detail: Option<Arc<str>>,
}

/// Everything logged and traced about one request.
#[derive(Debug)]
pub struct RequestRecord {
    /// Monotonic start.
    pub start: Instant,
    /// Wall-clock start, Unix nanoseconds.
    pub start_unix_ns: u64,
    /// Trace identity, when tracing is on.
    pub trace: Option<TraceCtx>,
    /// `X-Request-Id`.
    pub request_id: HeaderValue,
    /// Client address.
    pub client: SocketAddr,
    /// Listener name.
    pub listener: Arc<str>,
    /// Whether the downstream connection is TLS.
    pub tls: bool,
    /// Request method.
    pub method: Method,
    /// Downstream HTTP version.
    pub version: Version,
    /// Request target as received.
    pub uri: Uri,
    /// Host header or authority.
    pub host: Option<HeaderValue>,
    /// User-Agent.
    pub user_agent: Option<HeaderValue>,
    /// Request body bytes declared by Content-Length.
    pub bytes_in: u64,
    /// Route stats (route and upstream names); `None` before routing.
    pub stats: Option<Arc<RouteStats>>,
    /// Response status.
    pub status: u16,
    /// Upstream attempts in order (retries add more).
    pub attempts: Vec<Attempt>,
    /// How the upstream was chosen among the route's (`override`, `sticky`, `weights`).
    pub split: Option<&'static str>,
    /// The policy that denied the request, if one did.
    pub policy: Option<Arc<str>>,
    /// Why that policy denied it (the `reason` label of `strait_policy_denials_total`).
    pub policy_reason: Option<&'static str>,
    /// Why the request failed, in detail (upstream, endpoint, cause), if it did.
    pub error: Option<Arc<str>>,
    /// The colour the request was forwarded with, if a `colour` policy gave it one.
    pub colour: Option<Arc<str>>,
    /// Whether an endpoint outside the colour's subset served it (`fallback: any`).
    pub colour_fallback: bool,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Time to the response head (what the duration histogram observed).
    pub head: Duration,
    /// Total time, set when the response body ends.
    pub duration: Duration,
}

impl RequestRecord {
    /// Route name, `unmatched` when none matched.
    pub fn route(&self) -> &str {
        self.stats.as_ref().map_or("unmatched", |s| &s.key().route)
    }

    /// Upstream name, `""` for direct responses.
    pub fn upstream(&self) -> &str {
        self.stats.as_ref().map_or("", |s| &s.key().upstream)
    }

    /// The last attempt's endpoint.
    pub fn endpoint(&self) -> Option<&str> {
        self.attempts.last().map(|a| &*a.endpoint)
    }

    /// Unix nanoseconds of an instant during the request.
    pub fn unix_ns(&self, at: Instant) -> u64 {
        let off = at.saturating_duration_since(self.start).as_nanos() as u64;
        self.start_unix_ns.saturating_add(off)
    }
}

/// Nanoseconds since the Unix epoch now.
pub fn unix_ns_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
