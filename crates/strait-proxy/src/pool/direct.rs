//! HTTP/1.1 exchanges with nothing to upload, written and read on the request's own task: no hyper connection task, no channel hand-off, one parse of the response head.
//!
//! hyper's client runs each connection as a task of its own: a request crosses to it over an
//! mpsc channel, its response comes back over a oneshot, and each side wakes the other. For a
//! request without a body (most of them: GET, HEAD, DELETE) that hand-off is most of the cost
//! of the upstream side. Here the request's task writes the head itself and reads the response
//! through the same `UpstreamGuard` hyper reads through, so every response is held to the
//! same rules (strict head syntax, framing checked against the requests written, nothing after
//! the connection's last response). The body is then read by the response body itself, as the
//! client takes it, and the connection goes back to its pool bare ([`Resting`]) when the
//! response has ended cleanly. Requests with a body to send, or that may switch protocols,
//! still go through hyper.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;

use super::rest::{Io, Resting};
use super::ConnSlot;
use crate::body::{BoxError, ProxyBody};
use crate::h1guard::Decoder;
use crate::upguard::MAX_READ_BUF;

/// How much a read asks for at a time: a response head and a small body in one read, and
/// bounded memory for a client that reads slowly.
const READ_SIZE: usize = 16 * 1024;

/// Room made for a response's fields at once (a web server's usual dozen).
const FIELDS_EXPECTED: usize = 12;

/// Most response header fields taken (hyper's default too); more fail the exchange.
const MAX_HEADERS: usize = 100;

/// Trailer sections of chunked responses are bounded like the guard's.
const MAX_TRAILER: usize = 16 * 1024;
const MAX_TRAILERS: usize = 100;

/// Whether `req` can be sent here: HTTP/1.1 in origin form, nothing to upload, no protocol
/// switch.
pub(crate) fn fits(req: &Request<ProxyBody>) -> bool {
    req.version() == http::Version::HTTP_11
        && req.body().is_end_stream()
        && req.method() != Method::CONNECT
        && req.uri().authority().is_none()
        && !req.headers().contains_key(header::UPGRADE)
        && !req.headers().contains_key(header::TRANSFER_ENCODING)
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failed {
    /// Not one byte of the request was written: it may go elsewhere whatever its method.
    Unsent(io::Error),
    /// The request was written (or partly): the connection failed or the response was invalid.
    Sent(io::Error),
}

/// A connection in use by one exchange.
struct Live {
    io: Box<Io>,
    buf: BytesMut,
    slot: Arc<ConnSlot>,
}

/// Sends `req` (its head; it has no body) on `bare` and reads the response head.
pub(crate) fn send(
    bare: Resting,
    req: &Request<ProxyBody>,
    max_idle: usize,
) -> impl std::future::Future<Output = Result<Response<DirectBody>, Failed>> + Send + 'static {
    exchange(bare, encode(req), req.method() == Method::HEAD, max_idle)
}

