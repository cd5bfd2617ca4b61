//! The validated configuration: plain types with defaults filled in and values resolved.
//!
//! Nothing here refers to serde or YAML; the snapshot compiler reads these types.
//! Lists keep the order they were written in, so an index also finds an item's
//! source position through [`Locations`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::diag::Locations;
use crate::policy::{Backend, CircuitBreaker, OutlierDetection, Policy, PolicyRef, UpstreamLimits};

/// A whole, valid configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Process-wide settings.
    pub server: Server,
    /// The admin listener.
    pub admin: Admin,
    /// Traffic listeners, in written order (at least one).
    pub listeners: Vec<Listener>,
    /// Routes in written order; see [`Config::route_order`] for the order they are tried in.
    pub routes: Vec<Route>,
    /// Upstreams in written order.
    pub upstreams: Vec<Upstream>,
    /// Named policies in written order (`policies:`).
    pub policies: Vec<Policy>,
    /// Where the configuration comes from (`config:`).
    pub provider: crate::provider::ProviderSettings,
    /// Access logs and tracing (`observability:`, see `observability.rs`).
    pub observability: crate::observability::Observability,
    /// Progressive deliveries of canary upstreams (`rollouts:`, see `rollout.rs`).
    pub rollouts: Vec<crate::rollout::Rollout>,
    /// Source positions of the items above, for errors found after parsing.
    pub locations: Locations,
}

/// Process-wide settings (`server:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Time in-flight requests get to finish after SIGTERM/SIGINT (default 30 s).
    pub drain_timeout: Duration,
    /// Tokio worker threads; 0 means one per core (default 0).
    pub worker_threads: usize,
    /// Where compiled plugin modules are cached on disk (`server.wasm_cache_dir`).
    pub wasm_cache_dir: WasmCacheDir,
}

/// `server.wasm_cache_dir`: where compiled `wasm` modules are kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WasmCacheDir {
    /// Not set: `$XDG_CACHE_HOME/strait/wasm`, else `$HOME/.cache/strait/wasm` (where
    /// Wasmtime's own cache lives, under its own name), else no disk cache.
    #[default]
    Default,
    /// `off`: modules are compiled at every start.
    Off,
    /// This directory (resolved against the config's directory).
    Dir(std::path::PathBuf),
}

/// The admin listener (`admin:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Address of the admin API and `/metrics` (default 127.0.0.1:9901).
    pub listen: SocketAddr,
    /// Bearer token for the admin API under `/api/` (also `STRAIT_ADMIN_TOKEN`); none disables it.
    pub token: Option<String>,
    /// Bounds on the admin listener's connections.
    pub limits: AdminLimits,
}

/// Admin listener limits (`admin.limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Open admin connections; at the limit a new one closes the longest-idle one (default 128).
    pub max_connections: usize,
    /// Time to receive a request head, and the keep-alive idle time (default 10 s).
    pub header_read_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_connections: 128,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// A traffic listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Unique name, `[A-Za-z0-9_.-]+`.
    pub name: String,
    /// Bound address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// HTTP versions served.
    pub protocols: Protocols,
    /// TLS termination; `None` serves plain TCP.
    pub tls: Option<ListenerTls>,
    /// Per-connection and per-request bounds.
    pub limits: Limits,
    /// Policies applied to every route of this listener, before the route's own.
    pub policies: Vec<PolicyRef>,
    /// How request targets and header names are cleaned before routing.
    pub http: ListenerHttp,
    /// Expect a PROXY protocol (v1 or v2) header before anything else on each connection.
    pub proxy_protocol: bool,
    /// Resolve the client from a forwarded-for header sent by trusted proxies.
    pub client_address: Option<crate::ClientAddress>,
    /// HTTP/3 over QUIC on the same port (UDP); `None` = off. Needs `tls`.
    pub http3: Option<Http3>,
}

