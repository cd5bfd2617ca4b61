//! HTTP/1 downstream connections: serve with hyper, park between requests, resume, hand off
//! protocol switches. Sits between `server` (accept, TLS, protocol choice) and `handler`.
//!
//! A live hyper HTTP/1 connection keeps about 16 KiB of buffers plus its state and the boxed
//! service future for as long as the connection is open. Most keep-alive connections are idle
//! most of the time, so an idle one is *parked*:
//!
//! 1. The [`H1Guard`] signals (through [`ParkSignal`], embedded in [`ConnInfo`]) that the stream
//!    has been quiet for `park_after` between requests, and [`TrackedBody`] counts responses
//!    hyper has not finished taking. When both allow it, `serve` asks hyper to shut down
//!    gracefully; an idle hyper connection just ends, and the guard skips the stream shutdown.
//! 2. hyper's parts are taken apart: the guard is kept (framing state, timer), bytes hyper read
//!    and did not process go back to the guard ([`H1Guard::replay`]), everything else is dropped.
//! 3. Parked, the task waits for the socket to become readable, for the idle timeout (the
//!    guard's timer) or for drain, which simply closes a parked connection.
//! 4. On readability a fresh hyper connection serves the same guard.
//!
//! A plain TCP connection with nothing held (no bytes read ahead) goes further and
//! *hibernates* ([`Served::Park`]): its guard is reduced to a [`Dormant`] state (counters, the
//! last request line, the armed idle timer: 128 bytes instead of 656), and its task ends: the
//! stream and that state wait in the listener's sleepers (`server::sleepers`, polled with
//! [`poll_asleep`]). Readability spawns a task that builds a new guard ([`H1Guard::wake`]).
//!
//! Protocol switches (WebSocket): hyper's own upgrade hand-off needs a connection that always
//! shuts the stream down at its end, which parking cannot use. Instead `forward` puts the
//! upstream's pending upgrade in [`H1Shared`] when it returns a `101`; once hyper has written
//! it and ended, `serve` takes the stream back and the caller splices it to the upstream in a
//! task of its own (`Switch`).
//!
//! Plain TCP and TLS connections park (`ParkIo`). A TLS stream may hold records it read with the
//! last socket read, which the socket's readiness will not announce again: before parking they
//! are decrypted, and a connection with plaintext (or a close_notify, or a TLS error) waiting
//! is served again at once instead; records rustls queued itself are written out first. While
//! parked, a TLS connection keeps rustls's state but, as a plain one, none of hyper's. A wake-up
//! that decrypts to nothing (part of a record) resumes hyper without counting as activity, so
//! the idle timeout still runs from the last request.
//!
//! Subtle parts:
//! - hyper is ended only when it is idle: the guard saw no byte of a next request and no write
//!   for `park_after`, no write is blocked, and every response body has been dropped by hyper.
//!   Were hyper busy after all, graceful shutdown would only finish the exchange first.
//! - hyper borrows the guard, so the task holds the guard once and no hyper state survives a
//!   park; the read buffer hyper returns views its 8 KiB allocation, so only its bytes are kept.
//! - Under load (gaps of milliseconds between requests) nothing parks: parking costs one timer
//!   deadline the guard sets anyway, two counter updates per request, and a new hyper connection
//!   (about 18 KiB of buffers) for each request that follows a pause.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, upgrade::OnUpgrade};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};

use crate::{
    body::{BoxError, Downstream, ProxyBody},
    h1guard::{Dormant, H1Guard, ParkSignal},
    handler::{self, ConnInfo},
    Shared,
};

/// Per-connection state shared by the request path and the HTTP/1 connection task.
#[derive(Debug, Default)]
pub struct H1Shared {
    park: ParkSignal,
    /// The upstream side of a protocol switch the service answered with `101`.
    upgrade: Mutex<Option<OnUpgrade>>,
}

// === impl H1Shared ===

impl H1Shared {
    /// Hands the upstream side of a protocol switch to the connection task, which splices it to
    /// the downstream stream once hyper has written the `101` (see the module docs).
    pub fn offer_upgrade(&self, upstream: OnUpgrade) {
        *self.upgrade.lock().unwrap_or_else(|e| e.into_inner()) = Some(upstream);
    }