async fn exchange(
    bare: Resting,
    head: Vec<u8>,
    is_head: bool,
    max_idle: usize,
) -> Result<Response<DirectBody>, Failed> {
    let (io, slot) = bare.into_parts();
    slot.start_request();
    slot.request_sent();
    let mut live = Live {
        io,
        buf: BytesMut::new(),
        slot,
    };
    // The guard learns of the request without scanning what it knows already.
    let recorded = live.io.expect_request(is_head);
    let mut written = 0;
    while written < head.len() {
        let rest = &head[written..];
        let r = if recorded {
            poll_fn(|cx| Pin::new(live.io.io_mut()).poll_write(cx, rest)).await
        } else {
            poll_fn(|cx| Pin::new(&mut live.io).poll_write(cx, rest)).await
        };
        match r {
            Ok(0) => {
                let e = io::Error::from(io::ErrorKind::WriteZero);
                return Err(if written == 0 {
                    Failed::Unsent(e)
                } else {
                    Failed::Sent(e)
                });
            }
            Ok(n) => written += n,
            Err(e) if written == 0 => return Err(Failed::Unsent(e)),
            Err(e) => return Err(Failed::Sent(e)),
        }
    }
    poll_fn(|cx| Pin::new(&mut live.io).poll_flush(cx))
        .await
        .map_err(Failed::Sent)?;
    loop {
        if let Some(parsed) = parse(&mut live.buf).map_err(Failed::Sent)? {
            let Parsed {
                status,
                version,
                headers,
                reason,
                framed,
            } = parsed;
            if status.is_informational() {
                if status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(Failed::Sent(invalid(
                        "101 response to a request without Upgrade",
                    )));
                }
                // Interim (100, 103): the final response follows.
                continue;
            }
            let state = framing(is_head, status, &framed).map_err(Failed::Sent)?;
            let keep = version == http::Version::HTTP_11 && !framed.close;
            let mut body = DirectBody {
                live: Some(live),
                state,
                keep,
                max_idle,
            };
            if matches!(body.state, State::Done) {
                body.finish();
            }
            let mut resp = Response::new(body);
            *resp.status_mut() = status;
            *resp.version_mut() = version;
            *resp.headers_mut() = headers;
            if let Some(r) = reason {
                resp.extensions_mut().insert(r);
            }
            return Ok(resp);
        }
        if read(&mut live).await.map_err(Failed::Sent)? == 0 {
            return Err(Failed::Sent(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )));
        }
    }
}

/// The request head as hyper would write it for a request without a body.
fn encode(req: &Request<ProxyBody>) -> Vec<u8> {
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let method = req.method().as_str();
    let mut len = method.len() + path.len() + 13;
    for (name, value) in req.headers() {
        len += name.as_str().len() + value.len() + 4;
    }
    let mut out = Vec::with_capacity(len + 2);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Reads more of the response into the connection's buffer; 0 at the end of the stream.
async fn read(live: &mut Live) -> io::Result<usize> {
    poll_fn(|cx| live.poll_read(cx)).await
}

impl Live {
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.len() >= MAX_READ_BUF {
            // The guard bounds heads by the same size; a body is taken out before more is read.
            return Poll::Ready(Err(invalid("response head too large")));
        }
        self.buf.reserve(READ_SIZE);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

pub(crate) struct Parsed {
    status: StatusCode,
    version: http::Version,
    pub(crate) headers: HeaderMap,
    reason: Option<hyper::ext::ReasonPhrase>,
    framed: Framed,
}

/// What a head's fields say of its body and its connection, noted as they are read.
#[derive(Default)]
struct Framed {
    chunked: bool,
    /// Content-Length: its value, or `Err` when it is not a number.
    length: Option<Result<u64, ()>>,
    /// A `close` token in Connection.
    close: bool,
}

impl Framed {
    fn note(&mut self, name: &HeaderName, value: &[u8]) {
        if *name == header::CONTENT_LENGTH {
            self.length = Some(
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or(()),
            );
        } else if *name == header::TRANSFER_ENCODING {
            self.chunked = true;
        } else if *name == header::CONNECTION {
            self.close |= closes(value);
        }
    }
}

/// Takes a complete response head off the front of `buf`, if it holds one. The guard has
/// already checked every byte of it (a strict status line, CRLF line ends, `name:` fields, no
/// folding), so this only splits it; a head that does not split so is refused all the same.
pub(crate) fn parse(buf: &mut BytesMut) -> io::Result<Option<Parsed>> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let bad = || invalid("invalid upstream response head");
    // The values are sliced out of the head without a copy.
    let head = buf.split_to(end + 4).freeze();
    let status_end = memchr::memchr(b'\r', &head).unwrap_or(end);
    let line = &head[..status_end];
    if line.len() < 12 || !line.starts_with(b"HTTP/1.") || line[8] != b' ' {
        return Err(bad());
    }
    let version = match line[7] {
        b'1' => http::Version::HTTP_11,
        b'0' => http::Version::HTTP_10,
        _ => return Err(bad()),
    };
    let status = StatusCode::from_bytes(&line[9..12]).map_err(|_| bad())?;
    let reason = match line.get(12..) {
        Some([]) | None => &[][..],
        Some([b' ', reason @ ..]) => reason,
        Some(_) => return Err(bad()),
    };
    // A reason phrase other than the status's own goes on to HTTP/1 clients, as with hyper.
    let reason = (!reason.is_empty()
        && Some(reason) != status.canonical_reason().map(str::as_bytes))
    .then(|| hyper::ext::ReasonPhrase::try_from(reason).ok())
    .flatten();
    let mut headers = HeaderMap::with_capacity(FIELDS_EXPECTED);
    let mut framed = Framed::default();
    let mut at = status_end + 2;
    while at < end + 2 {
        let eol = at + memchr::memchr(b'\r', &head[at..]).ok_or_else(bad)?;
        let line = &head[at..eol];
        // Names are short: a plain loop beats a vectorised search's set-up.
        let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
        let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| bad())?;
        let value = &line[colon + 1..];
        let lead = value
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        let trail = value[lead..]
            .iter()
            .rev()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        let (from, to) = (at + colon + 1 + lead, eol - trail);
        framed.note(&name, &head[from..to]);
        if headers.len() == MAX_HEADERS {
            return Err(invalid("too many upstream response header fields"));
        }
        // Fields that never cross the proxy are not stored only to be removed again (the
        // response is still stripped afterwards, as every upstream response is).
        if !crate::headers::dropped_from_response(&name, &head[from..to]) {
            let value = HeaderValue::from_maybe_shared(head.slice(from..to)).map_err(|_| bad())?;
            headers.append(name, value);
        }
        at = eol + 2;
    }
    Ok(Some(Parsed {
        status,
        version,
        headers,
        reason,
        framed,
    }))
}

