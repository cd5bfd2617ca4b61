//! Built-in filters (policies) attached to routes; each is a `strait_core::Filter`.
#![forbid(unsafe_code)]

pub mod api_key;
pub mod basic_auth;
pub mod client_cert;
pub mod colour;
pub mod concurrency;
pub mod consumer;
pub mod cors;
pub mod fault;
pub mod forward_auth;
pub mod headers;
pub mod ip_rules;
pub mod jwt;
pub mod mirror;
pub mod ratelimit;
pub mod request_limits;

pub use api_key::ApiKeyFilter;
pub use basic_auth::BasicAuthFilter;
pub use client_cert::ClientCertFilter;
pub use colour::{ColourFilter, ColourKey, ColourMetrics};
pub use concurrency::{ConcurrencyFilter, InFlight};
pub use consumer::ConsumerTag;
pub use cors::{CorsFilter, CorsSettings, OriginRule};
pub use fault::FaultFilter;
pub use forward_auth::ForwardAuthFilter;
pub use headers::{HeaderOps, HeadersFilter};
pub use ip_rules::IpRulesFilter;
pub use jwt::JwtFilter;
pub use mirror::MirrorFilter;
pub use ratelimit::RateLimitFilter;
pub use request_limits::RequestLimitsFilter;
