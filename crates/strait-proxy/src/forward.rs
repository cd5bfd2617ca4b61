//! Forwarding to an upstream: prepare the request for the next hop, pick an endpoint, send, and stream the response back.

use std::{sync::Arc, time::Instant};

use http::{header, uri::PathAndQuery, HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use strait_core::{balance::hash_key, HashOn, ProxyError, Rewrite, Upstream};
use strait_observe::{trace::Tracer, Attempt, RequestRecord};

use crate::{
    body::{BodyTooLarge, ProxyBody, Streamed},
    handler::ConnInfo,
    headers::{self, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID},
    pool::{self, Conn, Outcome, PooledBody},
    Shared,
};

/// Everything one forward needs, borrowed from the request path.
pub struct Forward<'a> {
    /// Process-wide state.
    pub shared: &'a Shared,
    /// Downstream connection.
    pub conn: &'a ConnInfo,
    /// Target upstream.
    pub upstream: &'a Arc<Upstream>,
    /// Route rewrite.
    pub rewrite: Option<&'a Rewrite>,
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

/// Sends the request to an endpoint of the upstream and returns its response, or why not.
pub async fn forward(
    f: Forward<'_>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let upstream = f.upstream;
    let h2 = upstream.protocol.is_h2();
    // An HTTP/1.1 client may switch protocols through an HTTP/1 upstream (WebSocket).
    let may_upgrade =
        !h2 && req.version() == Version::HTTP_11 && req.headers().contains_key(header::UPGRADE);
    let (mut head, body) = req.into_parts();

    let kept = headers::strip_hop_by_hop(&mut head.headers, may_upgrade);
    if h2 && kept.te_trailers {
        head.headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    headers::append_forwarded_for(&mut head.headers, &f.conn.client_ip);
    head.headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if f.conn.is_tls() { "https" } else { "http" }),
    );
    if let Some(h) = f.host {
        head.headers.insert(X_FORWARDED_HOST.clone(), h.clone());
    }
    head.headers
        .insert(X_REQUEST_ID.clone(), f.request_id.clone());

    let host = match f.rewrite.and_then(|r| r.host.as_ref()) {
        Some(h) => Some(h.clone()),
        None => f.host.cloned(),
    };
    let path = rewritten_path(&head.uri, f.rewrite, f.prefix_len);

    let hash = upstream
        .hash_on
        .as_ref()
        .map(|h| request_hash(h, &head, f.conn));
    let endpoint = upstream
        .pick(hash)
        .ok_or_else(|| ProxyError::NoHealthyEndpoint(upstream.name.to_string()))?;

    if h2 {
        head.version = Version::HTTP_2;
        head.headers.remove(header::HOST);
        let authority = host
            .as_ref()
            .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| endpoint.authority.clone());
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(if upstream.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        });
        parts.authority = Some(authority);
        parts.path_and_query = Some(path.unwrap_or_else(|| origin_form(&head.uri)));
        head.uri = Uri::from_parts(parts).map_err(|e| upstream_err(upstream, e))?;
    } else {
        head.version = Version::HTTP_11;
        let rewritten = f.rewrite.is_some_and(|r| r.host.is_some());
        match host {
            // The client's own Host header is already in place: only a rewrite or an HTTP/2
            // client (authority in the URI, no Host header) needs one written.
            Some(_) if !rewritten && head.headers.contains_key(header::HOST) => {}
            Some(h) => {
                head.headers.insert(header::HOST, h);
            }
            None => {
                head.headers.insert(
                    header::HOST,
                    HeaderValue::from_str(endpoint.authority.as_str())
                        .map_err(|e| upstream_err(upstream, e))?,
                );
            }
        }
        if path.is_some() || head.uri.scheme().is_some() || head.uri.authority().is_some() {
            let pq = path.unwrap_or_else(|| origin_form(&head.uri));
            head.uri = Uri::from(pq);
        }
    }

    // One client span per attempt: its id is the parent id the upstream sees.
    let trace = f.record.as_ref().and_then(|r| r.trace);
    let attempt_span = match (f.tracer, &trace) {
        (Some(t), Some(ctx)) => {
            let id = strait_observe::trace::span_id(&mut strait_core::rand::next_u64);
            t.inject(&mut head.headers, ctx, &id);
            Some(id)
        }
        _ => None,
    };

    let body = ProxyBody::Downstream(Streamed::new(
        body,
        upstream.timeouts.idle,
        f.conn.listener.limits.max_request_body,
    ));
    let req = Request::from_parts(head, body);

    let pool = f.shared.pools.of(upstream, endpoint, &f.shared.metrics);
    let _active = endpoint.state.track();
    let started = Instant::now();
    let sent = async {
        let conn = pool::checkout(&pool, upstream)
            .await
            .map_err(|e| ProxyError::Connect {
                upstream: upstream.name.to_string(),
                endpoint: endpoint.address.to_string(),
                source: Box::new(e),
            })?;
        let timeout = upstream.timeouts.request;
        Ok(match conn {
            Conn::H1(mut tx) => {
                let r = tokio::time::timeout(timeout, tx.send_request(req)).await;
                (finish_send(upstream, r)?, Some(tx))
            }
            Conn::H2(mut tx) => {
                let r = tokio::time::timeout(timeout, tx.send_request(req)).await;
                (finish_send(upstream, r)?, None)
            }
        })
    }
    .await;
    let elapsed = started.elapsed();
    pool.attempt_duration.observe(elapsed.as_secs_f64());
    pool.count(match &sent {
        Ok(_) => Outcome::Response,
        Err(ProxyError::Connect { .. }) => Outcome::ConnectError,
        Err(ProxyError::Timeout(_)) => Outcome::Timeout,
        Err(_) => Outcome::Error,
    });
    if let Some(rec) = f.record {
        rec.attempts.push(Attempt {
            span_id: attempt_span.unwrap_or_default(),
            start: started,
            duration: elapsed,
            upstream: upstream.name.clone(),
            endpoint: endpoint.address.clone(),
            status: sent.as_ref().map_or(0, |(r, _)| r.status().as_u16()),
            error: sent.as_ref().err().map(attempt_error),
        });
    }
    let (resp, h1) = sent?;
    // An HTTP/1.1 connection goes back to its pool when the response body ends.
    let ret = h1.map(|tx| (pool, tx, upstream.pool.max_idle_per_endpoint));

    let (mut parts, body) = resp.into_parts();
    if parts.status == http::StatusCode::SWITCHING_PROTOCOLS {
        if !kept.upgrade {
            return Err(ProxyError::Upstream {
                upstream: upstream.name.to_string(),
                source: "unexpected 101 response".into(),
            });
        }
        // The connection task splices the two once hyper has written the 101 (see `h1conn`).
        let up_resp = Response::from_parts(parts.clone(), body);
        f.conn.h1.offer_upgrade(hyper::upgrade::on(up_resp));
        return Ok(Response::from_parts(parts, ProxyBody::Empty));
    }
    headers::strip_hop_by_hop(&mut parts.headers, false);
    Ok(Response::from_parts(
        parts,
        ProxyBody::Upstream(PooledBody::new(body, upstream.timeouts.idle, ret)),
    ))
}

