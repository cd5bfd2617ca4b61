//! The `jwt` policy: verifies a JSON Web Token from the configured place against inline, file or JWKS keys, checks its claims, and passes the caller's identity on (claims, consumer, forwarded headers).

pub mod jwks;
pub mod keys;
pub mod token;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};
use strait_core::{Claims, Consumer, Decision, Filter, FilterState, Flow, Reply, RequestCtx};

pub use jwks::{FetchHook, Jwks, JwksSettings};
pub use keys::{Alg, Key, KeyMaterial, KeySet};
pub use token::{ClaimRules, Refusal, TokenSource};

/// Where a policy's keys come from.
pub enum KeySource {
    /// Keys given in the configuration (inline or files), fixed for the snapshot.
    Static(Arc<KeySet>),
    /// A remote JWKS document, cached in live state.
    Remote(Arc<Jwks>),
}

/// A `jwt` policy's settings, parsed.
pub struct JwtSettings {
    /// Accepted algorithms.
    pub algorithms: Vec<Alg>,
    /// Keys.
    pub keys: KeySource,
    /// Claim checks.
    pub rules: ClaimRules,
    /// Where the token is read.
    pub source: TokenSource,
    /// Longest token accepted, bytes.
    pub max_token: usize,
    /// Claims copied into upstream request headers.
    pub forward: Vec<(String, HeaderName)>,
    /// Remove the token from the request before forwarding.
    pub strip_token: bool,
    /// The claim naming the consumer.
    pub consumer_claim: Option<String>,
    /// `realm` of `WWW-Authenticate`.
    pub realm: String,
}

/// The filter.
pub struct JwtFilter {
    name: Arc<str>,
    s: JwtSettings,
    challenge_missing: HeaderValue,
    challenge_invalid: HeaderValue,
    challenge_scope: HeaderValue,
}

impl JwtFilter {
    /// A `jwt` filter called `name`.
    pub fn new(name: &str, s: JwtSettings) -> Result<Self, String> {
        let realm = s.realm.replace(['"', '\\'], "");
        let v = |extra: &str| {
            HeaderValue::from_str(&format!("Bearer realm=\"{realm}\"{extra}"))
                .map_err(|_| "jwt.realm: not a valid header value".to_string())
        };
        Ok(JwtFilter {
            name: Arc::from(name),
            challenge_missing: v("")?,
            challenge_invalid: v(", error=\"invalid_token\"")?,
            challenge_scope: v(", error=\"insufficient_scope\"")?,
            s,
        })
    }

