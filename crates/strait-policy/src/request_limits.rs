//! The `request_limits` policy: a per-route body cap (413 `body_too_large`, at once from `Content-Length`, or when a streamed body crosses it) and a per-route deadline for the upstream's response head (504 `request_timeout`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, StatusCode};
use strait_core::{Filter, FilterState, Flow, Reply, RequestCtx, RouteLimits};

/// Per-route request bounds; forwarding enforces the streamed part through [`RouteLimits`].
pub struct RequestLimitsFilter {
    name: Arc<str>,
    max_body: u64,
    timeout: Option<Duration>,
}

impl RequestLimitsFilter {
    /// Bounds called `name`; `max_body` 0 = no cap, `timeout` `None` = no deadline.
    pub fn new(name: &str, max_body: u64, timeout: Option<Duration>) -> Self {
        RequestLimitsFilter {
            name: Arc::from(name),
            max_body,
            timeout,
        }
    }
}

/// The 413 reply.
pub fn too_large() -> Reply {
    Reply::text(
        StatusCode::PAYLOAD_TOO_LARGE,
        "strait: request body too large\n",
        "body_too_large",
    )
}

impl Filter for RequestLimitsFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "request_limits"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        if self.max_body > 0 {
            let declared = ctx
                .head
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.max_body) {
                return Flow::Reply(too_large());
            }
        }
        ctx.head.extensions.insert(RouteLimits {
            policy: self.name.clone(),
            max_body: self.max_body,
            deadline: self.timeout.map(|t| Instant::now() + t),
        });
        Flow::Continue
    }
}
