//! The recording upstream: an in-process hyper server (HTTP/1.1 and h2c, or
//! TLS with ALPN) that records every request it receives (method, URI,
//! version, headers, body) and answers as a per-upstream handler says.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::BoxError;

/// At most this many body bytes are kept per recorded request; the rest is counted.
pub const BODY_KEEP: usize = 1 << 20;

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Request method.
    pub method: Method,
    /// Request target as received.
    pub uri: Uri,
    /// HTTP version of the upstream connection.
    pub version: Version,
    /// Headers as received.
    pub headers: HeaderMap,
    /// The first [`BODY_KEEP`] bytes of the body.
    pub body: Bytes,
    /// Total body length received.
    pub body_len: u64,
}

impl RecordedRequest {
    /// A header value as a string ("" if missing).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    }

    /// The path and query as received.
    pub fn path_and_query(&self) -> String {
        self.uri
            .path_and_query()
            .map_or_else(|| self.uri.path().to_string(), |p| p.to_string())
    }
}

/// What a reply body is.
#[derive(Clone, Debug)]
pub enum ReplyBody {
    /// Fixed bytes.
    Text(Bytes),
    /// The received body, echoed back.
    Echo,
    /// The decimal number of body bytes received.
    BodyLen,
    /// `n` bytes of a repeating pattern, streamed in 64 KiB chunks.
    Generated(u64),
    /// `n` zero bytes in 64 KiB chunks of one shared buffer: costs no CPU to produce, for
    /// load tests.
    Zeros(u64),
}

/// How the upstream answers one request.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: ReplyBody,
    /// Delay before sending response headers.
    pub delay: Duration,
}

impl Reply {
    /// 200 with a text body.
    pub fn text(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: ReplyBody::Text(Bytes::copy_from_slice(body.as_bytes())),
            delay: Duration::ZERO,
        }
    }

    /// Set the status.
    pub fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    /// Add a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body kind.
    pub fn body(mut self, body: ReplyBody) -> Reply {
        self.body = body;
        self
    }

    /// Delay the response headers.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Decides the reply for a recorded request.
pub type Handler = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

/// The byte at offset `i` of a [`ReplyBody::Generated`] body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

struct State {
    name: String,
    handler: Handler,
    requests: Mutex<Vec<RecordedRequest>>,
    started: AtomicUsize,
    connections: AtomicUsize,
    /// Connections accepted and not yet closed.
    open: AtomicUsize,
    status_override: AtomicU16,
}