    fn take_upgrade(&self) -> Option<OnUpgrade> {
        self.upgrade
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl AsRef<ParkSignal> for ConnInfo {
    fn as_ref(&self) -> &ParkSignal {
        &self.h1.park
    }
}

/// A stream that can wait for readability with no reader on it, so its connection can park.
pub(crate) trait ParkIo {
    /// Whether a parked connection of this stream puts its guard away ([`H1Guard::hibernate`])
    /// and waits, without a task, in the listener's sleepers ([`poll_asleep`]). A TLS
    /// stream's own state (rustls's buffers) is many times a guard's, so it parks with its guard.
    const HIBERNATES: bool = false;

    /// Ready when a read would not block (or fail).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Whether the stream already took bytes off the socket that a read would return (or an
    /// end it would report): readiness will not announce them, so the connection must not park.
    fn has_unread(&mut self) -> bool {
        false
    }

    /// Writes out bytes the stream queued itself (not hyper's), so none wait out a park.
    fn poll_flush_queued(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl ParkIo for TcpStream {
    const HIBERNATES: bool = true;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

impl ParkIo for tokio_rustls::server::TlsStream<TcpStream> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().0.poll_read_ready(cx)
    }

    /// rustls holds records read with the last socket read: decrypting them here either leaves
    /// nothing (park) or plaintext, a close_notify or a TLS error, which hyper must see.
    fn has_unread(&mut self) -> bool {
        match self.get_mut().1.process_new_packets() {
            Ok(io) => io.plaintext_bytes_to_read() > 0 || io.peer_has_closed(),
            Err(_) => true,
        }
    }

    /// Records rustls queued after hyper's last flush (an alert, a key update's answer).
    fn poll_flush_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.get_ref().1.wants_write() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(self).poll_flush(cx)
    }
}

/// What one HTTP/1 connection needs from its listener.
pub(crate) struct H1Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub builder: &'a http1::Builder,
    pub info: &'a Arc<ConnInfo>,
}

/// How [`serve`] left a connection.
pub(crate) enum Served {
    /// Closed, drained or failed.
    Ended,
    /// Switched protocols: the caller runs the tunnel.
    Switch(Switch),
    /// Idle between requests with nothing held: the caller hibernates the guard and hands the
    /// connection to its listener's sleepers ([`ParkIo::HIBERNATES`] streams only).
    Park,
}

/// Serves HTTP/1 on `guard` until the connection ends, parking whenever it is idle.
///
/// The guard stays in the caller's hands (hyper borrows it), so the task holds it exactly once.
pub(crate) async fn serve<IO>(
    ctx: H1Ctx<'_>,
    guard: &mut H1Guard<IO>,
    stop: &mut watch::Receiver<bool>,
) -> Served
where
    IO: ParkIo + AsyncRead + AsyncWrite + Unpin + Send,
{
    let signal = &ctx.info.h1.park;
    loop {
        let svc = service(ctx.shared.clone(), ctx.info.clone());
        // Boxed so a parked task holds none of hyper's state, and a live one stays small.
        let mut conn = Box::pin(ctx.builder.serve_connection(TokioIo::new(&mut *guard), svc));
        let grace = ctx.info.listener.limits.header_read_timeout;
        if !drive(conn.as_mut(), signal, stop, grace).await {
            return Served::Ended;
        }
        let early = Pin::into_inner(conn).into_parts().read_buf;
        if let Some(upstream) = ctx.info.h1.take_upgrade() {
            return Served::Switch(Switch { early, upstream });
        }
        if !signal.is_parking() {
            // hyper ended on its own (close, or a switch nobody took over).
            return Served::Ended;
        }
        signal.set_parking(false);
        guard.replay(&early);
        drop(early);
        if IO::HIBERNATES && guard.can_hibernate() {
            return Served::Park;
        }
        if !wait_readable(guard, stop).await {
            return Served::Ended;
        }
        guard.resume();
    }
}

/// A connection that switched protocols after a `101`: what is needed to splice it.
pub(crate) struct Switch {
    /// Bytes hyper read past the request, for the upstream.
    early: Bytes,
    upstream: OnUpgrade,
}

// === impl Switch ===

impl Switch {
    /// Splices `down` and the upstream in a task of their own: like hyper's own upgrades, the
    /// tunnel runs apart from the connection's accounting (connection slots, drain).
    pub(crate) fn spawn<IO>(self, down: H1Guard<IO>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        tokio::spawn(tunnel(down, self.early, self.upstream));
    }
}

/// Waits, parked, until the client sends bytes (true), or the idle timeout, an error or drain
/// ends the connection (false).
async fn wait_readable<IO: ParkIo>(
    guard: &mut H1Guard<IO>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    if guard.has_buffered() || guard.get_mut().has_unread() {
        return true;
    }
    guard.parked();
    let mut stopped = pin!(crate::server::stopped(stop));
    // Bytes the stream queued itself go out first, under the same idle timeout and drain.
    let mut flushed = false;
    poll_fn(|cx| {
        if !flushed {
            match guard.get_mut().poll_flush_queued(cx) {
                Poll::Ready(Ok(())) => flushed = true,
                Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Pending => {}
            }
        }
        // Readiness first: a request that has arrived is served (and closes the connection)
        // rather than reset by a close with unread bytes.
        if flushed {
            if let Poll::Ready(r) = guard.get_ref().poll_read_ready(cx) {
                return Poll::Ready(r.is_ok());
            }
        }
        if stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        guard.poll_idle_timeout(cx).map(|()| false)
    })
    .await
}

/// Polls a parked, hibernated connection: ready with true when the client sent bytes, with
/// false when the idle timeout fired or the socket failed. The plain-TCP counterpart of
/// `wait_readable`, for a connection that is only its stream and its [`Dormant`] guard state
/// (drain is watched for a whole set of them, see `server::sleepers`).
pub(crate) fn poll_asleep(
    tcp: &TcpStream,
    dormant: &mut Dormant,
    cx: &mut Context<'_>,
) -> Poll<bool> {
    // Readiness first, as in `wait_readable`.
    if let Poll::Ready(r) = tcp.poll_read_ready(cx) {
        return Poll::Ready(r.is_ok());
    }
    dormant.poll_idle_timeout(cx).map(|()| false)
}

/// Polls hyper until it ends; asks it to end gracefully on drain, or when the connection may
/// park. False when the connection is over (drained or failed).
///
/// On drain, hyper serves a request in progress and closes. A connection that has not sent its
/// first request yet (a TLS one: plain ones wait for their first bytes in `sniff::first_bytes`)
/// would be closed by hyper at once, resetting a request its client may be sending: it gets
/// `grace` (the header read timeout) for that request, which is answered before the connection
/// closes.
async fn drive<IO, S>(
    mut conn: Pin<&mut http1::Connection<TokioIo<&mut H1Guard<IO>>, S>>,
    signal: &ParkSignal,
    stop: &mut watch::Receiver<bool>,
    grace: std::time::Duration,
) -> bool
where
    IO: ParkIo + AsyncRead + AsyncWrite + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = TrackedBody>,
    S::Error: Into<BoxError>,
{
    let mut stopped = pin!(crate::server::stopped(stop));
    let mut draining = false;
    let mut first_request_due: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let result = poll_fn(|cx| loop {
        if let Poll::Ready(r) = conn.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        if !draining && stopped.as_mut().poll(cx).is_ready() {
            draining = true;
            if signal.has_served() {
                // HTTP/1 closes after the response in flight.
                conn.as_mut().graceful_shutdown();
            } else {
                // hyper would close a connection that has not read a byte yet at once.
                first_request_due = Some(Box::pin(tokio::time::sleep(grace)));
            }
            continue;
        }
        if let Some(due) = &mut first_request_due {
            if signal.has_served() {
                first_request_due = None;
                conn.as_mut().graceful_shutdown();
                continue;
            }
            if due.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
        }
        if !draining && !signal.is_parking() && signal.is_ready() {
            // Idle: hyper ends at once and leaves the stream open (see `H1Guard::poll_shutdown`).
            signal.set_parking(true);
            conn.as_mut().graceful_shutdown();
            continue;
        }
        return Poll::Pending;
    })
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "downstream connection error");
        return false;
    }
    !draining
}

