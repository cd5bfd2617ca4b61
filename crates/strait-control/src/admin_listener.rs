//! The admin listener's socket as control-plane state: a changed `admin.listen` is bound before the change is published (a taken port rejects the change, as for traffic listeners) and handed to the admin server after, with the rest of the `admin` section.

use std::{net::SocketAddr, sync::Arc};

use strait_config::Admin;
use tokio::{runtime::Handle, sync::watch};

/// The admin listener's name in a socket hand-off (not a valid listener name, so it cannot clash).
pub const HANDOFF_NAME: &str = "<admin>";

/// What the admin server serves: a listening socket and the `admin` settings in force.
#[derive(Clone, Debug)]
pub struct AdminBinding {
    /// The listening socket; the server accepts on a duplicate of it. A new `Arc` means a new
    /// socket (the address moved); the same one with new settings means only those changed.
    pub socket: Arc<std::net::TcpListener>,
    /// The bound address (the real port when configured with port 0).
    pub local: SocketAddr,
    /// The `admin` section in force.
    pub settings: Admin,
}

/// The admin socket across reloads.
pub struct AdminSlot {
    handle: Handle,
    /// The address as configured, so an unchanged one (port 0 included) is not re-bound.
    configured: Option<SocketAddr>,
    /// The address bound: a document naming it (the real port of a port-0 listener, as a
    /// configuration read back and written again does) keeps the socket too.
    local: Option<SocketAddr>,
    /// A socket handed over by the process being replaced, until claimed.
    inherited: Option<(SocketAddr, std::net::TcpListener)>,
    tx: watch::Sender<Option<AdminBinding>>,
}

/// A socket bound for an `admin` section that is not published yet.
pub struct PreparedAdmin(Option<(SocketAddr, std::net::TcpListener)>);

impl AdminSlot {
    /// No socket yet; `inherited` is the admin socket an upgrading process handed over.
    pub fn new(handle: Handle, inherited: Option<(SocketAddr, std::net::TcpListener)>) -> Self {
        AdminSlot {
            handle,
            configured: None,
            local: None,
            inherited,
            tx: watch::channel(None).0,
        }
    }

    /// The bindings the admin server follows.
    pub fn subscribe(&self) -> watch::Receiver<Option<AdminBinding>> {
        self.tx.subscribe()
    }

    /// The current socket and its configured address (for handing over to a new process).
    pub fn socket(&self) -> Option<(SocketAddr, Arc<std::net::TcpListener>)> {
        let b = self.tx.borrow();
        Some((self.configured?, b.as_ref()?.socket.clone()))
    }

    /// Binds `admin.listen` when it differs from the running address; the error says why.
    pub fn prepare(&mut self, admin: &Admin) -> Result<PreparedAdmin, String> {
        if self.configured == Some(admin.listen) || self.local == Some(admin.listen) {
            return Ok(PreparedAdmin(None));
        }
        if let Some((addr, s)) = self.inherited.take() {
            if addr == admin.listen {
                return s
                    .set_nonblocking(true)
                    .map(|()| PreparedAdmin(Some((addr, s))))
                    .map_err(|e| format!("admin.listen: inherited socket: {e}"));
            }
        }
        let _guard = self.handle.enter();
        strait_proxy::server::bind(admin.listen)
            .and_then(|l| l.into_std())
            .map(|l| PreparedAdmin(Some((admin.listen, l))))
            .map_err(|e| format!("admin.listen: cannot bind {}: {e}", admin.listen))
    }

    /// Publishes `admin` with the socket `prepared` bound (or the running one).
    pub fn commit(&mut self, admin: &Admin, prepared: PreparedAdmin) {
        self.inherited = None;
        let socket = match prepared.0 {
            Some((configured, socket)) => {
                let local = socket.local_addr().unwrap_or(configured);
                if self.configured.is_some() {
                    tracing::info!(address = %local, "admin listener moved");
                }
                tracing::info!(address = %local, "admin bound");
                self.configured = Some(configured);
                self.local = Some(local);
                Some((Arc::new(socket), local))
            }
            None => {
                if self.configured.is_some() {
                    self.configured = Some(admin.listen);
                }
                None
            }
        };
        self.tx.send_modify(|b| match (socket, b.as_mut()) {
            (Some((socket, local)), _) => {
                *b = Some(AdminBinding {
                    socket,
                    local,
                    settings: admin.clone(),
                })
            }
            (None, Some(current)) => current.settings = admin.clone(),
            (None, None) => {}
        });
    }
}
