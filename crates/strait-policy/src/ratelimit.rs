//! The `rate_limit` policy: GCRA per key (client IP, route, header, consumer, JWT claim), counted in this process or exactly across a fleet in Redis, answering 429 with `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit` headers.
//!
//! Headers follow draft-ietf-httpapi-ratelimit-headers-09 (structured fields):
//! `RateLimit-Policy: "NAME";q=QUOTA;w=WINDOW` and `RateLimit: "NAME";r=REMAINING;t=SECONDS`,
//! where NAME is the policy's name, QUOTA requests per WINDOW seconds, REMAINING what the key
//! can still send at once and SECONDS, on a refusal, when it may send again (else when its
//! quota is whole again).

pub mod key;
pub mod store;
pub mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, StatusCode};
use prometheus::IntCounter;
use strait_core::rate::{micros, Gcra, RateDecision};
use strait_core::{Decision, Filter, FilterState, Flow, Hooks, Reply, RequestCtx, ResponseCtx};

pub use key::{KeyPart, LimitKey};
pub use store::{RedisSettings, RedisStore, StoreError, Target};
pub use table::LocalTable;

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The counters a rate limit reports to, resolved once per compile.
#[derive(Clone)]
pub struct RateLimitCounters {
    /// Live keys evicted from the local table to make room.
    pub evicted: IntCounter,
    /// Store requests that failed (connection or server error).
    pub store_errors: IntCounter,
    /// Store requests that timed out.
    pub store_timeouts: IntCounter,
    /// Decisions made by the local limiter because the store failed (`failure: open`).
    pub fallback_open: IntCounter,
    /// Requests refused because the store failed (`failure: closed`).
    pub fallback_closed: IntCounter,
}

/// A fleet-wide store and what to do when it fails.
pub struct SharedStore {
    /// The store.
    pub store: Arc<RedisStore>,
    /// Refuse with 503 when it fails (else decide locally).
    pub fail_closed: bool,
    /// Prefix of its keys, with the policy's name (`strait:rl:NAME:`).
    pub prefix: String,
}

/// A compiled rate limit.
pub struct RateLimitFilter {
    name: Arc<str>,
    gcra: Gcra,
    key: LimitKey,
    local: Arc<LocalTable>,
    store: Option<SharedStore>,
    response_headers: bool,
    policy_header: HeaderValue,
    counters: RateLimitCounters,
}

/// The admitted decision kept for the response hook.
struct Admitted(RateDecision);

impl RateLimitFilter {
    /// A rate limit called `name`: `requests` per `per`, `burst` at once, per `key`; state in
    /// `local` (kept across reloads) and, for a fleet-wide limit, in `store`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        requests: u64,
        per: Duration,
        burst: u64,
        key: LimitKey,
        local: Arc<LocalTable>,
        store: Option<SharedStore>,
        response_headers: bool,
        counters: RateLimitCounters,
    ) -> Self {
        RateLimitFilter {
            name: Arc::from(name),
            gcra: Gcra::new(requests, per, burst),
            key,
            local,
            store,
            response_headers,
            policy_header: policy_header(name, requests, per),
            counters,
        }
    }

    fn local_decision(&self, key: u64) -> RateDecision {
        let (d, evicted) = self.local.check(key, &self.gcra, micros(Instant::now()));
        if evicted > 0 {
            self.counters.evicted.inc_by(evicted);
        }
        d
    }

    /// Turns a decision into the request's fate.
    fn decide(&self, d: RateDecision, state: &mut FilterState) -> Decision {
        if !d.allowed {
            return Decision::Reply(self.refusal(&d));
        }
        if self.response_headers {
            state.set(Admitted(d));
        }
        Decision::Continue
    }

    fn refusal(&self, d: &RateDecision) -> Reply {
        let mut r = Reply::text(
            StatusCode::TOO_MANY_REQUESTS,
            "strait: too many requests\n",
            "rate_limited",
        );
        let h = r.response.headers_mut();
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(seconds(d.retry_after)),
        );
        self.add_headers(h, d);
        r
    }

    fn add_headers(&self, h: &mut http::HeaderMap, d: &RateDecision) {
        h.insert(RATELIMIT_POLICY.clone(), self.policy_header.clone());
        let t = if d.allowed { d.reset } else { d.retry_after };
        let value = format!(
            "\"{}\";r={};t={}",
            sf_name(&self.name),
            d.remaining,
            if d.allowed {
                seconds_or_zero(t)
            } else {
                seconds(t)
            }
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(RATELIMIT.clone(), v);
        }
    }
}

/// Whole seconds, rounded up, at least 1 (`Retry-After`).
fn seconds(us: u64) -> u64 {
    us.div_ceil(1_000_000).max(1)
}

/// Whole seconds, rounded up.
fn seconds_or_zero(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

/// A policy name as a structured-field string (names are plain already; anything else is
/// replaced).
fn sf_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `"NAME";q=QUOTA;w=WINDOW`, the window in whole seconds (at least 1) and the quota scaled
/// to it.
fn policy_header(name: &str, requests: u64, per: Duration) -> HeaderValue {
    let per_us = per.as_micros().max(1);
    let window = per_us.div_ceil(1_000_000).max(1);
    let quota = u128::from(requests) * window * 1_000_000 / per_us;
    let text = format!("\"{}\";q={quota};w={window}", sf_name(name));
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"limit\""))
}

impl Filter for RateLimitFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "rate_limit"
    }

    fn hooks(&self) -> Hooks {
        Hooks {
            response: self.response_headers,
            ..Hooks::REQUEST
        }
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a> {
        let Some(shared) = &self.store else {
            let Some(k) = self.key.hash(ctx, self.local.hasher()) else {
                return Flow::Continue;
            };
            return match self.decide(self.local_decision(k), state) {
                Decision::Continue => Flow::Continue,
                Decision::Reply(r) => Flow::Reply(r),
            };
        };
        let Some(text) = self.key.text(ctx) else {
            return Flow::Continue;
        };
        // The local key is needed only if the store fails; made now while `ctx` is at hand.
        let local_key = if shared.fail_closed {
            0
        } else {
            self.key.hash(ctx, self.local.hasher()).unwrap_or(0)
        };
        Flow::wait(async move {
            let mut redis_key = String::with_capacity(shared.prefix.len() + text.len() + 2);
            redis_key.push_str(&shared.prefix);
            redis_key.push('{');
            redis_key.push_str(&text);
            redis_key.push('}');
            match shared.store.check(&redis_key, &self.gcra).await {
                Ok(d) => self.decide(d, state),
                Err(e) => {
                    match e {
                        StoreError::Timeout => self.counters.store_timeouts.inc(),
                        StoreError::Failed => self.counters.store_errors.inc(),
                        StoreError::Down => {}
                    }
                    if shared.fail_closed {
                        self.counters.fallback_closed.inc();
                        Decision::Reply(Reply::text(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "strait: service unavailable\n",
                            "store_unavailable",
                        ))
                    } else {
                        self.counters.fallback_open.inc();
                        self.decide(self.local_decision(local_key), state)
                    }
                }
            }
        })
    }

    fn on_response<'a>(
        &'a self,
        ctx: &'a mut ResponseCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a> {
        if let Some(Admitted(d)) = state.take::<Admitted>() {
            self.add_headers(&mut ctx.head.headers, &d);
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests;
