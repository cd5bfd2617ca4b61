//! The request path: snapshot → route → filters → action (forward, respond, redirect) → stats. Errors become responses here.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use strait_core::{snapshot::ListenerSpec, Action, ProxyError, RequestCtx, Route, Snapshot};
use strait_observe::{trace::context::hex, Observer, RequestRecord, RouteStats};

use crate::{
    body::{Observed, ProxyBody},
    forward,
    headers::{self, X_REQUEST_ID},
    Shared,
};

/// What the request path knows about the downstream connection.
pub struct ConnInfo {
    /// The listener's settings (id, TLS, limits) as the connection was accepted.
    pub listener: Arc<ListenerSpec>,
    /// Peer address.
    pub client: SocketAddr,
    /// Peer IP, preformatted for `X-Forwarded-For`.
    pub client_ip: HeaderValue,
    /// HTTP/1 connection state shared with the connection task: parking, protocol switches.
    pub h1: crate::h1conn::H1Shared,
}

/// Serves one request; never fails: every error becomes a response.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    let start = Instant::now();
    let snap = shared.snapshot.load_full();
    let request_id = headers::request_id(req.headers());
    let method = req.method().clone();
    if let Some(obs) = &snap.observe {
        // Boxed so the record does not enlarge every request's future when observability is off.
        let fut = handle_observed(&shared, &snap, obs, &conn, req, request_id, start);
        return Ok(Box::pin(fut).await);
    }
    let bytes_in = content_length(req.headers());
    let (mut resp, stats) = route_and_serve(&shared, &snap, &conn, req, &request_id, None).await;
    resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
    if let Some(stats) = stats {
        stats.record(
            &method,
            resp.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
        // Without an access log or tracing there is no per-request state at stream end, so
        // body sizes are the declared ones (Content-Length, or a body Strait produced).
        stats.add_bytes(bytes_in, resp.body().size_hint().exact().unwrap_or(0));
    }
    Ok(resp)
}

/// The request path when an access log or tracing is configured: a [`RequestRecord`] travels
/// with the request and is finished when the response body ends (see `body::Observed`).
async fn handle_observed(
    shared: &Shared,
    snap: &Snapshot,
    obs: &Arc<Observer>,
    conn: &ConnInfo,
    req: Request<Incoming>,
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
        policy: None,
        bytes_out: 0,
        head: std::time::Duration::ZERO,
        duration: std::time::Duration::ZERO,
    };
    let (mut resp, stats) =
        route_and_serve(shared, snap, conn, req, &request_id, Some(&mut rec)).await;
    resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
    rec.status = resp.status().as_u16();
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

async fn route_and_serve<'s>(
    shared: &Shared,
    snap: &'s Snapshot,
    conn: &ConnInfo,
    req: Request<Incoming>,
    request_id: &HeaderValue,
    mut record: Option<&mut RequestRecord>,
) -> (Response<ProxyBody>, Option<&'s Arc<RouteStats>>) {
    let limits = &conn.listener.limits;
    let Some(table) = snap.listener_routes(conn.listener.id) else {
        return (error_response(&ProxyError::NoRoute, request_id), None);
    };
    let host = match request_host(&req) {
        Ok(h) => h,
        Err(reason) => {
            crate::reject::count(
                &shared.metrics,
                &table.name,
                crate::reject::Reason::BadRequest,
            );
            let e = ProxyError::BadRequest(StatusCode::BAD_REQUEST, reason);
            let mut resp = error_response(&e, request_id);
            // An ambiguous request ends the connection, as the HTTP/1 guard does for bad framing.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return (resp, Some(&table.unmatched));
        }
    };
    let matched = {
        let rreq = strait_router::Request {
            host: host.as_deref().unwrap_or(""),
            path: req.uri().path(),
            query: req.uri().query(),
            method: req.method(),
            headers: req.headers(),
        };
        table.router.lookup(&rreq)
    };
    let Some(m) = matched else {
        return (
            error_response(&ProxyError::NoRoute, request_id),
            Some(&table.unmatched),
        );
    };
    let entry = &table.routes[m.index];
    let route: &Route = &entry.route;
    let stats = Some(&entry.stats);

    if limits.max_request_body > 0 {
        let too_big = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > limits.max_request_body);
        if too_big {
            let e = ProxyError::BadRequest(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
            return (error_response(&e, request_id), stats);
        }
    }

    let (mut head, body) = req.into_parts();
    if !route.filters.is_empty() {
        let mut ctx = RequestCtx {
            head: &mut head,
            client: conn.client,
            route: &route.name,
        };
        if let Some(r) = route.filters.on_request(&mut ctx).await {
            let mut resp = r.map(ProxyBody::full);
            finish_response(route, &mut resp);
            return (resp, stats);
        }
    }

    let mut resp = match &route.action {
        Action::Respond(r) => {
            let mut resp = Response::new(ProxyBody::full(r.body.clone()));
            *resp.status_mut() = r.status;
            for (k, v) in &r.headers {
                resp.headers_mut().append(k, v.clone());
            }
            resp
        }
        Action::Redirect(r) => {
            let scheme = if conn.is_tls() { "https" } else { "http" };
            let pq = head.uri.path_and_query().map_or("/", |p| p.as_str());
            let loc = r.location(scheme, host.as_deref().unwrap_or(""), pq);
            let mut resp = Response::new(ProxyBody::Empty);
            *resp.status_mut() = r.status;
            if let Ok(v) = HeaderValue::from_str(&loc) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Action::Forward { upstream, rewrite } => {
            let req = Request::from_parts(head, body);
            let ctx = forward::Forward {
                shared,
                conn,
                upstream,
                rewrite: rewrite.as_ref(),
                prefix_len: m.prefix_len,
                request_id,
                host: host.as_ref(),
                record: record.as_deref_mut(),
                tracer: snap.observe.as_ref().and_then(|o| o.tracer()),
            };
            match forward::forward(ctx, req).await {
                Ok(r) => r,
                Err(e) => {
                    // An absent trace id leaves the field out (tracing skips `None`).
                    let trace_id = record.as_ref().and_then(|r| r.trace);
                    tracing::debug!(
                        route = %route.name,
                        error = %e,
                        trace_id = trace_id.map(|t| tracing::field::display(hex(&t.trace_id))),
                        "request failed"
                    );
                    error_response(&e, request_id)
                }
            }
        }
    };
    finish_response(route, &mut resp);
    (resp, stats)
}

fn finish_response(route: &Route, resp: &mut Response<ProxyBody>) {
    if route.filters.is_empty() {
        return;
    }
    let (mut parts, body) = std::mem::replace(resp, Response::new(ProxyBody::Empty)).into_parts();
    route.filters.on_response(&mut parts);
    *resp = Response::from_parts(parts, body);
}

/// The request's authority: the Host header, else the URI authority (HTTP/2 `:authority`).
fn request_host(req: &Request<Incoming>) -> Result<Option<HeaderValue>, &'static str> {
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

trait HostStr {
    fn as_deref(&self) -> Option<&str>;
}

impl HostStr for Option<HeaderValue> {
    fn as_deref(&self) -> Option<&str> {
        self.as_ref().and_then(|v| v.to_str().ok())
    }
}

/// The short plain-text error response every failure produces.
pub fn error_response(e: &ProxyError, request_id: &HeaderValue) -> Response<ProxyBody> {
    let id = request_id.to_str().unwrap_or("");
    let body = format!("strait: {e} (request id {id})\n");
    let mut resp = Response::new(ProxyBody::Full(Some(Bytes::from(body))));
    *resp.status_mut() = e.status();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
