//! Forwarding in two steps: *select* (the backend the handler chose → the upstream's breaker → its balancer → an endpoint, skipping unhealthy and ejected ones) and *attempt* (send within a per-try timeout; on failure, maybe try again).
//!
//! What is tried again, and when:
//! - A connection that cannot be made is retried on another endpoint, once, by default (the
//!   request was never sent; nginx's `proxy_next_upstream error` does the same).
//! - A request a reused keep-alive connection did not send (the upstream had just closed it)
//!   goes on a fresh connection to the same endpoint, always and silently (`attempt`).
//! - With a retry policy: connect failures, resets, timeouts and chosen statuses, for
//!   idempotent methods unless told otherwise, on another endpoint when there is one, after a
//!   jittered exponential backoff, while the policy's budget allows, and only while the request
//!   body can be replayed (`replay`).
//!
//! Every attempt is its own client span, its own `strait_upstream_requests_total` outcome, and
//! feeds the endpoint's passive health (`Upstream::outlier`) and breakers.

use std::{sync::Arc, time::Instant};

use http::{header, request::Parts, HeaderValue, Method, Request, Response, Version};
use strait_core::{
    balance::hash_key,
    clock,
    cookie::cookie,
    resilience::{backoff, outlier::may_eject, Admission, AttemptResult, Breaker, BreakerState},
    ProxyError, Side,
};
use strait_observe::{trace::Tracer, Attempt, RequestRecord};
use tokio::time::Instant as Deadline;

use crate::{
    body::{Downstream, ProxyBody, Streamed},
    handler::ConnInfo,
    headers::{self, Kept},
    pool::{Outcome, PooledBody},
    replay::ReplayBody,
    retry::RetryPolicy,
    route,
    upstream::{HashOn, Upstream},
    Shared,
};

pub(crate) mod attempt;
mod head;
mod select;

use attempt::{AttemptError, Sent};
use head::{copy_head, next_hop_head, upgrade_allowed, upgrade_allowed_value};

/// Everything one forward needs, borrowed from the request path.
pub struct Forward<'a> {
    /// Process-wide state.
    pub shared: &'a Shared,
    /// Downstream connection.
    pub conn: &'a ConnInfo,
    /// Route name (retry metrics).
    pub route: &'a Arc<str>,
    /// The route's forwarding settings.
    pub spec: &'a route::Forward,
    /// The backend the handler picked.
    pub backend: usize,
    /// Length of the matched `path_prefix`.
    pub prefix_len: usize,
    /// Request id to forward.
    pub request_id: &'a HeaderValue,
    /// Original authority.
    pub host: Option<&'a HeaderValue>,
    /// The request's record (access log, spans), when observability is configured.
    pub record: Option<&'a mut RequestRecord>,
    /// Tracing, when configured: the upstream gets a `traceparent` for each attempt.
    pub tracer: Option<&'a Tracer>,
}

/// What the attempts came to, for the end-of-request hook and the access log.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Attempts made towards endpoints.
    pub attempts: u32,
    /// Endpoint of the last attempt.
    pub endpoint: Option<Arc<str>>,
}

/// The request as each attempt needs it: the head (copied when a retry policy may need it
/// again) and the body (replayable when the policy may resend it).
struct Sendable {
    head: Option<Parts>,
    body: Option<ProxyBody>,
    copy: Option<Parts>,
    replay: Option<ReplayBody>,
    /// The request has no body: any attempt can send an empty one.
    bodiless: bool,
    method: Method,
}

impl Sendable {
    /// The request for the next attempt, or `None` when it cannot be sent again.
    fn next(&mut self) -> Option<(Parts, ProxyBody)> {
        let head = match self.head.take() {
            Some(h) => h,
            None => copy_head(self.copy.as_ref()?),
        };
        let body = match self.body.take() {
            Some(b) => b,
            None if self.bodiless => ProxyBody::Empty,
            None => ProxyBody::Replay(self.replay.as_ref()?.replay()?),
        };
        Some((head, body))
    }

    /// A request an attempt gave back unsent.
    fn give_back(&mut self, req: Request<ProxyBody>) {
        let (h, b) = req.into_parts();
        self.head = Some(h);
        self.body = Some(b);
    }

    /// Whether a request the upstream may have seen can be sent again.
    fn can_resend(&self, policy: &RetryPolicy) -> bool {
        policy.allows_method(&self.method)
            && self.copy.is_some()
            && (self.bodiless || self.replay.as_ref().is_some_and(ReplayBody::is_replayable))
    }

