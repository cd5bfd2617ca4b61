//! The effective form of the `rate_limit` and `concurrency_limit` policies (a Redis password is printed as `<redacted>`).

use super::node::{int, M};
use super::Node;
use crate::policy::*;

fn key_node(parts: &[LimitKey]) -> Node {
    let text = |k: &LimitKey| -> Node {
        match k {
            LimitKey::ClientIp => "client_ip".into(),
            LimitKey::Route => "route".into(),
            LimitKey::Global => "global".into(),
            LimitKey::Consumer => "consumer".into(),
            LimitKey::Header(h) => format!("header:{h}").into(),
            LimitKey::Claim(c) => format!("claim:{c}").into(),
        }
    };
    Node::List(parts.iter().map(text).collect())
}

fn missing_node(m: MissingKey) -> Node {
    match m {
        MissingKey::ClientIp => "client_ip".into(),
        MissingKey::Allow => "allow".into(),
    }
}

/// `rate_limit:`.
pub(super) fn rate_limit(r: &RateLimitPolicy) -> Node {
    let RateLimitPolicy {
        requests,
        per,
        burst,
        key,
        missing_key,
        max_keys,
        response_headers,
        store,
    } = r;
    M::new()
        .put("requests", int(*requests))
        .put("per", *per)
        .put("burst", int(*burst))
        .put("key", key_node(key))
        .put("missing_key", missing_node(*missing_key))
        .put("max_keys", int(*max_keys))
        .put("response_headers", *response_headers)
        .opt("store", store.as_ref().map(store_node))
        .into()
}

fn store_node(s: &RateLimitStore) -> M {
    let RateLimitStore {
        redis,
        auth,
        timeout,
        failure,
        prefix,
    } = s;
    let RedisAuth {
        username,
        password,
        ca,
    } = auth;
    let (kind, target) = match redis {
        RedisTarget::Standalone(url) => ("redis", M::new().put("url", url.as_str())),
        RedisTarget::Cluster(nodes) => (
            "redis_cluster",
            M::new().put("nodes", Node::from(nodes.clone())),
        ),
    };
    let target = target
        .opt("username", username.clone())
        .opt("password", password.as_ref().map(|_| crate::REDACTED))
        .opt("ca", ca.as_deref())
        .put("timeout", *timeout);
    M::new()
        .put(kind, target)
        .put(
            "failure",
            match failure {
                StoreFailure::Open => "open",
                StoreFailure::Closed => "closed",
            },
        )
        .put("prefix", prefix.as_str())
}

/// `concurrency_limit:`.
pub(super) fn concurrency_limit(c: &ConcurrencyLimitPolicy) -> Node {
    let ConcurrencyLimitPolicy {
        max,
        key,
        missing_key,
        max_keys,
    } = c;
    M::new()
        .put("max", int(*max))
        .put("key", key_node(key))
        .put("missing_key", missing_node(*missing_key))
        .put("max_keys", int(*max_keys))
        .into()
}
