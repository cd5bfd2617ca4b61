//! Live listeners: bind what a new snapshot adds or moves before it is published, stop what it removes, adopt sockets handed over by an upgrading process. A listener with `http3` also runs a QUIC endpoint on the same port (UDP), started and stopped with it, or alone when a reload turns `http3` on or off.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use std::net::UdpSocket;

use strait_proxy::{
    server::{self, quic, Tracker},
    Shared,
};
use strait_proxy::{snapshot::ListenerSpec, Snapshot};
use tokio::{
    net::TcpListener,
    runtime::Handle,
    sync::{watch, Notify},
};

/// Accept loops keyed by listener name.
pub struct ListenerSet {
    handle: Handle,
    tracker: Arc<Tracker>,
    running: HashMap<Arc<str>, Running>,
    /// Sockets inherited from the previous process, by listener name and configured address
    /// (several listeners may be configured on port 0), until claimed.
    inherited: HashMap<(String, SocketAddr), std::net::TcpListener>,
}

struct Running {
    /// The address as configured (port 0 stays 0, so an unchanged listener is not re-bound).
    configured: SocketAddr,
    local: SocketAddr,
    stop: watch::Sender<bool>,
    /// Tells the accept loop a new snapshot is out (see `server::serve_listener`).
    reloaded: Arc<Notify>,
    /// A duplicate of the listening socket, for handing over to a new process.
    socket: Option<std::net::TcpListener>,
    /// The HTTP/3 endpoint, when the listener has `http3`.
    quic: Option<Endpoint>,
}

/// A running QUIC endpoint (see `server::quic::serve_endpoint`).
struct Endpoint {
    stop: watch::Sender<bool>,
    reloaded: Arc<Notify>,
}

impl Endpoint {
    fn start(
        shared: &Arc<Shared>,
        handle: &Handle,
        tracker: &Arc<Tracker>,
        spec: Arc<ListenerSpec>,
        udp: UdpSocket,
    ) -> Endpoint {
        let (stop, stop_rx) = watch::channel(false);
        let reloaded = Arc::new(Notify::new());
        handle.spawn(quic::serve_endpoint(
            shared.clone(),
            spec,
            udp,
            stop_rx,
            reloaded.clone(),
            tracker.clone(),
        ));
        Endpoint { stop, reloaded }
    }
}

/// Listeners bound for a snapshot that is not published yet.
pub struct Prepared {
    /// New or moved listeners, with their UDP socket when they serve HTTP/3.
    bound: Vec<(Arc<ListenerSpec>, TcpListener, Option<UdpSocket>)>,
    /// Running listeners on which a reload turned `http3` on.
    udp: Vec<(Arc<ListenerSpec>, UdpSocket)>,
}

impl ListenerSet {
    /// An empty set spawning accept loops on `handle`.
    pub fn new(handle: Handle, tracker: Arc<Tracker>) -> Self {
        ListenerSet {
            handle,
            tracker,
            running: HashMap::new(),
            inherited: HashMap::new(),
        }
    }

    /// Offers sockets handed over by the process being replaced; they are used for listeners
    /// configured on the same address instead of binding anew.
    pub fn inherit(&mut self, sockets: Vec<(String, SocketAddr, std::net::TcpListener)>) {
        self.inherited
            .extend(sockets.into_iter().map(|(n, a, s)| ((n, a), s)));
    }

    /// Binds every listener of `snap` that is new or moved; the error names the listener.
    pub fn prepare(&mut self, snap: &Snapshot) -> Result<Prepared, (usize, String)> {
        let mut bound = Vec::new();
        let mut udp = Vec::new();
        let udp_err = |i: usize, spec: &ListenerSpec, addr: SocketAddr, e: std::io::Error| {
            let what = format!(
                "listener {}: cannot bind {addr} (UDP, http3): {e}",
                spec.name
            );
            (i, what)
        };
        for (i, spec) in snap.listeners.iter().enumerate() {
            if let Some(r) = self.running.get(&spec.name) {
                if r.configured == spec.addr {
                    if spec.http3.is_some() && r.quic.is_none() {
                        let sock =
                            quic::bind_udp(r.local).map_err(|e| udp_err(i, spec, r.local, e))?;
                        udp.push((spec.clone(), sock));
                    }
                    continue;
                }
            }
            let inherited = self.inherited.remove(&(spec.name.to_string(), spec.addr));
            let listener = match inherited {
                Some(std) => {
                    let _guard = self.handle.enter();
                    std.set_nonblocking(true)
                        .and_then(|()| TcpListener::from_std(std))
                }
                None => {
                    let _guard = self.handle.enter();
                    server::bind(spec.addr)
                }
            };
            match listener {
                Ok(l) => {
                    // The same port over UDP: what Alt-Svc advertises.
                    let sock = match (&spec.http3, l.local_addr()) {
                        (Some(_), Ok(local)) => {
                            Some(quic::bind_udp(local).map_err(|e| udp_err(i, spec, local, e))?)
                        }
                        _ => None,
                    };
                    bound.push((spec.clone(), l, sock))
                }
                Err(e) => {
                    return Err((
                        i,
                        format!("listener {}: cannot bind {}: {e}", spec.name, spec.addr),
                    ))
                }
            }
        }
        Ok(Prepared { bound, udp })
    }

