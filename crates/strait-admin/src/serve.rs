//! The admin listener's accept loop: HTTP/1.1 with a header read timeout (which is also the keep-alive idle time), a connection cap that closes the longest-idle connection to admit a new one (see `slots`), and a socket the control plane replaces live when `admin.listen` changes.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use hyper::{body::Incoming, server::conn::http1, Request};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use strait_config::AdminLimits;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{oneshot, watch},
};

use crate::{
    slots::{Admit, SlotId, Slots},
    AdminState,
};

/// Open admin connections: the slot table and how to close each one.
#[derive(Default)]
struct Table {
    slots: Slots,
    closers: HashMap<SlotId, oneshot::Sender<()>>,
}

type Shared = Arc<Mutex<Table>>;

fn lock(t: &Shared) -> MutexGuard<'_, Table> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves the admin router on the control plane's admin socket (following it when it moves)
/// until `stop` resolves (an upgrade handed the socket over) or the process exits.
pub async fn serve(state: Arc<AdminState>, stop: impl Future<Output = ()> + Send + 'static) {
    let router = crate::router(state.clone());
    let table: Shared = Arc::default();
    let (stopping, stopped) = watch::channel(false);
    let mut bindings = state.binding.clone();
    tokio::pin!(stop);
    let mut current: Option<(Arc<std::net::TcpListener>, TcpListener)> = None;
    loop {
        let binding = bindings.borrow_and_update().clone();
        if let Some(b) = &binding {
            let same = current
                .as_ref()
                .is_some_and(|(s, _)| Arc::ptr_eq(s, &b.socket));
            if !same {
                // The old listener (if any) is dropped here: the moved-from address closes.
                current = match listener_of(&b.socket) {
                    Ok(l) => Some((b.socket.clone(), l)),
                    Err(e) => {
                        tracing::error!(address = %b.local, error = %e, "admin listener unusable");
                        None
                    }
                };
            }
        }
        let limits = binding.map(|b| b.settings.limits).unwrap_or_default();
        let accept = async {
            match &current {
                Some((_, l)) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut stop => break,
            changed = bindings.changed() => {
                if changed.is_err() {
                    // The control plane is gone: nothing will be served again.
                    break;
                }
            }
            accepted = accept => match accepted {
                Ok((stream, _)) => admit(&table, stream, limits, &router, stopped.clone()),
                Err(e) => {
                    // Out of descriptors, most likely: give connections time to close.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    let _ = stopping.send(true);
}

fn listener_of(socket: &std::net::TcpListener) -> std::io::Result<TcpListener> {
    let s = socket.try_clone()?;
    s.set_nonblocking(true)?;
    TcpListener::from_std(s)
}

/// Takes a slot for `stream` (closing the longest-idle connection at the cap) and serves it.
fn admit(
    table: &Shared,
    stream: TcpStream,
    limits: AdminLimits,
    router: &axum::Router,
    mut stopped: watch::Receiver<bool>,
) {
    let (close_tx, close_rx) = oneshot::channel();
    let id = {
        let mut t = lock(table);
        let id = match t.slots.admit(limits.max_connections) {
            Admit::Open(id) => id,
            Admit::Evict { evict, id } => {
                if let Some(close) = t.closers.remove(&evict) {
                    let _ = close.send(());
                }
                tracing::debug!(
                    max_connections = limits.max_connections,
                    "admin connection limit reached; closed the longest-idle connection"
                );
                id
            }
            Admit::Refuse => {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "admin connection limit reached with every connection busy; connection refused"
                );
                return;
            }
        };
        t.closers.insert(id, close_tx);
        id
    };
    let inner = TowerToHyperService::new(router.clone());
    let busy_table = table.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let guard = Busy::new(busy_table.clone(), id);
        let fut = hyper::service::Service::call(&inner, req);
        async move {
            let r = fut.await;
            drop(guard);
            r
        }
    });
    let table = table.clone();
    tokio::spawn(async move {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            // Evicted: dropping the connection closes its socket.
            _ = close_rx => {}
            _ = async { stopped.wait_for(|s| *s).await.map(|_| ()) } => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(limits.header_read_timeout, conn).await;
            }
        }
        let mut t = lock(&table);
        t.slots.close(id);
        t.closers.remove(&id);
    });
}

/// Marks a connection as answering a request until dropped (so it is not evicted meanwhile).
struct Busy {
    table: Shared,
    id: SlotId,
}

impl Busy {
    fn new(table: Shared, id: SlotId) -> Self {
        lock(&table).slots.busy(id);
        Busy { table, id }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        lock(&self.table).slots.idle(self.id);
    }
}
