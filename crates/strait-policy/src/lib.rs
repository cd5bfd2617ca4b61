//! Built-in filters (policies) attached to routes; each is a `strait_core::Filter`.
#![forbid(unsafe_code)]

pub mod api_key;
pub mod basic_auth;
pub mod consumer;
pub mod fault;
pub mod forward_auth;
pub mod headers;

pub use api_key::ApiKeyFilter;
pub use basic_auth::BasicAuthFilter;
pub use consumer::ConsumerTag;
pub use fault::FaultFilter;
pub use forward_auth::ForwardAuthFilter;
pub use headers::{HeaderOps, HeadersFilter};
