//! Upstream connections: connect (TCP, TLS), HTTP/1.1 keep-alive pool and shared HTTP/2 connection per endpoint.
//!
//! An HTTP/1.1 connection goes back to its pool when the response body ends (as hyper-util's pool does),
//! so a long download never blocks another request; an HTTP/2 connection is shared by all requests.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, Weak},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::IntCounter;
use rustls_pki_types::ServerName;
use strait_core::{upstream::UpstreamTls, Endpoint, Upstream};
use tokio::net::TcpStream;

use crate::body::{BoxError, IdleTimer, ProxyBody};

/// A connection ready to carry one request.
pub enum Conn {
    /// HTTP/1.1: exclusive until the response body ends.
    H1(http1::SendRequest<ProxyBody>),
    /// HTTP/2: shared.
    H2(http2::SendRequest<ProxyBody>),
}

struct Idle {
    tx: http1::SendRequest<ProxyBody>,
    since: Instant,
}

/// Connections of one endpoint; lives in the endpoint's live state, so it survives reloads.
pub struct EndpointPool {
    addr: Option<SocketAddr>,
    address: Arc<str>,
    host: String,
    idle: Mutex<Vec<Idle>>,
    h2: Mutex<Option<http2::SendRequest<ProxyBody>>>,
    connect_errors: IntCounter,
    /// `strait_upstream_request_duration_seconds` for this endpoint, resolved once.
    pub attempt_duration: prometheus::Histogram,
    /// `strait_upstream_requests_total` for this endpoint by [`Outcome`], resolved once.
    outcomes: [IntCounter; 4],
}

/// How an attempt to an endpoint ended (the `outcome` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response head arrived (any status).
    Response = 0,
    /// No connection could be had.
    ConnectError = 1,
    /// No response head within `timeouts.request`.
    Timeout = 2,
    /// The connection failed or the response was invalid.
    Error = 3,
}

impl Outcome {
    const LABELS: [&'static str; 4] = ["response", "connect_error", "timeout", "error"];
}

impl EndpointPool {
    fn new(
        endpoint: &Endpoint,
        connect_errors: IntCounter,
        attempt_duration: prometheus::Histogram,
        outcomes: [IntCounter; 4],
    ) -> Self {
        let (host, _) = strait_core::route::split_host_port(&endpoint.address);
        EndpointPool {
            addr: endpoint.address.parse().ok(),
            address: endpoint.address.clone(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            connect_errors,
            attempt_duration,
            outcomes,
        }
    }

    /// Counts one attempt's outcome.
    pub fn count(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].inc();
    }

    /// Closes idle connections older than `max_age`.
    pub fn evict(&self, max_age: Duration) {
        let now = Instant::now();
        self.idle
            .lock()
            .expect("pool lock")
            .retain(|c| now.duration_since(c.since) < max_age && !c.tx.is_closed());
    }
}

/// All endpoint pools, so a background task can close idle connections.
#[derive(Default)]
pub struct Pools {
    all: Mutex<Vec<(Weak<EndpointPool>, Duration)>>,
}

impl Pools {
    /// The pool of `endpoint`, created on first use and stored in its live state.
    pub fn of(
        &self,
        upstream: &Upstream,
        endpoint: &Endpoint,
        metrics: &strait_observe::Metrics,
    ) -> Arc<EndpointPool> {
        if let Some(p) = endpoint.state.ext.get() {
            if let Ok(p) = p.clone().downcast::<EndpointPool>() {
                return p;
            }
        }
        let ext = endpoint.state.ext.get_or_init(|| {
            let labels = [&*upstream.name, &*endpoint.address];
            let pool = Arc::new(EndpointPool::new(
                endpoint,
                metrics.upstream_connect_errors.with_label_values(&labels),
                metrics.upstream_duration.with_label_values(&labels),
                Outcome::LABELS.map(|o| {
                    metrics
                        .upstream_requests
                        .with_label_values(&[labels[0], labels[1], o])
                }),
            ));
            self.all
                .lock()
                .expect("pools lock")
                .push((Arc::downgrade(&pool), upstream.pool.idle_timeout));
            pool
        });
        ext.clone()
            .downcast::<EndpointPool>()
            .expect("endpoint ext holds its pool")
    }

