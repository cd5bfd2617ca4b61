//! Validated access settings: the `ip_rules`, `request_limits` and `cors` policy kinds and a listener's `client_address`.

use std::time::Duration;

pub use strait_core::net::Cidr;

/// `ip_rules:` allow and deny lists on the resolved client address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpRulesPolicy {
    /// When not empty, only these blocks may pass.
    pub allow: Vec<Cidr>,
    /// These blocks never pass (deny wins over allow).
    pub deny: Vec<Cidr>,
}

/// `client_cert:` which verified client certificates may pass (mutual TLS listeners).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientCertPolicy {
    /// URI SANs (SPIFFE IDs) allowed: exact, or a prefix when written with a trailing `*`.
    pub allow: Vec<String>,
    /// Subject distinguished names allowed, exactly as Strait prints them (`CN=web,O=Example`).
    pub allow_subjects: Vec<String>,
}

/// `request_limits:` per-route request bounds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestLimitsPolicy {
    /// Largest request body in bytes (0 = no cap).
    pub max_body: u64,
    /// From the request head to the upstream's response head; `None` = no deadline.
    pub timeout: Option<Duration>,
}

/// `cors:` cross-origin settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsPolicy {
    /// `*`, `scheme://host[:port]` or `scheme://*.domain`, as written (checked).
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for (uppercase); empty = GET, HEAD, POST.
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for (lowercase); `*` = any.
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read.
    pub expose_headers: Vec<String>,
    /// Whether credentials (cookies, Authorization) are allowed (default false).
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer; `None` = the browser's default.
    pub max_age: Option<Duration>,
}

/// `listeners[].client_address`: which peers may name the client in a forwarded-for header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress {
    /// Peers whose header is believed (and entries that are skipped over in it).
    pub trusted_proxies: Vec<Cidr>,
    /// The header (lowercase; default `x-forwarded-for`).
    pub header: String,
}