    /// Whether the request is back in hand, never sent.
    fn unsent(&self) -> bool {
        self.head.is_some() && self.body.is_some()
    }
}

/// Sends the request to an endpoint of the chosen upstream and returns its response, or why
/// not; `filters` are the chain's request body filters (usually none).
pub async fn forward(
    mut f: Forward<'_>,
    req: Request<Downstream>,
    filters: Vec<Box<dyn strait_core::BodyFilter>>,
    tally: &mut Tally,
) -> Result<Response<ProxyBody>, ProxyError> {
    let upstream = f.spec.backends.upstream(f.backend).clone();
    let upstream = &upstream;
    // An HTTP/1.1 client may switch protocols through an HTTP/1 upstream (WebSocket), for the
    // tokens the route allows; other Upgrade headers are dropped (never `h2c`: smuggling).
    let may_upgrade = !upstream.protocol.is_h2()
        && req.version() == Version::HTTP_11
        && upgrade_allowed(req.headers(), &f.spec.upgrades);
    let (mut head, body) = req.into_parts();
    let (route_max_body, route_deadline) = head
        .extensions
        .get::<strait_core::RouteLimits>()
        .map_or((0, None), |l| (l.max_body, l.deadline));
    let colour = head.extensions.get::<strait_core::Colour>().cloned();
    let kept = next_hop_head(&f, upstream, &mut head, may_upgrade)?;

    // One clock read serves the admission, the deadline, the retry budget and the first
    // attempt's start; each attempt reads it once more when it ends.
    let entered = Instant::now();
    let breaker = match &upstream.breaker {
        Some(b) => match b.admit(clock::millis(entered)) {
            Admission::Rejected => return Err(ProxyError::CircuitOpen(upstream.name.to_string())),
            a => {
                if a == Admission::Probe {
                    export_breaker(&f, upstream, b.state());
                }
                Some((&**b, a))
            }
        },
        None => None,
    };
    let retry = f.spec.retry.as_deref();
    let mut req = sendable(&f, upstream, head, body, filters, retry, route_max_body);
    if let Some(p) = retry {
        p.budget.deposit(clock::millis(entered));
    }
    let hash = upstream
        .hash_on
        .as_ref()
        .map(|h| request_hash(h, req.head.as_ref().expect("not sent yet"), f.conn));
    let mut deadline = Deadline::from_std(entered) + upstream.timeouts.request;
    if let Some(d) = route_deadline {
        // A request_limits timeout counts from the request, not from here.
        deadline = deadline.min(Deadline::from_std(d));
    }
    let max_attempts = retry.map_or(2, |p| p.attempts);
    let mut coloured = colour.map(|c| select::Coloured::new(c, upstream));
    if let (Some(rec), Some(c)) = (f.record.as_deref_mut(), &coloured) {
        rec.colour = Some(c.colour().value().clone());
    }
    let mut tried = Tried::default();
    let mut last_err = None;
    let mut first = Some(entered);
    loop {
        // A later attempt starts after whatever came between: a backoff, a refused endpoint.
        let started = first.take().unwrap_or_else(Instant::now);
        let now_ms = clock::millis(started);
        // Another endpoint when there is one; a retry policy may go back to one tried before.
        let picked = select::pick(
            upstream,
            coloured.as_mut(),
            hash,
            now_ms,
            |i| tried.has(i),
            tally.attempts > 0 && retry.is_some(),
            tally.attempts == 0,
        );
        if let (Some(rec), Some(c)) = (f.record.as_deref_mut(), &coloured) {
            rec.colour_fallback = c.fell_back;
        }
        let picked = match picked {
            Ok(p) => p,
            Err(e) => {
                colour_denied(&mut f, coloured.as_ref());
                return Err(e);
            }
        };
        let Some((index, endpoint)) = picked else {
            break;
        };
        tried.add(index);
        let endpoint_breaker = match &endpoint.breaker {
            Some(b) => match b.admit(now_ms) {
                Admission::Rejected => continue,
                a => Some((&**b, a)),
            },
            None => None,
        };
        let Some((mut head, body)) = req.next() else {
            break;
        };
        tally.attempts += 1;
        tally.endpoint = Some(endpoint.address.clone());
        let span = inject_trace(&f, &mut head);
        let timeout = retry
            .and_then(|p| p.per_try_timeout)
            .unwrap_or(upstream.timeouts.request)
            .min(deadline.saturating_duration_since(Deadline::from_std(started)));
        let pool = f.shared.pools.of(upstream, endpoint, &f.shared.metrics);
        let result = {
            let _active = endpoint.state.track();
            let req = Request::from_parts(head, body);
            attempt::send(pool, upstream, endpoint, req, timeout).await
        };
        let ended = Instant::now();
        let elapsed = ended.saturating_duration_since(started);
        pool.attempt_duration.observe(elapsed.as_secs_f64());
        pool.count(outcome(&result));
        if let Some(rec) = f.record.as_deref_mut() {
            rec.attempts.push(Attempt {
                span_id: span.unwrap_or_default(),
                start: started,
                duration: elapsed,
                upstream: upstream.name.clone(),
                endpoint: endpoint.address.clone(),
                status: result.as_ref().map_or(0, |s| s.response.status().as_u16()),
                error: result.as_ref().err().map(|e| e.error.kind().as_str()),
                detail: result
                    .as_ref()
                    .err()
                    .map(|e| Arc::from(e.error.to_string())),
            });
        }
        let now_ms = clock::millis(ended);
        let health = match &result {
            Ok(s) => Some(AttemptResult::of_status(s.response.status().as_u16())),
            // Neither says anything about the endpoint: Strait's own connection cap, or the
            // client's request failing (a body cut short, refused or too large). Counting the
            // latter would let any client get healthy endpoints ejected and breakers opened.
            Err(e) if matches!(e.error, ProxyError::Overloaded { .. }) => None,
            Err(e) if e.error.side() == Side::Downstream => None,
            Err(_) => Some(AttemptResult::GatewayFailure),
        };
        if let Some(h) = health {
            passive_health(&f, upstream, index, h, now_ms);
            if let Some((b, a)) = endpoint_breaker {
                record_breaker(
                    &f,
                    upstream,
                    Some(&endpoint.address),
                    b,
                    a,
                    h == AttemptResult::Success,
                    now_ms,
                );
            }
        }
        let more = tally.attempts < max_attempts;
        match result {
            Ok(sent) => {
                let status = sent.response.status().as_u16();
                let again =
                    more && retry.is_some_and(|p| p.retries_status(status) && req.can_resend(p));
                if again
                    && retry_allowed(&f, upstream, retry, tally.attempts, deadline, now_ms).await
                {
                    continue;
                }
                if let Some((b, a)) = breaker {
                    record_breaker(&f, upstream, None, b, a, status < 500, now_ms);
                }
                return finish(&f, upstream, sent, kept);
            }
            Err(AttemptError { error, request }) => {
                if let Some(r) = request {
                    req.give_back(r);
                }
                let again = more
                    && match retry {
                        // Without a policy: one more endpoint for a request never sent.
                        None => error.never_sent() && req.unsent(),
                        Some(p) => {
                            req.unsent() || (retryable_error(p, &error) && req.can_resend(p))
                        }
                    };
                let proceed = again
                    && match retry {
                        None => true,
                        Some(_) => {
                            retry_allowed(&f, upstream, retry, tally.attempts, deadline, now_ms)
                                .await
                        }
                    };
                if proceed {
                    last_err = Some(error);
                    continue;
                }
                if let (Some((b, a)), Some(_)) = (breaker, health) {
                    record_breaker(&f, upstream, None, b, a, false, now_ms);
                }
                return Err(error);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| ProxyError::NoHealthyEndpoint(upstream.name.to_string())))
}

/// A colour policy refused the request (`fallback: reject`): a denial by that policy.
fn colour_denied(f: &mut Forward<'_>, coloured: Option<&select::Coloured<'_>>) {
    let Some(c) = coloured else { return };
    let policy = &c.colour().set.policy;
    f.shared
        .metrics
        .policy_denials
        .with_label_values(&[policy, "colour_unavailable"])
        .inc();
    if let Some(rec) = f.record.as_deref_mut() {
        rec.policy = Some(policy.clone());
        rec.policy_reason = Some("colour_unavailable");
    }
}

/// The request prepared for its attempts.
fn sendable(
    f: &Forward<'_>,
    upstream: &Upstream,
    mut head: Parts,
    body: Downstream,
    filters: Vec<Box<dyn strait_core::BodyFilter>>,
    retry: Option<&RetryPolicy>,
    route_max_body: u64,
) -> Sendable {
    let limit = match (f.conn.listener.limits.max_request_body, route_max_body) {
        (0, r) => r,
        (l, 0) => l,
        (l, r) => l.min(r),
    };
    let mut body = ProxyBody::Downstream(Streamed::new(body, upstream.timeouts.idle, limit));
    let mut filters = filters;
    let observers = filters.iter().all(|f| f.observes_only());
    if observers && http_body::Body::is_end_stream(&body) {
        // Nothing will stream: the observers see the (empty) end now, and the request keeps
        // its framing instead of going chunked.
        for f in &mut filters {
            let _ = f.on_data(bytes::Bytes::new(), true);
        }
        filters.clear();
    }
    if !filters.is_empty() {
        if !observers {
            // Filters may change the length: the body goes chunked (or as HTTP/2 DATA frames).
            head.headers.remove(header::CONTENT_LENGTH);
        }
        body = ProxyBody::Filtered(Box::new(crate::filtered::Filtered::new(body, filters)));
    }
    let mut replay = None;
    let bodiless = http_body::Body::is_end_stream(&body);
    let body = match retry {
        Some(p) if !http_body::Body::is_end_stream(&body) => {
            match ReplayBody::try_new(body, p.max_replay_body) {
                Ok(r) => {
                    let first = r.replay().expect("nothing was read yet");
                    replay = Some(r);
                    ProxyBody::Replay(first)
                }
                Err(body) => body,
            }
        }
        _ => body,
    };
    Sendable {
        method: head.method.clone(),
        copy: retry.map(|_| copy_head(&head)),
        head: Some(head),
        body: Some(body),
        replay,
        bodiless,
    }
}

/// Whether a failure after the request was sent is one the policy retries.
fn retryable_error(p: &RetryPolicy, e: &ProxyError) -> bool {
    match e {
        ProxyError::Connect { .. } | ProxyError::Overloaded { .. } => true,
        ProxyError::Timeout { .. } => p.on_timeout,
        ProxyError::Upstream { .. } => p.on_reset,
        _ => false,
    }
}

/// Takes a retry from the budget and waits the backoff; false when the retry must not happen.
async fn retry_allowed(
    f: &Forward<'_>,
    upstream: &Upstream,
    retry: Option<&RetryPolicy>,
    attempts: u32,
    deadline: Deadline,
    now_ms: u64,
) -> bool {
    let Some(p) = retry else { return true };
    if !p.budget.withdraw(now_ms) {
        p.exhausted.inc();
        return false;
    }
    f.shared
        .metrics
        .retries
        .with_label_values(&[f.route, &upstream.name])
        .inc();
    let wait = backoff(
        attempts,
        p.backoff_base,
        p.backoff_max,
        strait_core::rand::next_u64(),
    );
    if Deadline::now() + wait >= deadline {
        return false;
    }
    tokio::time::sleep(wait).await;
    true
}

fn outcome(result: &Result<Sent, AttemptError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Response,
        Err(e) => match e.error {
            ProxyError::Connect { .. } | ProxyError::Overloaded { .. } => Outcome::ConnectError,
            ProxyError::Timeout { .. } => Outcome::Timeout,
            _ => Outcome::Error,
        },
    }
}

