//! The `jwt` policy: verifies a JSON Web Token from the configured place against inline, file or JWKS keys, checks its claims, and passes the caller's identity on (claims, consumer, forwarded headers).

pub mod cache;
pub mod jwks;
pub mod keys;
pub mod token;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};
use strait_core::{Claims, Consumer, Decision, Filter, FilterState, Flow, Reply, RequestCtx};

pub use cache::{Admitted, TokenCache};
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
    /// Verified tokens remembered (0: none).
    pub cache_size: usize,
}

/// The filter.
pub struct JwtFilter {
    name: Arc<str>,
    s: JwtSettings,
    cache: Option<TokenCache>,
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
            cache: TokenCache::new(s.cache_size),
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

    /// Checks the verified claims and builds what the request hands on.
    fn identify(&self, claims: &Map<String, Value>, now: u64) -> Result<Admitted, Refusal> {
        token::check_claims(claims, &self.s.rules, now)?;
        let flat: Vec<(Box<str>, Box<str>)> = claims
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().into(), token::claim_text(v)?.into())))
            .collect();
        let flat = Claims(Arc::new(flat));
        let headers = self
            .s
            .forward
            .iter()
            .filter_map(|(claim, header)| {
                let v = HeaderValue::from_str(flat.get(claim)?).ok()?;
                Some((header.clone(), v))
            })
            .collect();
        let consumer = self
            .s
            .consumer_claim
            .as_deref()
            .and_then(|c| flat.get(c))
            .map(|v| Consumer(Arc::from(v)));
        Ok(Admitted {
            exp: claims.get("exp").and_then(Value::as_f64),
            nbf: claims.get("nbf").and_then(Value::as_f64),
            claims: flat,
            headers,
            consumer,
        })
    }

    /// `exp` and `nbf` of a remembered token, at unix time `now`.
    fn in_time(&self, a: &Admitted, now: u64) -> Result<(), Refusal> {
        let (now, leeway) = (now as f64, self.s.rules.leeway as f64);
        if a.exp.is_some_and(|exp| now - leeway >= exp) {
            return Err(Refusal::Expired);
        }
        if a.nbf.is_some_and(|nbf| now + leeway < nbf) {
            return Err(Refusal::NotYetValid);
        }
        Ok(())
    }

    /// Hands the identity on: claim headers, the consumer, the claims; strips the token.
    fn apply(&self, ctx: &mut RequestCtx<'_>, a: &Admitted) {
        for (header, v) in &a.headers {
            ctx.head.headers.insert(header.clone(), v.clone());
        }
        if let Some(c) = &a.consumer {
            ctx.head.extensions.insert(c.clone());
        }
        ctx.head.extensions.insert(a.claims.clone());
        if self.s.strip_token {
            self.strip(ctx);
        }
    }

    /// Checks `token` against `keys`, from the cache when it was verified before.
    fn check(&self, token: &str, keys: &Arc<KeySet>, now: u64) -> Result<Arc<Admitted>, Refusal> {
        if let Some(a) = self.cache.as_ref().and_then(|c| c.get(token, keys)) {
            self.in_time(&a, now)?;
            return Ok(a);
        }
        let claims = self.verify(token, keys)?;
        let a = Arc::new(self.identify(&claims, now)?);
        if let Some(c) = &self.cache {
            c.insert(token, keys, a.clone(), now as f64);
        }
        Ok(a)
    }

    fn finish(
        &self,
        ctx: &mut RequestCtx<'_>,
        checked: Result<Arc<Admitted>, Refusal>,
    ) -> Option<Reply> {
        match checked {
            Ok(a) => {
                self.apply(ctx, &a);
                None
            }
            Err(r) => Some(self.deny(r)),
        }
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
        let now = unix_now();
        let checked = match &self.s.keys {
            KeySource::Static(keys) => self.check(token, keys, now),
            KeySource::Remote(jwks) => {
                jwks.refresh_if_due();
                let checked = match jwks.current() {
                    Some(keys) => self.check(token, &keys, now),
                    None => Err(Refusal::NoKeys),
                };
                if matches!(checked, Err(Refusal::UnknownKid | Refusal::NoKeys))
                    && (jwks.may_fetch() || jwks.fetching())
                {
                    // Rare path (first request, key rotation): wait for one fetch, bounded.
                    let token = token.to_owned();
                    let jwks = jwks.clone();
                    return Flow::wait(async move {
                        let _ = tokio::time::timeout(jwks.timeout(), jwks.fetch()).await;
                        let checked = match jwks.current() {
                            Some(keys) => self.check(&token, &keys, unix_now()),
                            None => Err(Refusal::NoKeys),
                        };
                        match self.finish(ctx, checked) {
                            None => Decision::Continue,
                            Some(r) => Decision::Reply(r),
                        }
                    });
                }
                checked
            }
        };
        match self.finish(ctx, checked) {
            None => Flow::Continue,
            Some(r) => Flow::Reply(r),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
