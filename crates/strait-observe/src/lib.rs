//! Observability: the Prometheus metric families every other crate records into, and request stats handles.
#![forbid(unsafe_code)]

mod metrics;
mod stats;

pub use metrics::{method_label, Metrics};
pub use stats::{RouteStats, StatsKey};