/// Feeds an attempt's result to the endpoint's passive health; ejects it when it crossed a
/// threshold and the upstream's cap allows.
fn passive_health(
    f: &Forward<'_>,
    upstream: &Upstream,
    index: usize,
    r: AttemptResult,
    now_ms: u64,
) {
    let endpoint = &upstream.endpoints[index];
    let outlier = &endpoint.state.outlier;
    if !outlier.record(&upstream.outlier, r, now_ms) {
        return;
    }
    if !may_eject(
        &upstream.outlier,
        upstream.ejected(now_ms),
        upstream.endpoints.len(),
    ) {
        return;
    }
    let length = outlier.eject(&upstream.outlier, now_ms);
    f.shared
        .metrics
        .ejections
        .with_label_values(&[&upstream.name, &endpoint.address])
        .inc();
    tracing::warn!(
        upstream = %upstream.name,
        endpoint = %endpoint.address,
        seconds = length.as_secs(),
        "endpoint ejected after consecutive failures"
    );
}

/// Records a result in a breaker, logging and exporting a change of state.
fn record_breaker(
    f: &Forward<'_>,
    upstream: &Upstream,
    endpoint: Option<&str>,
    breaker: &Breaker,
    admission: Admission,
    success: bool,
    now_ms: u64,
) {
    let Some(state) = breaker.record(admission, success, now_ms) else {
        return;
    };
    if endpoint.is_none() {
        export_breaker(f, upstream, state);
    }
    let level_open = state == BreakerState::Open;
    if level_open {
        tracing::warn!(upstream = %upstream.name, endpoint, state = state.as_str(), "circuit breaker opened");
    } else {
        tracing::info!(upstream = %upstream.name, endpoint, state = state.as_str(), "circuit breaker state changed");
    }
}

