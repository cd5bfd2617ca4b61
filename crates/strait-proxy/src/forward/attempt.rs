//! One attempt: take a connection, send within the attempt's timeout, and say whether the request left Strait at all.
//!
//! hyper's `try_send_request` gives a request back when it was never written (the pooled
//! connection had been closed by the upstream, or an HTTP/2 connection was going away). Such a
//! request goes on a fresh connection to the same endpoint at once, uncounted, as clients do;
//! a request a fresh connection did not send comes back to the caller like one that never
//! found a connection, so another endpoint can take it whatever its method.
//!
//! A request with nothing to upload goes to an HTTP/1.1 upstream without hyper (see
//! `pool::direct`): it is written and its response read on this task. It stays whole, so the
//! same resend rules hold without keeping a copy of its head.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body as _;
use strait_core::ProxyError;

use crate::body::{BodyAborted, BodyTooLarge, BoxError, ProxyBody};
use crate::pool::{self, Checkout, Conn, ConnectError, DirectFailed, EndpointPool, H1Conn, UpBody};
use crate::retry::is_idempotent;
use crate::upstream::{Endpoint, Upstream};

/// A response head and the HTTP/1.1 connection it came on (to pool when the exchange ends).
pub(crate) struct Sent {
    pub response: Response<UpBody>,
    pub conn: Option<H1Conn>,
}

/// A failed attempt, with the request when it was never sent.
pub(crate) struct AttemptError {
    pub error: ProxyError,
    pub request: Option<Request<ProxyBody>>,
}

/// Sends `req` to `endpoint` and waits up to `timeout` for the response head.
pub(crate) async fn send(
    pool: &Arc<EndpointPool>,
    upstream: &Upstream,
    endpoint: &Endpoint,
    req: Request<ProxyBody>,
    timeout: Duration,
) -> Result<Sent, AttemptError> {
    let fail = |error, request| AttemptError { error, request };
    let bare = !upstream.protocol.is_h2() && pool::fits_direct(&req);
    let max_idle = upstream.pool.max_idle_per_endpoint;
    let checkout = match pool::checkout(pool, upstream, bare).await {
        Ok(c) => c,
        Err(e) => return Err(fail(connect_error(upstream, endpoint, e), Some(req))),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let Checkout { conn, reused } = checkout;
    // An idle keep-alive connection the upstream closes just as a request is written to it
    // fails after the request left (RFC 9112 §9.3.1): an idempotent request without a body
    // may be sent again on a fresh connection. hyper takes the request, so keep its head for
    // that; a bare connection's request comes back whole.
    let resendable = reused && is_idempotent(req.method()) && req.body().is_end_stream();
    let again = (resendable && !matches!(conn, Conn::Bare(_))).then(|| {
        let mut copy = Request::new(());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        copy.into_parts().0
    });
    let first = match conn {
        Conn::H1(c) => send_h1(c, req, deadline).await,
        Conn::H2(tx) => send_h2(tx, req, deadline).await,
        Conn::Bare(r) => send_bare(r, req, deadline, max_idle).await,
    };
    let unsent = match first {
        Ok(sent) => return Ok(sent),
        Err(Failure::SentWhole(req, e)) if resendable && closed_early(&*e) => *req,
        Err(Failure::SentWhole(_, e)) => {
            return Err(fail(failure(upstream, endpoint, Some(e), timeout), None))
        }
        Err(Failure::Sent(Some(e))) if again.is_some() && closed_early(&*e) => {
            let head = again.expect("checked above");
            Request::from_parts(head, ProxyBody::Empty)
        }
        Err(Failure::Sent(e)) => return Err(fail(failure(upstream, endpoint, e, timeout), None)),
        Err(Failure::Unsent(req, e)) => {
            if !reused {
                // A fresh connection that would not take the request: as if it never opened.
                let error = ProxyError::Connect {
                    upstream: upstream.name.to_string(),
                    endpoint: endpoint.address.to_string(),
                    source: e,
                };
                return Err(fail(error, Some(*req)));
            }
            *req
        }
    };
    // The reused connection was closed under us: once more on a fresh one.
    let fresh = if upstream.protocol.is_h2() {
        pool::forget_h2(pool);
        Box::pin(pool::checkout(pool, upstream, false))
            .await
            .map(|c| c.conn)
    } else {
        Box::pin(pool::redial_h1(pool, upstream, bare)).await
    };
    let conn = match fresh {
        Ok(c) => c,
        Err(e) => return Err(fail(connect_error(upstream, endpoint, e), Some(unsent))),
    };
    let second = match conn {
        Conn::H1(c) => send_h1(c, unsent, deadline).await,
        Conn::H2(tx) => send_h2(tx, unsent, deadline).await,
        Conn::Bare(r) => send_bare(r, unsent, deadline, max_idle).await,
    };
    match second {
        Ok(sent) => Ok(sent),
        Err(Failure::Sent(e)) => Err(fail(failure(upstream, endpoint, e, timeout), None)),
        Err(Failure::SentWhole(_, e)) => {
            Err(fail(failure(upstream, endpoint, Some(e), timeout), None))
        }
        Err(Failure::Unsent(req, e)) => Err(fail(
            ProxyError::Connect {
                upstream: upstream.name.to_string(),
                endpoint: endpoint.address.to_string(),
                source: e,
            },
            Some(*req),
        )),
    }
}

/// Whether a connection failed before a response came: closed, or reset by the peer.
fn closed_early(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        if h.is_incomplete_message() || h.is_canceled() {
            return true;
        }
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        src = s.source();
    }
    false
}

