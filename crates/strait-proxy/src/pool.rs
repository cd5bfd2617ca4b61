//! Upstream connections: connect (TCP, TLS), an HTTP/1.1 keep-alive pool and one shared HTTP/2 connection per endpoint, with per-endpoint connection limits.
//!
//! An HTTP/1.1 connection goes back to its pool only when both directions are complete: the
//! response body has ended *and* the request body has been sent (an upstream may answer
//! before reading an upload). Each connection carries a [`ConnSlot`], allocated once per
//! connection, that the request body marks when it ends and that counts open connections.
//! Every wait here is bounded: taking a pooled connection by `timeouts.connect`, waiting for a
//! free one under `limits.max_connections` by `timeouts.connect`, dialling by `timeouts.connect`.
//!
//! An idle connection rests after [`REST_AFTER`] unused (see [`rest`]): hyper's state and
//! buffers (about 40 KB) are freed and only the socket stays, until a request takes it again.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex, Weak,
    },
    task::Waker,
    time::{Duration, Instant},
};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::IntCounter;
use rustls_pki_types::ServerName;
use tokio::{net::TcpStream, sync::Notify};

use crate::body::ProxyBody;
use crate::upguard::UpstreamGuard;
use crate::upstream::{Endpoint, Upstream, UpstreamTls};

mod body;
pub(crate) mod direct;
mod io;
mod rest;

pub use self::body::{PooledBody, UpBody};
pub use self::direct::DirectBody;
pub(crate) use self::direct::{fits as fits_direct, send as send_direct, Failed as DirectFailed};
pub use self::io::UpstreamIo;
pub use self::rest::Resting;
pub use self::rest::REST_AFTER;

/// A connection ready to carry one request.
pub enum Conn {
    /// HTTP/1.1: exclusive until both directions of the exchange end.
    H1(H1Conn),
    /// HTTP/2: shared.
    H2(http2::SendRequest<ProxyBody>),
    /// HTTP/1.1 without hyper, for a request the caller writes and reads itself (see `direct`).
    Bare(Resting),
}

/// An HTTP/1.1 connection and its slot.
pub struct H1Conn {
    /// hyper's sender.
    pub tx: http1::SendRequest<ProxyBody>,
    /// The connection's slot in its pool.
    pub slot: Arc<ConnSlot>,
}

/// One open HTTP/1.1 connection's place in its pool: counts it while it lives and records
/// whether the request in flight has been sent completely.
pub struct ConnSlot {
    pool: Arc<EndpointPool>,
    request_done: AtomicBool,
    /// A request asking to switch protocols was sent: hyper must hand the socket over.
    upgrade: AtomicBool,
    /// Taken from the idle list to rest: the connection's driver gives its socket back.
    rest: AtomicBool,
}

impl ConnSlot {
    fn new(pool: &Arc<EndpointPool>) -> Arc<Self> {
        Arc::new(ConnSlot {
            pool: pool.clone(),
            request_done: AtomicBool::new(false),
            upgrade: AtomicBool::new(false),
            rest: AtomicBool::new(false),
        })
    }

    /// Marks the current request's body as completely sent.
    pub fn request_sent(&self) {
        self.request_done.store(true, Ordering::Release);
    }

    /// Marks the request about to be sent as one that may switch protocols (`Upgrade`).
    pub fn may_upgrade(&self) {
        self.upgrade.store(true, Ordering::Release);
    }

    fn start_request(&self) {
        self.request_done.store(false, Ordering::Release);
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.pool.open.fetch_sub(1, Ordering::AcqRel);
        self.pool.freed.notify_one();
    }
}

struct Idle {
    held: Held,
    since: Instant,
}

/// An idle connection: ready in hyper, or resting as a bare socket.
enum Held {
    Live(H1Conn),
    Resting(Resting),
}

impl Held {
    fn is_closed(&self) -> bool {
        match self {
            Held::Live(c) => c.tx.is_closed(),
            // The pool's watcher drops a resting socket the upstream closes.
            Held::Resting(_) => false,
        }
    }
}