    /// Starts the prepared accept loops and stops those `snap` no longer has (their
    /// connections drain: in-flight requests finish, idle connections close).
    pub fn commit(&mut self, shared: &Arc<Shared>, snap: &Snapshot, prepared: Prepared) {
        // Inherited sockets no listener claimed are closed (the old process still holds them).
        self.inherited.clear();
        for (spec, listener, udp) in prepared.bound {
            let local = listener.local_addr().unwrap_or(spec.addr);
            let socket = dup(&listener);
            let (stop, stop_rx) = watch::channel(false);
            let reloaded = Arc::new(Notify::new());
            tracing::info!(listener = %spec.name, address = %local, "listener bound");
            let quic =
                udp.map(|u| Endpoint::start(shared, &self.handle, &self.tracker, spec.clone(), u));
            if let Some(old) = self.running.insert(
                spec.name.clone(),
                Running {
                    configured: spec.addr,
                    local,
                    stop,
                    reloaded: reloaded.clone(),
                    socket,
                    quic,
                },
            ) {
                tracing::info!(listener = %spec.name, address = %old.local, "listener moved; old address closed");
                old.stop_all();
            }
            self.handle.spawn(server::serve_listener(
                shared.clone(),
                spec,
                listener,
                stop_rx,
                reloaded,
                self.tracker.clone(),
            ));
        }
        for (spec, sock) in prepared.udp {
            if let Some(r) = self.running.get_mut(&spec.name) {
                let e = Endpoint::start(shared, &self.handle, &self.tracker, spec.clone(), sock);
                if let Some(old) = r.quic.replace(e) {
                    let _ = old.stop.send(true);
                }
            }
        }
        let names: Vec<Arc<str>> = self.running.keys().cloned().collect();
        for name in names {
            match snap.listeners.iter().find(|l| l.name == name) {
                None => {
                    if let Some(old) = self.running.remove(&name) {
                        tracing::info!(listener = %name, address = %old.local, "listener removed");
                        old.stop_all();
                    }
                }
                Some(l) if l.http3.is_none() => {
                    // A reload turned `http3` off: the endpoint drains (GOAWAY) and closes.
                    let r = self.running.get_mut(&name);
                    if let Some(q) = r.and_then(|r| r.quic.take()) {
                        tracing::info!(listener = %name, "http3 endpoint removed");
                        let _ = q.stop.send(true);
                    }
                }
                Some(_) => {}
            }
        }
        // Wakes accept loops that wait for a connection slot, so a raised `max_connections`
        // applies at once.
        for r in self.running.values() {
            r.reloaded.notify_one();
            if let Some(q) = &r.quic {
                // New QUIC connections take the new certificates and limits.
                q.reloaded.notify_one();
            }
        }
    }

    /// Stops accepting everywhere (shutdown); open connections drain.
    pub fn stop_all(&mut self) {
        // Dropping the entries also closes the duplicates kept for hand-off, so the kernel
        // refuses new connections instead of queueing them on a socket nobody accepts from.
        for (name, r) in self.running.drain() {
            tracing::debug!(listener = %name, "listener stopping");
            r.stop_all();
        }
    }

    /// Duplicates of the listening sockets with their configured addresses, for a new process.
    pub fn sockets(&self) -> Vec<(String, SocketAddr, &std::net::TcpListener)> {
        self.running
            .iter()
            .filter_map(|(name, r)| {
                r.socket
                    .as_ref()
                    .map(|s| (name.to_string(), r.configured, s))
            })
            .collect()
    }

    /// Bound addresses by listener name.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.running
            .iter()
            .map(|(n, r)| (n.to_string(), r.local))
            .collect()
    }
}

impl Running {
    /// Stops accepting on TCP and QUIC; open connections drain.
    fn stop_all(self) {
        let _ = self.stop.send(true);
        if let Some(q) = self.quic {
            let _ = q.stop.send(true);
        }
    }
}

fn dup(l: &TcpListener) -> Option<std::net::TcpListener> {
    let sock = socket2::SockRef::from(l);
    sock.try_clone().ok().map(Into::into)
}