/// Sets `strait_circuit_breaker_state` of the upstream (on changes only: a label lookup).
fn export_breaker(f: &Forward<'_>, upstream: &Upstream, state: BreakerState) {
    f.shared
        .metrics
        .breaker_state
        .with_label_values(&[&upstream.name])
        .set(state as i64);
}

/// Builds the response the client gets from an upstream's.
fn finish(
    f: &Forward<'_>,
    upstream: &Upstream,
    sent: Sent,
    kept: Kept,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Sent { response, conn, .. } = sent;
    let (mut parts, body) = response.into_parts();
    if parts.status == http::StatusCode::SWITCHING_PROTOCOLS {
        // Only a switch to a protocol the client asked for (and the route allows) is tunnelled.
        let agreed = kept.upgrade
            && parts
                .headers
                .get(header::UPGRADE)
                .is_some_and(|v| upgrade_allowed_value(v, &f.spec.upgrades));
        if !agreed {
            return Err(ProxyError::Upstream {
                upstream: upstream.name.to_string(),
                endpoint: String::new(),
                source: "unexpected 101 response (no matching Upgrade was requested)".into(),
            });
        }
        // The connection task splices the two once hyper has written the 101 (see `h1conn`).
        let up_resp = Response::from_parts(parts.clone(), body);
        f.conn.h1.offer_upgrade(hyper::upgrade::on(up_resp));
        return Ok(Response::from_parts(parts, ProxyBody::Empty));
    }
    headers::strip_hop_by_hop(&mut parts.headers, false);
    // An HTTP/1.1 connection goes back to its pool when both directions have ended.
    let ret = conn.map(|c| (c, upstream.pool.max_idle_per_endpoint));
    Ok(Response::from_parts(
        parts,
        ProxyBody::Upstream(PooledBody::new(body, upstream.timeouts.idle, ret)),
    ))
}