/// The `error.type` of a failed attempt.
fn attempt_error(e: &ProxyError) -> &'static str {
    match e {
        ProxyError::Connect { .. } => "connect",
        ProxyError::Timeout(_) => "timeout",
        ProxyError::BadRequest(..) => "request",
        _ => "upstream",
    }
}

fn finish_send(
    upstream: &Upstream,
    r: Result<Result<Response<Incoming>, hyper::Error>, tokio::time::error::Elapsed>,
) -> Result<Response<Incoming>, ProxyError> {
    match r {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => {
            if is_body_limit(&e) {
                return Err(ProxyError::BadRequest(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                ));
            }
            if crate::body::client_body_failed(&e) {
                let reason = "request body from the client failed";
                return Err(ProxyError::BadRequest(
                    http::StatusCode::BAD_REQUEST,
                    reason,
                ));
            }
            Err(upstream_err(upstream, e))
        }
        Err(_) => Err(ProxyError::Timeout(upstream.name.to_string())),
    }
}

fn is_body_limit(e: &hyper::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<BodyTooLarge>() {
            return true;
        }
        src = s.source();
    }
    false
}

fn upstream_err(
    upstream: &Upstream,
    e: impl std::error::Error + Send + Sync + 'static,
) -> ProxyError {
    ProxyError::Upstream {
        upstream: upstream.name.to_string(),
        source: Box::new(e),
    }
}

fn origin_form(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// The rewritten path-and-query, or `None` when the path is forwarded unchanged.
fn rewritten_path(uri: &Uri, rewrite: Option<&Rewrite>, prefix_len: usize) -> Option<PathAndQuery> {
    let rw = rewrite?;
    let path = uri.path();
    let new_path = if let Some(p) = &rw.path {
        p.clone()
    } else if let Some(prefix) = &rw.path_prefix {
        let rest = path.get(prefix_len..).unwrap_or("");
        let mut s = String::with_capacity(prefix.len() + rest.len());
        s.push_str(prefix);
        // Replacing "/api/" by "/" must not produce "//x", and "/api" by "/v2" keeps "/v2/x".
        if s.ends_with('/') && rest.starts_with('/') {
            s.push_str(&rest[1..]);
        } else {
            s.push_str(rest);
        }
        if s.is_empty() {
            s.push('/');
        }
        s
    } else {
        return None;
    };
    let full = match uri.query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    PathAndQuery::try_from(full).ok()
}

fn request_hash(h: &HashOn, head: &http::request::Parts, conn: &ConnInfo) -> u64 {
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

fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get_all(header::COOKIE).iter().find_map(|v| {
        v.as_bytes().split(|&b| b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(prefix: &str) -> Rewrite {
        Rewrite {
            path_prefix: Some(prefix.into()),
            ..Default::default()
        }
    }

    #[test]
    fn prefix_rewrite_strips_and_replaces() {
        let uri: Uri = "/api/users?x=1".parse().unwrap();
        assert_eq!(
            rewritten_path(&uri, Some(&rw("/")), 5).unwrap(),
            "/users?x=1"
        );
        assert_eq!(
            rewritten_path(&uri, Some(&rw("/v2/")), 5).unwrap(),
            "/v2/users?x=1"
        );
        let uri: Uri = "/api".parse().unwrap();
        assert_eq!(rewritten_path(&uri, Some(&rw("/")), 4).unwrap(), "/");
    }

    #[test]
    fn cookie_value_is_found_among_several() {
        let mut h = http::HeaderMap::new();
        h.insert(header::COOKIE, "a=1; sid=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&h, "sid"), Some(&b"xyz"[..]));
        assert_eq!(cookie(&h, "s"), None);
    }
}
