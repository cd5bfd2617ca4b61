//! The request path: snapshot → route → filter chain → action (forward, respond, redirect) → response hooks → stats. Errors become responses here.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body as _;
use strait_core::{ChainRun, ProxyError, Reply, RequestCtx, ResponseCtx};
use strait_observe::{trace::context::hex, Observer, RequestRecord, RouteStats};

use crate::{
    body::{Downstream, Observed, ProxyBody},
    errlog::LogLimiter,
    filtered::{EndState, Ended, Filtered},
    forward::{self, Tally},
    headers::{self, X_REQUEST_ID},
    route::Action,
    snapshot::{ListenerSpec, RouteEntry, Snapshot},
    Shared,
};

mod local;

pub use local::error_response;

/// What the request path knows about the downstream connection.
pub struct ConnInfo {
    /// The listener's settings (id, TLS, limits) as the connection was accepted.
    pub listener: Arc<ListenerSpec>,
    /// Peer address.
    pub client: SocketAddr,
    /// Client IP, preformatted (the `client_ip` hash key).
    pub client_ip: HeaderValue,
    /// The peer's IP when the client is another address (resolved from a trusted proxy's
    /// header): what `X-Forwarded-For` gets appended; `None` = `client_ip`.
    pub peer_ip: Option<HeaderValue>,
    /// HTTP/1 connection state shared with the connection task: parking, protocol switches.
    pub h1: Arc<crate::h1conn::H1Shared>,
    /// The client certificate the TLS handshake verified (mutual TLS), parsed once.
    pub peer: Option<Arc<strait_core::PeerCert>>,
    /// `Alt-Svc` advertising the listener's HTTP/3 endpoint, set on every response of an
    /// HTTP/1 or HTTP/2 connection whose listener has one.
    pub alt_svc: Option<HeaderValue>,
}

/// Failed-request lines at warn level, at most ten a second.
static FAILURES: LogLimiter = LogLimiter::new();

/// Serves one request; never fails: every error becomes a response.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Downstream>,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    let start = Instant::now();
    let conn = if conn.listener.client_address.is_some() {
        crate::client_addr::for_request(conn, req.headers())
    } else {
        conn
    };
    let snap = shared.snapshot.load_full();
    let request_id = headers::request_id(req.headers());
    let method = req.method().clone();
    if let Some(obs) = &snap.observe {
        // Boxed so the record does not enlarge every request's future when observability is off.
        let fut = handle_observed(&shared, &snap, obs, &conn, req, request_id, start);
        let mut resp = Box::pin(fut).await;
        advertise(&conn, &mut resp);
        return Ok(resp);
    }
    let bytes_in = content_length(req.headers());
    let (mut resp, stats) =
        route_and_serve(&shared, &snap, &conn, req, &request_id, None, start).await;
    resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
    if let Some(stats) = stats {
        stats.record(
            &method,
            local::decided_status(&resp),
            start.elapsed().as_secs_f64(),
        );
        // Without an access log or tracing there is no per-request state at stream end, so
        // body sizes are the declared ones (Content-Length, or a body Strait produced).
        stats.add_bytes(bytes_in, resp.body().size_hint().exact().unwrap_or(0));
    }
    advertise(&conn, &mut resp);
    Ok(resp)
}

/// Tells HTTP/1 and HTTP/2 clients where the listener serves HTTP/3 (RFC 7838).
fn advertise(conn: &ConnInfo, resp: &mut Response<ProxyBody>) {
    if let Some(v) = &conn.alt_svc {
        resp.headers_mut().insert(header::ALT_SVC, v.clone());
    }
}

