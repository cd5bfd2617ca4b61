//! Built-in filters (policies) attached to routes; each is a `strait_core::Filter`.
#![forbid(unsafe_code)]

pub mod cors;
pub mod fault;
pub mod headers;
pub mod ip_rules;
pub mod request_limits;

pub use cors::{CorsFilter, CorsSettings, OriginRule};
pub use fault::FaultFilter;
pub use headers::{HeaderOps, HeadersFilter};
pub use ip_rules::IpRulesFilter;
pub use request_limits::RequestLimitsFilter;
