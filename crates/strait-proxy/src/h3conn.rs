//! HTTP/3 requests on one QUIC connection: the h3 request loop, each request through the same
//! `handler::handle` as HTTP/1 and HTTP/2, the response streamed back frame by frame (trailers
//! too), the request body as [`H3Body`], and GOAWAY on drain. Sits between `server::quic` and
//! `handler`.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant as StdInstant},
};

use bytes::{Buf, Bytes};
use h3::{error::Code, server::RequestStream};
use http::{header, HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::{sync::watch, task::JoinSet, time::Instant};

use crate::{
    body::{BoxError, Downstream, ProxyBody},
    h2conn,
    handler::{self, ConnInfo},
    reject::{self, Refused},
    Shared,
};

#[cfg(test)]
mod tests;

type H3Conn = h3::server::Connection<h3_quinn::Connection, Bytes>;
type SendHalf = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;
type RecvHalf = RequestStream<h3_quinn::RecvStream, Bytes>;

/// Serves HTTP/3 on an established QUIC connection until the client closes it, it idles out,
/// or `stop` flips; then GOAWAY, and the requests in flight finish before the connection closes.
pub(crate) async fn serve(
    shared: &Arc<Shared>,
    info: Arc<ConnInfo>,
    quic: quinn::Connection,
    stop: &mut watch::Receiver<bool>,
) {
    let limits = info.listener.limits;
    // The codec's own bound, above ours so that a head over `max_request_headers` reaches
    // `h2conn::check` and is answered 431 and counted there, as on HTTP/2.
    let field_section = (limits.max_request_headers as u64).saturating_mul(2);
    let mut builder = h3::server::builder();
    builder.max_field_section_size(field_section);
    let build = builder.build(h3_quinn::Connection::new(quic));
    let mut conn: H3Conn = match tokio::time::timeout(limits.header_read_timeout, build).await {
        Ok(Ok(c)) => c,
        _ => return,
    };
    let mut requests = JoinSet::new();
    let mut draining = false;
    let mut last_done = None;
    loop {
        tokio::select! {
            accepted = conn.accept() => match accepted {
                Ok(Some(resolver)) => {
                    let (shared, info) = (shared.clone(), info.clone());
                    requests.spawn(async move {
                        let wait = info.listener.limits.header_read_timeout;
                        // A stream that never finishes its head holds nothing past this.
                        let resolved = tokio::time::timeout(wait, resolver.resolve_request()).await;
                        if let Ok(Ok((req, stream))) = resolved {
                            // Boxed so the task, which tokio moves whole, stays small.
                            Box::pin(serve_request(shared, info, req, stream)).await;
                        }
                    });
                }
                // Closed by the client, idle timeout, or a protocol error: nothing to flush.
                Ok(None) | Err(_) => {
                    while requests.join_next().await.is_some() {}
                    return;
                }
            },
            Some(_) = requests.join_next(), if !requests.is_empty() => {
                last_done = Some(Instant::now());
                if draining && requests.is_empty() {
                    break;
                }
            }
            _ = crate::server::stopped(stop), if !draining => {
                draining = true;
                // GOAWAY naming the last request accepted: later streams are refused, so the
                // client retries them elsewhere; those in flight finish.
                if conn.shutdown(0).await.is_err() || requests.is_empty() {
                    break;
                }
            }
        }
    }
    while requests.join_next().await.is_some() {
        last_done = Some(Instant::now());
    }
    // Closing QUIC discards response bytes not yet acknowledged, so after a recent response
    // the client gets until it closes (it has our GOAWAY), at most the HTTP/2 close grace.
    if let Some(done) = last_done {
        let closed = async { while let Ok(Some(_)) = conn.accept().await {} };
        let _ = tokio::time::timeout_at(done + limits.ping_timeout, closed).await;
    }
    // Dropping the h3 connection closes QUIC with H3_NO_ERROR.
    drop(conn);
}

/// One request: the head limits HTTP/2 also applies, then the request path, then the response.
async fn serve_request(
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
    req: Request<()>,
    stream: RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
) {
    let (mut send, recv) = stream.split();
    let (parts, ()) = req.into_parts();
    let body = H3Body::new(recv, declared_length(&parts.headers));
    let req = Request::from_parts(parts, Downstream::H3(Box::new(body)));
    let limits = info.listener.limits;
    let resp = if let Some(error) = h2conn::check(&req, &limits) {
        let refused = Refused::from_request(&req, StdInstant::now());
        reject::answer(&shared, &info, refused, &error)
    } else {
        let send_timeout = limits.send_timeout;
        let Ok(resp) = handler::handle(shared, info, req).await;
        return respond(&mut send, resp, send_timeout).await;
    };
    respond(&mut send, resp, limits.send_timeout).await
}

/// Streams `resp` into the request stream, each step bounded by `send_timeout` (a client that
/// stops reading cannot pin the response); a failed body resets the stream.
async fn respond(send: &mut SendHalf, resp: Response<ProxyBody>, send_timeout: Duration) {
    let (mut parts, mut body) = resp.into_parts();
    // Connection-specific fields make an HTTP/3 response malformed (RFC 9114 §4.2): dropped
    // here, as hyper drops them for HTTP/2.
    for h in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        parts.headers.remove(h);
    }
    parts.headers.remove("keep-alive");
    parts.headers.remove("proxy-connection");
    let head = Response::from_parts(parts, ());
    if !within(send_timeout, send.send_response(head)).await {
        return send.stop_stream(Code::H3_INTERNAL_ERROR);
    }
    while let Some(frame) = body.frame().await {
        let sent = match frame {
            Ok(f) => match f.into_data() {
                Ok(data) if data.is_empty() => true,
                Ok(data) => within(send_timeout, send.send_data(data)).await,
                Err(f) => match f.into_trailers() {
                    Ok(t) => within(send_timeout, send.send_trailers(t)).await,
                    Err(_) => true,
                },
            },
            // The upstream or a filter failed mid-body: the client must not take a truncated
            // body for a complete one.
            Err(_) => false,
        };
        if !sent {
            return send.stop_stream(Code::H3_INTERNAL_ERROR);
        }
    }
    let _ = within(send_timeout, send.finish()).await;
}

