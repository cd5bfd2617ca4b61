//! The `forward_auth` policy: ask an auth service (a named upstream) about each request; its 2xx lets the request through with the headers it names copied on, any other answer goes back to the client; a timeout, a failure mode and an optional decision cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use strait_core::{Decision, Filter, FilterState, Flow, Reply, RequestCtx, UpstreamClient};

use crate::consumer::salt;

/// Headers of a denial passed on to the client; others (hop-by-hop, framing, the auth
/// service's internals) are dropped.
static SAFE_DENIAL_HEADERS: [HeaderName; 6] = [
    http::header::WWW_AUTHENTICATE,
    http::header::LOCATION,
    http::header::CONTENT_TYPE,
    http::header::SET_COOKIE,
    http::header::RETRY_AFTER,
    http::header::CACHE_CONTROL,
];

/// What the auth service said.
#[derive(Debug)]
enum Verdict {
    /// Let it through with these headers.
    Allow(Vec<(HeaderName, HeaderValue)>),
    /// Answer the client with this.
    Deny(StatusCode, HeaderMap, Bytes),
}

/// Settings of the decision cache.
pub struct CacheSettings {
    /// How long a decision is reused.
    pub ttl: Duration,
    /// Request headers the key is made of.
    pub key: Vec<HeaderName>,
    /// Most decisions kept.
    pub max_entries: usize,
}

/// Cached decisions by key: until when, and the decision.
type Decisions = HashMap<[u8; 32], (Instant, Arc<Verdict>)>;

struct DecisionCache {
    settings: CacheSettings,
    salt: [u8; 16],
    map: Mutex<Decisions>,
}

impl DecisionCache {
    fn key(&self, headers: &HeaderMap) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.salt);
        for name in &self.settings.key {
            for v in headers.get_all(name) {
                // Length-prefixed, so values cannot run into each other.
                h.update((v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
            h.update([0xff]);
        }
        h.finalize().into()
    }

    fn get(&self, key: &[u8; 32], now: Instant) -> Option<Arc<Verdict>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(until, _)| *until > now)
            .map(|(_, v)| v.clone())
    }

    fn insert(&self, key: [u8; 32], verdict: Arc<Verdict>, now: Instant) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.settings.max_entries && !map.contains_key(&key) {
            map.retain(|_, (until, _)| *until > now);
            if map.len() >= self.settings.max_entries {
                return;
            }
        }
        map.insert(key, (now + self.settings.ttl, verdict));
    }
}

