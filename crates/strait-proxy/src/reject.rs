//! Requests refused before routing (the HTTP/1 guard, HTTP/2 limits, the HTTP/2 codec): each is
//! counted in `strait_downstream_rejected_requests_total{listener,reason}`, and those answered
//! with a status also in `strait_http_requests_total{route="unmatched"}` and the access log, so
//! an operator under attack sees it.

use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use strait_core::ProxyError;
use strait_observe::{Metrics, RequestRecord};

use crate::body::ProxyBody;
use crate::h1guard::Rejection;
use crate::handler::{error_response, ConnInfo};
use crate::headers::{self, X_REQUEST_ID};
use crate::Shared;

/// Why a request (or a connection) was refused: the `reason` label, a bounded set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 400: malformed or ambiguous framing, an invalid or ambiguous head.
    BadRequest,
    /// 414: the request line (HTTP/2: `:path`) over `max_request_line`.
    UriTooLong,
    /// 431: over `max_headers` or `max_request_headers`.
    HeadersTooLarge,
    /// 408: a head not complete within `header_read_timeout` (HTTP/2: an unfinished header
    /// block; the connection is closed, as HTTP/2 cannot answer a request it has not read).
    HeaderTimeout,
    /// HTTP/2 connection closed for sending too many control frames.
    H2Flood,
    /// HTTP/2 stream refused by the codec (`REFUSED_STREAM`: over `max_concurrent_streams`, or
    /// a header list over twice `max_request_headers`).
    H2RefusedStream,
    /// HTTP/2 `ENHANCE_YOUR_CALM` from the codec (rapid reset, too many resets it had to send,
    /// a header list far over the limit).
    H2EnhanceYourCalm,
    /// Any other HTTP/2 protocol error the codec answered with a reset or GOAWAY.
    H2ProtocolError,
    /// A connection to a `proxy_protocol` listener without a valid PROXY header in time: closed.
    ProxyProtocol,
    /// 400: plain HTTP sent to a TLS listener; answered in plain text, then closed.
    PlainHttp,
}

// === impl Reason ===

impl Reason {
    /// Every reason, for documentation and tests.
    pub const ALL: [Reason; 10] = [
        Reason::BadRequest,
        Reason::UriTooLong,
        Reason::HeadersTooLarge,
        Reason::HeaderTimeout,
        Reason::H2Flood,
        Reason::H2RefusedStream,
        Reason::H2EnhanceYourCalm,
        Reason::H2ProtocolError,
        Reason::ProxyProtocol,
        Reason::PlainHttp,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "bad_request",
            Reason::UriTooLong => "uri_too_long",
            Reason::HeadersTooLarge => "headers_too_large",
            Reason::HeaderTimeout => "header_timeout",
            Reason::H2Flood => "h2_flood",
            Reason::H2RefusedStream => "h2_refused_stream",
            Reason::H2EnhanceYourCalm => "h2_enhance_your_calm",
            Reason::H2ProtocolError => "h2_protocol_error",
            Reason::ProxyProtocol => "proxy_protocol",
            Reason::PlainHttp => "plain_http",
        }
    }

    /// The reason for a status Strait answered a refused request with.
    pub fn of_status(status: StatusCode) -> Option<Reason> {
        match status.as_u16() {
            400 => Some(Reason::BadRequest),
            408 => Some(Reason::HeaderTimeout),
            414 => Some(Reason::UriTooLong),
            431 => Some(Reason::HeadersTooLarge),
            _ => None,
        }
    }
}

impl From<Rejection> for Reason {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::BadRequest(_) => Reason::BadRequest,
            Rejection::HeadersTooLarge => Reason::HeadersTooLarge,
            Rejection::UriTooLong => Reason::UriTooLong,
            Rejection::HeaderTimeout => Reason::HeaderTimeout,
        }
    }
}

/// Counts one refusal on `listener`.
pub fn count(metrics: &Metrics, listener: &str, reason: Reason) {
    metrics
        .rejected_requests
        .with_label_values(&[listener, reason.as_str()])
        .inc();
}

/// Counts refusals for one connection's listener (what the HTTP/2 guard holds).
#[derive(Clone)]
pub(crate) struct Reporter {
    metrics: Arc<Metrics>,
    listener: Arc<str>,
}