async fn within<E>(limit: Duration, f: impl std::future::Future<Output = Result<(), E>>) -> bool {
    matches!(tokio::time::timeout(limit, f).await, Ok(Ok(())))
}

fn declared_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// An HTTP/3 request body that does not match its `Content-Length` (RFC 9114 §4.1.2: malformed).
#[derive(Debug, thiserror::Error)]
#[error("HTTP/3 request body length differs from its Content-Length ({0})")]
pub struct LengthMismatch(u64);

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Trailers,
    Done,
}

/// The request body of an HTTP/3 stream: DATA frames, then trailers, checked against the
/// declared `Content-Length`.
pub struct H3Body {
    /// `None` once the body failed (see `fail`).
    stream: Option<RecvHalf>,
    state: State,
    /// A frame read ahead when the body was created (see `new`).
    first: Option<Result<Frame<Bytes>, BoxError>>,
    declared: Option<u64>,
    received: u64,
}

// === impl H3Body ===

impl H3Body {
    /// Wraps the receiving half of a request stream. The stream is polled once, without
    /// waiting: a GET's FIN usually arrives with its HEADERS, and knowing the body is empty
    /// lets the upstream request keep its framing instead of going chunked.
    fn new(stream: RecvHalf, declared: Option<u64>) -> Self {
        let mut body = H3Body {
            stream: Some(stream),
            state: State::Data,
            first: None,
            declared,
            received: 0,
        };
        let mut cx = Context::from_waker(Waker::noop());
        match body.poll_next(&mut cx) {
            Poll::Ready(Some(r)) => body.first = Some(r),
            Poll::Ready(None) | Poll::Pending => {}
        }
        body
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(None);
            };
            match self.state {
                State::Data => match stream.poll_recv_data(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(Some(mut buf))) => {
                        let data = buf.copy_to_bytes(buf.remaining());
                        self.received += data.len() as u64;
                        if self.declared.is_some_and(|d| self.received > d) {
                            return self.fail(LengthMismatch(self.received).into());
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Poll::Ready(Ok(None)) => {
                        if self.declared.is_some_and(|d| self.received != d) {
                            return self.fail(LengthMismatch(self.received).into());
                        }
                        self.state = State::Trailers;
                    }
                    Poll::Ready(Err(e)) => return self.fail(e.into()),
                },
                State::Trailers => {
                    return match stream.poll_recv_trailers(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Ok(t)) => {
                            self.state = State::Done;
                            Poll::Ready(t.map(|t| Ok(Frame::trailers(t))))
                        }
                        Poll::Ready(Err(e)) => self.fail(e.into()),
                    }
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }

    /// Ends the body with `e` and stops the client sending the rest of it.
    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        // Dropped rather than `stop_sending(H3_MESSAGE_ERROR)`: h3-quinn 0.0.10 panics there
        // (it unwraps the stream its outstanding read has taken) whenever a DATA frame arrived
        // before the rest of the body, the usual case for a body over its Content-Length
        // (hyperium/h3#330; fixed upstream by #331, in no release this workspace can use yet).
        // Dropping quinn's stream sends STOP_SENDING too, with code 0 instead.
        self.stream = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for H3Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        self.poll_next(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        if self.is_end_stream() {
            return SizeHint::with_exact(0);
        }
        // The frame read ahead is counted in `received` but not yet yielded.
        let ahead = match &self.first {
            Some(Ok(f)) => f.data_ref().map_or(0, |d| d.len() as u64),
            _ => 0,
        };
        match self.declared {
            Some(d) => SizeHint::with_exact(d.saturating_sub(self.received - ahead)),
            None => SizeHint::default(),
        }
    }
}
