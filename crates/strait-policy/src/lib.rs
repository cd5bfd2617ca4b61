//! Built-in filters (policies) attached to routes; each is a `strait_core::Filter`.
#![forbid(unsafe_code)]

pub mod headers;

pub use headers::{HeaderOps, HeadersFilter};