    /// Closes expired idle connections and forgets dropped pools.
    pub fn evict_idle(&self) {
        let mut all = self.all.lock().expect("pools lock");
        all.retain(|(w, age)| match w.upgrade() {
            Some(p) => {
                p.evict(*age);
                true
            }
            None => false,
        });
    }
}

/// Why an upstream connection could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect or TLS handshake failed.
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    /// Connect took longer than `timeouts.connect`.
    #[error("connect timed out")]
    Timeout,
    /// HTTP handshake failed.
    #[error("handshake: {0}")]
    Http(#[from] hyper::Error),
    /// The SNI name is not a valid DNS name or IP.
    #[error("invalid TLS server name {0}")]
    ServerName(String),
}

/// Gets a connection to `endpoint`: an idle or shared one if possible, else a new one.
pub async fn checkout(pool: &Arc<EndpointPool>, upstream: &Upstream) -> Result<Conn, ConnectError> {
    if upstream.protocol.is_h2() {
        let existing = pool.h2.lock().expect("pool lock").clone();
        if let Some(mut tx) = existing {
            if !tx.is_closed() && tx.ready().await.is_ok() {
                return Ok(Conn::H2(tx));
            }
        }
        let tx = connect_h2(pool, upstream).await?;
        *pool.h2.lock().expect("pool lock") = Some(tx.clone());
        return Ok(Conn::H2(tx));
    }
    loop {
        let idle = pool.idle.lock().expect("pool lock").pop();
        let Some(mut c) = idle else { break };
        if c.tx.is_closed() || c.since.elapsed() >= upstream.pool.idle_timeout {
            continue;
        }
        if c.tx.ready().await.is_ok() {
            return Ok(Conn::H1(c.tx));
        }
    }
    Ok(Conn::H1(connect_h1(pool, upstream).await?))
}

async fn connect_h1(
    pool: &EndpointPool,
    upstream: &Upstream,
) -> Result<http1::SendRequest<ProxyBody>, ConnectError> {
    let io = connect_io(pool, upstream).await?;
    let (tx, conn) = http1::Builder::new()
        .max_buf_size(crate::upguard::MAX_READ_BUF)
        .handshake(TokioIo::new(crate::upguard::UpstreamGuard::new(io)))
        .await
        .inspect_err(|_| pool.connect_errors.inc())?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(tx)
}

async fn connect_h2(
    pool: &EndpointPool,
    upstream: &Upstream,
) -> Result<http2::SendRequest<ProxyBody>, ConnectError> {
    let io = connect_io(pool, upstream).await?;
    let (tx, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .adaptive_window(true)
        .keep_alive_interval(Duration::from_secs(30))
        .handshake(TokioIo::new(io))
        .await
        .inspect_err(|_| pool.connect_errors.inc())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(tx)
}

/// A connected byte stream to an endpoint, plain or TLS.
pub enum UpstreamIo {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl EndpointPool {
    /// Opens a new connection (TCP, then TLS if the upstream has it), without pooling or counting.
    pub async fn dial(&self, upstream: &Upstream) -> Result<UpstreamIo, ConnectError> {
        let tcp = match self.addr {
            Some(a) => TcpStream::connect(a).await?,
            None => TcpStream::connect(&*self.address).await?,
        };
        let _ = tcp.set_nodelay(true);
        match &upstream.tls {
            None => Ok(UpstreamIo::Tcp(tcp)),
            Some(tls) => tls_connect(tcp, tls, &self.host).await,
        }
    }
}

async fn connect_io(pool: &EndpointPool, upstream: &Upstream) -> Result<UpstreamIo, ConnectError> {
    match tokio::time::timeout(upstream.timeouts.connect, pool.dial(upstream)).await {
        Ok(Ok(io)) => Ok(io),
        Ok(Err(e)) => {
            pool.connect_errors.inc();
            Err(e)
        }
        Err(_) => {
            pool.connect_errors.inc();
            Err(ConnectError::Timeout)
        }
    }
}

async fn tls_connect(
    tcp: TcpStream,
    tls: &UpstreamTls,
    host: &str,
) -> Result<UpstreamIo, ConnectError> {
    let name = tls.sni.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| ConnectError::ServerName(name.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
        .connect(server_name, tcp)
        .await?;
    Ok(UpstreamIo::Tls(Box::new(stream)))
}

impl tokio::io::AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Tcp(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Tcp(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// An upstream response body that hands its HTTP/1.1 connection back to the pool once fully read.
pub struct PooledBody {
    inner: Incoming,
    idle: IdleTimer,
    ret: Option<(Arc<EndpointPool>, http1::SendRequest<ProxyBody>, usize)>,
}

impl PooledBody {
    /// Wraps `inner`; `ret` is the connection to return (HTTP/1.1 only) and the pool's idle cap.
    pub fn new(
        inner: Incoming,
        idle: Duration,
        ret: Option<(Arc<EndpointPool>, http1::SendRequest<ProxyBody>, usize)>,
    ) -> Self {
        PooledBody {
            inner,
            idle: IdleTimer::new(idle),
            ret,
        }
    }

    fn give_back(&mut self) {
        if let Some((pool, tx, max)) = self.ret.take() {
            if tx.is_closed() {
                return;
            }
            let mut idle = pool.idle.lock().expect("pool lock");
            if idle.len() < max {
                idle.push(Idle {
                    tx,
                    since: Instant::now(),
                });
            }
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Pending => {
                if let Poll::Ready(e) = this.idle.poll_expired(cx) {
                    // A stalled upstream: the connection is in an unknown state, never reuse it.
                    this.ret = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) => {
                this.idle.progressed();
                if this.inner.is_end_stream() {
                    this.give_back();
                }
            }
            Poll::Ready(Some(Err(_))) => this.ret = None,
        }
        r.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Bodies that end without being polled (HEAD, 204, 304, empty) still free their connection.
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}
