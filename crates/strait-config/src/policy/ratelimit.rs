//! Validated settings of the `rate_limit` and `concurrency_limit` policies: the limit, what it is keyed by, and where a fleet-wide limit is counted (Redis).

use std::path::PathBuf;
use std::time::Duration;

/// `rate_limit:` requests per period per key, counted locally or in Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitPolicy {
    /// Requests admitted per `per` at the sustained rate.
    pub requests: u64,
    /// The period (default 1 s).
    pub per: Duration,
    /// Requests a quiet key may send at once (default `requests`).
    pub burst: u64,
    /// What the limit is counted by (default the client IP); several parts combine.
    pub key: Vec<LimitKey>,
    /// What happens when a key part is absent from the request (default: the client IP
    /// stands in for it).
    pub missing_key: MissingKey,
    /// Most keys tracked in memory (default 100000); the stalest are evicted beyond it.
    pub max_keys: usize,
    /// `RateLimit-Policy` / `RateLimit` headers on admitted responses too (default false;
    /// refusals always carry them).
    pub response_headers: bool,
    /// Where the limit is counted: `None` in this process only, else in Redis, shared by
    /// every instance that uses the same store and policy name.
    pub store: Option<RateLimitStore>,
}

/// One part of a limit's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// The client's address (`client_ip`).
    ClientIp,
    /// The matched route's name (`route`).
    Route,
    /// One counter for everything the policy sees (`global`).
    Global,
    /// A request header's value (`header:NAME`, lowercased).
    Header(String),
    /// The consumer an authentication policy identified (`consumer`).
    Consumer,
    /// A claim of the verified JWT (`claim:NAME`).
    Claim(String),
}

/// What a limit does with a request that lacks a part of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MissingKey {
    /// The client IP stands in for the missing part (`client_ip`).
    ClientIp,
    /// The request is not limited by this policy (`allow`).
    Allow,
}

/// `store:` a rate limit counted in Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitStore {
    /// The Redis deployment.
    pub redis: RedisTarget,
    /// Credentials and TLS.
    pub auth: RedisAuth,
    /// Longest wait for Redis per request (default 50 ms) before the failure mode applies.
    pub timeout: Duration,
    /// When Redis fails or is slow: the local limit (open, the default) or 503 (closed).
    pub failure: StoreFailure,
    /// Prefix of the Redis keys (default `strait:rl:`).
    pub prefix: String,
}

/// A Redis server or cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (`redis:`): a `redis://` or `rediss://` (TLS) URL.
    Standalone(String),
    /// A Redis Cluster (`redis_cluster:`): some of its nodes, as URLs.
    Cluster(Vec<String>),
}

/// How Strait authenticates to Redis.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RedisAuth {
    /// ACL user name.
    pub username: Option<String>,
    /// Password (`AUTH`), usually `${ENV}`; never printed.
    pub password: Option<Secret>,
    /// CA bundle (PEM) that signed the server's certificate, for `rediss://` with a private CA.
    pub ca: Option<PathBuf>,
}

/// A secret string: compared and used, never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Debug output ends up in logs; a password must not.
        f.write_str("<redacted>")
    }
}

/// What a Redis-backed limit does when Redis cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreFailure {
    /// Decide with the local limiter (same settings, this instance alone).
    Open,
    /// Refuse with 503.
    Closed,
}

/// `concurrency_limit:` most requests in flight per key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyLimitPolicy {
    /// Requests in flight at once per key; more get 503.
    pub max: u32,
    /// What the limit is counted by (default the route).
    pub key: Vec<LimitKey>,
    /// What happens when a key part is absent (default: the client IP stands in).
    pub missing_key: MissingKey,
    /// Most keys with requests in flight (default 100000); a request for a new key beyond it
    /// gets 503.
    pub max_keys: usize,
}
