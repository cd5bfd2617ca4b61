//! A listener's `client_address` setting at run time: which peers' forwarded-for header is believed, and the per-request resolution that makes the resolved address the request's client.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use strait_core::net::{canonical, resolve_client, Cidr, IpSet};

use crate::handler::ConnInfo;

/// Trusted proxies and the header they name the client in.
#[derive(Debug)]
pub struct ClientResolver {
    trusted: IpSet,
    header: HeaderName,
}

impl ClientResolver {
    /// A resolver trusting `trusted` to set `header`.
    pub fn new(trusted: &[Cidr], header: HeaderName) -> Self {
        ClientResolver {
            trusted: IpSet::new(trusted),
            header,
        }
    }

    /// The client behind `peer` for a request with `headers` (the peer when it is not trusted).
    pub fn resolve(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        let values = headers.get_all(&self.header).iter().map(|v| v.as_bytes());
        let ip = resolve_client(peer.ip(), values, &self.trusted);
        if ip == canonical(peer.ip()) || ip == peer.ip() {
            peer
        } else {
            // The port of a forwarded client is unknown.
            SocketAddr::new(ip, 0)
        }
    }
}

/// The connection as this request sees it: `conn` itself, or a copy naming the resolved client
/// (allocated only when the listener has `client_address` and the client is not the peer).
pub fn for_request(conn: Arc<ConnInfo>, headers: &HeaderMap) -> Arc<ConnInfo> {
    let Some(r) = conn.listener.client_address.as_deref() else {
        return conn;
    };
    let client = r.resolve(conn.client, headers);
    if client == conn.client {
        return conn;
    }
    Arc::new(ConnInfo {
        listener: conn.listener.clone(),
        client,
        client_ip: crate::server::ip_header(client.ip()),
        peer_ip: Some(conn.client_ip.clone()),
        h1: conn.h1.clone(),
        peer: conn.peer.clone(),
        alt_svc: conn.alt_svc.clone(),
    })
}