/// Why one send failed.
enum Failure {
    /// The request was (maybe partly) written: the error, or `None` for the timeout.
    Sent(Option<BoxError>),
    /// The request was written without hyper, but it had no body and is still whole: it may
    /// go again if the connection was closed under it.
    SentWhole(Box<Request<ProxyBody>>, BoxError),
    /// The request was never written: it comes back.
    Unsent(Box<Request<ProxyBody>>, BoxError),
}

async fn send_h1(
    mut c: H1Conn,
    mut req: Request<ProxyBody>,
    deadline: tokio::time::Instant,
) -> Result<Sent, Failure> {
    req.body_mut().notify_sent(&c.slot);
    if req.headers().contains_key(http::header::UPGRADE) {
        c.slot.may_upgrade();
    }
    match tokio::time::timeout_at(deadline, c.tx.try_send_request(req)).await {
        Ok(Ok(response)) => Ok(Sent {
            response: response.map(UpBody::Hyper),
            conn: Some(c),
        }),
        Ok(Err(mut e)) => match e.take_message() {
            Some(req) => Err(Failure::Unsent(Box::new(req), e.into_error().into())),
            None => Err(Failure::Sent(Some(e.into_error().into()))),
        },
        // The connection is dropped with the attempt: its state is unknown.
        Err(_) => Err(Failure::Sent(None)),
    }
}

async fn send_h2(
    mut tx: hyper::client::conn::http2::SendRequest<ProxyBody>,
    req: Request<ProxyBody>,
    deadline: tokio::time::Instant,
) -> Result<Sent, Failure> {
    match tokio::time::timeout_at(deadline, tx.try_send_request(req)).await {
        Ok(Ok(response)) => Ok(Sent {
            response: response.map(UpBody::Hyper),
            conn: None,
        }),
        Ok(Err(mut e)) => match e.take_message() {
            Some(req) => Err(Failure::Unsent(Box::new(req), e.into_error().into())),
            None => Err(Failure::Sent(Some(e.into_error().into()))),
        },
        Err(_) => Err(Failure::Sent(None)),
    }
}

async fn send_bare(
    r: pool::Resting,
    req: Request<ProxyBody>,
    deadline: tokio::time::Instant,
    max_idle: usize,
) -> Result<Sent, Failure> {
    match tokio::time::timeout_at(deadline, pool::send_direct(r, &req, max_idle)).await {
        Ok(Ok(response)) => Ok(Sent {
            response: response.map(UpBody::Direct),
            conn: None,
        }),
        Ok(Err(DirectFailed::Unsent(e))) => Err(Failure::Unsent(Box::new(req), e.into())),
        Ok(Err(DirectFailed::Sent(e))) => Err(Failure::SentWhole(Box::new(req), e.into())),
        // The connection is dropped with the attempt: its state is unknown.
        Err(_) => Err(Failure::Sent(None)),
    }
}

fn connect_error(upstream: &Upstream, endpoint: &Endpoint, e: ConnectError) -> ProxyError {
    match e {
        ConnectError::Overloaded | ConnectError::Exhausted => ProxyError::Overloaded {
            upstream: upstream.name.to_string(),
            endpoint: endpoint.address.to_string(),
        },
        e => ProxyError::Connect {
            upstream: upstream.name.to_string(),
            endpoint: endpoint.address.to_string(),
            source: Box::new(e),
        },
    }
}

fn failure(
    upstream: &Upstream,
    endpoint: &Endpoint,
    e: Option<BoxError>,
    timeout: Duration,
) -> ProxyError {
    let Some(e) = e else {
        return ProxyError::Timeout {
            upstream: upstream.name.to_string(),
            endpoint: endpoint.address.to_string(),
            after: timeout,
        };
    };
    if is_body_limit(&*e) {
        return ProxyError::BadRequest(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        );
    }
    if crate::body::client_body_failed(&*e) {
        return ProxyError::BadRequest(
            http::StatusCode::BAD_REQUEST,
            "request body from the client failed",
        );
    }
    if let Some(reason) = body_aborted(&*e) {
        return ProxyError::BadRequest(http::StatusCode::BAD_REQUEST, reason);
    }
    ProxyError::Upstream {
        upstream: upstream.name.to_string(),
        endpoint: endpoint.address.to_string(),
        source: e,
    }
}

/// The reason a body filter stopped the request body, if one did.
fn body_aborted(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(a) = s.downcast_ref::<BodyAborted>() {
            return Some(a.0);
        }
        src = s.source();
    }
    None
}

fn is_body_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<BodyTooLarge>() {
            return true;
        }
        src = s.source();
    }
    false
}