/// The request path when an access log or tracing is configured: a [`RequestRecord`] travels
/// with the request and is finished when the response body ends (see `body::Observed`).
async fn handle_observed(
    shared: &Shared,
    snap: &Snapshot,
    obs: &Arc<Observer>,
    conn: &ConnInfo,
    req: Request<Downstream>,
    request_id: HeaderValue,
    start: Instant,
) -> Response<ProxyBody> {
    let mut rand = strait_core::rand::next_u64;
    let trace = obs.tracer().map(|t| t.start(req.headers(), &mut rand));
    let mut rec = RequestRecord {
        start,
        start_unix_ns: strait_observe::record::unix_ns_now(),
        trace,
        request_id: request_id.clone(),
        client: conn.client,
        listener: conn.listener.name.clone(),
        tls: conn.is_tls(),
        method: req.method().clone(),
        version: req.version(),
        uri: req.uri().clone(),
        host: req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        }),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
        bytes_in: content_length(req.headers()),
        stats: None,
        status: 0,
        attempts: Vec::new(),
        split: None,
        policy: None,
        policy_reason: None,
        error: None,
        colour: None,
        colour_fallback: false,
        bytes_out: 0,
        head: std::time::Duration::ZERO,
        duration: std::time::Duration::ZERO,
    };
    let (mut resp, stats) =
        route_and_serve(shared, snap, conn, req, &request_id, Some(&mut rec), start).await;
    resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
    // A local reply to a gRPC request goes out as 200 with `grpc-status`; the record keeps
    // the status Strait decided, so dashboards see the failure.
    rec.status = local::decided_status(&resp);
    rec.head = start.elapsed();
    if let Some(stats) = stats {
        let exemplar = rec.trace.filter(|t| t.sampled).map(|t| t.trace_id);
        stats.record_traced(&rec.method, rec.status, rec.head.as_secs_f64(), exemplar);
        rec.stats = Some(stats.clone());
    }
    let (parts, body) = resp.into_parts();
    let body = ProxyBody::Observed(Box::new(Observed::new(body, rec, obs.clone())));
    Response::from_parts(parts, body)
}

fn content_length(h: &http::HeaderMap) -> u64 {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl ConnInfo {
    /// Whether the connection is TLS (`X-Forwarded-Proto`, redirects).
    pub fn is_tls(&self) -> bool {
        self.listener.tls.is_some()
    }
}

/// Where a request stands after routing: what the later steps need of it.
struct Routed<'s> {
    entry: &'s RouteEntry,
    prefix_len: usize,
    host: Option<HeaderValue>,
    grpc: bool,
}

