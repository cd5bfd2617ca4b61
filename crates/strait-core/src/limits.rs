//! Per-route request bounds a policy hands to forwarding through the request's extensions: the body cap and the deadline for the upstream's response head.

use std::sync::Arc;
use std::time::Instant;

/// Bounds set by a `request_limits` policy in `RequestCtx::head.extensions`; forwarding caps
/// the body stream and its deadline with them, and names the policy when they are exceeded.
#[derive(Clone, Debug)]
pub struct RouteLimits {
    /// The policy that set them (the denying policy in metrics and the access log).
    pub policy: Arc<str>,
    /// Largest request body in bytes; 0 = no cap of the policy's own.
    pub max_body: u64,
    /// The upstream's response head must arrive before this; `None` = no deadline of its own.
    pub deadline: Option<Instant>,
}