/// A listener's HTTP/3 endpoint (`listeners[].http3`): QUIC limits per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http3 {
    /// Request streams a client may open at once per connection (default 100).
    pub max_concurrent_streams: u32,
    /// QUIC idle timeout: a connection with no packets for this long is closed (default 30 s).
    pub idle_timeout: Duration,
    /// Largest UDP payload Strait accepts (default 1350 bytes, safe on common paths).
    pub max_udp_payload_size: u16,
}

/// Request-head hygiene of a listener (`listeners[].http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerHttp {
    /// RFC 3986 normalisation of the path before routing (default true).
    pub normalize_path: bool,
    /// Collapse repeated slashes (default true).
    pub merge_slashes: bool,
    /// `%2F`, `%5C` and `\` in the path (default reject).
    pub escaped_slashes: EscapedSlashesAction,
    /// Header names containing `_` (default drop).
    pub underscores: UnderscoresAction,
}

/// `path_with_escaped_slashes_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashesAction {
    /// `keep_unchanged`: forwarded encoded.
    KeepUnchanged,
    /// `reject_request`: 400.
    RejectRequest,
    /// `unescape_and_forward`: decoded to `/` before normalisation.
    UnescapeAndForward,
}

/// `headers_with_underscores_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnderscoresAction {
    /// `allow`: kept and forwarded.
    Allow,
    /// `drop_header`: removed before routing and forwarding.
    DropHeader,
    /// `reject_request`: 400.
    RejectRequest,
}

/// HTTP versions a listener serves (at least one is true).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    /// HTTP/1.x.
    pub http1: bool,
    /// HTTP/2: negotiated by ALPN with TLS, prior knowledge (h2c) without.
    pub h2: bool,
}

/// TLS settings of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// Certificates chosen by SNI (names from each certificate's SANs); the first is the default.
    pub certificates: Vec<CertPair>,
    /// Lowest TLS version accepted.
    pub min_version: TlsVersion,
    /// Client certificates asked for and verified (mutual TLS); `None` asks for none.
    pub client_auth: Option<ClientAuth>,
    /// Key exchange groups offered (`groups`); the client's preference picks among them.
    pub groups: Vec<TlsGroup>,
    /// Session resumption with tickets (`session_resumption`); `None` turns resumption off.
    pub session_resumption: Option<SessionResumption>,
}

/// A TLS key exchange group (`tls.groups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsGroup {
    /// `x25519`.
    X25519,
    /// `x25519mlkem768`: the post-quantum hybrid, TLS 1.3 only.
    X25519MlKem768,
    /// `secp256r1` (P-256).
    Secp256r1,
    /// `secp384r1` (P-384).
    Secp384r1,
}

impl TlsGroup {
    /// Every group with its configuration name, in the default order.
    pub const ALL: [(&'static str, TlsGroup); 4] = [
        ("x25519", TlsGroup::X25519),
        ("x25519mlkem768", TlsGroup::X25519MlKem768),
        ("secp256r1", TlsGroup::Secp256r1),
        ("secp384r1", TlsGroup::Secp384r1),
    ];

    /// The configuration name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, g)| *g == self)
            .map_or("", |(n, _)| n)
    }
}

/// `tls.session_resumption`: stateless tickets under keys kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionResumption {
    /// How long one ticket key encrypts new tickets; a ticket is accepted for at most twice this.
    pub ticket_rotation: Duration,
}

/// `tls.client_auth`: how a listener asks for and verifies client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// CA bundle (PEM) client certificates must chain to.
    pub ca: PathBuf,
    /// Whether a client without a certificate may connect (default require).
    pub mode: ClientAuthMode,
    /// What is sent upstream in `X-Forwarded-Client-Cert` (default sanitize_set).
    pub forward_client_cert: ForwardClientCert,
}

/// `client_auth.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// `require`: the handshake fails (TLS alert) without a valid certificate.
    Require,
    /// `request`: a certificate is optional; one presented must verify.
    Request,
}