async fn route_and_serve<'s>(
    shared: &Shared,
    snap: &'s Snapshot,
    conn: &ConnInfo,
    mut req: Request<Downstream>,
    request_id: &HeaderValue,
    mut record: Option<&mut RequestRecord>,
    start: Instant,
) -> (Response<ProxyBody>, Option<&'s Arc<RouteStats>>) {
    let grpc = local::is_grpc(req.headers());
    let Some(table) = snap.listener_routes(conn.listener.id) else {
        return (error_response(&ProxyError::NoRoute, request_id, grpc), None);
    };
    // Routing and forwarding see one canonical head (path normalised, underscored names gone).
    if let Err(refusal) = crate::hygiene::prepare(&mut req, &conn.listener, &shared.metrics) {
        let resp = refusal.response(request_id);
        let resp = if grpc { local::grpc_reply(resp) } else { resp };
        return (resp, Some(&table.unmatched));
    }
    let routed = match route(conn, snap, &req, grpc, &shared.metrics) {
        Ok(r) => r,
        Err((e, close)) => {
            let mut resp = error_response(&e, request_id, grpc);
            if req.method() == Method::HEAD {
                *resp.body_mut() = ProxyBody::Empty;
            }
            if close {
                // An ambiguous request ends the connection, as the HTTP/1 guard does for bad framing.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return (resp, Some(&table.unmatched));
        }
    };
    let entry = routed.entry;
    let chain = &entry.chain;
    let mut run = ChainRun::default();
    let (mut head, body) = req.into_parts();
    let method = head.method.clone();

    let mut reply = None;
    let mut request_filters = Vec::new();
    if !chain.is_empty() {
        let mut ctx = RequestCtx {
            head: &mut head,
            client: conn.client,
            listener: &conn.listener.name,
            route: &entry.route.name,
            tls: conn.is_tls(),
            peer: conn.peer.as_deref(),
        };
        reply = chain.on_request(&mut ctx, &mut run).await;
        if reply.is_none() && chain.hooks().request_body {
            request_filters = chain.request_body(&ctx, &mut run);
        }
    }
    // The response hooks see the request as it was forwarded.
    let hooks = chain.hooks();
    let seen =
        (hooks.response || hooks.response_body).then(|| (head.method.clone(), head.uri.clone()));

    let mut stats = &entry.stats;
    let mut tally = Tally::default();
    let mut upstream: Option<Arc<str>> = None;
    let mut failure = None;
    let mut resp = if let Some(r) = reply {
        denied(shared, chain, &run, r, record.as_deref_mut())
    } else {
        match &entry.route.action {
            Action::Respond(r) => {
                let mut resp = Response::new(local::body_for(&method, r.status, r.body.clone()));
                *resp.status_mut() = r.status;
                for (k, v) in &r.headers {
                    resp.headers_mut().append(k, v.clone());
                }
                resp
            }
            Action::Redirect(r) => {
                let scheme = if conn.is_tls() { "https" } else { "http" };
                let pq = head.uri.path_and_query().map_or("/", |p| p.as_str());
                let host = routed
                    .host
                    .as_ref()
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                let loc = r.location(scheme, host, pq);
                let mut resp = Response::new(ProxyBody::Empty);
                *resp.status_mut() = r.status;
                if let Ok(v) = HeaderValue::from_str(&loc) {
                    resp.headers_mut().insert(header::LOCATION, v);
                }
                resp
            }
            Action::Forward(spec) => {
                let (backend, choice) = spec.select(&head, &conn.client_ip);
                if let Some(rec) = record.as_deref_mut() {
                    rec.split = Some(choice.as_str());
                }
                stats = &entry.backend_stats[backend];
                upstream = Some(spec.backends.upstream(backend).name.clone());
                let f = forward::Forward {
                    shared,
                    conn,
                    route: &entry.route.name,
                    spec,
                    backend,
                    prefix_len: routed.prefix_len,
                    request_id,
                    host: routed.host.as_ref(),
                    record: record.as_deref_mut(),
                    tracer: snap.observe.as_ref().and_then(|o| o.tracer()),
                };
                // Kept only when a request_limits policy ran: it is named when its bound fails.
                let limited = head
                    .extensions
                    .get::<strait_core::RouteLimits>()
                    .map(|l| (l.policy.clone(), l.max_body, l.deadline));
                let req = Request::from_parts(head, body);
                let filters = std::mem::take(&mut request_filters);
                match forward::forward(f, req, filters, &mut tally).await {
                    Ok(r) => r,
                    Err(e) => {
                        if let Some(l) = &limited {
                            route_limit_denial(shared, conn, l, &e, record.as_deref_mut());
                        }
                        report_failure(&e, &entry.route.name, record.as_deref_mut());
                        let resp = error_response(&e, request_id, routed.grpc);
                        failure = Some((e.kind(), e.side()));
                        resp
                    }
                }
            }
        }
    };

    if let Some((method, uri)) = &seen {
        let local_answer = upstream.is_none() || failure.is_some();
        let before = run.denied_index();
        resp = respond_hooks(
            chain,
            &mut run,
            resp,
            method,
            uri,
            entry,
            upstream.as_deref(),
            local_answer,
        )
        .await;
        if before.is_none() && run.denied_index().is_some() {
            // A response hook replaced the upstream's answer: that is a denial too.
            let name = chain.denied_by(&run).unwrap_or("");
            let reason = run.reason().unwrap_or("");
            shared
                .metrics
                .policy_denials
                .with_label_values(&[name, reason])
                .inc();
            if let Some(rec) = record {
                rec.policy = Some(Arc::from(name));
                rec.policy_reason = Some(reason);
            }
        }
    }
    if routed.grpc && (upstream.is_none() || failure.is_some() || run.denied_index().is_some()) {
        resp = local::grpc_reply(resp);
    }
    if hooks.end && run.ran() > 0 {
        let state = EndState {
            chain: chain.clone(),
            run,
            status: local::decided_status(&resp),
            error: failure,
            attempts: tally.attempts,
            upstream,
            endpoint: tally.endpoint,
            start,
        };
        resp = resp.map(|b| ProxyBody::Ended(Box::new(Ended::new(b, state))));
    }
    (resp, Some(stats))
}

/// Matches the request against the listener's routes: the route, the matched prefix length
/// and the authority; or the error to answer with (and whether to close the connection).
fn route<'s>(
    conn: &ConnInfo,
    snap: &'s Snapshot,
    req: &Request<Downstream>,
    grpc: bool,
    metrics: &strait_observe::Metrics,
) -> Result<Routed<'s>, (ProxyError, bool)> {
    let limits = &conn.listener.limits;
    let table = snap
        .listener_routes(conn.listener.id)
        .ok_or((ProxyError::NoRoute, false))?;
    let host = request_host(req).map_err(|reason| {
        crate::reject::count(metrics, &table.name, crate::reject::Reason::BadRequest);
        (
            ProxyError::BadRequest(StatusCode::BAD_REQUEST, reason),
            true,
        )
    })?;
    let matched = {
        let rreq = strait_router::Request {
            host: host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or(""),
            path: req.uri().path(),
            query: req.uri().query(),
            method: req.method(),
            headers: req.headers(),
            client_uris: conn.peer.as_deref().map_or(&[], |p| &p.uris),
        };
        table.router.lookup(&rreq)
    };
    let m = matched.ok_or((ProxyError::NoRoute, false))?;
    if limits.max_request_body > 0 {
        let too_big = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > limits.max_request_body);
        if too_big {
            let e = ProxyError::BadRequest(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
            return Err((e, false));
        }
    }
    Ok(Routed {
        entry: &table.routes[m.index],
        prefix_len: m.prefix_len,
        host,
        grpc,
    })
}

