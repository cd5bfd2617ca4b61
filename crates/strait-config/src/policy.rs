//! Validated policies (`policies:` and inline ones), weighted backends, and the resilience settings of upstreams (outlier detection, circuit breaker, limits).

use std::time::Duration;

use crate::types::HeaderOps;

mod colour;
mod mirror;
mod ratelimit;
mod wasm;
pub use colour::*;
pub use mirror::*;
pub use ratelimit::*;
pub use wasm::*;

/// A policy with its settings parsed; the kind is the variant of [`PolicySpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Unique name (inline policies are named `ROUTE/KIND` unless given a name).
    pub name: String,
    /// Kind and settings.
    pub spec: PolicySpec,
}

/// A policy's kind and settings.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySpec {
    /// Request and response header edits.
    Headers(HeadersPolicy),
    /// Retries of failed upstream attempts (a forwarding setting, not a filter).
    Retry(RetryPolicy),
    /// Injected aborts and delays, for chaos tests and game days.
    Fault(FaultPolicy),
    /// Client address allow and deny lists.
    IpRules(crate::IpRulesPolicy),
    /// Verified client certificates (SPIFFE IDs, subjects) allowed.
    ClientCert(crate::ClientCertPolicy),
    /// Per-route body cap and request deadline.
    RequestLimits(crate::RequestLimitsPolicy),
    /// Cross-origin resource sharing: preflights and response headers.
    Cors(crate::CorsPolicy),
    /// API keys in a header or query parameter.
    ApiKey(crate::auth::ApiKeyPolicy),
    /// HTTP basic authentication against password hashes.
    BasicAuth(crate::auth::BasicAuthPolicy),
    /// A decision asked of an auth service.
    ForwardAuth(crate::auth::ForwardAuthPolicy),
    /// JSON Web Token verification.
    Jwt(Box<crate::JwtPolicy>),
    /// Requests per period per key, locally or across a fleet (Redis).
    RateLimit(Box<RateLimitPolicy>),
    /// Most requests in flight per key.
    ConcurrencyLimit(ConcurrencyLimitPolicy),
    /// Copies of a share of requests sent to a shadow upstream.
    Mirror(MirrorPolicy),
    /// Traffic colouring: the endpoints whose label matches the request's colour.
    Colour(ColourPolicy),
    /// A proxy-wasm plugin.
    Wasm(Box<WasmPolicy>),
}

impl PolicySpec {
    /// The kind's name as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicySpec::Headers(_) => "headers",
            PolicySpec::Retry(_) => "retry",
            PolicySpec::Fault(_) => "fault",
            PolicySpec::IpRules(_) => "ip_rules",
            PolicySpec::ClientCert(_) => "client_cert",
            PolicySpec::RequestLimits(_) => "request_limits",
            PolicySpec::Cors(_) => "cors",
            PolicySpec::ApiKey(_) => "api_key",
            PolicySpec::BasicAuth(_) => "basic_auth",
            PolicySpec::ForwardAuth(_) => "forward_auth",
            PolicySpec::Jwt(_) => "jwt",
            PolicySpec::RateLimit(_) => "rate_limit",
            PolicySpec::ConcurrencyLimit(_) => "concurrency_limit",
            PolicySpec::Mirror(_) => "mirror",
            PolicySpec::Colour(_) => "colour",
            PolicySpec::Wasm(_) => "wasm",
        }
    }

    /// Where the kind runs in a route's chain (lower first); see docs/request-path.md.
    ///
    /// The order is fixed by kind, not by where a policy is listed (docs/protect.md): IP rules
    /// 100, request limits 200, CORS 300, client certificates 390 (the identity the TLS
    /// handshake proved: checked before the authentication kinds, which may await I/O),
    /// authentication 400..=499 (jwt 400, api_key 410, basic_auth 420, forward_auth 450), rate limits 500, concurrency limits 550, plugins 600,
    /// colour 650 (after authentication, so a colour may be derived from a claim), fault 700,
    /// header edits 800, mirror 900 (so the shadow sees the request as the upstream
    /// will), then forwarding (retry 1000).
    pub fn rank(&self) -> u16 {
        match self {
            PolicySpec::IpRules(_) => 100,
            PolicySpec::RequestLimits(_) => 200,
            PolicySpec::Cors(_) => 300,
            PolicySpec::ClientCert(_) => 390,
            PolicySpec::Jwt(_) => 400,
            PolicySpec::RateLimit(_) => 500,
            PolicySpec::ConcurrencyLimit(_) => 550,
            PolicySpec::Wasm(_) => 600,
            PolicySpec::Colour(_) => 650,
            PolicySpec::Fault(_) => 700,
            PolicySpec::ApiKey(_) => 410,
            PolicySpec::BasicAuth(_) => 420,
            PolicySpec::ForwardAuth(_) => 450,
            PolicySpec::Headers(_) => 800,
            PolicySpec::Mirror(_) => 900,
            PolicySpec::Retry(_) => 1000,
        }
    }
}

