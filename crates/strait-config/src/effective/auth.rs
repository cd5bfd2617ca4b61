//! The effective form of the credential policies; keys and password hashes are printed as `<redacted>`.

use super::node::{int, M};
use super::{Node, REDACTED};
use crate::auth::*;

fn names(list: &[String]) -> Node {
    Node::List(list.iter().map(|s| s.as_str().into()).collect())
}

/// `api_key:`.
pub(super) fn api_key(p: &ApiKeyPolicy) -> Node {
    let ApiKeyPolicy {
        header,
        query,
        keys,
        hide_credentials,
        consumer_header,
    } = p;
    let keys = keys
        .iter()
        .map(|ApiKey { consumer, secret }| {
            let m = M::new().put("consumer", consumer.as_str());
            let m = match secret {
                KeySecret::Plain(_) => m.put("key", REDACTED),
                KeySecret::Sha256(d) => m.put("sha256", hex(d)),
            };
            m.into()
        })
        .collect();
    M::new()
        .put("header", header.as_str())
        .opt("query", query.clone())
        .put("keys", Node::List(keys))
        .put("hide_credentials", *hide_credentials)
        .put("consumer_header", consumer_header.as_str())
        .into()
}

/// `basic_auth:`.
pub(super) fn basic_auth(p: &BasicAuthPolicy) -> Node {
    let BasicAuthPolicy {
        realm,
        users,
        hide_credentials,
        consumer_header,
        max_concurrent_verifications,
        cache_ttl,
        cache_max_entries,
    } = p;
    let users = users
        .iter()
        .map(|u| {
            M::new()
                .put("username", u.username.as_str())
                .put("password_hash", REDACTED)
                .put("consumer", u.consumer.as_str())
                .into()
        })
        .collect();
    M::new()
        .put("realm", realm.as_str())
        .put("users", Node::List(users))
        .put("hide_credentials", *hide_credentials)
        .put("consumer_header", consumer_header.as_str())
        .put(
            "max_concurrent_verifications",
            int(*max_concurrent_verifications),
        )
        .put(
            "cache",
            M::new()
                .put("ttl", *cache_ttl)
                .put("max_entries", int(*cache_max_entries)),
        )
        .into()
}

/// `forward_auth:`.
pub(super) fn forward_auth(p: &ForwardAuthPolicy) -> Node {
    let ForwardAuthPolicy {
        upstream,
        path,
        timeout,
        request_headers,
        response_headers,
        failure,
        failure_status,
        max_body,
        cache,
    } = p;
    M::new()
        .put("upstream", upstream.as_str())
        .put("path", path.as_str())
        .put("timeout", *timeout)
        .put("request_headers", names(request_headers))
        .put("response_headers", names(response_headers))
        .put(
            "failure",
            match failure {
                AuthFailure::Closed => "closed",
                AuthFailure::Open => "open",
            },
        )
        .put("failure_status", int(*failure_status))
        .put("max_body", int(*max_body))
        .opt(
            "cache",
            cache.as_ref().map(|c| {
                M::new()
                    .put("ttl", c.ttl)
                    .put("key", names(&c.key))
                    .put("max_entries", int(c.max_entries))
            }),
        )
        .into()
}