/// A forwarding failure caused by a `request_limits` bound (the body cap, the deadline) is
/// that policy's denial: counted under its name, as a filter's reply would be.
fn route_limit_denial(
    shared: &Shared,
    conn: &ConnInfo,
    (policy, max_body, deadline): &(Arc<str>, u64, Option<Instant>),
    e: &ProxyError,
    record: Option<&mut RequestRecord>,
) {
    let listener_max = conn.listener.limits.max_request_body;
    let reason = match e {
        ProxyError::BadRequest(s, _)
            if *s == StatusCode::PAYLOAD_TOO_LARGE
                && *max_body > 0
                && (listener_max == 0 || *max_body <= listener_max) =>
        {
            "body_too_large"
        }
        ProxyError::Timeout { .. } if deadline.is_some_and(|d| Instant::now() >= d) => {
            "request_timeout"
        }
        _ => return,
    };
    shared
        .metrics
        .policy_denials
        .with_label_values(&[&**policy, reason])
        .inc();
    if let Some(rec) = record {
        rec.policy = Some(policy.clone());
        rec.policy_reason = Some(reason);
    }
}

/// The reply of a filter that answered in place of the upstream: counted and recorded.
fn denied(
    shared: &Shared,
    chain: &strait_core::Chain,
    run: &ChainRun,
    reply: Reply,
    record: Option<&mut RequestRecord>,
) -> Response<ProxyBody> {
    let name = chain.denied_by(run).unwrap_or("");
    shared
        .metrics
        .policy_denials
        .with_label_values(&[name, reply.reason])
        .inc();
    if let Some(rec) = record {
        rec.policy = Some(Arc::from(name));
        rec.policy_reason = Some(reply.reason);
    }
    reply.response.map(ProxyBody::full)
}

/// Runs the response hooks and any response body filters.
#[allow(clippy::too_many_arguments)]
async fn respond_hooks(
    chain: &strait_core::Chain,
    run: &mut ChainRun,
    resp: Response<ProxyBody>,
    method: &Method,
    uri: &http::Uri,
    entry: &RouteEntry,
    upstream: Option<&str>,
    local: bool,
) -> Response<ProxyBody> {
    if run.ran() == 0 {
        return resp;
    }
    let (mut parts, mut body) = resp.into_parts();
    let mut ctx = ResponseCtx {
        head: &mut parts,
        method,
        uri,
        route: &entry.route.name,
        upstream,
        local,
    };
    if let Some(replacement) = chain.on_response(&mut ctx, run).await {
        body = ProxyBody::full(replacement);
    }
    let filters = chain.response_body(&ctx, run);
    if !filters.is_empty() {
        // Filters that only look (or keep the length, as a plugin that left
        // `Content-Length` in place must) keep the framing.
        if !filters.iter().all(|f| f.observes_only()) {
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        body = ProxyBody::Filtered(Box::new(Filtered::new(body, filters)));
    }
    Response::from_parts(parts, body)
}

/// Puts the detail of a failure where operators look: the access log and span (`error`), and
/// a warn line (rate-limited, so a dead upstream cannot flood the log).
fn report_failure(e: &ProxyError, route: &str, record: Option<&mut RequestRecord>) {
    let trace_id = record.as_ref().and_then(|r| r.trace);
    if let Some(rec) = record {
        rec.error = Some(Arc::from(e.to_string()));
    }
    if e.side() == strait_core::Side::Downstream {
        tracing::debug!(route, error = %e, "request failed");
        return;
    }
    if let Some(suppressed) = FAILURES.allow(Instant::now()) {
        tracing::warn!(
            route,
            error = %e,
            kind = e.kind().as_str(),
            trace_id = trace_id.map(|t| tracing::field::display(hex(&t.trace_id))),
            suppressed = (suppressed > 0).then_some(suppressed),
            "request failed"
        );
    }
}

/// The request's authority: the Host header, else the URI authority (HTTP/2 `:authority`).
fn request_host(req: &Request<Downstream>) -> Result<Option<HeaderValue>, &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    if let Some(h) = hosts.next() {
        // Two Host headers would let routing and the upstream disagree on the target (RFC 9112 §3.2).
        if hosts.next().is_some() {
            return Err("more than one Host header");
        }
        if let Some(a) = req.uri().authority() {
            // An absolute-form target names the host itself; a different Host header is ambiguous.
            if !a.as_str().eq_ignore_ascii_case(h.to_str().unwrap_or("")) {
                return Err("Host header differs from the request target");
            }
        }
        return Ok(Some(h.clone()));
    }
    Ok(req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok()))
}
