//! Data plane: listeners, TLS, downstream connections, upstream client and pools, load balancing, health checks, forwarding.
//!
//! Request path: `server` (accept, TLS, `h1guard`, hyper; QUIC in `server::quic`, HTTP/3 in
//! `h3conn`) → `handler` (snapshot, `hygiene`, route, filter chain) → `forward` (next-hop headers, endpoint pick, attempts, `pool`) → response
//! streamed back. The runtime types the control plane compiles (`snapshot`, `route`,
//! `upstream`) live here too: they hold TLS configs and metric handles, which `strait-core`
//! must not depend on.
#![forbid(unsafe_code)]

pub mod body;
pub mod client_addr;
pub mod errlog;
pub mod filtered;
pub mod forward;
#[doc(hidden)]
pub mod guard_bench;
pub mod h1conn;
pub mod h1guard;
pub mod h2conn;
mod h2guard;
pub mod h3conn;
pub mod handler;
pub mod headers;
pub mod health;
pub mod hygiene;
pub mod pool;
pub mod reject;
pub mod replay;
pub mod retry;
pub mod route;
pub mod server;
pub mod snapshot;
pub mod split;
pub mod subrequest;
pub mod tls;
mod upguard;
pub mod upstream;
mod vectored;

use std::sync::Arc;

use arc_swap::ArcSwap;
pub use snapshot::Snapshot;
use strait_observe::Metrics;

/// Process-wide data-plane state shared by every connection.
pub struct Shared {
    /// The snapshot requests read (loaded once per request).
    pub snapshot: ArcSwap<Snapshot>,
    /// Metric families.
    pub metrics: Arc<Metrics>,
    /// Upstream connection pools (shared with the policies' upstream clients).
    pub pools: Arc<pool::Pools>,
}

impl Shared {
    /// Creates the shared state around a first snapshot.
    pub fn new(snapshot: Arc<Snapshot>, metrics: Arc<Metrics>, pools: Arc<pool::Pools>) -> Self {
        Shared {
            snapshot: ArcSwap::new(snapshot),
            metrics,
            pools,
        }
    }
}