/// `client_auth.forward_client_cert` (Envoy's `forward_client_cert_details`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardClientCert {
    /// `sanitize`: the client's `X-Forwarded-Client-Cert` is removed and nothing is sent.
    Sanitize,
    /// `sanitize_set`: the client's header is removed and replaced by the verified certificate's.
    SanitizeSet,
}

/// A PEM certificate chain and its private key, resolved against the config's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// A DER OCSP response stapled to handshakes when the file exists (listeners only).
    pub ocsp: Option<PathBuf>,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2 (`"1.2"`).
    V1_2,
    /// TLS 1.3 (`"1.3"`).
    V1_3,
}

/// Listener limits; exceeding one yields the response noted on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of request headers (default 64 KiB) → 431.
    pub max_request_headers: u64,
    /// Bytes in the request line (default 8 KiB) → 414.
    pub max_request_line: u64,
    /// Number of request headers (default 100) → 431.
    pub max_headers: usize,
    /// Time to receive the full request head (default 10 s) → 408.
    pub header_read_timeout: Duration,
    /// Keep-alive idle time before the connection is closed (default 300 s).
    pub idle_timeout: Duration,
    /// Open connections; more wait in the kernel backlog (default 10000).
    pub max_connections: usize,
    /// Request body bytes, 0 = unlimited (default 0) → 413.
    pub max_request_body: u64,
    /// Longest wait for the client to take response bytes (default 60 s); then the response is
    /// abandoned (HTTP/1: connection closed; HTTP/2: stream reset).
    pub send_timeout: Duration,
    /// HTTP/2 streams open at once per connection (default 256); more are refused.
    pub max_concurrent_streams: u32,
    /// HTTP/2 keepalive PING interval, zero = no PINGs (default 60 s).
    pub ping_interval: Duration,
    /// HTTP/2 PING acknowledgement wait before the connection is closed (default 20 s).
    pub ping_timeout: Duration,
}

/// A route: a match, one action, and optional rewrites and header edits.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Unique name.
    pub name: String,
    /// Listeners it applies to; `None` = all.
    pub listeners: Option<Vec<String>>,
    /// Higher is tried first; ties keep written order (default 0).
    pub priority: i32,
    /// What requests it takes.
    pub matcher: RouteMatch,
    /// What it does with them.
    pub action: RouteAction,
    /// Changes to the forwarded request (only with [`RouteAction::Forward`]).
    pub rewrite: Option<Rewrite>,
    /// Edits to the request before forwarding.
    pub request_headers: HeaderOps,
    /// Edits to the response sent to the client.
    pub response_headers: HeaderOps,
    /// Policies of this route (named or inline), after the listener's.
    pub policies: Vec<PolicyRef>,
    /// `Upgrade` tokens tunnelled for this route, lowercased (default `websocket`).
    pub upgrades: Vec<String>,
    /// Gray overrides and sticky assignment over the route's backends (only when it forwards).
    pub split: Option<Split>,
}

/// How a forwarding route chooses among its backends ahead of the weighted round robin.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// Gray routing rules, tried in written order; the first match forces its upstream.
    pub overrides: Vec<SplitOverride>,
    /// The user key that pins a request to a backend by weight; without it, round robin.
    pub sticky: Option<StickyKey>,
}

/// A gray routing rule: requests carrying a value are sent to one of the route's upstreams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitOverride {
    /// Where the value is read.
    pub on: OverrideOn,
    /// The value that must be present exactly; `None` = the header, cookie or parameter is present.
    pub value: Option<String>,
    /// The upstream forced (one of the route's backends, weight 0 allowed).
    pub upstream: String,
}

/// Where an override reads its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideOn {
    /// A request header (name lowercased).
    Header(String),
    /// A cookie.
    Cookie(String),
    /// A query parameter (name as sent, case-sensitive).
    Query(String),
}