/// The idle connections of one endpoint, taken from the back: resting ones at the front
/// (oldest first), then live ones (oldest first); and the waker of the task that watches the
/// resting ones, while it runs.
#[derive(Default)]
struct IdleList {
    conns: VecDeque<Idle>,
    watcher: Option<Waker>,
}

/// Connections of one endpoint; lives in the endpoint's live state, so it survives reloads.
pub struct EndpointPool {
    addr: Option<SocketAddr>,
    address: Arc<str>,
    host: String,
    idle: Mutex<IdleList>,
    /// Open HTTP/1.1 connections (idle or in use).
    open: AtomicUsize,
    /// Requests waiting for a connection.
    pending: AtomicUsize,
    /// A connection closed or went back to the pool.
    freed: Notify,
    h2: Mutex<Option<http2::SendRequest<ProxyBody>>>,
    /// Held while an HTTP/2 connection is dialled, so concurrent requests share one dial.
    h2_dial: tokio::sync::Mutex<()>,
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
    /// No response head within the timeout.
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
        let (host, _) = crate::route::split_host_port(&endpoint.address);
        EndpointPool {
            addr: endpoint.address.parse().ok(),
            address: endpoint.address.clone(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            idle: Mutex::new(IdleList::default()),
            open: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            freed: Notify::new(),
            h2: Mutex::new(None),
            h2_dial: tokio::sync::Mutex::new(()),
            connect_errors,
            attempt_duration,
            outcomes,
        }
    }

