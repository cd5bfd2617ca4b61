//! Validation of the credential policies (`api_key`, `basic_auth`, `forward_auth`) with file and line errors.

use std::collections::HashSet;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::{pos, Ctx};
use crate::auth::*;
use crate::raw::{RawApiKey, RawBasicAuth, RawCache, RawForwardAuth, S};

/// A header name field, lowercased; reported when malformed.
fn header(cx: &mut Ctx, raw: Option<&S>, default: &str) -> String {
    let Some(h) = raw else {
        return default.to_owned();
    };
    super::values::header_name(&h.value).unwrap_or_else(|e| {
        cx.err(pos(h), e);
        default.to_owned()
    })
}

fn headers(cx: &mut Ctx, raw: Option<&Spanned<Vec<S>>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in raw.map(|l| l.value.as_slice()).unwrap_or_default() {
        let name = header(cx, Some(h), "");
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn consumer(cx: &mut Ctx, raw: Option<&S>, at: crate::diag::Pos, default: Option<&str>) -> String {
    match (raw, default) {
        (Some(c), _) => cx.name(Some(c), at, "consumer"),
        (None, Some(d)) => d.to_owned(),
        (None, None) => {
            cx.err(at, "a credential needs a `consumer`");
            String::new()
        }
    }
}

/// `api_key:`.
pub(super) fn api_key(cx: &mut Ctx, raw: &Spanned<RawApiKey>) -> ApiKeyPolicy {
    let r = &raw.value;
    let query = r.query.as_ref().map(|q| {
        if q.value.is_empty() || q.value.contains(['&', '=', '#', ' ']) {
            cx.err(
                pos(q),
                format!("api_key.query `{}` is not a query parameter name", q.value),
            );
        }
        q.value.clone()
    });
    let mut keys = Vec::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    match &r.keys {
        None => cx.err(pos(raw), "api_key needs `keys`"),
        Some(l) if l.value.is_empty() => cx.err(pos(l), "api_key.keys is empty"),
        Some(_) => {}
    }
    for k in r.keys.iter().flat_map(|l| l.value.iter()) {
        let at = pos(k);
        let consumer = consumer(cx, k.value.consumer.as_ref(), at, None);
        let secret = match (&k.value.key, &k.value.sha256) {
            (Some(key), None) => {
                if key.value.is_empty() {
                    // An unset `${ENV}` must not turn into a key anyone can send.
                    cx.err(pos(key), "api_key key is empty");
                }
                KeySecret::Plain(key.value.clone())
            }
            (None, Some(h)) => match parse_sha256(&h.value) {
                Some(d) => KeySecret::Sha256(d),
                None => {
                    cx.err(pos(h), "api_key sha256 must be 64 hex digits");
                    KeySecret::Sha256([0; 32])
                }
            },
            _ => {
                cx.err(at, "an api key needs exactly one of `key` and `sha256`");
                continue;
            }
        };
        let id = match &secret {
            KeySecret::Plain(p) => p.as_bytes().to_vec(),
            KeySecret::Sha256(d) => d.to_vec(),
        };
        if !seen.insert(id) {
            cx.err(at, "duplicate api key");
        }
        keys.push(ApiKey { consumer, secret });
    }
    ApiKeyPolicy {
        header: header(cx, r.header.as_ref(), "x-api-key"),
        query,
        keys,
        hide_credentials: r.hide_credentials.as_ref().is_none_or(|b| b.value),
        consumer_header: header(cx, r.consumer_header.as_ref(), "x-consumer"),
    }
}

/// 64 hex digits.
pub(crate) fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Whether `h` looks like a hash `basic_auth` can verify (its full parse is at compile time).
fn known_hash(h: &str) -> bool {
    [
        "$2a$",
        "$2b$",
        "$2y$",
        "$argon2id$",
        "$argon2i$",
        "$argon2d$",
    ]
    .iter()
    .any(|p| h.starts_with(p))
}

/// `basic_auth:`.
pub(super) fn basic_auth(cx: &mut Ctx, raw: &Spanned<RawBasicAuth>) -> BasicAuthPolicy {
    let r = &raw.value;
    let realm = r.realm.as_ref().map_or_else(
        || "strait".to_owned(),
        |s| {
            if s.value.contains(['"', '\\']) || super::values::header_value(&s.value).is_err() {
                cx.err(
                    pos(s),
                    "basic_auth.realm must not contain quotes, backslashes or line breaks",
                );
            }
            s.value.clone()
        },
    );
    match &r.users {
        None => cx.err(pos(raw), "basic_auth needs `users`"),
        Some(l) if l.value.is_empty() => cx.err(pos(l), "basic_auth.users is empty"),
        Some(_) => {}
    }
    let mut users = Vec::new();
    let mut seen = HashSet::new();
    for u in r.users.iter().flat_map(|l| l.value.iter()) {
        let at = pos(u);
        let Some(name) = &u.value.username else {
            cx.err(at, "a basic_auth user needs a `username`");
            continue;
        };
        if name.value.is_empty() || name.value.contains(':') {
            cx.err(
                pos(name),
                "a basic_auth username must be non-empty and without `:`",
            );
        }
        if !seen.insert(name.value.clone()) {
            cx.err(
                pos(name),
                format!("duplicate basic_auth user `{}`", name.value),
            );
        }
        let password_hash = match &u.value.password_hash {
            None => {
                cx.err(
                    at,
                    "a basic_auth user needs a `password_hash` (bcrypt or argon2)",
                );
                String::new()
            }
            Some(h) => {
                if !known_hash(&h.value) {
                    cx.err(
                        pos(h),
                        "password_hash must be a bcrypt ($2a$, $2b$, $2y$) or argon2 ($argon2id$...) hash",
                    );
                }
                h.value.clone()
            }
        };
        let consumer = consumer(cx, u.value.consumer.as_ref(), at, Some(&name.value));
        users.push(BasicUser {
            username: name.value.clone(),
            password_hash,
            consumer,
        });
    }
    let cache = r.cache.as_ref();
    if let Some(k) = cache.and_then(|c| c.value.key.as_ref()) {
        cx.err(
            pos(k),
            "basic_auth.cache has no `key`: it is keyed by user name and password",
        );
    }
    BasicAuthPolicy {
        realm,
        users,
        hide_credentials: r.hide_credentials.as_ref().is_none_or(|b| b.value),
        consumer_header: header(cx, r.consumer_header.as_ref(), "x-consumer"),
        max_concurrent_verifications: cx.count(
            r.max_concurrent_verifications.as_ref(),
            "basic_auth.max_concurrent_verifications",
            4u32,
            (1, 1024),
        ),
        cache_ttl: cx.duration(
            cache.and_then(|c| c.value.ttl.as_ref()),
            "basic_auth.cache.ttl",
            Duration::from_secs(60),
            true,
        ),
        cache_max_entries: max_entries(cx, cache, "basic_auth.cache.max_entries"),
    }
}

fn max_entries(cx: &mut Ctx, cache: Option<&Spanned<RawCache>>, field: &str) -> u32 {
    cx.count(
        cache.and_then(|c| c.value.max_entries.as_ref()),
        field,
        10_000u32,
        (1, 1_000_000),
    )
}

/// `forward_auth:`.
pub(super) fn forward_auth(cx: &mut Ctx, raw: &Spanned<RawForwardAuth>) -> ForwardAuthPolicy {
    let r = &raw.value;
    let upstream = match &r.upstream {
        Some(u) => {
            cx.auth_upstreams
                .push((u.value.clone(), pos(u), "forward_auth.upstream"));
            u.value.clone()
        }
        None => {
            cx.err(
                pos(raw),
                "forward_auth needs an `upstream` (the auth service)",
            );
            String::new()
        }
    };
    let path = match &r.path {
        None => "/".to_owned(),
        Some(p) => {
            if !p.value.starts_with('/') || p.value.parse::<http::Uri>().is_err() {
                cx.err(
                    pos(p),
                    format!(
                        "forward_auth.path `{}` must be a path starting with /",
                        p.value
                    ),
                );
            }
            p.value.clone()
        }
    };
    let failure_status = cx.count(
        r.failure_status.as_ref(),
        "forward_auth.failure_status",
        503u16,
        (400, 599),
    );
    let cache = r.cache.as_ref().map(|c| {
        let key = headers(cx, c.value.key.as_ref());
        if key.is_empty() {
            cx.err(
                pos(c),
                "forward_auth.cache needs `key`: the request headers a decision depends on",
            );
        }
        ForwardAuthCache {
            ttl: cx.duration(
                c.value.ttl.as_ref(),
                "forward_auth.cache.ttl",
                Duration::from_secs(30),
                false,
            ),
            key,
            max_entries: max_entries(cx, Some(c), "forward_auth.cache.max_entries"),
        }
    });
    ForwardAuthPolicy {
        upstream,
        path,
        timeout: cx.duration(
            r.timeout.as_ref(),
            "forward_auth.timeout",
            Duration::from_secs(1),
            false,
        ),
        request_headers: headers(cx, r.request_headers.as_ref()),
        response_headers: headers(cx, r.response_headers.as_ref()),
        failure: cx.token(
            r.failure.as_ref(),
            "forward_auth.failure",
            &[("closed", AuthFailure::Closed), ("open", AuthFailure::Open)],
            AuthFailure::Closed,
        ),
        failure_status,
        max_body: {
            let v = cx.size(r.max_body.as_ref(), "forward_auth.max_body", 64 * 1024);
            if v > 16 * 1024 * 1024 {
                if let Some(s) = &r.max_body {
                    cx.err(pos(s), "forward_auth.max_body must be at most 16MiB");
                }
            }
            v
        },
        cache,
    }
}

/// Reports upstreams named by policies (`forward_auth`, `jwt.jwks`, `mirror`) that `upstreams:` does not
/// define.
pub(super) fn check_upstreams(cx: &mut Ctx, known: &HashSet<&str>) {
    let missing: Vec<(String, crate::diag::Pos, &str)> = cx
        .auth_upstreams
        .iter()
        .filter(|(n, _, _)| !n.is_empty() && !known.contains(n.as_str()))
        .cloned()
        .collect();
    for (name, at, field) in missing {
        cx.err(
            at,
            format!("{field} `{name}` is not defined under `upstreams:`"),
        );
    }
}