/// Where a sticky key is read (`header:NAME`, `cookie:NAME`, `claim:NAME`, `client_ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// A request header's value (name lowercased).
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// A claim of the JWT a `jwt` policy verified on this request.
    Claim(String),
    /// The client's IP address.
    ClientIp,
}

impl std::fmt::Display for StickyKey {
    /// The key as written in `sticky.key`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StickyKey::Header(n) => write!(f, "header:{n}"),
            StickyKey::Cookie(n) => write!(f, "cookie:{n}"),
            StickyKey::Claim(n) => write!(f, "claim:{n}"),
            StickyKey::ClientIp => f.write_str("client_ip"),
        }
    }
}

/// Conditions a request must meet, all of them; empty lists impose nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteMatch {
    /// Lowercased hosts: exact names, `*.suffix` wildcards, or `*` (any); empty = any.
    pub hosts: Vec<String>,
    /// The path condition.
    pub path: PathMatch,
    /// Accepted methods; empty = any.
    pub methods: Vec<Method>,
    /// Header conditions, names lowercased, in written order.
    pub headers: Vec<(String, ValueMatch)>,
    /// Query parameter conditions (names are case-sensitive), in written order.
    pub query: Vec<(String, ValueMatch)>,
    /// Client certificate SAN URI patterns (`client_cert`): exact, or a prefix ending in `*`;
    /// empty = any client.
    pub client_cert: Vec<String>,
}

/// How the path is matched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PathMatch {
    /// Any path.
    #[default]
    Any,
    /// The whole path equals this.
    Exact(String),
    /// The path starts with this string (a plain string prefix, as Envoy's `prefix`).
    Prefix(String),
    /// A template such as `/users/{id}/{*rest}` (checked to be well formed).
    Template(String),
    /// A regex that must match the whole path (the pattern as written, unanchored; it compiles).
    Regex(String),
}

/// How a header or query value is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// Equals this string.
    Exact(String),
    /// A regex that must match the whole value (pattern as written; it compiles).
    Regex(String),
    /// `true`: the header/parameter is present; `false`: it is absent.
    Present(bool),
}

/// What a route does with a matched request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// Forward to one upstream (`upstream:`) or split between several by weight (`upstreams:`).
    Forward {
        /// The backends, at least one with a weight above 0.
        backends: Vec<Backend>,
    },
    /// Answer directly.
    Respond(Respond),
    /// Answer with a redirect.
    Redirect(Redirect),
}

/// A direct response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Respond {
    /// Status (default 200).
    pub status: StatusCode,
    /// Body (default empty).
    pub body: String,
    /// Response headers, names lowercased, in written order.
    pub headers: Vec<(String, String)>,
}

/// A redirect; unset parts are taken from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// 301, 302 (default), 303, 307 or 308.
    pub status: StatusCode,
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// Host name (lowercased).
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Path, starting with `/`.
    pub path: Option<String>,
}

/// Changes to a request forwarded upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rewrite {
    /// Path change.
    pub path: Option<PathRewrite>,
    /// New `Host` header value.
    pub host: Option<String>,
}

/// How a forwarded path is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// Replace the matched `path_prefix` with this (`/` strips it).
    Prefix(String),
    /// Replace the whole path with this (the query is kept).
    Full(String),
}

/// Header edits, applied in the order remove, set, add.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderOps {
    /// Appended values, names lowercased.
    pub add: Vec<(String, String)>,
    /// Replacing values, names lowercased.
    pub set: Vec<(String, String)>,
    /// Removed names, lowercased.
    pub remove: Vec<String>,
}

impl HeaderOps {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.set.is_empty() && self.remove.is_empty()
    }
}

