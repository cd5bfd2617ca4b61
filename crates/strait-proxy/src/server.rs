//! Listeners and downstream connections: accept, TLS handshake, protocol choice (ALPN, or the
//! HTTP/2 preface on plain TCP), the HTTP/1 guard, hyper serving (HTTP/1 in `h1conn`, with
//! parking; HTTP/2 in `h2conn`, behind its guard), graceful drain.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use crate::snapshot::ListenerSpec;
use http::{HeaderValue, StatusCode};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioExecutor;
use prometheus::IntGauge;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::{watch, Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

use self::sleepers::{Sleeper, Sleepers};
use self::sniff::{Prefixed, Sniffed};
use crate::{
    h1conn::{self, H1Ctx, H1Shared, Served},
    h1guard::{Dormant, H1Guard, H1Limits, H2_PREFACE},
    h2conn,
    handler::ConnInfo,
    reject::{self, Refused},
    Shared,
};

mod proxy_proto;
pub mod quic;
mod sleepers;
mod sniff;

/// Binds a listening socket the way a server should (SO_REUSEADDR, a deep backlog).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(4096)?;
    TcpListener::from_std(sock.into())
}

/// Tracks open downstream connections so shutdown can wait for them to drain.
#[derive(Default)]
pub struct Tracker {
    open: AtomicUsize,
    idle: Notify,
}

impl Tracker {
    fn enter(self: &Arc<Self>) -> TrackGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        TrackGuard(self.clone())
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until no connection is open.
    pub async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct TrackGuard(Arc<Tracker>);

impl Drop for TrackGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Accepts connections on `listener` until `stop` turns true; each connection drains when `stop` flips.
pub async fn serve_listener(
    shared: Arc<Shared>,
    spec: Arc<ListenerSpec>,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
    reloaded: Arc<Notify>,
    tracker: Arc<Tracker>,
) {
    let slots = Arc::new(Semaphore::new(spec.limits.max_connections.max(1)));
    // Slots to retire as connections close, after a lowered limit (see `refresh`).
    let mut debt = 0usize;
    let accepted = shared
        .metrics
        .connections_total
        .with_label_values(&[&spec.name]);
    // Alt-Svc names the port actually bound (the UDP endpoint shares it), not `listen`'s 0.
    let port = listener.local_addr().map_or(spec.addr.port(), |a| a.port());
    let sleepers = Sleepers::start(&stop);
    let mut ctx = Arc::new(ListenerCtx::new(shared, spec, port, sleepers));
    let mut stop_accept = stop.clone();
    'accept: loop {
        // Waiting for a slot before accepting leaves excess connections in the kernel backlog.
        let permit = loop {
            tokio::select! {
                p = slots.clone().acquire_owned() => {
                    let p = p.expect("semaphore never closed");
                    if debt == 0 {
                        break p;
                    }
                    // The limit was lowered below the connections open then: retire this slot.
                    p.forget();
                    debt -= 1;
                }
                _ = stopped(&mut stop_accept) => break 'accept,
                // A raised connection limit applies now, not at the next close.
                _ = reloaded.notified() => refresh(&mut ctx, &slots, &mut debt),
            }
        };
        let (tcp, peer) = loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => break x,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(listener = %ctx.spec.name, error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                _ = stopped(&mut stop_accept) => break 'accept,
                _ = reloaded.notified() => {
                    refresh(&mut ctx, &slots, &mut debt);
                    if debt > 0 {
                        // Lowered while this slot was held for the next connection: retire it.
                        permit.forget();
                        debt -= 1;
                        continue 'accept;
                    }
                }
            }
        };
        accepted.inc();
        refresh(&mut ctx, &slots, &mut debt);
        let held = (permit, tracker.enter());
        tokio::spawn(ctx.clone().serve(tcp, peer, stop.clone(), held));
    }
    tracing::debug!(listener = %ctx.spec.name, "listener closed");
}