/// A running recording upstream; stops (and drops its connections) on drop.
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// An upstream named `name` answering `200 <name>` to everything.
    pub async fn start(name: &str) -> Upstream {
        let n = name.to_string();
        Self::with_handler(name, move |_| Reply::text(&n)).await
    }

    /// An upstream named `name` answering `200 <name>`, listening on `addr` (another loopback
    /// address, or a port shared with upstreams on other addresses).
    pub async fn start_at(name: &str, addr: SocketAddr) -> std::io::Result<Upstream> {
        let n = name.to_string();
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::serve(
            name,
            Arc::new(move |_: &RecordedRequest| Reply::text(&n)),
            None,
            listener,
        ))
    }

    /// An upstream whose replies come from `handler`.
    pub async fn with_handler(
        name: &str,
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> Upstream {
        Self::spawn(name, Arc::new(handler), None).await
    }

    /// An upstream serving TLS (ALPN h2 and http/1.1) with `config`.
    pub async fn with_tls(
        name: &str,
        config: Arc<rustls::ServerConfig>,
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> Upstream {
        Self::spawn(name, Arc::new(handler), Some(config)).await
    }

    async fn spawn(
        name: &str,
        handler: Handler,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        Self::serve(name, handler, tls, listener)
    }

    fn serve(
        name: &str,
        handler: Handler,
        tls: Option<Arc<rustls::ServerConfig>>,
        listener: TcpListener,
    ) -> Upstream {
        let addr = listener.local_addr().expect("local_addr");
        let state = Arc::new(State {
            name: name.to_string(),
            handler,
            requests: Mutex::new(Vec::new()),
            started: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            status_override: AtomicU16::new(0),
        });
        let st = state.clone();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                let acceptor = acceptor.clone();
                st.open.fetch_add(1, Ordering::SeqCst);
                conns.spawn(async move {
                    let _open = OpenGuard(st.clone());
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    // Strait adds forwarding headers; accept more than a
                    // client may send so limits are strait's, not ours.
                    builder.http1().max_headers(1000);
                    match acceptor {
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                                .await;
                        }
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                        }
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Upstream { addr, state, task }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Requests whose headers arrived (counted before the body is read).
    pub fn started(&self) -> usize {
        self.state.started.load(Ordering::SeqCst)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// TCP connections open now (accepted and not closed by either side).
    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// Fully received requests, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Fully received requests, excluding health checks to `path`.
    pub fn requests_except(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.uri.path() != path)
            .collect()
    }

    /// The only fully received request (panics unless exactly one).
    pub fn only_request(&self) -> RecordedRequest {
        let reqs = self.requests();
        assert_eq!(
            reqs.len(),
            1,
            "expected exactly one request upstream, got {reqs:#?}"
        );
        reqs.into_iter().next().unwrap()
    }

    /// When `Some(status)`, every request (health checks included) is answered
    /// with that status and body "down"; `None` restores the handler.
    pub fn set_status_override(&self, status: Option<u16>) {
        self.state
            .status_override
            .store(status.unwrap_or(0), Ordering::SeqCst);
    }

    /// Wait (bounded) until at least `n` requests have started.
    pub async fn wait_started(&self, n: usize, limit: Duration) {
        crate::poll_until(
            limit,
            &format!("{} upstream requests started", n),
            || async { (self.started() >= n).then_some(()) },
        )
        .await
    }
}

/// Counts a connection as open until its task ends.
struct OpenGuard(Arc<State>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type RespBody = BoxBody<Bytes, BoxError>;

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Response<RespBody>, Infallible> {
    st.started.fetch_add(1, Ordering::SeqCst);
    let (parts, mut body) = req.into_parts();
    let mut kept = BytesMut::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            let room = BODY_KEEP.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    let rec = RecordedRequest {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        body: kept.freeze(),
        body_len: len,
    };
    st.requests.lock().unwrap().push(rec.clone());
    let forced = st.status_override.load(Ordering::SeqCst);
    let reply = if forced != 0 {
        Reply::text("down").status(forced)
    } else {
        (st.handler)(&rec)
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let body: RespBody = match reply.body {
        ReplyBody::Text(b) => Full::new(b).map_err(|e| match e {}).boxed(),
        ReplyBody::Echo => Full::new(rec.body.clone()).map_err(|e| match e {}).boxed(),
        ReplyBody::BodyLen => Full::new(Bytes::from(rec.body_len.to_string()))
            .map_err(|e| match e {})
            .boxed(),
        ReplyBody::Generated(n) => generated(n),
        ReplyBody::Zeros(n) => zeros(n),
    };
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(k.as_str(), v.as_str());
    }
    resp = resp.header("x-upstream", st.name.as_str());
    Ok(resp.body(body).expect("valid reply"))
}

/// A streamed body of `n` pattern bytes in 64 KiB chunks.
fn generated(n: u64) -> RespBody {
    const CHUNK: u64 = 64 * 1024;
    let stream = futures_util::stream::unfold(0u64, move |off| async move {
        if off >= n {
            return None;
        }
        let len = CHUNK.min(n - off);
        let chunk: Vec<u8> = (off..off + len).map(pattern_byte).collect();
        Some((
            Ok::<_, BoxError>(Frame::data(Bytes::from(chunk))),
            off + len,
        ))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// `n` zero bytes in 64 KiB chunks sharing one allocation.
fn zeros(n: u64) -> RespBody {
    const CHUNK: u64 = 64 * 1024;
    let block = Bytes::from(vec![0u8; CHUNK as usize]);
    let stream = futures_util::stream::unfold(0u64, move |off| {
        let block = block.clone();
        async move {
            if off >= n {
                return None;
            }
            let len = CHUNK.min(n - off);
            Some((
                Ok::<_, BoxError>(Frame::data(block.slice(..len as usize))),
                off + len,
            ))
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// A TCP server that accepts connections and never answers (for 504 tests).
pub struct SilentUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentUpstream {
    /// Start it on a free loopback port.
    pub async fn start() -> SilentUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind silent");
        let addr = listener.local_addr().expect("local_addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let acc = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                acc.fetch_add(1, Ordering::SeqCst);
                held.push(tcp);
            }
        });
        SilentUpstream {
            addr,
            accepted,
            task,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
