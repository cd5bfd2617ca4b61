//! The immutable snapshot a request reads once: per-listener route tables, routes, upstreams and listener settings.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use strait_core::Chain;
use strait_observe::{Observer, RouteStats};

use crate::{route::Route, upstream::Upstream};

/// Everything the data plane needs, compiled from one configuration version.
pub struct Snapshot {
    /// Configuration version (increases with each successful reload).
    pub version: u64,
    /// Route tables indexed by listener id (see `LiveState::listener_id`).
    pub routes: Vec<Option<Arc<ListenerRoutes>>>,
    /// Listener settings in configuration order.
    pub listeners: Vec<Arc<ListenerSpec>>,
    /// Upstreams in configuration order.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Time allowed for in-flight requests at shutdown.
    pub drain_timeout: Duration,
    /// Access log and tracing; `None` when neither is configured (then no per-request record exists).
    pub observe: Option<Arc<Observer>>,
}

impl Snapshot {
    /// The route table of a listener.
    pub fn listener_routes(&self, listener_id: usize) -> Option<&Arc<ListenerRoutes>> {
        self.routes.get(listener_id).and_then(Option::as_ref)
    }
}

/// The routes that apply to one listener.
pub struct ListenerRoutes {
    /// Listener name.
    pub name: Arc<str>,
    /// Matcher over `routes` (indices into it).
    pub router: strait_router::Router,
    /// Routes in configuration order.
    pub routes: Vec<RouteEntry>,
    /// Stats for requests no route matched.
    pub unmatched: Arc<RouteStats>,
}

/// A route as seen from one listener: its filter chain and stats handles.
pub struct RouteEntry {
    /// The route.
    pub route: Arc<Route>,
    /// The listener's policies, then the route's, in kind order.
    pub chain: Chain,
    /// Stats for answers given before an upstream is chosen (labelled with the route's only
    /// upstream, or none when it has several or none).
    pub stats: Arc<RouteStats>,
    /// Stats per backend of a forwarding route, by backend index.
    pub backend_stats: Box<[Arc<RouteStats>]>,
}

/// Downstream limits of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Request line + headers, bytes.
    pub max_request_headers: usize,
    /// Request line, bytes.
    pub max_request_line: usize,
    /// Header count.
    pub max_headers: usize,
    /// Time to receive a complete request head.
    pub header_read_timeout: Duration,
    /// Keep-alive idle time.
    pub idle_timeout: Duration,
    /// Concurrent connections.
    pub max_connections: usize,
    /// Request body bytes, 0 = unlimited.
    pub max_request_body: u64,
    /// Longest wait for the client to take response bytes before the response is abandoned.
    pub send_timeout: Duration,
    /// HTTP/2 streams open at once per connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 keepalive PING interval; zero sends none.
    pub ping_interval: Duration,
    /// HTTP/2 PING acknowledgement wait.
    pub ping_timeout: Duration,
}

/// A listener's settings.
pub struct ListenerSpec {
    /// Listener name.
    pub name: Arc<str>,
    /// Stable id (index into `Snapshot::routes`).
    pub id: usize,
    /// Bind address.
    pub addr: SocketAddr,
    /// Serve HTTP/1.1.
    pub http1: bool,
    /// Serve HTTP/2 (h2c prior knowledge on plain TCP, ALPN h2 on TLS).
    pub h2: bool,
    /// TLS settings, if any.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Send the verified client certificate upstream in `X-Forwarded-Client-Cert`
    /// (`sanitize_set`); a client's own header is removed either way.
    pub forward_client_cert: bool,
    /// Limits.
    pub limits: ListenerLimits,
    /// Request-head hygiene: path normalisation, header names with underscores.
    pub http: ListenerHttp,
    /// Read a PROXY protocol header (v1 or v2) before anything else on each connection.
    pub proxy_protocol: bool,
    /// Trusted proxies whose forwarded-for header names the client; `None` = the peer is.
    pub client_address: Option<Arc<crate::client_addr::ClientResolver>>,
    /// HTTP/3 over QUIC on the same port (UDP); `None` = off.
    pub http3: Option<Arc<crate::server::quic::Http3Spec>>,
}

/// How a listener cleans a request head before routing (`listeners[].http`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerHttp {
    /// Path normalisation.
    pub path: strait_router::PathOptions,
    /// Header names containing `_`.
    pub underscores: UnderscoreHeaders,
}

/// What happens to a request header whose name contains `_`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnderscoreHeaders {
    /// Kept and forwarded.
    Allow,
    /// Removed before routing and forwarding.
    Drop,
    /// The request is refused with 400.
    Reject,
}
