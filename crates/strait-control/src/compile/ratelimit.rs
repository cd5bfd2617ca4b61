//! Compiles the `rate_limit` and `concurrency_limit` policies: their keys, their local tables and Redis stores fetched from live state (so a reload with unchanged settings keeps the counts and the connection), and their counters.

use std::sync::Arc;

use http::HeaderName;
use strait_config as cfg;
use strait_core::{live::fingerprint, Filter};
use strait_policy::ratelimit::{
    KeyPart, LimitKey, LocalTable, RateLimitCounters, RedisSettings, RedisStore, SharedStore,
    Target,
};
use strait_policy::{ConcurrencyFilter, InFlight, RateLimitFilter};

use super::policy::PolicyCx;

fn key(parts: &[cfg::LimitKey], missing: cfg::MissingKey) -> Result<LimitKey, String> {
    let parts = parts
        .iter()
        .map(|p| {
            Ok(match p {
                cfg::LimitKey::ClientIp => KeyPart::ClientIp,
                cfg::LimitKey::Route => KeyPart::Route,
                cfg::LimitKey::Global => KeyPart::Global,
                cfg::LimitKey::Consumer => KeyPart::Consumer,
                cfg::LimitKey::Claim(c) => KeyPart::Claim(c.as_str().into()),
                cfg::LimitKey::Header(h) => KeyPart::Header(
                    HeaderName::from_bytes(h.as_bytes())
                        .map_err(|e| format!("key header {h}: {e}"))?,
                ),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(LimitKey::new(parts, missing == cfg::MissingKey::Allow))
}

/// A `rate_limit` policy's filter.
pub(super) fn rate_limit(
    name: &str,
    r: &cfg::RateLimitPolicy,
    cx: &PolicyCx<'_>,
) -> Result<Arc<dyn Filter>, String> {
    // Keys are hashed with the table's own hasher, so the key's shape is part of its identity.
    let local_settings = (
        r.requests,
        r.per,
        r.burst,
        r.max_keys,
        &r.key,
        r.missing_key,
    );
    let local = cx
        .live
        .get_or_insert("rate_limit", name, fingerprint(&local_settings), || {
            LocalTable::new(r.max_keys)
        });
    let store = match &r.store {
        None => None,
        Some(s) => Some(store(name, s, cx)?),
    };
    let m = cx.metrics;
    let counters = RateLimitCounters {
        evicted: m.rate_limit_evicted_keys.with_label_values(&[name]),
        store_errors: m
            .rate_limit_store_errors
            .with_label_values(&[name, "error"]),
        store_timeouts: m
            .rate_limit_store_errors
            .with_label_values(&[name, "timeout"]),
        fallback_open: m
            .rate_limit_store_fallbacks
            .with_label_values(&[name, "open"]),
        fallback_closed: m
            .rate_limit_store_fallbacks
            .with_label_values(&[name, "closed"]),
    };
    Ok(Arc::new(RateLimitFilter::new(
        name,
        r.requests,
        r.per,
        r.burst,
        key(&r.key, r.missing_key)?,
        local,
        store,
        r.response_headers,
        counters,
    )))
}

fn store(name: &str, s: &cfg::RateLimitStore, cx: &PolicyCx<'_>) -> Result<SharedStore, String> {
    let ca = s
        .auth
        .ca
        .as_ref()
        .map(|p| std::fs::read(p).map_err(|e| format!("rate_limit.store ca {}: {e}", p.display())))
        .transpose()?;
    let settings = RedisSettings {
        target: match &s.redis {
            cfg::RedisTarget::Standalone(url) => Target::Standalone(url.clone()),
            cfg::RedisTarget::Cluster(nodes) => Target::Cluster(nodes.clone()),
        },
        username: s.auth.username.clone(),
        password: s.auth.password.as_ref().map(|p| p.0.clone()),
        ca,
        timeout: s.timeout,
    };
    // The password is part of the identity (a changed one reconnects) but never printed.
    let identity = (
        &s.redis,
        &s.auth.username,
        s.auth.password.as_ref().map(|p| p.0.as_str()),
        &settings.ca,
        s.timeout,
    );
    let store = cx
        .live
        .get_or_insert("rate_limit", name, fingerprint(&identity), || {
            RedisStore::new(settings)
        });
    Ok(SharedStore {
        store,
        fail_closed: s.failure == cfg::StoreFailure::Closed,
        prefix: format!("{}{name}:", s.prefix),
    })
}

/// A `concurrency_limit` policy's filter.
pub(super) fn concurrency_limit(
    name: &str,
    c: &cfg::ConcurrencyLimitPolicy,
    cx: &PolicyCx<'_>,
) -> Result<Arc<dyn Filter>, String> {
    let settings = (c.max, &c.key, c.missing_key, c.max_keys);
    let table = cx
        .live
        .get_or_insert("concurrency_limit", name, fingerprint(&settings), || {
            InFlight::new(c.max_keys)
        });
    Ok(Arc::new(ConcurrencyFilter::new(
        name,
        c.max,
        key(&c.key, c.missing_key)?,
        table,
    )))
}