/// A named group of endpoints and how to talk to them.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Unique name.
    pub name: String,
    /// At least one endpoint; addresses are unique.
    pub endpoints: Vec<Endpoint>,
    /// Wire protocol (default http1).
    pub protocol: Protocol,
    /// Endpoint choice (default round_robin).
    pub load_balancer: LoadBalancer,
    /// The hash key; `Some` exactly when `load_balancer` is `ConsistentHash`.
    pub hash_on: Option<HashOn>,
    /// Timeouts.
    pub timeouts: UpstreamTimeouts,
    /// Connection pool.
    pub pool: Pool,
    /// TLS to the endpoints; always `Some` for [`Protocol::H2`].
    pub tls: Option<UpstreamTls>,
    /// Active health checking.
    pub health_check: Option<HealthCheck>,
    /// Passive health (on by default for gateway failures).
    pub outlier_detection: OutlierDetection,
    /// Circuit breaker, if configured.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Connection limits per endpoint.
    pub limits: UpstreamLimits,
    /// How often endpoints given as DNS names are resolved again (default 5 s).
    pub dns_refresh: Duration,
}

/// One endpoint of an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` as written (host is an IP, `[IPv6]` or a DNS name).
    pub address: String,
    /// Relative weight 1..=1000 (default 1).
    pub weight: u32,
    /// Labels (`region: eu`) sorted by name; `colour` policies pick endpoints by them.
    pub labels: Vec<(String, String)>,
}

/// Upstream wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 over cleartext (prior knowledge), e.g. for gRPC.
    H2c,
    /// HTTP/2 over TLS.
    H2,
}

/// How an endpoint is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancer {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Power of two choices over in-flight requests.
    LeastRequest,
    /// Weighted random.
    Random,
    /// Consistent hashing on [`Upstream::hash_on`].
    ConsistentHash,
}

/// The key for consistent hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// A request header's value (name lowercased).
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// The client's IP address.
    ClientIp,
    /// The request path.
    Path,
}

/// Upstream timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// TCP (and TLS) connect (default 2 s).
    pub connect: Duration,
    /// Until response headers arrive; then 504 (default 15 s).
    pub request: Duration,
    /// Longest pause while streaming a body (default 60 s).
    pub idle: Duration,
}

/// Upstream connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Idle connections kept per endpoint (default 256).
    pub max_idle_per_endpoint: usize,
    /// How long an idle connection is kept (default 90 s).
    pub idle_timeout: Duration,
}

/// TLS to an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTls {
    /// SNI and verified name; `None` = the endpoint's host.
    pub sni: Option<String>,
    /// CA bundle (PEM); `None` = webpki roots.
    pub ca: Option<PathBuf>,
    /// Client certificate presented to the endpoints (mutual TLS); `None` = none.
    pub client_cert: Option<CertPair>,
    /// Skip certificate verification (testing only).
    pub insecure_skip_verify: bool,
}

/// Active health checking of each endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What a probe does.
    pub kind: HealthCheckKind,
    /// Time between probes (default 5 s).
    pub interval: Duration,
    /// Time a probe may take (default 1 s).
    pub timeout: Duration,
    /// Consecutive successes to mark an endpoint healthy (default 2).
    pub healthy_threshold: u32,
    /// Consecutive failures to mark an endpoint unhealthy (default 3).
    pub unhealthy_threshold: u32,
    /// Whether an endpoint seen for the first time starts healthy (default true).
    pub initially_healthy: bool,
}

/// The kind of health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// `GET path`; healthy if the status is listed (empty list = any 2xx).
    Http {
        /// Probe path (default `/`).
        path: String,
        /// Accepted statuses; empty = any 2xx.
        expected_status: Vec<StatusCode>,
    },
    /// A TCP connect succeeds.
    Tcp,
}

// === impl Config ===

impl Config {
    /// Indexes of `routes` in the order they are tried: priority descending, ties in written order.
    pub fn route_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.routes.len()).collect();
        // sort_by_key is stable, which is what keeps ties in written order.
        order.sort_by_key(|&i| std::cmp::Reverse(self.routes[i].priority));
        order
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// The listener called `name`.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// The policy called `name`.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }
}
