//! Compiles the `mirror` policy: the shadow upstream's client, its in-flight bound fetched from live state (so copies still out when a reload keeps the bound count against it), and its counters.

use std::sync::Arc;

use strait_config as cfg;
use strait_core::{live::fingerprint, Filter};
use strait_policy::mirror::{MirrorCounters, Share};
use strait_policy::MirrorFilter;
use tokio::sync::Semaphore;

use super::policy::PolicyCx;

/// A `mirror` policy's filter.
pub(super) fn mirror(
    name: &str,
    m: &cfg::MirrorPolicy,
    cx: &PolicyCx<'_>,
) -> Result<Arc<dyn Filter>, String> {
    let client = cx
        .client(&m.upstream)
        .map_err(|e| format!("mirror.upstream: {e}"))?;
    let max = m.max_in_flight as usize;
    let slots = cx
        .live
        .get_or_insert("mirror", name, fingerprint(&max), || Semaphore::new(max));
    let counter = |result: &str| {
        cx.metrics
            .mirror_requests
            .with_label_values(&[name, result])
    };
    // Every result's series exists from the start, so rate() works before the first copy.
    let counters = MirrorCounters {
        sent: counter("sent"),
        error: counter("error"),
        timeout: counter("timeout"),
        dropped_busy: counter("dropped_busy"),
        dropped_body_too_large: counter("dropped_body_too_large"),
    };
    Ok(Arc::new(MirrorFilter::new(
        name,
        client,
        Share::from_percent(m.percentage),
        m.max_body,
        m.timeout,
        slots,
        counters,
    )))
}
