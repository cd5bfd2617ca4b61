//! Built-in filters (policies) attached to routes; each is a `strait_core::Filter`.
#![forbid(unsafe_code)]

pub mod fault;
pub mod headers;
pub mod jwt;

pub use fault::FaultFilter;
pub use headers::{HeaderOps, HeadersFilter};
pub use jwt::JwtFilter;