    fn deny(&self, r: Refusal) -> Reply {
        let (status, body, challenge) = match r {
            Refusal::Missing => (
                StatusCode::UNAUTHORIZED,
                "strait: authentication required\n",
                &self.challenge_missing,
            ),
            Refusal::MissingClaims | Refusal::MissingScope => (
                StatusCode::FORBIDDEN,
                "strait: insufficient scope\n",
                &self.challenge_scope,
            ),
            Refusal::NoKeys => (
                StatusCode::SERVICE_UNAVAILABLE,
                "strait: token keys unavailable\n",
                &self.challenge_invalid,
            ),
            _ => (
                StatusCode::UNAUTHORIZED,
                "strait: invalid token\n",
                &self.challenge_invalid,
            ),
        };
        let mut reply = Reply::text(status, body, r.reason());
        if status != StatusCode::SERVICE_UNAVAILABLE {
            reply
                .response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, challenge.clone());
        }
        reply
    }

    /// Parses and verifies `token` against `keys`; the verified claims.
    fn verify(&self, token: &str, keys: &KeySet) -> Result<Map<String, Value>, Refusal> {
        let p = token::parse(token, &self.s.algorithms, self.s.max_token)?;
        match keys.verify(
            p.alg,
            p.kid.as_deref(),
            p.signing_input.as_bytes(),
            &p.signature,
        ) {
            Ok(()) => Ok(p.claims),
            Err(keys::VerifyError::UnknownKid) => Err(Refusal::UnknownKid),
            Err(keys::VerifyError::BadSignature) => Err(Refusal::Invalid),
        }
    }

    /// Checks the verified claims and hands the identity on.
    fn admit(&self, ctx: &mut RequestCtx<'_>, claims: Map<String, Value>) -> Result<(), Refusal> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        token::check_claims(&claims, &self.s.rules, now)?;
        let flat: Vec<(Box<str>, Box<str>)> = claims
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().into(), token::claim_text(v)?.into())))
            .collect();
        let claims = Claims(Arc::new(flat));
        for (claim, header) in &self.s.forward {
            if let Some(v) = claims
                .get(claim)
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                ctx.head.headers.insert(header.clone(), v);
            }
        }
        if let Some(c) = &self.s.consumer_claim {
            if let Some(v) = claims.get(c) {
                ctx.head.extensions.insert(Consumer(Arc::from(v)));
            }
        }
        ctx.head.extensions.insert(claims);
        if self.s.strip_token {
            self.strip(ctx);
        }
        Ok(())
    }

    fn strip(&self, ctx: &mut RequestCtx<'_>) {
        match &self.s.source {
            TokenSource::Header { name, .. } => {
                ctx.head.headers.remove(name);
            }
            TokenSource::Query(param) => {
                let Some(q) = ctx.head.uri.query() else {
                    return;
                };
                let q = token::strip_query(q, param);
                let path = ctx.head.uri.path();
                let pq = if q.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}?{q}")
                };
                let mut parts = ctx.head.uri.clone().into_parts();
                if let Ok(pq) = pq.parse() {
                    parts.path_and_query = Some(pq);
                    if let Ok(uri) = http::Uri::from_parts(parts) {
                        ctx.head.uri = uri;
                    }
                }
            }
            TokenSource::Cookie(name) => {
                let kept: Vec<String> = ctx
                    .head
                    .headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(';'))
                    .map(str::trim)
                    .filter(|c| {
                        !c.is_empty() && c.split_once('=').map_or(*c, |(k, _)| k) != name.as_str()
                    })
                    .map(str::to_owned)
                    .collect();
                ctx.head.headers.remove(http::header::COOKIE);
                if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                    if !kept.is_empty() {
                        ctx.head.headers.insert(http::header::COOKIE, v);
                    }
                }
            }
        }
    }

    fn finish(
        &self,
        ctx: &mut RequestCtx<'_>,
        verified: Result<Map<String, Value>, Refusal>,
    ) -> Option<Reply> {
        match verified.and_then(|c| self.admit(ctx, c)) {
            Ok(()) => None,
            Err(r) => Some(self.deny(r)),
        }
    }
}

impl Filter for JwtFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "jwt"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        // Client-sent copies of the identity headers never reach the upstream.
        for (_, h) in &self.s.forward {
            ctx.head.headers.remove(h);
        }
        let Some(token) = token::extract(&self.s.source, &ctx.head.headers, ctx.head.uri.query())
        else {
            return Flow::Reply(self.deny(Refusal::Missing));
        };
        let verified = match &self.s.keys {
            KeySource::Static(keys) => self.verify(token, keys),
            KeySource::Remote(jwks) => {
                jwks.refresh_if_due();
                let verified = match jwks.current() {
                    Some(keys) => self.verify(token, &keys),
                    None => Err(Refusal::NoKeys),
                };
                if matches!(verified, Err(Refusal::UnknownKid | Refusal::NoKeys))
                    && (jwks.may_fetch() || jwks.fetching())
                {
                    // Rare path (first request, key rotation): wait for one fetch, bounded.
                    let token = token.to_owned();
                    let jwks = jwks.clone();
                    return Flow::wait(async move {
                        let _ = tokio::time::timeout(jwks.timeout(), jwks.fetch()).await;
                        let verified = match jwks.current() {
                            Some(keys) => self.verify(&token, &keys),
                            None => Err(Refusal::NoKeys),
                        };
                        match self.finish(ctx, verified) {
                            None => Decision::Continue,
                            Some(r) => Decision::Reply(r),
                        }
                    });
                }
                verified
            }
        };
        match self.finish(ctx, verified) {
            None => Flow::Continue,
            Some(r) => Flow::Reply(r),
        }
    }
}
