//! Data plane: listeners, TLS, downstream connections, upstream client and pools, load balancing, health checks, forwarding.
//!
//! Request path: `server` (accept, TLS, `h1guard`, hyper) → `handler` (snapshot, route, filters) →
//! `forward` (next-hop headers, endpoint pick, `pool`) → response streamed back.
#![forbid(unsafe_code)]

pub mod body;
pub mod forward;
pub mod h1conn;
pub mod h1guard;
pub mod h2conn;
mod h2guard;
pub mod handler;
pub mod headers;
pub mod health;
pub mod pool;
pub mod reject;
pub mod server;
pub mod tls;
mod upguard;
mod vectored;

use std::sync::Arc;

use arc_swap::ArcSwap;
use strait_core::Snapshot;
use strait_observe::Metrics;

/// Process-wide data-plane state shared by every connection.
pub struct Shared {
    /// The snapshot requests read (loaded once per request).
    pub snapshot: ArcSwap<Snapshot>,
    /// Metric families.
    pub metrics: Arc<Metrics>,
    /// Upstream connection pools.
    pub pools: pool::Pools,
}

impl Shared {
    /// Creates the shared state around a first snapshot.
    pub fn new(snapshot: Arc<Snapshot>, metrics: Arc<Metrics>) -> Self {
        Shared {
            snapshot: ArcSwap::new(snapshot),
            metrics,
            pools: pool::Pools::default(),
        }
    }
}