/// A reference from a route or listener to a policy.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyRef {
    /// A policy of `policies:` by name (which exists).
    Named(String),
    /// A policy written in place.
    Inline(Policy),
}

/// `headers:` edits of the request before forwarding and of the response before answering.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeadersPolicy {
    /// Request edits.
    pub request: HeaderOps,
    /// Response edits.
    pub response: HeaderOps,
}

/// `fault:` aborts and delays injected into a share of requests.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPolicy {
    /// Answer with this status instead of forwarding, for this percentage (0 to 100) of requests.
    pub abort: Option<(http::StatusCode, f64)>,
    /// Wait this long before going on, for this percentage (0 to 100) of requests.
    pub delay: Option<(Duration, f64)>,
    /// Only requests carrying this header (lowercased) are affected; `None` = all.
    pub header: Option<String>,
}

/// `retry:` which failed attempts are tried again, how often, and within which budget.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3).
    pub attempts: u32,
    /// What counts as a retryable failure.
    pub on: RetryOn,
    /// Retry non-idempotent methods (POST, PATCH) too (default false).
    pub retry_non_idempotent: bool,
    /// Bound on each attempt until the response head; `None` = `timeouts.request`.
    pub per_try_timeout: Option<Duration>,
    /// First backoff ceiling (default 25 ms), doubled per retry.
    pub backoff_base: Duration,
    /// Largest backoff (default 250 ms).
    pub backoff_max: Duration,
    /// Retries per request allowed in the budget window (default 0.2).
    pub budget_ratio: f64,
    /// Retries per second allowed regardless of traffic (default 3).
    pub budget_min_per_second: u32,
    /// The budget's sliding window (default 10 s).
    pub budget_window: Duration,
    /// Request bodies up to this size are kept for a retry (default 64 KiB); larger ones are
    /// streamed and not retried once sent.
    pub max_replay_body: u64,
}

/// Failures a retry policy retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOn {
    /// No connection could be made (always safe: the request was never sent).
    pub connect_failure: bool,
    /// The connection failed after the request was sent, before a response head.
    pub reset: bool,
    /// The attempt exceeded its per-try timeout.
    pub timeout: bool,
    /// Response statuses that are retried (default 502, 503, 504).
    pub statuses: Vec<u16>,
}

/// One weighted backend of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Upstream name (which exists).
    pub upstream: String,
    /// Relative weight 0..=10000 (default 1); 0 sends no traffic.
    pub weight: u32,
}

/// Passive health: consecutive failures eject an endpoint for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Consecutive connect failures, resets, timeouts or 502/503/504 that eject (default 5; 0 = off).
    pub consecutive_gateway_failures: u32,
    /// Consecutive 5xx of any kind that eject (default 0 = off).
    pub consecutive_5xx: u32,
    /// First ejection's length (default 30 s); the n-th lasts n times as long.
    pub base_ejection_time: Duration,
    /// Longest ejection (default 300 s).
    pub max_ejection_time: Duration,
    /// Most endpoints ejected at once, percent, rounded down (default 50).
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_gateway_failures: 5,
            consecutive_5xx: 0,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// Where a circuit breaker counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerScope {
    /// One breaker for the whole upstream.
    Upstream,
    /// One breaker per endpoint (an open one takes its endpoint out of balancing).
    Endpoint,
}

/// A circuit breaker (off unless configured).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitBreaker {
    /// Failure ratio over the window that opens it (default 0.5; 0 = only `consecutive_failures`).
    pub failure_ratio: f64,
    /// Requests in the window before the ratio counts (default 20).
    pub min_requests: u32,
    /// The sliding window (default 10 s).
    pub window: Duration,
    /// Failures in a row that open it (default 0 = off).
    pub consecutive_failures: u32,
    /// Time open before probing (default 30 s).
    pub open_for: Duration,
    /// Probes while half-open, all must succeed to close (default 3).
    pub half_open_requests: u32,
    /// Upstream-wide or per endpoint (default upstream).
    pub scope: BreakerScope,
}

/// Connection limits per endpoint (Envoy's circuit-breaker thresholds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamLimits {
    /// Open connections per endpoint (default 1024); HTTP/2 uses one.
    pub max_connections: usize,
    /// Requests waiting for a connection per endpoint (default 1024); beyond it → 503.
    pub max_pending: usize,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        UpstreamLimits {
            max_connections: 1024,
            max_pending: 1024,
        }
    }
}
