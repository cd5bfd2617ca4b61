//! HTTP/3 listeners: the QUIC endpoint beside a TLS listener's TCP socket (same port, UDP), its
//! server configuration (the listener's certificates and client verification, TLS 1.3, ALPN
//! `h3`, no 0-RTT), and the accept loop; each connection is served by `h3conn`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use quinn::{crypto::rustls::QuicServerConfig, IdleTimeout, TransportConfig, VarInt};
use tokio::{
    sync::{watch, Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

use super::{stopped, TrackGuard, Tracker};
use crate::{h1conn::H1Shared, handler::ConnInfo, snapshot::ListenerSpec, Shared};

/// A listener's HTTP/3 settings, compiled (`listeners[].http3`).
pub struct Http3Spec {
    /// QUIC server configuration: TLS and transport limits, applied to new connections.
    pub server: quinn::ServerConfig,
    /// Largest UDP payload accepted; fixed when the endpoint is bound.
    pub max_udp_payload_size: u16,
}

/// The QUIC limits of `listeners[].http3`.
#[derive(Clone, Copy, Debug)]
pub struct Http3Limits {
    /// Request streams a client may open at once.
    pub max_concurrent_streams: u32,
    /// Idle time before a connection is closed.
    pub idle_timeout: Duration,
    /// Largest UDP payload accepted.
    pub max_udp_payload_size: u16,
}

/// The QUIC side of a TLS listener. `tls` is the listener's own configuration: cloning it keeps
/// its certificate resolver and client verifier (rotation and mutual TLS apply unchanged);
/// only ALPN and early data differ.
pub fn http3_spec(
    tls: &Arc<rustls::ServerConfig>,
    limits: Http3Limits,
) -> Result<Http3Spec, String> {
    let mut cfg = (**tls).clone();
    cfg.alpn_protocols = vec![b"h3".to_vec()];
    // No 0-RTT: early data can be replayed by an attacker, and requests are not all idempotent.
    cfg.max_early_data_size = 0;
    // QUIC negotiates TLS 1.3 only, whatever `min_version` allows over TCP (RFC 9001 §4.2).
    let crypto = QuicServerConfig::try_from(Arc::new(cfg)).map_err(|e| e.to_string())?;
    let mut transport = TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(limits.max_concurrent_streams))
        // The client's control stream and its two QPACK streams; it may open no others.
        .max_concurrent_uni_streams(VarInt::from_u32(3))
        .max_idle_timeout(Some(
            IdleTimeout::try_from(limits.idle_timeout).map_err(|e| e.to_string())?,
        ));
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport));
    Ok(Http3Spec {
        server,
        max_udp_payload_size: limits.max_udp_payload_size,
    })
}

