//! Validated settings of the `jwt` policy.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `jwt:` verification of JSON Web Tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtPolicy {
    /// Accepted algorithms (JOSE names, e.g. `RS256`); nothing else is.
    pub algorithms: Vec<String>,
    /// Where the keys come from.
    pub keys: JwtKeys,
    /// Accepted `iss` values (any one); empty = not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values (the token must name one); empty = not checked.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf` (default 60 s).
    pub leeway: Duration,
    /// Claims that must be present (else 403).
    pub required_claims: Vec<String>,
    /// Scopes that must all be granted by `scope`/`scp` (else 403).
    pub scopes: Vec<String>,
    /// Where the token is read (default the `Authorization: Bearer` header).
    pub token: JwtToken,
    /// Longest token accepted (default 8 KiB); longer ones are refused unparsed.
    pub max_token_size: u64,
    /// Claims copied into upstream request headers (claim, header); client copies are removed.
    pub forward_claims: Vec<(String, String)>,
    /// Remove the token from the forwarded request (default false).
    pub strip_token: bool,
    /// The claim that names the consumer (rate limits and logs key on it).
    pub consumer_claim: Option<String>,
    /// `realm` of the `WWW-Authenticate` challenge (default `strait`).
    pub realm: String,
    /// Verified tokens remembered, so a token sent again is not verified again (default 1024; 0: none).
    pub cache_size: u32,
}

/// Key sources of a `jwt` policy.
#[derive(Debug, Clone, PartialEq)]
pub enum JwtKeys {
    /// A JWKS document served by a named upstream.
    Jwks(JwksSource),
    /// Keys in the configuration or in files.
    Keys(Vec<JwtKey>),
}

/// `jwt.jwks:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JwksSource {
    /// Upstream name.
    pub upstream: String,
    /// Path of the document.
    pub path: String,
    /// Fetched again after this long (default 10 min).
    pub refresh: Duration,
    /// Least time between fetches, however many unknown `kid`s arrive (default 30 s).
    pub cooldown: Duration,
    /// Bound on a fetch (default 2 s).
    pub timeout: Duration,
}

/// One configured key.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtKey {
    /// Key id a token's `kid` must name; `None` = any token.
    pub kid: Option<String>,
    /// The key.
    pub material: JwtKeyMaterial,
}

/// Key material, written inline or in a file (relative paths next to the config).
#[derive(Clone, PartialEq)]
pub enum JwtKeyMaterial {
    /// A public key in PEM.
    Pem(String),
    /// A file holding a public key in PEM.
    PemFile(PathBuf),
    /// An HMAC secret.
    Secret(String),
    /// A file holding an HMAC secret (trailing newline ignored).
    SecretFile(PathBuf),
}

impl fmt::Debug for JwtKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtKeyMaterial::Pem(p) => f.debug_tuple("Pem").field(p).finish(),
            JwtKeyMaterial::PemFile(p) => f.debug_tuple("PemFile").field(p).finish(),
            // Secrets stay out of logs and debug prints.
            JwtKeyMaterial::Secret(_) => f.write_str("Secret(..)"),
            JwtKeyMaterial::SecretFile(p) => f.debug_tuple("SecretFile").field(p).finish(),
        }
    }
}

/// Where a `jwt` policy reads the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtToken {
    /// A header (lowercased) and the prefix before the token.
    Header {
        /// Header name.
        name: String,
        /// Prefix (matched without regard to case).
        prefix: String,
    },
    /// A query parameter.
    Query(String),
    /// A cookie.
    Cookie(String),
}