/// One client span per attempt: its id is the parent id the upstream sees.
fn inject_trace(
    f: &Forward<'_>,
    head: &mut Parts,
) -> Option<strait_observe::trace::context::SpanId> {
    let trace = f.record.as_ref().and_then(|r| r.trace);
    match (f.tracer, &trace) {
        (Some(t), Some(ctx)) => {
            let id = strait_observe::trace::span_id(&mut strait_core::rand::next_u64);
            t.inject(&mut head.headers, ctx, &id);
            Some(id)
        }
        _ => None,
    }
}

/// Endpoints tried by this request (indices; a bitmap for the first 64, a list beyond).
#[derive(Default)]
struct Tried {
    bits: u64,
    more: Vec<usize>,
}

impl Tried {
    fn add(&mut self, i: usize) {
        if i < 64 {
            self.bits |= 1 << i;
        } else {
            self.more.push(i);
        }
    }

    fn has(&self, i: usize) -> bool {
        if i < 64 {
            self.bits & (1 << i) != 0
        } else {
            self.more.contains(&i)
        }
    }
}

fn request_hash(h: &HashOn, head: &Parts, conn: &ConnInfo) -> u64 {
    match h {
        HashOn::Header(name) => head
            .headers
            .get(name)
            .map_or_else(strait_core::rand::next_u64, |v| hash_key(v.as_bytes())),
        HashOn::Cookie(name) => {
            cookie(&head.headers, name).map_or_else(strait_core::rand::next_u64, hash_key)
        }
        HashOn::ClientIp => hash_key(conn.client_ip.as_bytes()),
        HashOn::Path => hash_key(head.uri.path().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tried_endpoints_beyond_64_are_remembered() {
        let mut t = Tried::default();
        for i in [0, 63, 64, 1000] {
            assert!(!t.has(i));
            t.add(i);
            assert!(t.has(i));
        }
        assert!(!t.has(1));
    }
}
