//! Shared runtime vocabulary: the Filter model and its Chain, the typed LiveState registry, errors, and the pure decisions (balancing, retry budgets, breakers, outlier ejection).
//!
//! Policy crates build on this crate alone, so it depends on nothing heavier than `http`:
//! the snapshot types that hold TLS configs and metric handles live in `strait-proxy`.
#![forbid(unsafe_code)]

pub mod balance;
pub mod chain;
pub mod clock;
pub mod colour;
pub mod cookie;
pub mod error;
pub mod filter;
pub mod identity;
pub mod limits;
pub mod live;
pub mod net;
pub mod rand;
pub mod rate;
pub mod resilience;
pub mod rollout;
pub mod split;
pub mod subrequest;

pub use chain::{Chain, ChainRun};
pub use colour::Colour;
pub use error::{ErrorKind, ProxyError, Side};
pub use filter::{
    BodyFilter, BodyFlow, Decision, Filter, FilterState, Flow, Hooks, Outcome, Reply, RequestCtx,
    ResponseCtx,
};
pub use identity::{Claims, Consumer, PeerCert};
pub use limits::RouteLimits;
pub use live::LiveState;
pub use subrequest::UpstreamClient;