impl Reporter {
    pub(crate) fn new(shared: &Shared, conn: &ConnInfo) -> Self {
        Self {
            metrics: shared.metrics.clone(),
            listener: conn.listener.name.clone(),
        }
    }

    pub(crate) fn reject(&self, reason: Reason) {
        count(&self.metrics, &self.listener, reason);
    }
}

/// What is known of a refused request, for its stats and access log line.
pub(crate) struct Refused {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: Option<HeaderMap>,
    pub start: Instant,
}

// === impl Refused ===

impl Refused {
    /// A request the HTTP/1 guard refused: method and target from the start of its request line
    /// (`line`, possibly cut short), when they parse.
    pub(crate) fn from_line(line: &[u8], start: Instant) -> Self {
        let mut parts = line.splitn(3, |&b| b == b' ');
        let method = parts
            .next()
            .and_then(|m| Method::from_bytes(m).ok())
            .unwrap_or(Method::GET);
        let uri = parts
            .next()
            .and_then(|t| Uri::try_from(t).ok())
            .unwrap_or_default();
        Self {
            method,
            uri,
            version: Version::HTTP_11,
            headers: None,
            start,
        }
    }

    /// A request the HTTP/2 limits refused.
    pub(crate) fn from_request<B>(req: &Request<B>, start: Instant) -> Self {
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: Some(req.headers().clone()),
            start,
        }
    }
}

/// Counts a refused request answered with `status`, records it under the listener's unmatched
/// route and writes its access log line.
pub(crate) fn record(shared: &Shared, conn: &ConnInfo, req: Refused, status: StatusCode) {
    record_with(shared, conn, req, status, None, 0);
}

/// [`record`] for a response Strait builds here: returns it with its request id.
pub(crate) fn answer(
    shared: &Shared,
    conn: &ConnInfo,
    req: Refused,
    error: &ProxyError,
) -> Response<ProxyBody> {
    let empty = HeaderMap::new();
    let request_id = headers::request_id(req.headers.as_ref().unwrap_or(&empty));
    let mut resp = error_response(error, &request_id, false);
    resp.headers_mut()
        .insert(X_REQUEST_ID.clone(), request_id.clone());
    let bytes_out = resp.body().size_hint().exact().unwrap_or(0);
    record_with(
        shared,
        conn,
        req,
        resp.status(),
        Some(request_id),
        bytes_out,
    );
    resp
}

fn record_with(
    shared: &Shared,
    conn: &ConnInfo,
    req: Refused,
    status: StatusCode,
    request_id: Option<HeaderValue>,
    bytes_out: u64,
) {
    if let Some(reason) = Reason::of_status(status) {
        count(&shared.metrics, &conn.listener.name, reason);
    }
    let snap = shared.snapshot.load();
    let Some(table) = snap.listener_routes(conn.listener.id) else {
        return;
    };
    let head = req.start.elapsed();
    table
        .unmatched
        .record(&req.method, status.as_u16(), head.as_secs_f64());
    let Some(obs) = &snap.observe else {
        table.unmatched.add_bytes(0, bytes_out);
        return;
    };
    let get = |name: header::HeaderName| req.headers.as_ref().and_then(|h| h.get(name).cloned());
    let host = get(header::HOST).or_else(|| {
        req.uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let rec = RequestRecord {
        start: req.start,
        start_unix_ns: strait_observe::record::unix_ns_now().saturating_sub(head.as_nanos() as u64),
        trace: None,
        request_id: request_id.unwrap_or_else(headers::new_request_id),
        client: conn.client,
        listener: conn.listener.name.clone(),
        tls: conn.is_tls(),
        user_agent: get(header::USER_AGENT),
        host,
        method: req.method,
        version: req.version,
        uri: req.uri,
        bytes_in: 0,
        stats: Some(table.unmatched.clone()),
        status: status.as_u16(),
        attempts: Vec::new(),
        split: None,
        policy: None,
        policy_reason: None,
        error: None,
        colour: None,
        colour_fallback: false,
        bytes_out,
        head,
        duration: head,
    };
    obs.finish(rec);
}
