//! The `fault` policy: abort a share of requests with a status, or delay a share by a duration, optionally only requests carrying a header (chaos tests and game days, as Envoy's fault filter).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, StatusCode};
use strait_core::{Decision, Filter, FilterState, Flow, Reply, RequestCtx};

/// Fault injection settings, parsed.
pub struct FaultFilter {
    name: Arc<str>,
    abort: Option<(StatusCode, f64)>,
    delay: Option<(Duration, f64)>,
    header: Option<HeaderName>,
}

impl FaultFilter {
    /// A fault filter called `name`; shares are from 0 to 1.
    pub fn new(
        name: &str,
        abort: Option<(StatusCode, f64)>,
        delay: Option<(Duration, f64)>,
        header: Option<HeaderName>,
    ) -> Self {
        FaultFilter {
            name: Arc::from(name),
            abort,
            delay,
            header,
        }
    }
}

/// True with probability `share`.
fn chance(share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    // 53 random bits give a uniform value in [0, 1).
    let r = (strait_core::rand::next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    r < share
}

fn abort_reply(status: StatusCode) -> Reply {
    Reply::text(status, "strait: fault injected\n", "fault_abort")
}

impl Filter for FaultFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "fault"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        if let Some(h) = &self.header {
            if !ctx.head.headers.contains_key(h) {
                return Flow::Continue;
            }
        }
        let abort = self
            .abort
            .filter(|(_, share)| chance(*share))
            .map(|(s, _)| s);
        match self.delay.filter(|(_, share)| chance(*share)) {
            Some((d, _)) => Flow::wait(async move {
                tokio::time::sleep(d).await;
                match abort {
                    Some(s) => Decision::Reply(abort_reply(s)),
                    None => Decision::Continue,
                }
            }),
            None => match abort {
                Some(s) => Flow::Reply(abort_reply(s)),
                None => Flow::Continue,
            },
        }
    }
}
