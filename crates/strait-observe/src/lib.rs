//! Observability: Prometheus metric families and request stats handles, OpenMetrics with exemplars,
//! the JSON access log, and request tracing with OTLP export.
//!
//! Everything the request path touches is pre-resolved or lock-free; formatting, encoding and
//! I/O happen in the access log thread and the exporter task, behind bounded queues.
#![forbid(unsafe_code)]

pub mod access_log;
mod metrics;
pub mod observer;
pub mod openmetrics;
pub mod record;
mod retain;
mod stats;
pub mod trace;

pub use metrics::{method_label, Metrics, UpstreamTotals};
pub use observer::{ObserveRuntime, Observer};
pub use record::{Attempt, RequestRecord, TraceCtx};
pub use retain::InUse;
pub use stats::{RouteStats, StatsKey};
