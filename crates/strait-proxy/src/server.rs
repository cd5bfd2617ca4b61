//! Listeners and downstream connections: accept, TLS handshake, HTTP/1 guard, hyper H1/H2 serving, graceful drain.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use prometheus::IntGauge;
use strait_core::snapshot::ListenerSpec;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::{watch, Notify, Semaphore},
};

use crate::{
    h1guard::{H1Guard, H1Limits},
    handler::{self, ConnInfo},
    Shared,
};

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
    tracker: Arc<Tracker>,
) {
    let builder = Arc::new(http_builder(&spec));
    let limits = H1Limits {
        max_request_line: spec.limits.max_request_line,
        max_head: spec.limits.max_request_headers,
        max_headers: spec.limits.max_headers,
        header_read_timeout: spec.limits.header_read_timeout,
        idle_timeout: spec.limits.idle_timeout,
    };
    let slots = Arc::new(Semaphore::new(spec.limits.max_connections.max(1)));
    let transport = if spec.tls.is_some() { "tls" } else { "tcp" };
    let active = shared
        .metrics
        .connections_active
        .with_label_values(&[&spec.name, transport]);
    let accepted = shared
        .metrics
        .connections_total
        .with_label_values(&[&spec.name]);
    let mut stop_accept = stop.clone();
    loop {
        // Waiting for a slot before accepting leaves excess connections in the kernel backlog.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = stopped(&mut stop_accept) => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(listener = %spec.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop_accept) => break,
        };
        accepted.inc();
        let conn = Connection {
            shared: shared.clone(),
            spec: spec.clone(),
            builder: builder.clone(),
            limits,
            active: active.clone(),
            stop: stop.clone(),
        };
        let guard = tracker.enter();
        tokio::spawn(async move {
            conn.serve(tcp, peer).await;
            drop(permit);
            drop(guard);
        });
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard returned by wait_for is not Send, so it must not live in the caller's future.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

fn http_builder(spec: &ListenerSpec) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    {
        let mut h1 = b.http1();
        h1.timer(TokioTimer::new())
            .keep_alive(true)
            // The guard enforces head limits and timeouts precisely; hyper's own must not fire first.
            .header_read_timeout(None)
            .max_headers(spec.limits.max_headers + 1)
            .max_buf_size((spec.limits.max_request_headers + 16 * 1024).max(8192));
    }
    {
        let mut h2 = b.http2();
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(256)
            .max_header_list_size(spec.limits.max_request_headers as u32)
            .keep_alive_interval(None);
    }
    match (spec.http1, spec.h2) {
        (true, false) => b.http1_only(),
        (false, true) => b.http2_only(),
        _ => b,
    }
}

struct Connection {
    shared: Arc<Shared>,
    spec: Arc<ListenerSpec>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: H1Limits,
    active: IntGauge,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        self.active.inc();
        let info = Arc::new(ConnInfo {
            listener_id: self.spec.id,
            client: peer,
            client_ip: HeaderValue::from_str(&peer.ip().to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
            tls: self.spec.tls.is_some(),
            max_request_body: self.spec.limits.max_request_body,
        });
        match self.spec.tls.clone() {
            None => {
                if self.spec.http1 {
                    self.run(H1Guard::new(tcp, self.limits), info).await
                } else {
                    self.run(tcp, info).await
                }
            }
            Some(cfg) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                let hs = tokio::time::timeout(
                    self.spec.limits.header_read_timeout,
                    acceptor.accept(tcp),
                )
                .await;
                match hs {
                    Ok(Ok(tls)) => {
                        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                        if h2 {
                            self.run(tls, info).await
                        } else {
                            self.run(H1Guard::new(tls, self.limits), info).await
                        }
                    }
                    _ => {
                        self.shared
                            .metrics
                            .tls_handshake_errors
                            .with_label_values(&[&self.spec.name])
                            .inc();
                    }
                }
            }
        }
        self.active.dec();
    }

    async fn run<I>(&self, io: I, info: Arc<ConnInfo>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = self.shared.clone();
        let svc = service_fn(move |req| handler::handle(shared.clone(), info.clone(), req));
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), svc);
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stopped(&mut stop) => {}
        }
        // Draining: HTTP/1 closes after the response in flight, HTTP/2 sends GOAWAY.
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}
