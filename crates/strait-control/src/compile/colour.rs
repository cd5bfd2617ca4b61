//! Compiles the `colour` policy: its colours, fallback and per-colour counters into the settings shared by every request it colours, and its filter.

use std::sync::Arc;

use http::HeaderName;
use strait_config as cfg;
use strait_core::colour::{ColourFallback, ColourSet};
use strait_core::Filter;
use strait_policy::{ColourFilter, ColourKey, ColourMetrics};

use super::policy::PolicyCx;

/// A `colour` policy's filter.
pub(super) fn colour(
    name: &str,
    c: &cfg::ColourPolicy,
    cx: &PolicyCx<'_>,
) -> Result<Arc<dyn Filter>, String> {
    let header = |h: &str| {
        HeaderName::from_bytes(h.as_bytes()).map_err(|e| format!("colour header {h}: {e}"))
    };
    let derive = match &c.derive {
        None => None,
        Some(cfg::ColourKey::Header(h)) => Some(ColourKey::Header(header(h)?)),
        Some(cfg::ColourKey::Cookie(k)) => Some(ColourKey::Cookie(k.as_str().into())),
        Some(cfg::ColourKey::Claim(k)) => Some(ColourKey::Claim(k.as_str().into())),
        Some(cfg::ColourKey::Consumer) => Some(ColourKey::Consumer),
        Some(cfg::ColourKey::ClientIp) => Some(ColourKey::ClientIp),
    };
    let family = &cx.metrics.colour_requests;
    let counters = c
        .values
        .iter()
        .map(|v| {
            ["matched", "fallback", "rejected", "passed"]
                .map(|r| family.with_label_values(&[name, v, r]))
        })
        .collect();
    let set = ColourSet {
        policy: Arc::from(name),
        label: Arc::from(c.label.as_str()),
        values: c.values.iter().map(|v| Arc::from(v.as_str())).collect(),
        fallback: match c.fallback {
            cfg::ColourFallback::Any => ColourFallback::Any,
            cfg::ColourFallback::Reject => ColourFallback::Reject,
        },
        counters: Box::new(ColourMetrics(counters)),
    };
    Ok(Arc::new(ColourFilter::new(
        Arc::new(set),
        header(&c.header)?,
        derive,
    )?))
}