    /// Counts one attempt's outcome.
    pub fn count(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].inc();
    }

    /// Open HTTP/1.1 connections.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Closes idle connections older than `max_age`, and sends live ones unused for
    /// [`REST_AFTER`] to rest.
    pub fn tend(&self, max_age: Duration) {
        let now = Instant::now();
        let mut gone = Vec::new();
        let mut resting = 0;
        {
            let mut idle = lock(&self.idle);
            // One turn of the list, in place: order (resting at the front) is kept.
            for _ in 0..idle.conns.len() {
                let Some(c) = idle.conns.pop_front() else {
                    break;
                };
                let age = now.duration_since(c.since);
                if age >= max_age || c.held.is_closed() {
                    gone.push(c.held);
                } else if let (Held::Live(conn), true) = (&c.held, age >= REST_AFTER) {
                    conn.slot.rest.store(true, Ordering::Release);
                    gone.push(c.held);
                } else {
                    resting += usize::from(matches!(c.held, Held::Resting(_)));
                    idle.conns.push_back(c);
                }
            }
            if resting == 0 {
                // Lets a watcher left with nothing to watch end (and free the pool with it).
                if let Some(w) = &idle.watcher {
                    w.wake_by_ref();
                }
            }
        }
        // Closed outside the lock. Dropping a live connection's sender ends hyper's dispatcher;
        // marked to rest, its driver then puts the bare socket back (see `rest`).
        drop(gone);
    }

    /// Returns a connection whose exchange is complete to the pool (at most `max` idle).
    fn give_back(&self, conn: H1Conn, max: usize) {
        if conn.tx.is_closed() || !conn.slot.request_done.load(Ordering::Acquire) {
            // The upload is still going (an early response) or the connection is gone.
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.conns.len() < max {
            idle.conns.push_back(Idle {
                held: Held::Live(conn),
                since: Instant::now(),
            });
            drop(idle);
            self.freed.notify_one();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// All endpoint pools, so a background task can close idle connections.
#[derive(Default)]
pub struct Pools {
    all: Mutex<Vec<(Weak<EndpointPool>, Duration)>>,
}

impl Pools {
    /// The pool of `endpoint`, created on first use and stored in its live state.
    pub fn of<'e>(
        &self,
        upstream: &Upstream,
        endpoint: &'e Endpoint,
        metrics: &strait_observe::Metrics,
    ) -> &'e Arc<EndpointPool> {
        endpoint.state.pool.get_or_init(|| {
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
            lock(&self.all).push((Arc::downgrade(&pool), upstream.pool.idle_timeout));
            pool
        })
    }

    /// Closes expired idle connections, rests those unused for [`REST_AFTER`], and forgets
    /// dropped pools. Called every [`REST_AFTER`].
    pub fn tend(&self) {
        lock(&self.all).retain(|(w, age)| match w.upgrade() {
            Some(p) => {
                p.tend(*age);
                true
            }
            None => false,
        });
    }
}

/// Why an upstream connection could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed.
    #[error("connect: {0}")]
    Io(#[source] std::io::Error),
    /// The TLS handshake failed (untrusted certificate, name mismatch, protocol mismatch).
    #[error("TLS handshake: {0}")]
    Tls(#[source] std::io::Error),
    /// Connect took longer than `timeouts.connect`.
    #[error("connect timed out")]
    Timeout,
    /// HTTP handshake failed.
    #[error("handshake: {0}")]
    Http(#[from] hyper::Error),
    /// The SNI name is not a valid DNS name or IP.
    #[error("invalid TLS server name {0}")]
    ServerName(String),
    /// The endpoint has `limits.max_connections` open and `limits.max_pending` waiting.
    #[error("connection limit reached")]
    Overloaded,
    /// No connection became free within `timeouts.connect` at the connection limit.
    #[error("no connection became free within the connect timeout")]
    Exhausted,
}

/// A checked-out connection and whether it was used before (a reused one may have been
/// closed by the upstream meanwhile: a request it did not send may go on a fresh one).
pub struct Checkout {
    /// The connection.
    pub conn: Conn,
    /// Taken from the pool rather than dialled.
    pub reused: bool,
}

/// Gets a connection to `endpoint`: an idle or shared one if possible, else a new one. With
/// `bare`, an idle resting connection or a new one comes as [`Conn::Bare`] (a live one in
/// hyper's hands still comes as [`Conn::H1`]).
///
/// Dialling and starting hyper are boxed: they happen once per connection, and unboxed they
/// would make every request's future kilobytes larger (it is moved whole when spawned).
pub async fn checkout(
    pool: &Arc<EndpointPool>,
    upstream: &Upstream,
    bare: bool,
) -> Result<Checkout, ConnectError> {
    if upstream.protocol.is_h2() {
        return checkout_h2(pool, upstream).await;
    }
    let wait = upstream.timeouts.connect;
    let deadline = tokio::time::Instant::now() + wait;
    let mut pending = None;
    loop {
        while let Some(held) = pop_idle(pool, upstream) {
            let mut conn = match held {
                Held::Live(conn) => conn,
                Held::Resting(r) if bare => {
                    if r.quiet(&mut std::task::Context::from_waker(Waker::noop())) {
                        return Ok(Checkout {
                            conn: Conn::Bare(r),
                            reused: true,
                        });
                    }
                    continue;
                }
                Held::Resting(r) => match Box::pin(r.wake()).await {
                    Some(conn) => conn,
                    None => continue,
                },
            };
            // Ready at once in the usual case; a connection that is not ready within the
            // connect timeout is in an unknown state and is dropped.
            match tokio::time::timeout_at(deadline, conn.tx.ready()).await {
                Ok(Ok(())) => {
                    conn.slot.start_request();
                    return Ok(Checkout {
                        conn: Conn::H1(conn),
                        reused: true,
                    });
                }
                _ => continue,
            }
        }
        let limit = upstream.limits.max_connections;
        let reserved = pool
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if reserved {
            drop(pending);
            return Box::pin(dial_h1(pool, upstream, bare))
                .await
                .map(|conn| Checkout {
                    conn,
                    reused: false,
                });
        }
        if pending.is_none() {
            pending = Some(Pending::enter(pool, upstream.limits.max_pending)?);
        }
        let freed = pool.freed.notified();
        // A connection may have come back between the checks above and `notified`.
        let none_free = lock(&pool.idle).conns.is_empty() && pool.open() >= limit;
        if none_free && tokio::time::timeout_at(deadline, freed).await.is_err() {
            return Err(ConnectError::Exhausted);
        }
    }
}

fn pop_idle(pool: &EndpointPool, upstream: &Upstream) -> Option<Held> {
    let mut idle = lock(&pool.idle);
    while let Some(c) = idle.conns.pop_back() {
        if !c.held.is_closed() && c.since.elapsed() < upstream.pool.idle_timeout {
            return Some(c.held);
        }
    }
    None
}

/// Counts a request waiting for a connection while it lives.
struct Pending<'a>(&'a EndpointPool);

impl<'a> Pending<'a> {
    fn enter(pool: &'a EndpointPool, max: usize) -> Result<Self, ConnectError> {
        pool.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| ConnectError::Overloaded)?;
        Ok(Pending(pool))
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn checkout_h2(
    pool: &Arc<EndpointPool>,
    upstream: &Upstream,
) -> Result<Checkout, ConnectError> {
    if let Some(tx) = shared_h2(pool) {
        return Ok(Checkout {
            conn: Conn::H2(tx),
            reused: true,
        });
    }
    let _waiting = Pending::enter(pool, upstream.limits.max_pending.max(1))?;
    // One dial per cold endpoint: the others wait for it (bounded by its connect timeout).
    let _dialling = pool.h2_dial.lock().await;
    if let Some(tx) = shared_h2(pool) {
        return Ok(Checkout {
            conn: Conn::H2(tx),
            reused: true,
        });
    }
    let tx = Box::pin(dial_h2(pool, upstream)).await?;
    *lock(&pool.h2) = Some(tx.clone());
    Ok(Checkout {
        conn: Conn::H2(tx),
        reused: false,
    })
}

fn shared_h2(pool: &EndpointPool) -> Option<http2::SendRequest<ProxyBody>> {
    let guard = lock(&pool.h2);
    guard.as_ref().filter(|tx| !tx.is_closed()).cloned()
}

/// Dials a fresh HTTP/1.1 connection, counted against the limit (the caller reserved it):
/// left bare with `bare`, else in hyper's hands.
async fn dial_h1(
    pool: &Arc<EndpointPool>,
    upstream: &Upstream,
    bare: bool,
) -> Result<Conn, ConnectError> {
    let slot = ConnSlot::new(pool);
    let io = Box::new(UpstreamGuard::new(connect_io(pool, upstream).await?));
    if bare {
        return Ok(Conn::Bare(Resting::new(io, slot)));
    }
    rest::start_h1(io, slot)
        .await
        .map(Conn::H1)
        .inspect_err(|_| pool.connect_errors.inc())
        .map_err(ConnectError::Http)
}

/// Dials a fresh HTTP/1.1 connection past the pool, for a request a reused connection did not
/// send (it is counted like any other).
pub async fn redial_h1(
    pool: &Arc<EndpointPool>,
    upstream: &Upstream,
    bare: bool,
) -> Result<Conn, ConnectError> {
    pool.open.fetch_add(1, Ordering::AcqRel);
    dial_h1(pool, upstream, bare).await
}

async fn dial_h2(
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

/// Forgets the shared HTTP/2 connection (it would not take a request), so the next dials anew.
pub fn forget_h2(pool: &EndpointPool) {
    *lock(&pool.h2) = None;
}

impl EndpointPool {
    /// Opens a new connection (TCP, then TLS if the upstream has it), without pooling or counting.
    pub async fn dial(&self, upstream: &Upstream) -> Result<UpstreamIo, ConnectError> {
        let tcp = match self.addr {
            Some(a) => TcpStream::connect(a).await,
            None => TcpStream::connect(&*self.address).await,
        }
        .map_err(ConnectError::Io)?;
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
        .await
        .map_err(ConnectError::Tls)?;
    Ok(UpstreamIo::Tls(Box::new(stream)))
}
