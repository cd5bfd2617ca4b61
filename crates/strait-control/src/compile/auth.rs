//! Compiles the credential policies (`api_key`, `basic_auth`, `forward_auth`) into their filters, with a consumer metric handle per configured consumer.

use std::sync::Arc;

use http::{HeaderName, StatusCode};
use strait_config as cfg;
use strait_core::Filter;
use strait_policy::basic_auth::{BasicUser, PasswordHash};
use strait_policy::consumer::{ConsumerTag, Count};
use strait_policy::forward_auth::{CacheSettings, ForwardAuthSettings};
use strait_policy::{ApiKeyFilter, BasicAuthFilter, ForwardAuthFilter};

use super::policy::PolicyCx;

fn header(field: &str, name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{field} {name}: {e}"))
}

fn headers(field: &str, names: &[String]) -> Result<Vec<HeaderName>, String> {
    names.iter().map(|n| header(field, n)).collect()
}

/// The consumer `name` of policy `policy`, counted in `strait_consumer_requests_total`.
fn tag(policy: &str, name: &str, cx: &PolicyCx<'_>) -> Result<ConsumerTag, String> {
    let counter = cx
        .metrics
        .consumer_requests
        .with_label_values(&[policy, name]);
    let count: Count = Arc::new(move || counter.inc());
    ConsumerTag::new(name, count)
}

/// `api_key`.
pub(super) fn api_key(
    name: &str,
    p: &cfg::ApiKeyPolicy,
    cx: &PolicyCx<'_>,
) -> Result<Arc<dyn Filter>, String> {
    let mut keys = Vec::with_capacity(p.keys.len());
    for k in &p.keys {
        let digest = match &k.secret {
            cfg::KeySecret::Plain(key) => strait_policy::api_key::digest(key.as_bytes()),
            cfg::KeySecret::Sha256(d) => *d,
        };
        keys.push((digest, tag(name, &k.consumer, cx)?));
    }
    Ok(Arc::new(ApiKeyFilter::new(
        name,
        header("api_key.header", &p.header)?,
        p.query.as_deref(),
        p.hide_credentials,
        header("api_key.consumer_header", &p.consumer_header)?,
        keys,
    )))
}

/// `basic_auth`.
pub(super) fn basic_auth(
    name: &str,
    p: &cfg::BasicAuthPolicy,
    cx: &PolicyCx<'_>,
) -> Result<Arc<dyn Filter>, String> {
    let mut users = Vec::with_capacity(p.users.len());
    for u in &p.users {
        let hash = PasswordHash::parse(&u.password_hash)
            .map_err(|e| format!("basic_auth user {}: {e}", u.username))?;
        users.push((
            u.username.clone(),
            BasicUser {
                hash: Arc::new(hash),
                consumer: tag(name, &u.consumer, cx)?,
            },
        ));
    }
    Ok(Arc::new(BasicAuthFilter::new(
        name,
        &p.realm,
        users,
        p.hide_credentials,
        header("basic_auth.consumer_header", &p.consumer_header)?,
        p.max_concurrent_verifications as usize,
        p.cache_ttl,
        p.cache_max_entries as usize,
    )?))
}

/// `forward_auth`.
pub(super) fn forward_auth(
    name: &str,
    p: &cfg::ForwardAuthPolicy,
    cx: &PolicyCx<'_>,
) -> Result<Arc<dyn Filter>, String> {
    let client = cx.client(&p.upstream)?;
    let settings = ForwardAuthSettings {
        path: p
            .path
            .parse()
            .map_err(|e| format!("forward_auth.path {}: {e}", p.path))?,
        timeout: p.timeout,
        request_headers: headers("forward_auth.request_headers", &p.request_headers)?,
        response_headers: headers("forward_auth.response_headers", &p.response_headers)?,
        fail_open: p.failure == cfg::AuthFailure::Open,
        failure_status: StatusCode::from_u16(p.failure_status)
            .map_err(|e| format!("forward_auth.failure_status: {e}"))?,
        max_body: p.max_body as usize,
        cache: match &p.cache {
            None => None,
            Some(c) => Some(CacheSettings {
                ttl: c.ttl,
                key: headers("forward_auth.cache.key", &c.key)?,
                max_entries: c.max_entries as usize,
            }),
        },
    };
    Ok(Arc::new(ForwardAuthFilter::new(name, client, settings)))
}
