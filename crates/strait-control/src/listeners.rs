//! Live listeners: bind what a new snapshot adds or moves before it is published, stop what it removes, adopt sockets handed over by an upgrading process.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use strait_proxy::{
    server::{self, Tracker},
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
}

/// Listeners bound for a snapshot that is not published yet.
pub struct Prepared {
    bound: Vec<(Arc<ListenerSpec>, TcpListener)>,
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
        for (i, spec) in snap.listeners.iter().enumerate() {
            if let Some(r) = self.running.get(&spec.name) {
                if r.configured == spec.addr {
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
                Ok(l) => bound.push((spec.clone(), l)),
                Err(e) => {
                    return Err((
                        i,
                        format!("listener {}: cannot bind {}: {e}", spec.name, spec.addr),
                    ))
                }
            }
        }
        Ok(Prepared { bound })
    }

    /// Starts the prepared accept loops and stops those `snap` no longer has (their
    /// connections drain: in-flight requests finish, idle connections close).
    pub fn commit(&mut self, shared: &Arc<Shared>, snap: &Snapshot, prepared: Prepared) {
        // Inherited sockets no listener claimed are closed (the old process still holds them).
        self.inherited.clear();
        for (spec, listener) in prepared.bound {
            let local = listener.local_addr().unwrap_or(spec.addr);
            let socket = dup(&listener);
            let (stop, stop_rx) = watch::channel(false);
            let reloaded = Arc::new(Notify::new());
            tracing::info!(listener = %spec.name, address = %local, "listener bound");
            if let Some(old) = self.running.insert(
                spec.name.clone(),
                Running {
                    configured: spec.addr,
                    local,
                    stop,
                    reloaded: reloaded.clone(),
                    socket,
                },
            ) {
                tracing::info!(listener = %spec.name, address = %old.local, "listener moved; old address closed");
                let _ = old.stop.send(true);
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
        let names: Vec<Arc<str>> = self.running.keys().cloned().collect();
        for name in names {
            if !snap.listeners.iter().any(|l| l.name == name) {
                if let Some(old) = self.running.remove(&name) {
                    tracing::info!(listener = %name, address = %old.local, "listener removed");
                    let _ = old.stop.send(true);
                }
            }
        }
        // Wakes accept loops that wait for a connection slot, so a raised `max_connections`
        // applies at once.
        for r in self.running.values() {
            r.reloaded.notify_one();
        }
    }

    /// Stops accepting everywhere (shutdown); open connections drain.
    pub fn stop_all(&mut self) {
        // Dropping the entries also closes the duplicates kept for hand-off, so the kernel
        // refuses new connections instead of queueing them on a socket nobody accepts from.
        for (name, r) in self.running.drain() {
            let sent = r.stop.send(true);
            tracing::debug!(listener = %name, ok = sent.is_ok(), "listener stopping");
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

fn dup(l: &TcpListener) -> Option<std::net::TcpListener> {
    let sock = socket2::SockRef::from(l);
    sock.try_clone().ok().map(Into::into)
}
