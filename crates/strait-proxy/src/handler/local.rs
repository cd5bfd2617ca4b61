//! Responses Strait makes itself: generic error bodies with the request id, bodies only where HTTP allows one, and gRPC's status mapping for gRPC clients.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use strait_core::ProxyError;

use crate::body::ProxyBody;

/// The status Strait decided for a response it answered as a gRPC `200` (kept for metrics and logs).
#[derive(Clone, Copy, Debug)]
struct Decided(StatusCode);

/// The short plain-text error response every failure produces: the status, a generic reason
/// and the request id. Upstream names, addresses and causes are never in it. A gRPC request
/// gets `grpc-status` and `grpc-message` instead (see [`grpc_reply`]).
pub fn error_response(e: &ProxyError, request_id: &HeaderValue, grpc: bool) -> Response<ProxyBody> {
    let id = request_id.to_str().unwrap_or("");
    let body = format!("strait: {} (request id {id})\n", e.public_reason());
    let mut resp = Response::new(ProxyBody::Full(Some(Bytes::from(body))));
    *resp.status_mut() = e.status();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if grpc {
        return grpc_reply(resp);
    }
    resp
}

/// Whether the request is gRPC (`content-type: application/grpc` or `application/grpc+proto`…).
pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The body a locally made response may carry: none for 1xx, 204, 304 or a HEAD request.
pub(super) fn body_for(method: &Method, status: StatusCode, body: Bytes) -> ProxyBody {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return ProxyBody::Empty;
    }
    ProxyBody::full(body)
}

/// Turns a local reply to a gRPC request into gRPC's form: HTTP 200, `content-type:
/// application/grpc`, no body, `grpc-status` mapped from the HTTP status as Envoy does (with
/// 429 as RESOURCE_EXHAUSTED and 504 as DEADLINE_EXCEEDED) and `grpc-message` percent-encoded.
pub(super) fn grpc_reply(resp: Response<ProxyBody>) -> Response<ProxyBody> {
    let (mut parts, _) = resp.into_parts();
    let status = parts.status;
    if status == StatusCode::OK {
        return Response::from_parts(parts, ProxyBody::Empty);
    }
    let code = grpc_status(status.as_u16());
    parts.extensions.insert(Decided(status));
    parts.status = StatusCode::OK;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    parts.headers.insert("grpc-status", HeaderValue::from(code));
    let message = status.canonical_reason().unwrap_or("error");
    if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
        parts.headers.insert("grpc-message", v);
    }
    Response::from_parts(parts, ProxyBody::Empty)
}

/// The status to count and log for `resp`: the decided one for a gRPC-mapped reply.
pub(super) fn decided_status(resp: &Response<ProxyBody>) -> u16 {
    resp.extensions()
        .get::<Decided>()
        .map_or(resp.status(), |d| d.0)
        .as_u16()
}

/// gRPC status code for an HTTP status of a local reply.
fn grpc_status(http: u16) -> u16 {
    match http {
        400 => 13,       // INTERNAL
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 => 12,       // UNIMPLEMENTED
        408 | 504 => 4,  // DEADLINE_EXCEEDED
        413 | 429 => 8,  // RESOURCE_EXHAUSTED
        502 | 503 => 14, // UNAVAILABLE
        _ => 2,          // UNKNOWN
    }
}

/// gRPC's percent-encoding of `grpc-message` (everything outside printable ASCII and `%`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_replies_are_200_with_a_mapped_status() {
        let e = ProxyError::NoHealthyEndpoint("u".into());
        let r = error_response(&e, &HeaderValue::from_static("id"), true);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert_eq!(decided_status(&r), 503);
        for (http, grpc) in [
            (404, 12),
            (401, 16),
            (403, 7),
            (429, 8),
            (502, 14),
            (504, 4),
        ] {
            assert_eq!(grpc_status(http), grpc, "{http}");
        }
    }

    #[test]
    fn error_bodies_carry_no_internals() {
        let e = ProxyError::Connect {
            upstream: "users".into(),
            endpoint: "127.0.0.1:19698".into(),
            source: "connection refused".into(),
        };
        let r = error_response(&e, &HeaderValue::from_static("abc"), false);
        let ProxyBody::Full(Some(b)) = r.body() else {
            panic!()
        };
        let text = std::str::from_utf8(b).unwrap();
        assert_eq!(text, "strait: bad gateway (request id abc)\n");
    }

    #[test]
    fn no_body_where_http_forbids_one() {
        let b = Bytes::from_static(b"x");
        assert!(matches!(
            body_for(&Method::GET, StatusCode::NO_CONTENT, b.clone()),
            ProxyBody::Empty
        ));
        assert!(matches!(
            body_for(&Method::GET, StatusCode::NOT_MODIFIED, b.clone()),
            ProxyBody::Empty
        ));
        assert!(matches!(
            body_for(&Method::HEAD, StatusCode::OK, b.clone()),
            ProxyBody::Empty
        ));
        assert!(matches!(
            body_for(&Method::GET, StatusCode::OK, b),
            ProxyBody::Full(_)
        ));
    }
}
