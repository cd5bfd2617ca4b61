//! HTTP/2 downstream connections: hyper's server behind the [`H2Guard`], the listener's HTTP/2
//! limits (streams, PINGs, send buffers), the request-head limits h2 cannot apply itself, and
//! the graceful close of idle and draining connections. Sits between `server` and `handler`.

use std::sync::Arc;
use std::time::Instant as StdInstant;

use http::{Request, Response, StatusCode};
use hyper::{body::Incoming, server::conn::http2, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use strait_core::ProxyError;

use crate::snapshot::ListenerLimits;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{watch, Notify},
    time::Instant,
};

use crate::{
    body::ProxyBody,
    h2guard::{H2Guard, H2Limits},
    handler::{self, ConnInfo},
    reject::{self, Refused, Reporter},
    Shared,
};

/// Response bytes h2 may hold per stream beyond what the client's window lets out: with the
/// stream's one pending chunk, what a client that stops reading can pin in memory.
const MAX_SEND_BUF: usize = 64 * 1024;

/// hyper's HTTP/2 server configured from a listener's limits.
pub(crate) fn builder(limits: &ListenerLimits) -> http2::Builder<TokioExecutor> {
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    let ping = Some(limits.ping_interval).filter(|d| !d.is_zero());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        // The codec's own bound, above ours so that a header list over `max_request_headers`
        // reaches `check` and is answered and counted there; beyond it h2 answers 431 itself.
        .max_header_list_size(codec_header_limit(limits))
        .max_send_buf_size(MAX_SEND_BUF)
        .keep_alive_interval(ping)
        .keep_alive_timeout(limits.ping_timeout);
    h2
}

fn codec_header_limit(limits: &ListenerLimits) -> u32 {
    u32::try_from(limits.max_request_headers.saturating_mul(2)).unwrap_or(u32::MAX)
}

/// Serves HTTP/2 on `io`, accepted at `accepted`, until the connection ends.
pub(crate) async fn serve<IO>(
    shared: &Arc<Shared>,
    builder: &http2::Builder<TokioExecutor>,
    info: Arc<ConnInfo>,
    io: IO,
    accepted: Instant,
    stop: &mut watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let l = &info.listener.limits;
    let limits = H2Limits {
        header_read_timeout: l.header_read_timeout,
        idle_timeout: l.idle_timeout,
        send_timeout: l.send_timeout,
        close_grace: l.ping_timeout,
        max_streams: (l.max_concurrent_streams as usize).saturating_mul(2) + 64,
    };
    let idle = Arc::new(Notify::new());
    let reporter = Reporter::new(shared, &info);
    let guard = H2Guard::new(io, limits, accepted, reporter, idle.clone());
    let svc = {
        let shared = shared.clone();
        // Boxed: hyper spawns each stream as a task and tokio moves a task's future whole
        // (into the task, then over it at each stage change); unboxed that was six 8.6 KB
        // copies per request, most of the memcpy in a profile of scenario c.
        service_fn(move |req| Box::pin(serve_request(shared.clone(), info.clone(), req)))
    };
    let mut conn = Box::pin(builder.serve_connection(TokioIo::new(guard), svc));
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = crate::server::stopped(stop) => {}
        // Idle for `idle_timeout`: GOAWAY, so a request racing the close is retried by the client.
        _ = idle.notified() => {}
    }
    // HTTP/2 sends GOAWAY and finishes the streams in flight.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// The request path for one stream, after the head limits h2 does not apply itself.
async fn serve_request(
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    if let Some(error) = check(&req, &info.listener.limits) {
        let refused = Refused::from_request(&req, StdInstant::now());
        return Ok(reject::answer(&shared, &info, refused, &error));
    }
    handler::handle(shared, info, req.map(crate::body::Downstream::Hyper)).await
}

/// The HTTP/1 guard's head limits, for an HTTP/2 request: `:path` against `max_request_line`
/// (414), the field count against `max_headers` and the decoded size (RFC 9113 §6.5.2: name,
/// value and 32 per field, pseudo-headers included) against `max_request_headers` (431).
pub(crate) fn check<B>(req: &Request<B>, limits: &ListenerLimits) -> Option<ProxyError> {
    let path = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if path > limits.max_request_line {
        return Some(ProxyError::BadRequest(
            StatusCode::URI_TOO_LONG,
            "request target too long",
        ));
    }
    let too_large = || {
        Some(ProxyError::BadRequest(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large",
        ))
    };
    // Browsers split Cookie into one field per cookie over HTTP/2 (RFC 9113 §8.2.3); over
    // HTTP/1 it is one line, so the crumbs count as one field here too.
    let crumbs = req.headers().get_all(http::header::COOKIE).iter().count();
    if req.headers().len() - crumbs.saturating_sub(1) > limits.max_headers {
        return too_large();
    }
    let uri = req.uri();
    let pseudo = [
        (":method", req.method().as_str().len()),
        (":scheme", uri.scheme_str().map_or(0, str::len)),
        (
            ":authority",
            uri.authority().map_or(0, |a| a.as_str().len()),
        ),
        (":path", path),
    ];
    let size = pseudo
        .iter()
        .filter(|(_, len)| *len > 0)
        .map(|(name, len)| name.len() + len + 32)
        .chain(
            req.headers()
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 32),
        )
        .sum::<usize>();
    if size > limits.max_request_headers {
        return too_large();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> ListenerLimits {
        ListenerLimits {
            max_request_headers: 1000,
            max_request_line: 50,
            max_headers: 5,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_connections: 10,
            max_request_body: 0,
            send_timeout: Duration::from_secs(60),
            max_concurrent_streams: 256,
            ping_interval: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(20),
        }
    }

    fn status<B>(req: &Request<B>) -> Option<u16> {
        check(req, &limits()).map(|e| e.status().as_u16())
    }

    #[test]
    fn the_field_count_is_the_http1_one_with_cookie_crumbs_as_one_field() {
        let mut req = Request::get("http://a.test/").body(()).unwrap();
        for i in 0..5 {
            req.headers_mut().insert(
                format!("x-{i}").parse::<http::HeaderName>().unwrap(),
                "v".parse().unwrap(),
            );
        }
        assert_eq!(status(&req), None);
        for c in ["a=1", "b=2", "c=3"] {
            req.headers_mut()
                .append(http::header::COOKIE, c.parse().unwrap());
        }
        assert_eq!(status(&req), Some(431), "six fields");
        req.headers_mut().remove("x-0");
        assert_eq!(
            status(&req),
            None,
            "five fields, one of them the cookie crumbs"
        );
    }

    #[test]
    fn size_counts_names_values_pseudo_headers_and_32_per_field() {
        // :method GET (7+3+32) :scheme http (7+4+32) :authority a.test (10+6+32) :path / (5+1+32)
        let base = 42 + 43 + 48 + 38;
        let mut req = Request::get("http://a.test/").body(()).unwrap();
        let value = "v".repeat(1000 - base - 32 - 1);
        req.headers_mut().insert("x", value.parse().unwrap());
        assert_eq!(status(&req), None, "exactly at the limit");
        req.headers_mut().insert("xy", value.parse().unwrap());
        assert_eq!(status(&req), Some(431));
    }

    #[test]
    fn a_path_over_the_request_line_limit_is_414() {
        let req = Request::get(format!("http://a.test/{}", "a".repeat(50)))
            .body(())
            .unwrap();
        assert_eq!(status(&req), Some(414));
    }
}
