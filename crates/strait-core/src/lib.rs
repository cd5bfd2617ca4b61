//! Shared runtime vocabulary: Snapshot, runtime Route/Upstream/Endpoint types, the Filter and Chain traits, errors.
//!
//! The control plane compiles configuration into these types; the data plane only reads them.
#![forbid(unsafe_code)]

pub mod balance;
pub mod error;
pub mod filter;
pub mod live;
pub mod rand;
pub mod route;
pub mod snapshot;
pub mod upstream;

pub use error::ProxyError;
pub use filter::{Chain, Filter, RequestCtx, Verdict};
pub use live::LiveState;
pub use route::{Action, Redirect, Respond, Rewrite, Route};
pub use snapshot::{ListenerRoutes, RouteEntry, Snapshot};
pub use upstream::{Endpoint, EndpointState, HashOn, Protocol, Upstream, UpstreamTimeouts};
