//! Runtime upstreams and endpoints; endpoint state (health, ejection, load, connection pool) is live state shared across snapshots.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use strait_core::balance::Balancer;
use strait_core::colour::{self, Subset};
use strait_core::resilience::Outlier;
use strait_core::resilience::{Breaker, OutlierSettings};

use crate::pool::EndpointPool;

/// Wire protocol towards an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 over TCP (or TLS when the upstream has `tls`).
    Http1,
    /// HTTP/2 with prior knowledge over TCP.
    H2c,
    /// HTTP/2 over TLS (ALPN h2).
    H2,
}

impl Protocol {
    /// Whether requests travel as HTTP/2.
    pub fn is_h2(self) -> bool {
        !matches!(self, Protocol::Http1)
    }
}

/// Where a consistent-hash key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOn {
    /// A request header value.
    Header(http::HeaderName),
    /// A cookie value.
    Cookie(String),
    /// The downstream peer IP.
    ClientIp,
    /// The request path.
    Path,
}

/// Upstream timeouts.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamTimeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// Until the response headers arrive.
    pub request: Duration,
    /// Idle time allowed on a streaming body.
    pub idle: Duration,
}

/// Connection pool settings per endpoint.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    /// Idle connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
}

/// TLS towards an upstream.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Client configuration (roots or CA, ALPN).
    pub config: Arc<rustls::ClientConfig>,
    /// SNI name; `None` uses the endpoint host.
    pub sni: Option<String>,
}

/// A compiled upstream.
pub struct Upstream {
    /// Upstream name.
    pub name: Arc<str>,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Endpoints in configuration order.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Endpoint choice.
    pub balancer: Balancer,
    /// One subset per endpoint label value, each with its own balancer (traffic colouring);
    /// built with the snapshot so a coloured pick scans no endpoint outside its subset.
    pub subsets: Box<[Subset]>,
    /// Consistent-hash key source.
    pub hash_on: Option<HashOn>,
    /// Timeouts.
    pub timeouts: UpstreamTimeouts,
    /// Pool settings.
    pub pool: PoolSettings,
    /// TLS settings, if the upstream speaks TLS.
    pub tls: Option<UpstreamTls>,
    /// Active health checking, if configured.
    pub health_check: Option<HealthCheck>,
    /// Passive health settings.
    pub outlier: OutlierSettings,
    /// The upstream-wide circuit breaker (live state), if configured with `scope: upstream`.
    pub breaker: Option<Arc<Breaker>>,
    /// Per-endpoint connection limits.
    pub limits: ConnectionLimits,
}

/// Connection limits per endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections.
    pub max_connections: usize,
    /// Requests waiting for a connection.
    pub max_pending: usize,
}

/// Active health check settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// What a probe does.
    pub kind: HealthCheckKind,
    /// Time between probes.
    pub interval: Duration,
    /// Time allowed for one probe.
    pub timeout: Duration,
    /// Consecutive passes that make an unhealthy endpoint healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: u32,
}

/// The probe of a health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// A TCP connect succeeds.
    Tcp,
    /// `GET path` answers with an expected status (any 2xx when the list is empty).
    Http {
        /// Request path.
        path: String,
        /// Accepted statuses.
        expected_status: Vec<u16>,
    },
}

/// One endpoint of an upstream.
pub struct Endpoint {
    /// `host:port` as configured or resolved (metric label, connect target).
    pub address: Arc<str>,
    /// The same as a URI authority, for HTTP/2 requests.
    pub authority: http::uri::Authority,
    /// Balancing weight.
    pub weight: u32,
    /// Live state, carried across reloads.
    pub state: Arc<EndpointState>,
    /// This endpoint's own circuit breaker (`circuit_breaker.scope: endpoint`), live state.
    pub breaker: Option<Arc<Breaker>>,
}

/// Live state of an endpoint: outlives snapshots, keyed by upstream name, address and transport.
pub struct EndpointState {
    healthy: AtomicBool,
    active: AtomicU32,
    /// Passive health: consecutive failures and ejection.
    pub outlier: Outlier,
    /// The endpoint's connection pool, made on first use (so unused endpoints register no series).
    pub pool: OnceLock<Arc<EndpointPool>>,
}

impl EndpointState {
    /// A new endpoint starts healthy, so traffic flows before the first health check.
    pub fn new() -> Self {
        EndpointState {
            healthy: AtomicBool::new(true),
            active: AtomicU32::new(0),
            outlier: Outlier::default(),
            pool: OnceLock::new(),
        }
    }

    /// Whether active health checks consider the endpoint healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sets the health; returns the previous value.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::Relaxed)
    }

    /// Requests in flight to this endpoint.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops.
    pub fn track(&self) -> ActiveGuard<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self)
    }
}

impl EndpointState {
    /// A new endpoint that starts healthy or not (`health_check.initial_state`).
    pub fn starting(healthy: bool) -> Self {
        let s = Self::new();
        s.set_healthy(healthy);
        s
    }
}

impl Default for EndpointState {
    fn default() -> Self {
        Self::new()
    }
}

/// Decrements the endpoint's in-flight count on drop.
pub struct ActiveGuard<'a>(&'a EndpointState);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    /// Whether the balancer may pick this endpoint at `now_ms`: healthy by active checks, not
    /// ejected, and its own breaker (if any) not open.
    pub fn is_available(&self, now_ms: u64) -> bool {
        self.state.is_healthy()
            && !self.state.outlier.is_ejected(now_ms)
            && self.breaker.as_ref().is_none_or(|b| !b.blocks(now_ms))
    }
}

impl Upstream {
    /// Picks an endpoint for a request among those `allowed`; `None` when none is available.
    pub fn pick(
        &self,
        hash: Option<u64>,
        now_ms: u64,
        allowed: impl Fn(usize) -> bool,
    ) -> Option<(usize, &Arc<Endpoint>)> {
        let eps = &self.endpoints;
        let i = self.balancer.pick(
            eps.len(),
            |i| allowed(i) && eps[i].is_available(now_ms),
            |i| eps[i].state.active(),
            hash,
        )?;
        Some((i, &eps[i]))
    }

    /// The endpoints labelled `label: value`, if any are.
    pub fn subset(&self, label: &str, value: &str) -> Option<&Subset> {
        colour::find(&self.subsets, label, value)
    }

    /// Picks an endpoint of `subset` among those `allowed`, as [`Upstream::pick`] does for all.
    pub fn pick_in(
        &self,
        subset: &Subset,
        hash: Option<u64>,
        now_ms: u64,
        allowed: impl Fn(usize) -> bool,
    ) -> Option<(usize, &Arc<Endpoint>)> {
        let eps = &self.endpoints;
        let i = subset.pick(
            |i| allowed(i) && eps[i].is_available(now_ms),
            |i| eps[i].state.active(),
            hash,
        )?;
        Some((i, &eps[i]))
    }

    /// How many endpoints are ejected at `now_ms` (for the ejection cap).
    pub fn ejected(&self, now_ms: u64) -> usize {
        self.endpoints
            .iter()
            .filter(|e| e.state.outlier.is_ejected(now_ms))
            .count()
    }
}