/// Splices the downstream stream (after its `101`) and the upgraded upstream connection.
async fn tunnel<IO>(mut down: H1Guard<IO>, early: Bytes, upstream: OnUpgrade)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let Ok(up) = upstream.await else {
        return;
    };
    let mut up = TokioIo::new(up);
    if !early.is_empty() && up.write_all(&early).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
}

/// The request path as a hyper service, counting responses until hyper has taken them.
fn service(
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<TrackedBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<TrackedBody>, Infallible>> + Send,
> + Send {
    service_fn(move |req| {
        let inflight = Inflight::start(info.clone());
        let (shared, info) = (shared.clone(), info.clone());
        async move {
            // Made here rather than captured: awaiting a captured future moves all of it (8 KB)
            // at the first poll, while this one is built where it is polled.
            let Ok(resp) = handler::handle(shared, info, req.map(Downstream::Hyper)).await;
            Ok(resp.map(|body| TrackedBody {
                body,
                _inflight: inflight,
            }))
        }
    })
}

/// One response not yet completely taken by hyper.
struct Inflight(Arc<ConnInfo>);

impl Inflight {
    fn start(info: Arc<ConnInfo>) -> Self {
        (*info).as_ref().response_started();
        Inflight(info)
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        (*self.0).as_ref().response_done();
    }
}

/// A response body that counts as in flight until hyper drops it (at its end, or on close).
pub(crate) struct TrackedBody {
    body: ProxyBody,
    _inflight: Inflight,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