/// Whether a Connection value has the `close` token.
fn closes(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// How the body is framed (RFC 9112 §6.3), as the guard framed it.
fn framing(is_head: bool, status: StatusCode, framed: &Framed) -> io::Result<State> {
    if is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(State::Done);
    }
    if framed.chunked {
        // The guard passes only `chunked` (a Content-Length beside it became `connection:
        // close`, which `closes` sees).
        return Ok(State::Chunked(Box::new(Decoder::new(
            MAX_TRAILER,
            MAX_TRAILERS,
        ))));
    }
    match framed.length {
        None => Ok(State::UntilClose),
        Some(Err(())) => Err(invalid("invalid upstream Content-Length")),
        Some(Ok(0)) => Ok(State::Done),
        Some(Ok(n)) => Ok(State::Length(n)),
    }
}

fn invalid(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

/// Where a response body is.
enum State {
    /// Bytes of a Content-Length body still to hand on.
    Length(u64),
    /// Boxed: it is most of the body's size, and most responses have a length.
    Chunked(Box<Decoder>),
    /// Until the upstream closes; the connection is not reused.
    UntilClose,
    Done,
}

/// A response body read from its connection as the client takes it; the connection goes back
/// to its pool when the body has ended and both sides may go on.
pub struct DirectBody {
    live: Option<Live>,
    state: State,
    keep: bool,
    max_idle: usize,
}

impl DirectBody {
    /// Pools the connection if the exchange ended cleanly; closes it otherwise.
    fn finish(&mut self) {
        self.state = State::Done;
        let Some(live) = self.live.take() else {
            return;
        };
        if self.keep && live.buf.is_empty() && live.io.is_at_rest() {
            let mut live = live;
            live.io.shed();
            let pool = live.slot.pool.clone();
            let r = Resting::new(live.io, live.slot);
            pool.shelve(r, super::rest::Shelf::Next, self.max_idle);
        }
    }

    /// Drops the connection, in an unknown state, at once.
    pub(super) fn abandon(&mut self) {
        self.live = None;
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        self.live = None;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl Body for DirectBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(live) = this.live.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.state {
                State::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                State::Length(left) => {
                    if !live.buf.is_empty() {
                        let take = (*left).min(live.buf.len() as u64);
                        let data = live.buf.split_to(take as usize).freeze();
                        *left -= take;
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(dec) => {
                    if !live.buf.is_empty() {
                        let left = dec.data_left();
                        if left > 0 {
                            let take = left.min(live.buf.len() as u64);
                            dec.consume_data(take);
                            let data = live.buf.split_to(take as usize).freeze();
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        match dec.feed_framing(&live.buf) {
                            Ok((n, end)) => {
                                live.buf.advance(n);
                                if end {
                                    this.finish();
                                    return Poll::Ready(None);
                                }
                                continue;
                            }
                            Err(_) => return this.fail(invalid("invalid chunked framing")),
                        }
                    }
                }
                State::UntilClose => {
                    if !live.buf.is_empty() {
                        let data = live.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            match ready!(live.poll_read(cx)) {
                Ok(0) if matches!(this.state, State::UntilClose) => {
                    this.keep = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return this.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "upstream closed mid-body",
                    ))
                }
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(bytes: &[u8]) -> Option<Parsed> {
        parse(&mut BytesMut::from(bytes)).unwrap()
    }

    #[test]
    fn heads_are_read_whole_or_not_at_all() {
        assert!(parsed(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n").is_none());
        let p =
            parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\n\r\nhi").unwrap();
        assert_eq!(p.status, 200);
        assert_eq!(p.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(p.headers["content-length"], "2");
    }

    #[test]
    fn fields_are_split_and_trimmed_and_odd_heads_refused() {
        let p = parsed(b"HTTP/1.1 200\r\nx:  a b \t\r\nx-empty:\r\n\r\n").unwrap();
        assert_eq!((p.status.as_u16(), p.reason.is_none()), (200, true));
        assert_eq!(p.headers["x"], "a b");
        assert_eq!(p.headers["x-empty"], "");
        let custom = parsed(b"HTTP/1.1 200 Fine\r\n\r\n").unwrap();
        assert_eq!(custom.reason.unwrap().as_bytes(), b"Fine");
        for bad in [
            &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
            b"HTTP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 200OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad name: 1\r\n\r\n",
        ] {
            assert!(parse(&mut BytesMut::from(bad)).is_err(), "{bad:?}");
        }
        let many = (0..=MAX_HEADERS).fold(b"HTTP/1.1 200 OK\r\n".to_vec(), |mut h, i| {
            h.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
            h
        });
        let many = [&many[..], b"\r\n"].concat();
        assert!(parse(&mut BytesMut::from(&many[..])).is_err());
    }

    #[test]
    fn the_rest_of_the_buffer_is_the_body() {
        let mut buf = BytesMut::from(&b"HTTP/1.0 204 No Content\r\n\r\nnext"[..]);
        let p = parse(&mut buf).unwrap().unwrap();
        assert_eq!(p.version, http::Version::HTTP_10);
        assert_eq!(&buf[..], b"next");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let state = |head: bool, status: u16, bytes: &[u8]| {
            let p = parsed(bytes).unwrap();
            framing(head, StatusCode::from_u16(status).unwrap(), &p.framed)
        };
        let ok = |s: &[u8]| [&b"HTTP/1.1 200 OK\r\n"[..], s, b"\r\n"].concat();
        assert!(matches!(state(false, 200, &ok(b"")), Ok(State::UntilClose)));
        let five = ok(b"Content-Length: 5\r\n");
        assert!(matches!(state(false, 200, &five), Ok(State::Length(5))));
        assert!(matches!(state(true, 200, &five), Ok(State::Done)));
        assert!(matches!(state(false, 304, &five), Ok(State::Done)));
        let chunked = ok(b"transfer-encoding: chunked\r\n");
        assert!(matches!(state(false, 200, &chunked), Ok(State::Chunked(_))));
        assert!(state(false, 200, &ok(b"content-length: x\r\n")).is_err());
    }

    #[test]
    fn close_is_a_token_of_connection() {
        let close = |s: &[u8]| {
            parsed(&[&b"HTTP/1.1 200 OK\r\n"[..], s, b"\r\n"].concat())
                .unwrap()
                .framed
                .close
        };
        assert!(!close(b"connection: keep-alive\r\n"));
        assert!(!close(b"connection: closed\r\n"));
        assert!(close(b"Connection: keep-alive\r\nconnection: x, Close\r\n"));
    }

    #[test]
    fn heads_are_written_as_hyper_writes_them() {
        let req = Request::get("/a?b")
            .header("host", "h")
            .header("x", "1")
            .body(ProxyBody::Empty)
            .unwrap();
        assert!(fits(&req));
        assert_eq!(
            encode(&req),
            b"GET /a?b HTTP/1.1\r\nhost: h\r\nx: 1\r\n\r\n"
        );
        let up = Request::get("/")
            .header("upgrade", "websocket")
            .body(ProxyBody::Empty)
            .unwrap();
        assert!(!fits(&up));
        let body = Request::post("/").body(ProxyBody::full("x")).unwrap();
        assert!(!fits(&body));
    }

    proptest::proptest! {
        /// Every head the guard lets through splits into the fields hyper's parser reads.
        #[test]
        fn heads_the_guard_passes_split_as_hyper_reads_them(
            status in 200u16..600,
            reason in proptest::option::of("[A-Za-z ]{0,12}"),
            fields in proptest::collection::vec((
                "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}",
                proptest::collection::vec(proptest::prop_oneof![0x21u8..=0x7e, 0x80u8..=0xff], 0..16),
                "[ \t]{0,2}",
                "[ \t]{0,2}",
                proptest::collection::vec(proptest::prop_oneof![0x21u8..=0x7e, proptest::strategy::Just(b' ')], 0..8),
            ), 0..8),
        ) {
            let mut head = format!("HTTP/1.1 {status}").into_bytes();
            if let Some(r) = &reason {
                head.extend_from_slice(format!(" {r}").as_bytes());
            }
            head.extend_from_slice(b"\r\n");
            for (name, value, lead, trail, more) in &fields {
                if name.eq_ignore_ascii_case("content-length")
                    || name.eq_ignore_ascii_case("transfer-encoding")
                {
                    continue;
                }
                head.extend_from_slice(name.as_bytes());
                head.push(b':');
                head.extend_from_slice(lead.as_bytes());
                head.extend_from_slice(value);
                if !value.is_empty() {
                    head.extend_from_slice(more);
                    head.push(b'x');
                }
                head.extend_from_slice(trail.as_bytes());
                head.extend_from_slice(b"\r\n");
            }
            head.extend_from_slice(b"\r\ncontent-length: 0 is body bytes");
            let mut guard = crate::upguard::Framing::new(MAX_READ_BUF);
            proptest::prop_assert!(guard.expect_request(false));
            let mut segs = Vec::new();
            if guard.feed(&head, &mut segs).is_err() {
                return Ok(());
            }
            let mut ours = BytesMut::from(&head[..]);
            let p = parse(&mut ours).unwrap().unwrap();
            let mut slots = [httparse::EMPTY_HEADER; 16];
            let mut theirs = httparse::Response::new(&mut slots);
            let httparse::Status::Complete(n) = theirs.parse(&head).unwrap() else {
                panic!("partial");
            };
            proptest::prop_assert_eq!(&ours[..], &head[n..]);
            proptest::prop_assert_eq!(p.status.as_u16(), theirs.code.unwrap());
            let read: Vec<(String, Vec<u8>)> = p
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            let mut expected: Vec<(String, Vec<u8>)> = theirs
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect();
            // HeaderMap groups a name's values together, in their order.
            let mut grouped = Vec::new();
            while let Some((name, _)) = expected.first().cloned() {
                grouped.extend(expected.iter().filter(|(n, _)| *n == name).cloned());
                expected.retain(|(n, _)| *n != name);
            }
            proptest::prop_assert_eq!(read, grouped);
        }
    }
}