/// Binds the UDP socket of an HTTP/3 listener (the TCP listener's address, port included).
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let sock = std::net::UdpSocket::bind(addr)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Accepts QUIC connections on `socket` until `stop` turns true; then refuses new ones, and
/// each connection sends GOAWAY and finishes its requests in flight (counted by `tracker`).
/// A reload applies the current listener's TLS and limits to new connections.
pub async fn serve_endpoint(
    shared: Arc<Shared>,
    mut spec: Arc<ListenerSpec>,
    socket: std::net::UdpSocket,
    stop: watch::Receiver<bool>,
    reloaded: Arc<Notify>,
    tracker: Arc<Tracker>,
) {
    let Some(h3) = spec.http3.clone() else {
        return;
    };
    let mut config = quinn::EndpointConfig::default();
    if let Err(e) = config.max_udp_payload_size(h3.max_udp_payload_size) {
        tracing::warn!(listener = %spec.name, error = %e, "http3: max_udp_payload_size refused");
    }
    let runtime = Arc::new(quinn::TokioRuntime);
    let endpoint = match quinn::Endpoint::new(config, Some(h3.server.clone()), socket, runtime) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(listener = %spec.name, error = %e, "http3: QUIC endpoint not started");
            return;
        }
    };
    if let Ok(addr) = endpoint.local_addr() {
        tracing::info!(listener = %spec.name, address = %addr, "http3 endpoint bound (UDP)");
    }
    let slots = Arc::new(Semaphore::new(spec.limits.max_connections.max(1)));
    let accepted = shared
        .metrics
        .connections_total
        .with_label_values(&[&spec.name]);
    let mut stop_accept = stop.clone();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
            _ = stopped(&mut stop_accept) => break,
            _ = reloaded.notified() => {
                spec = refresh(&shared, spec, &endpoint);
                continue;
            }
        };
        // Over `max_connections`: refused at once (a QUIC client retries or falls back to TCP).
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            incoming.refuse();
            continue;
        };
        accepted.inc();
        let held = (permit, tracker.enter());
        tokio::spawn(serve_connection(
            shared.clone(),
            spec.clone(),
            incoming,
            stop.clone(),
            held,
        ));
    }
    // New handshakes are refused; established connections drain on their own tasks, and the
    // socket closes when the last one ends.
    endpoint.set_server_config(None);
    tracing::debug!(listener = %spec.name, "http3 endpoint closed");
}

/// The listener's current spec; its QUIC configuration (certificates, limits) for new
/// connections when a reload changed it.
fn refresh(
    shared: &Shared,
    spec: Arc<ListenerSpec>,
    endpoint: &quinn::Endpoint,
) -> Arc<ListenerSpec> {
    let snap = shared.snapshot.load();
    let Some(cur) = snap.listeners.iter().find(|l| l.id == spec.id) else {
        return spec;
    };
    if Arc::ptr_eq(cur, &spec) {
        return spec;
    }
    if let Some(h3) = &cur.http3 {
        endpoint.set_server_config(Some(h3.server.clone()));
    }
    cur.clone()
}

/// Completes the handshake of one connection and serves HTTP/3 on it; `_held` (its connection
/// slot and drain tracking) is released when it ends.
async fn serve_connection(
    shared: Arc<Shared>,
    spec: Arc<ListenerSpec>,
    incoming: quinn::Incoming,
    mut stop: watch::Receiver<bool>,
    _held: (OwnedSemaphorePermit, TrackGuard),
) {
    let started = Instant::now();
    let handshake = async { incoming.accept()?.await };
    let wait = spec.limits.header_read_timeout;
    let handshake = tokio::time::timeout_at(started + wait, handshake).await;
    // As over TCP: a resumed session whose client certificate expired since fails like a
    // handshake.
    let accepted = handshake.ok().and_then(Result::ok).and_then(|conn| {
        let chain = conn.peer_identity().and_then(|id| {
            id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        });
        let leaf = chain.as_ref().and_then(|c| c.first()).map(|d| d.as_ref());
        match crate::tls::client_identity(leaf) {
            Ok(peer) => Some((conn, peer)),
            Err(crate::tls::Expired) => {
                conn.close(0u32.into(), b"client certificate expired");
                None
            }
        }
    });
    let Some((conn, peer)) = accepted else {
        shared
            .metrics
            .tls_handshake_errors
            .with_label_values(&[&spec.name])
            .inc();
        return;
    };
    let client = conn.remote_address();
    let peer = peer.map(Arc::new);
    let info = Arc::new(ConnInfo {
        listener: spec.clone(),
        client,
        client_ip: super::ip_header(client.ip()),
        peer_ip: None,
        // HTTP/1 state nobody reads on this connection, as on HTTP/2.
        h1: Arc::new(H1Shared::default()),
        peer,
        // This is the endpoint being advertised.
        alt_svc: None,
    });
    let active = shared
        .metrics
        .connections_active
        .with_label_values(&[&spec.name, "quic"]);
    active.inc();
    crate::h3conn::serve(&shared, info, conn, &mut stop).await;
    active.dec();
}
