//! Built-in filters (policies) attached to routes; each is a `strait_core::Filter`.
#![forbid(unsafe_code)]

pub mod concurrency;
pub mod fault;
pub mod headers;
pub mod ratelimit;

pub use concurrency::{ConcurrencyFilter, InFlight};
pub use fault::FaultFilter;
pub use headers::{HeaderOps, HeadersFilter};
pub use ratelimit::RateLimitFilter;
