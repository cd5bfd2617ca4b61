//! Request-head hygiene between the connection and the router: the head is checked and cleaned
//! once, for HTTP/1 and HTTP/2 alike, so routing, filters and forwarding all see the same request.
//!
//! In order: `CONNECT` → 405 (no route can tunnel yet); a standard method spelt in the wrong
//! case (`get`) → 400, as nginx does; HTTP/1.1 without `Host` → 400 (RFC 9112 §3.2); header
//! names containing `_` dropped, kept or refused (`headers_with_underscores_action`); and the
//! path replaced by its canonical form (`strait_router::normalize_path`), or refused with 400.
//! The query is never touched. Every refusal is counted in
//! `strait_downstream_rejected_requests_total{listener,reason}` with a fixed `reason`.

use http::{header, uri::PathAndQuery, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use strait_core::ProxyError;
use strait_observe::Metrics;
use strait_router::{normalize_path, PathRejection};

use crate::{
    body::ProxyBody,
    handler::error_response,
    snapshot::{ListenerSpec, UnderscoreHeaders},
};

/// Why a request head is refused: the status, what the client is told, the metric reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Status sent.
    pub status: StatusCode,
    /// Short text for the client.
    pub message: &'static str,
    /// Bounded `reason` label.
    pub reason: &'static str,
}

/// The methods RFC 9110 and RFC 5789 define; their spelling is case-sensitive and uppercase.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// What a 405 to `CONNECT` says may be used instead (RFC 9110 §15.5.6 requires `Allow`).
const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH";

// === impl Refusal ===

impl Refusal {
    fn bad(message: &'static str, reason: &'static str) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message,
            reason,
        }
    }

    fn path(r: PathRejection) -> Self {
        Refusal::bad(r.message(), r.reason())
    }

    /// The response the client gets.
    pub fn response(&self, request_id: &HeaderValue) -> http::Response<ProxyBody> {
        let mut resp = error_response(
            &ProxyError::BadRequest(self.status, self.message),
            request_id,
            false,
        );
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            // A client may already be sending tunnel bytes; they must not be read as requests.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    /// Counts and logs the refusal on `listener`.
    pub fn count(self, listener: &str, metrics: &Metrics) -> Self {
        metrics
            .rejected_requests
            .with_label_values(&[listener, self.reason])
            .inc();
        tracing::debug!(
            listener,
            reason = self.reason,
            status = self.status.as_u16(),
            "request refused"
        );
        self
    }
}

/// Checks and cleans `req` for `listener` before routing; a refusal is already counted.
pub fn prepare<B>(
    req: &mut Request<B>,
    listener: &ListenerSpec,
    metrics: &Metrics,
) -> Result<(), Refusal> {
    prepare_head(req, listener, metrics).map_err(|r| r.count(&listener.name, metrics))
}

fn prepare_head<B>(
    req: &mut Request<B>,
    listener: &ListenerSpec,
    metrics: &Metrics,
) -> Result<(), Refusal> {
    method(req.method())?;
    if req.version() == http::Version::HTTP_11 && !req.headers().contains_key(header::HOST) {
        return Err(Refusal::bad(
            "HTTP/1.1 request without Host",
            "missing_host",
        ));
    }
    match listener.http.underscores {
        UnderscoreHeaders::Allow => {}
        UnderscoreHeaders::Drop => {
            let dropped = drop_underscored(req.headers_mut());
            if dropped > 0 {
                metrics
                    .dropped_underscore_headers
                    .with_label_values(&[&listener.name])
                    .inc_by(dropped);
            }
        }
        UnderscoreHeaders::Reject => {
            if req.headers().keys().any(has_underscore) {
                return Err(Refusal::bad(
                    "header name with underscore",
                    "header_underscore",
                ));
            }
        }
    }
    if let Some(uri) = normalized_uri(req.uri(), &listener.http.path)? {
        *req.uri_mut() = uri;
    }
    Ok(())
}

/// Refuses `CONNECT` and a standard method in the wrong case; extension methods pass.
pub fn method(m: &Method) -> Result<(), Refusal> {
    if m == Method::CONNECT {
        return Err(Refusal {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: "CONNECT is not supported",
            reason: "method_connect",
        });
    }
    // The standard methods in their own spelling are the common case; only extension methods
    // (anything `http` does not recognise, `get` included) are compared.
    let standard = matches!(
        *m,
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::OPTIONS
            | Method::TRACE
            | Method::PATCH
    );
    if !standard
        && STANDARD_METHODS
            .iter()
            .any(|std| std.eq_ignore_ascii_case(m.as_str()))
    {
        return Err(Refusal::bad("method name must be uppercase", "method_case"));
    }
    Ok(())
}

fn has_underscore(name: &HeaderName) -> bool {
    name.as_str().contains('_')
}

/// Removes every field whose name contains `_`; returns how many fields went.
fn drop_underscored(headers: &mut http::HeaderMap) -> u64 {
    // Most requests have none: look before collecting anything.
    if !headers.keys().any(has_underscore) {
        return 0;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| has_underscore(n))
        .cloned()
        .collect();
    let mut dropped = 0;
    for name in names {
        if let header::Entry::Occupied(e) = headers.entry(name) {
            dropped += e.remove_entry_mult().1.count() as u64;
        }
    }
    dropped
}

/// The URI with its path canonical (scheme, authority and query kept), or `None` when the
/// path already is; `*` (`OPTIONS *`) has no path to normalise.
pub fn normalized_uri(
    uri: &Uri,
    opts: &strait_router::PathOptions,
) -> Result<Option<Uri>, Refusal> {
    let path = uri.path();
    if path == "*" {
        return Ok(None);
    }
    let canonical = normalize_path(path.as_bytes(), opts).map_err(Refusal::path)?;
    if canonical == path {
        return Ok(None);
    }
    let pq = match uri.query() {
        Some(q) => format!("{canonical}?{q}"),
        None => canonical.into_owned(),
    };
    // The normaliser's output is always a valid path; this guards against that ever changing.
    let invalid = || Refusal::bad("invalid request target", "path_invalid");
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).map_err(|_| invalid())?);
    Uri::from_parts(parts).map(Some).map_err(|_| invalid())
}

/// A path refused after routing (a prefix rewrite that leaves its replacement), counted.
pub fn refused(r: PathRejection, listener: &str, metrics: &Metrics) -> ProxyError {
    let refusal = Refusal::path(r).count(listener, metrics);
    ProxyError::BadRequest(refusal.status, refusal.message)
}

#[cfg(test)]
mod tests;
