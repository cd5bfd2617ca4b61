//! Validated settings of the credential policies: `api_key`, `basic_auth` and `forward_auth`.

use std::fmt;
use std::time::Duration;

/// `api_key:` keys in a header and/or a query parameter, each naming a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyPolicy {
    /// Header carrying the key (lowercased; default `x-api-key`).
    pub header: String,
    /// Query parameter carrying the key, if keys may come there too.
    pub query: Option<String>,
    /// The accepted keys.
    pub keys: Vec<ApiKey>,
    /// Remove the key before forwarding (default true).
    pub hide_credentials: bool,
    /// Upstream header naming the consumer (default `x-consumer`).
    pub consumer_header: String,
}

/// One accepted API key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// The consumer the key identifies.
    pub consumer: String,
    /// The key, or its SHA-256.
    pub secret: KeySecret,
}

/// An API key as configured.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySecret {
    /// The key itself (usually from `${ENV}`).
    Plain(String),
    /// The SHA-256 of the key.
    Sha256([u8; 32]),
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Settings are fingerprinted and may be logged through Debug: never print a key.
        match self {
            KeySecret::Plain(k) => {
                write!(f, "Plain(<{} bytes, hash {:x}>)", k.len(), short_hash(k))
            }
            KeySecret::Sha256(h) => write!(f, "Sha256({})", hex(h)),
        }
    }
}

/// A non-cryptographic digest, so a changed key still changes the settings fingerprint.
fn short_hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `basic_auth:` users with bcrypt or argon2 password hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuthPolicy {
    /// The realm named in `WWW-Authenticate` (default `strait`).
    pub realm: String,
    /// The users.
    pub users: Vec<BasicUser>,
    /// Remove `Authorization` before forwarding (default true).
    pub hide_credentials: bool,
    /// Upstream header naming the consumer (default `x-consumer`).
    pub consumer_header: String,
    /// Hash verifications running at once (default 4); more → 503.
    pub max_concurrent_verifications: u32,
    /// How long a successful verification is remembered (default 60 s; 0 = never).
    pub cache_ttl: Duration,
    /// Most remembered verifications (default 10000).
    pub cache_max_entries: u32,
}

/// One basic-auth user.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicUser {
    /// User name.
    pub username: String,
    /// bcrypt (`$2a$`, `$2b$`, `$2y$`) or argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$`) PHC string.
    pub password_hash: String,
    /// The consumer (default: the user name).
    pub consumer: String,
}

/// What forward auth does when the auth service cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Refuse with `failure_status`.
    Closed,
    /// Let the request through.
    Open,
}

/// `forward_auth:` ask an auth service whether a request may pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardAuthPolicy {
    /// The auth service: an upstream of `upstreams:`.
    pub upstream: String,
    /// Path asked (default `/`).
    pub path: String,
    /// Bound on the whole call (default 1 s).
    pub timeout: Duration,
    /// Request headers copied to the auth request (lowercased).
    pub request_headers: Vec<String>,
    /// Headers of a 2xx answer copied to the upstream request (lowercased).
    pub response_headers: Vec<String>,
    /// Failure mode (default closed).
    pub failure: AuthFailure,
    /// Status when failing closed (default 503).
    pub failure_status: u16,
    /// Largest auth-service body read (default 64 KiB); larger counts as unavailable.
    pub max_body: u64,
    /// Decision cache, if configured.
    pub cache: Option<ForwardAuthCache>,
}

/// Forward-auth decisions remembered for a while.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardAuthCache {
    /// How long a decision is reused.
    pub ttl: Duration,
    /// Request headers whose values make up the cache key (lowercased).
    pub key: Vec<String>,
    /// Most remembered decisions (default 10000).
    pub max_entries: u32,
}
