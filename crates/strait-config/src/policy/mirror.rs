//! Validated settings of the `mirror` policy: which shadow upstream gets copies of requests, how many, and the bounds on each copy.

use std::time::Duration;

/// `mirror:` a share of requests copied to a shadow upstream, fire and forget.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorPolicy {
    /// The shadow upstream (which exists).
    pub upstream: String,
    /// Share of requests copied, percent from 0 to 100 (default 100); fractions allowed.
    pub percentage: f64,
    /// Largest request body copied (default 64 KiB); a request with a larger one is not mirrored.
    pub max_body: u64,
    /// Most copies in flight at once (default 64); beyond it a copy is dropped, never queued.
    pub max_in_flight: u32,
    /// Bound on each copy, from sending to its whole response (default 5 s).
    pub timeout: Duration,
}