/// A reload may change this listener's certificates, limits or protocols: new connections take
/// the current spec; established ones keep theirs. The connection limit is one semaphore resized
/// in place, so it counts the connections already open: a raise adds slots at once; a lowering
/// removes free slots, and the rest (`debt`) as open connections return theirs.
fn refresh(ctx: &mut Arc<ListenerCtx>, slots: &Semaphore, debt: &mut usize) {
    let current = ctx
        .shared
        .snapshot
        .load()
        .listeners
        .iter()
        .find(|l| l.id == ctx.spec.id)
        .cloned();
    if let Some(cur) = current.filter(|c| !Arc::ptr_eq(c, &ctx.spec)) {
        let (from, to) = (
            ctx.spec.limits.max_connections.max(1),
            cur.limits.max_connections.max(1),
        );
        if to > from {
            let paid = (to - from).min(*debt);
            *debt -= paid;
            slots.add_permits(to - from - paid);
        } else if to < from {
            let excess = from - to;
            *debt += excess - slots.forget_permits(excess);
        }
        *ctx = Arc::new(ListenerCtx::new(
            ctx.shared.clone(),
            cur,
            ctx.port,
            ctx.sleepers.clone(),
        ));
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard returned by wait_for is not Send, so it must not live in the caller's future.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// What every connection of one listener shares; each connection holds one reference.
struct ListenerCtx {
    shared: Arc<Shared>,
    spec: Arc<ListenerSpec>,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    limits: H1Limits,
    active: IntGauge,
    /// The bound port.
    port: u16,
    /// `Alt-Svc` for this listener's responses when it serves HTTP/3, built once here.
    alt_svc: Option<HeaderValue>,
    /// Where this listener's plain connections wait while parked (shared across reloads).
    sleepers: Arc<Sleepers>,
}

// === impl ListenerCtx ===

impl ListenerCtx {
    fn new(
        shared: Arc<Shared>,
        spec: Arc<ListenerSpec>,
        port: u16,
        sleepers: Arc<Sleepers>,
    ) -> Self {
        let mut h1 = http1::Builder::new();
        h1.keep_alive(true)
            // The guard enforces head limits and timeouts precisely; hyper's own must not fire first.
            .header_read_timeout(None)
            .max_headers(spec.limits.max_headers + 1)
            .max_buf_size((spec.limits.max_request_headers + 16 * 1024).max(8192));
        let h2 = h2conn::builder(&spec.limits);
        let limits = H1Limits {
            max_request_line: spec.limits.max_request_line,
            max_head: spec.limits.max_request_headers,
            max_headers: spec.limits.max_headers,
            header_read_timeout: spec.limits.header_read_timeout,
            idle_timeout: spec.limits.idle_timeout,
            send_timeout: spec.limits.send_timeout,
            ..H1Limits::default()
        };
        let transport = if spec.tls.is_some() { "tls" } else { "tcp" };
        let active = shared
            .metrics
            .connections_active
            .with_label_values(&[&spec.name, transport]);
        // A day, as Cloudflare and Google advertise: clients remember the endpoint across
        // visits, and fall back to TCP by themselves if it stops answering.
        let alt_svc = (spec.http3.is_some() && spec.tls.is_some())
            .then(|| HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400")).ok())
            .flatten();
        ListenerCtx {
            shared,
            spec,
            h1,
            h2,
            limits,
            active,
            port,
            alt_svc,
            sleepers,
        }
    }

    /// Serves one accepted connection; `held` (its connection slot and drain tracking) is
    /// released when it ends.
    async fn serve(
        self: Arc<Self>,
        mut tcp: TcpStream,
        mut peer: SocketAddr,
        mut stop: watch::Receiver<bool>,
        held: (OwnedSemaphorePermit, TrackGuard),
    ) {
        let _ = tcp.set_nodelay(true);
        let accepted = Instant::now();
        if self.spec.proxy_protocol {
            // Before TLS and HTTP: the balancer's header names the client.
            let wait = self.spec.limits.header_read_timeout;
            // Boxed: only listeners behind a balancer read it, and every task would carry it.
            match Box::pin(proxy_proto::read(&mut tcp, wait)).await {
                Ok(Some(addr)) => peer = addr,
                Ok(None) => {}
                Err(why) => {
                    tracing::debug!(listener = %self.spec.name, peer = %peer, ?why, "PROXY header refused");
                    crate::reject::count(
                        &self.shared.metrics,
                        &self.spec.name,
                        crate::reject::Reason::ProxyProtocol,
                    );
                    return;
                }
            }
        }
        self.active.inc();
        let info = Arc::new(ConnInfo {
            listener: self.spec.clone(),
            client: peer,
            client_ip: ip_header(peer.ip()),
            peer_ip: None,
            h1: Arc::new(H1Shared::default()),
            peer: None,
            alt_svc: self.alt_svc.clone(),
        });
        if self.spec.tls.is_some() {
            // Boxed: the handshake state is large and would size every connection's task.
            Box::pin(self.serve_tls(tcp, info, accepted, &mut stop)).await;
            self.active.dec();
        } else {
            // Boxed: the task ends when the connection parks, and would be sized by serving.
            let asleep = Box::pin(self.serve_tcp(tcp, &info, accepted, &mut stop)).await;
            self.rest(asleep, info, held);
        }
    }

    /// Serves a parked plain connection whose client sent bytes, until it parks again or ends.
    async fn resume(self: Arc<Self>, s: Sleeper, mut stop: watch::Receiver<bool>) {
        let Sleeper {
            tcp,
            dormant,
            info,
            held,
            ..
        } = s;
        let asleep = Box::pin(self.wake_h1(tcp, dormant, &info, &mut stop)).await;
        self.rest(asleep, info, held);
    }

    /// Hands a connection that parked to this listener's sleepers; counts out one that ended.
    fn rest(
        self: Arc<Self>,
        asleep: Option<(TcpStream, Dormant)>,
        info: Arc<ConnInfo>,
        held: (OwnedSemaphorePermit, TrackGuard),
    ) {
        match asleep {
            Some((tcp, dormant)) => {
                let sleepers = self.sleepers.clone();
                sleepers.put(Sleeper {
                    ctx: self,
                    tcp,
                    dormant,
                    info,
                    held,
                });
            }
            None => self.active.dec(),
        }
    }

    /// Serves a plain TCP connection; returns it when it parked, hibernated.
    async fn serve_tcp(
        &self,
        tcp: TcpStream,
        info: &Arc<ConnInfo>,
        accepted: Instant,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<(TcpStream, Dormant)> {
        if !self.spec.http1 {
            let io = Prefixed::new(tcp, &[]);
            self.serve_h2(io, info.clone(), accepted, stop).await;
            return None;
        }
        // Nothing of hyper exists until the first bytes arrive; with HTTP/2 on, they tell which.
        let mut seen = [0; H2_PREFACE.len()];
        let want = if self.spec.h2 { seen.len() } else { 1 };
        let n = sniff::first_bytes(&tcp, &mut seen[..want], &self.limits).await?;
        let mut guard = H1Guard::new(tcp, self.limits);
        guard.set_park(info.clone());
        if self.spec.h2 {
            let seen = &seen[..n];
            match sniff::sniff(guard.get_ref(), seen, self.limits.header_read_timeout).await {
                Sniffed::H1(0) => {}
                Sniffed::H1(consumed) => guard.unread(&H2_PREFACE[..consumed]),
                Sniffed::H2(consumed) => {
                    let io = Prefixed::new(guard.into_inner(), &H2_PREFACE[..consumed]);
                    self.serve_h2(io, info.clone(), accepted, stop).await;
                    return None;
                }
                Sniffed::Gone => return None,
            }
        }
        let served = self.serve_h1(&mut guard, info, stop).await;
        after_h1(served, guard)
    }

    /// Serves a hibernated plain connection again, once its client has sent bytes.
    async fn wake_h1(
        &self,
        tcp: TcpStream,
        dormant: Dormant,
        info: &Arc<ConnInfo>,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<(TcpStream, Dormant)> {
        let mut guard = H1Guard::wake(tcp, self.limits, dormant);
        guard.resume();
        let served = self.serve_h1(&mut guard, info, stop).await;
        after_h1(served, guard)
    }

    /// Serves HTTP/1 behind `guard`, then reports a request the guard refused.
    ///
    /// The guard is borrowed, not moved: an async fn keeps a moved argument twice in its state
    /// (as captured and as a local), and every connection's task would pay for it.
    async fn serve_h1<IO>(
        &self,
        guard: &mut H1Guard<IO>,
        info: &Arc<ConnInfo>,
        stop: &mut watch::Receiver<bool>,
    ) -> Served
    where
        IO: h1conn::ParkIo + AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let served = h1conn::serve(self.h1_ctx(info), guard, stop).await;
        if !matches!(served, Served::Ended) {
            return served;
        }
        let Some(r) = guard.refused() else {
            return served;
        };
        if r.in_body {
            // The request path saw the head and records the request; only the refusal is new.
            let metrics = &self.shared.metrics;
            reject::count(metrics, &info.listener.name, r.rejection.into());
            return served;
        }
        let refused = Refused::from_line(r.line, r.at);
        let status = StatusCode::from_u16(r.rejection.status()).unwrap_or(StatusCode::BAD_REQUEST);
        reject::record(&self.shared, info, refused, status);
        served
    }

    async fn serve_tls(
        &self,
        tcp: TcpStream,
        mut info: Arc<ConnInfo>,
        accepted: Instant,
        stop: &mut watch::Receiver<bool>,
    ) {
        let Some(cfg) = self.spec.tls.clone() else {
            return;
        };
        // A TLS record starts with its content type, 22 (handshake); letters are an HTTP method.
        let mut first = [0u8; 1];
        match sniff::first_bytes(&tcp, &mut first, &self.limits).await {
            None => return,
            Some(_) if first[0].is_ascii_uppercase() => return self.plain_http(tcp).await,
            Some(_) => {}
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let hs = tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(tcp)).await;
        // The client identity is parsed once here so that every request only borrows it. A
        // resumed session whose client certificate expired since fails like a handshake.
        let accepted_tls = hs.ok().and_then(Result::ok).and_then(|tls| {
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            let peer = crate::tls::client_identity(leaf.map(|d| d.as_ref())).ok()?;
            Some((tls, peer))
        });
        let Some((tls, peer)) = accepted_tls else {
            self.shared
                .metrics
                .tls_handshake_errors
                .with_label_values(&[&self.spec.name])
                .inc();
            return;
        };
        if let (Some(peer), Some(i)) = (peer, Arc::get_mut(&mut info)) {
            i.peer = Some(Arc::new(peer));
        }
        // HTTP/2 only by ALPN; an HTTP/1 one parks when idle, as a plain one (see `h1conn`).
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") || !self.spec.http1 {
            self.serve_h2(tls, info, accepted, stop).await
        } else {
            let mut guard = H1Guard::new(tls, self.limits);
            guard.set_park(info.clone());
            // TLS streams park with their guard (`ParkIo::HIBERNATES`): never `Park` here.
            if let Served::Switch(switch) = self.serve_h1(&mut guard, &info, stop).await {
                switch.spawn(guard);
            }
        }
    }

    /// Answers an HTTP request sent to a TLS port with a readable 400 (as nginx does) instead
    /// of TLS bytes the client cannot show, then closes.
    async fn plain_http(&self, mut tcp: TcpStream) {
        use tokio::io::AsyncWriteExt;
        const BODY: &str = "strait: plain HTTP request sent to HTTPS port\n";
        let resp = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{BODY}",
            BODY.len()
        );
        reject::count(
            &self.shared.metrics,
            &self.spec.name,
            reject::Reason::PlainHttp,
        );
        let send = async {
            tcp.write_all(resp.as_bytes()).await?;
            tcp.shutdown().await
        };
        let _ = tokio::time::timeout(self.limits.send_timeout, send).await;
    }

    fn h1_ctx<'a>(&'a self, info: &'a Arc<ConnInfo>) -> H1Ctx<'a> {
        H1Ctx {
            shared: &self.shared,
            builder: &self.h1,
            info,
        }
    }

    async fn serve_h2<IO>(
        &self,
        io: IO,
        info: Arc<ConnInfo>,
        accepted: Instant,
        stop: &mut watch::Receiver<bool>,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        h2conn::serve(&self.shared, &self.h2, info, io, accepted, stop).await
    }
}

/// What follows `serve_h1` on a plain connection: a switch gets its tunnel, a park hibernates.
fn after_h1(served: Served, guard: H1Guard<TcpStream>) -> Option<(TcpStream, Dormant)> {
    match served {
        Served::Ended => None,
        Served::Switch(switch) => {
            switch.spawn(guard);
            None
        }
        // `h1conn::serve` parks only a guard that can hibernate.
        Served::Park => guard.hibernate(),
    }
}

/// The peer IP as an `X-Forwarded-For` value, formatted without a temporary string.
pub(crate) fn ip_header(ip: IpAddr) -> HeaderValue {
    use std::io::Write;

    // The longest textual IPv6 address (IPv4-mapped) has 45 characters.
    let mut buf = [0u8; 48];
    let mut w = &mut buf[..];
    let n = match write!(w, "{ip}") {
        Ok(()) => 48 - w.len(),
        Err(_) => 0,
    };
    HeaderValue::from_bytes(&buf[..n]).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, known from its type alone.
    fn returned<A, B, C, D, E, R>(_: impl Fn(A, B, C, D, E) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn a_parked_connection_is_a_small_entry_not_a_task() {
        // Every parked keep-alive connection costs this (issue 15). As a task it was 2,824
        // bytes in a test build while `serve_h1` took the 640-byte guard by value, 1,592 with
        // the guard held once, then 664 once serving was boxed and the guard hibernated. It is
        // now an entry of a sleepers set: the stream, the dormant guard state and three handles.
        let guard = std::mem::size_of::<H1Guard<TcpStream>>();
        let dormant = std::mem::size_of::<Dormant>();
        let sleeper = std::mem::size_of::<sleepers::Sleeper>();
        assert!(dormant * 4 < guard, "the dormant state is {dormant} bytes");
        assert!(
            sleeper <= 256,
            "a parked connection is {sleeper} bytes (its H1 guard {guard}, dormant {dormant})"
        );
        // The task that serves a connection until it parks stays small as well: serving is
        // boxed.
        let task = returned(ListenerCtx::serve);
        assert!(task <= 800, "a connection's task is {task} bytes");
    }
}