/// Which answers are cached: allows, and the two definite denials. Others (redirects to a
/// login page with a per-request state, 429, 5xx) are asked again.
pub fn cacheable(status: StatusCode) -> bool {
    status.is_success() || status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

/// A compiled `forward_auth` policy.
pub struct ForwardAuthFilter {
    name: Arc<str>,
    client: Arc<dyn UpstreamClient>,
    path: http::Uri,
    timeout: Duration,
    request_headers: Vec<HeaderName>,
    response_headers: Vec<HeaderName>,
    fail_open: bool,
    failure_status: StatusCode,
    max_body: usize,
    cache: Option<DecisionCache>,
}

/// How to build a [`ForwardAuthFilter`].
pub struct ForwardAuthSettings {
    /// Path asked of the auth service.
    pub path: http::Uri,
    /// Bound on the call.
    pub timeout: Duration,
    /// Request headers copied to the auth request.
    pub request_headers: Vec<HeaderName>,
    /// Headers of a 2xx copied onto the upstream request.
    pub response_headers: Vec<HeaderName>,
    /// Let requests through when the auth service cannot answer.
    pub fail_open: bool,
    /// Status when failing closed.
    pub failure_status: StatusCode,
    /// Largest auth-service body.
    pub max_body: usize,
    /// Decision cache.
    pub cache: Option<CacheSettings>,
}

impl ForwardAuthFilter {
    /// A filter called `name` asking through `client`.
    pub fn new(name: &str, client: Arc<dyn UpstreamClient>, s: ForwardAuthSettings) -> Self {
        ForwardAuthFilter {
            name: Arc::from(name),
            client,
            path: s.path,
            timeout: s.timeout,
            request_headers: s.request_headers,
            response_headers: s.response_headers,
            fail_open: s.fail_open,
            failure_status: s.failure_status,
            max_body: s.max_body,
            cache: s.cache.map(|settings| DecisionCache {
                settings,
                salt: salt(),
                map: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The auth request for the request in `ctx` (Traefik's ForwardAuth headers).
    fn auth_request(&self, ctx: &RequestCtx<'_>) -> http::Request<Bytes> {
        let mut req = http::Request::new(Bytes::new());
        *req.uri_mut() = self.path.clone();
        let h = req.headers_mut();
        let head = &*ctx.head;
        if let Ok(v) = HeaderValue::from_str(head.method.as_str()) {
            h.insert("x-forwarded-method", v);
        }
        let uri = head.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(v) = HeaderValue::from_str(uri) {
            h.insert("x-forwarded-uri", v);
        }
        let host = head.headers.get(http::header::HOST).cloned().or_else(|| {
            head.uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        if let Some(v) = host {
            h.insert("x-forwarded-host", v);
        }
        h.insert(
            "x-forwarded-proto",
            HeaderValue::from_static(if ctx.tls { "https" } else { "http" }),
        );
        if let Ok(v) = HeaderValue::from_str(&ctx.client.ip().to_string()) {
            h.insert("x-forwarded-for", v);
        }
        for name in &self.request_headers {
            for v in head.headers.get_all(name) {
                h.append(name.clone(), v.clone());
            }
        }
        req
    }

    fn verdict(&self, resp: http::Response<Bytes>) -> Verdict {
        let (parts, body) = resp.into_parts();
        if parts.status.is_success() {
            let mut copy = Vec::new();
            for name in &self.response_headers {
                for v in parts.headers.get_all(name) {
                    copy.push((name.clone(), v.clone()));
                }
            }
            return Verdict::Allow(copy);
        }
        let mut headers = HeaderMap::new();
        for name in &SAFE_DENIAL_HEADERS {
            for v in parts.headers.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        Verdict::Deny(parts.status, headers, body)
    }

    fn apply(&self, verdict: &Verdict, head: &mut http::request::Parts) -> Decision {
        match verdict {
            Verdict::Allow(copy) => {
                for (n, v) in copy {
                    head.headers.append(n.clone(), v.clone());
                }
                Decision::Continue
            }
            Verdict::Deny(status, headers, body) => {
                let mut response = http::Response::new(body.clone());
                *response.status_mut() = *status;
                *response.headers_mut() = headers.clone();
                Decision::Reply(Reply {
                    response,
                    reason: "denied",
                })
            }
        }
    }

    fn unavailable(&self) -> Decision {
        if self.fail_open {
            return Decision::Continue;
        }
        Decision::Reply(Reply::text(
            self.failure_status,
            "strait: authentication service unavailable\n",
            "auth_unavailable",
        ))
    }
}

impl Filter for ForwardAuthFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "forward_auth"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        // Only the auth service may set these.
        for name in &self.response_headers {
            ctx.head.headers.remove(name);
        }
        let key = self.cache.as_ref().map(|c| c.key(&ctx.head.headers));
        if let (Some(c), Some(k)) = (&self.cache, &key) {
            if let Some(v) = c.get(k, Instant::now()) {
                return match self.apply(&v, ctx.head) {
                    Decision::Continue => Flow::Continue,
                    Decision::Reply(r) => Flow::Reply(r),
                };
            }
        }
        let call = self
            .client
            .send(self.auth_request(ctx), self.timeout, self.max_body);
        Flow::wait(async move {
            let resp = match call.await {
                Ok(r) => r,
                Err(_) => return self.unavailable(),
            };
            let cache_it = cacheable(resp.status());
            let verdict = self.verdict(resp);
            let decision = self.apply(&verdict, ctx.head);
            if let (Some(c), Some(k), true) = (&self.cache, key, cache_it) {
                c.insert(k, Arc::new(verdict), Instant::now());
            }
            decision
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_only_allows_and_definite_denials() {
        for s in [200u16, 204, 401, 403] {
            assert!(cacheable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [302u16, 400, 404, 429, 500, 503] {
            assert!(!cacheable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn cache_key_depends_only_on_the_key_headers() {
        let c = DecisionCache {
            settings: CacheSettings {
                ttl: Duration::from_secs(1),
                key: vec![http::header::AUTHORIZATION],
                max_entries: 1,
            },
            salt: salt(),
            map: Mutex::new(HashMap::new()),
        };
        let mut a = HeaderMap::new();
        a.insert(http::header::AUTHORIZATION, HeaderValue::from_static("t1"));
        let mut b = a.clone();
        b.insert("x-other", HeaderValue::from_static("z"));
        assert_eq!(c.key(&a), c.key(&b));
        b.insert(http::header::AUTHORIZATION, HeaderValue::from_static("t2"));
        assert_ne!(c.key(&a), c.key(&b));
        let t0 = Instant::now();
        c.insert(c.key(&a), Arc::new(Verdict::Allow(vec![])), t0);
        c.insert(c.key(&b), Arc::new(Verdict::Allow(vec![])), t0);
        assert!(c.get(&c.key(&a), t0).is_some());
        assert!(c.get(&c.key(&b), t0).is_none(), "bounded to one entry");
        assert!(c.get(&c.key(&a), t0 + Duration::from_secs(2)).is_none());
    }
}
