//! Validation of an upstream's resilience settings: outlier detection, circuit breaker, connection limits.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{pos, Ctx};
use crate::policy::{BreakerScope, CircuitBreaker, OutlierDetection, UpstreamLimits};
use crate::raw::{RawBreaker, RawOutlier, RawUpstreamLimits};

/// `outlier_detection:`; the defaults apply when it is absent.
pub(super) fn outlier(cx: &mut Ctx, raw: Option<&Spanned<RawOutlier>>) -> OutlierDetection {
    let d = OutlierDetection::default();
    let Some(raw) = raw else { return d };
    let o = &raw.value;
    let out = OutlierDetection {
        consecutive_gateway_failures: cx.count(
            o.consecutive_gateway_failures.as_ref(),
            "outlier_detection.consecutive_gateway_failures",
            d.consecutive_gateway_failures,
            (0, 1_000),
        ),
        consecutive_5xx: cx.count(
            o.consecutive_5xx.as_ref(),
            "outlier_detection.consecutive_5xx",
            d.consecutive_5xx,
            (0, 1_000),
        ),
        base_ejection_time: cx.duration(
            o.base_ejection_time.as_ref(),
            "outlier_detection.base_ejection_time",
            d.base_ejection_time,
            false,
        ),
        max_ejection_time: cx.duration(
            o.max_ejection_time.as_ref(),
            "outlier_detection.max_ejection_time",
            d.max_ejection_time,
            false,
        ),
        max_ejection_percent: cx.count(
            o.max_ejection_percent.as_ref(),
            "outlier_detection.max_ejection_percent",
            d.max_ejection_percent,
            (0, 100),
        ),
    };
    if out.max_ejection_time < out.base_ejection_time {
        let at = o.max_ejection_time.as_ref().map_or(pos(raw), pos);
        cx.err(
            at,
            "outlier_detection.max_ejection_time must not be below base_ejection_time",
        );
    }
    out
}

/// `circuit_breaker:`.
pub(super) fn breaker(cx: &mut Ctx, raw: &Spanned<RawBreaker>) -> CircuitBreaker {
    let b = &raw.value;
    let out = CircuitBreaker {
        failure_ratio: cx.ratio(
            b.failure_ratio.as_ref(),
            "circuit_breaker.failure_ratio",
            0.5,
        ),
        min_requests: cx.count(
            b.min_requests.as_ref(),
            "circuit_breaker.min_requests",
            20u32,
            (1, 1_000_000),
        ),
        window: cx.duration(
            b.window.as_ref(),
            "circuit_breaker.window",
            Duration::from_secs(10),
            false,
        ),
        consecutive_failures: cx.count(
            b.consecutive_failures.as_ref(),
            "circuit_breaker.consecutive_failures",
            0u32,
            (0, 1_000_000),
        ),
        open_for: cx.duration(
            b.open_for.as_ref(),
            "circuit_breaker.open_for",
            Duration::from_secs(30),
            false,
        ),
        half_open_requests: cx.count(
            b.half_open_requests.as_ref(),
            "circuit_breaker.half_open_requests",
            3u32,
            (1, 1_000),
        ),
        scope: cx.token(
            b.scope.as_ref(),
            "circuit_breaker.scope",
            &[
                ("upstream", BreakerScope::Upstream),
                ("endpoint", BreakerScope::Endpoint),
            ],
            BreakerScope::Upstream,
        ),
    };
    if out.failure_ratio == 0.0 && out.consecutive_failures == 0 {
        cx.err(
            pos(raw),
            "circuit_breaker never opens: set failure_ratio above 0 or consecutive_failures",
        );
    }
    out
}

/// `limits:` per endpoint.
pub(super) fn limits(cx: &mut Ctx, raw: Option<&Spanned<RawUpstreamLimits>>) -> UpstreamLimits {
    let d = UpstreamLimits::default();
    let Some(raw) = raw else { return d };
    UpstreamLimits {
        max_connections: cx.count(
            raw.value.max_connections.as_ref(),
            "limits.max_connections",
            d.max_connections,
            (1, 1_000_000),
        ),
        max_pending: cx.count(
            raw.value.max_pending.as_ref(),
            "limits.max_pending",
            d.max_pending,
            (0, 1_000_000),
        ),
    }
}
