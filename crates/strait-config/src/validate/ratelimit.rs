//! Validation of the `rate_limit` and `concurrency_limit` policies: limits, keys and the Redis store, each error with its position.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{pos, pos_or, Ctx};
use crate::diag::Pos;
use crate::policy::*;
use crate::raw::{RawConcurrencyLimit, RawRateLimit, RawRedis, RawStore, StrOrList, S};

/// Keys tracked in memory per policy unless set.
const DEFAULT_MAX_KEYS: usize = 100_000;

pub(super) fn rate_limit(cx: &mut Ctx, raw: &Spanned<RawRateLimit>) -> RateLimitPolicy {
    let r = &raw.value;
    let at = pos(raw);
    let requests = match &r.requests {
        None => {
            cx.err(at, "rate_limit needs `requests` (how many per `per`)");
            1
        }
        Some(s) => cx.count(Some(s), "rate_limit.requests", 1u64, (1, 1_000_000_000)),
    };
    let per = cx.duration(
        r.per.as_ref(),
        "rate_limit.per",
        Duration::from_secs(1),
        false,
    );
    if per.as_micros() < u128::from(requests) {
        cx.err(
            r.per.as_ref().map_or(at, pos),
            "rate_limit: more than one request per microsecond; use a longer `per`",
        );
    }
    let burst = cx.count(
        r.burst.as_ref(),
        "rate_limit.burst",
        requests,
        (1, 1_000_000_000),
    );
    let key = keys(cx, r.key.as_ref(), "rate_limit.key", LimitKey::ClientIp);
    let missing_key = missing(cx, r.missing_key.as_ref(), "rate_limit.missing_key");
    let max_keys = cx.count(
        r.max_keys.as_ref(),
        "rate_limit.max_keys",
        DEFAULT_MAX_KEYS,
        (1, 10_000_000),
    );
    let store = r.store.as_ref().and_then(|s| store(cx, s));
    RateLimitPolicy {
        requests,
        per,
        burst,
        key,
        missing_key,
        max_keys,
        response_headers: r.response_headers.as_ref().is_some_and(|b| b.value),
        store,
    }
}

pub(super) fn concurrency_limit(
    cx: &mut Ctx,
    raw: &Spanned<RawConcurrencyLimit>,
) -> ConcurrencyLimitPolicy {
    let r = &raw.value;
    let max = match &r.max {
        None => {
            cx.err(
                pos(raw),
                "concurrency_limit needs `max` (requests in flight)",
            );
            1
        }
        Some(s) => cx.count(Some(s), "concurrency_limit.max", 1u32, (1, 10_000_000)),
    };
    ConcurrencyLimitPolicy {
        max,
        key: keys(cx, r.key.as_ref(), "concurrency_limit.key", LimitKey::Route),
        missing_key: missing(cx, r.missing_key.as_ref(), "concurrency_limit.missing_key"),
        max_keys: cx.count(
            r.max_keys.as_ref(),
            "concurrency_limit.max_keys",
            DEFAULT_MAX_KEYS,
            (1, 10_000_000),
        ),
    }
}

fn missing(cx: &mut Ctx, raw: Option<&S>, field: &str) -> MissingKey {
    cx.token(
        raw,
        field,
        &[
            ("client_ip", MissingKey::ClientIp),
            ("allow", MissingKey::Allow),
        ],
        MissingKey::ClientIp,
    )
}

/// `key:` one part or a list of parts.
fn keys(
    cx: &mut Ctx,
    raw: Option<&Spanned<StrOrList>>,
    field: &str,
    default: LimitKey,
) -> Vec<LimitKey> {
    let Some(list) = raw else {
        return vec![default];
    };
    let at = pos(list);
    if list.value.0.is_empty() {
        cx.err(at, format!("{field} is empty: name at least one key part"));
        return vec![default];
    }
    let mut out = Vec::new();
    for item in &list.value.0 {
        let p = pos_or(item, at);
        let text = item.value.trim();
        let part = match text {
            "client_ip" => Some(LimitKey::ClientIp),
            "route" => Some(LimitKey::Route),
            "global" => Some(LimitKey::Global),
            "consumer" => Some(LimitKey::Consumer),
            _ => {
                if let Some(name) = text.strip_prefix("header:") {
                    match super::values::header_name(name.trim()) {
                        Ok(n) => Some(LimitKey::Header(n)),
                        Err(e) => {
                            cx.err(p, format!("{field}: {e}"));
                            None
                        }
                    }
                } else if let Some(name) = text.strip_prefix("claim:") {
                    let name = name.trim();
                    if name.is_empty() {
                        cx.err(p, format!("{field}: `claim:` needs a claim name"));
                        None
                    } else {
                        Some(LimitKey::Claim(name.to_owned()))
                    }
                } else {
                    cx.err(
                        p,
                        format!(
                            "unknown {field} `{text}`: expected client_ip, route, global, \
                             consumer, header:NAME or claim:NAME"
                        ),
                    );
                    None
                }
            }
        };
        if let Some(k) = part {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    if out.is_empty() {
        out.push(default);
    }
    out
}

fn store(cx: &mut Ctx, raw: &Spanned<RawStore>) -> Option<RateLimitStore> {
    let s = &raw.value;
    let (target, redis) = match (&s.redis, &s.redis_cluster) {
        (Some(r), None) => (standalone(cx, r), r),
        (None, Some(c)) => (cluster(cx, c), c),
        (Some(_), Some(c)) => {
            cx.err(
                pos(c),
                "rate_limit.store: set `redis` or `redis_cluster`, not both",
            );
            return None;
        }
        (None, None) => {
            cx.err(
                pos(raw),
                "rate_limit.store needs `redis: { url }` or `redis_cluster: { nodes }`",
            );
            return None;
        }
    };
    let r = &redis.value;
    let timeout = cx.duration(
        r.timeout.as_ref(),
        "rate_limit.store timeout",
        Duration::from_millis(50),
        false,
    );
    if timeout > Duration::from_secs(10) {
        if let Some(t) = &r.timeout {
            cx.err(pos(t), "rate_limit.store timeout must be at most 10s");
        }
    }
    let failure = cx.token(
        s.failure.as_ref(),
        "rate_limit.store.failure",
        &[
            ("open", StoreFailure::Open),
            ("closed", StoreFailure::Closed),
            ("fail_open", StoreFailure::Open),
            ("fail_closed", StoreFailure::Closed),
        ],
        StoreFailure::Open,
    );
    let prefix = match &s.prefix {
        None => "strait:rl:".to_owned(),
        Some(p) => {
            if p.value.len() > 200 || p.value.chars().any(|c| c.is_control()) {
                cx.err(
                    pos(p),
                    "rate_limit.store.prefix must be at most 200 characters, without control characters",
                );
            }
            p.value.clone()
        }
    };
    let auth = RedisAuth {
        username: r.username.as_ref().map(|u| u.value.clone()),
        password: r.password.as_ref().map(|p| Secret(p.value.clone())),
        ca: r.ca.as_ref().map(|c| cx.file(c, "ca")),
    };
    Some(RateLimitStore {
        redis: target?,
        auth,
        timeout,
        failure,
        prefix,
    })
}

/// A Redis URL, or `host:port` taken as `redis://host:port`.
fn redis_url(cx: &mut Ctx, s: &S, parent: Pos) -> Option<String> {
    let text = s.value.trim();
    let url = if text.contains("://") {
        text.to_owned()
    } else {
        format!("redis://{text}")
    };
    let ok = (url.starts_with("redis://") || url.starts_with("rediss://"))
        && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
    if !ok {
        cx.err(
            pos_or(s, parent),
            format!("`{text}` is not a Redis address: expected redis://HOST:PORT, rediss://HOST:PORT (TLS) or HOST:PORT"),
        );
        return None;
    }
    Some(url)
}

fn standalone(cx: &mut Ctx, raw: &Spanned<RawRedis>) -> Option<RedisTarget> {
    let r = &raw.value;
    if let Some(n) = &r.nodes {
        cx.err(
            pos(n),
            "`nodes` belongs to `redis_cluster`; `redis` takes a `url`",
        );
    }
    match &r.url {
        None => {
            cx.err(pos(raw), "rate_limit.store.redis needs a `url`");
            None
        }
        Some(u) => redis_url(cx, u, pos(raw)).map(RedisTarget::Standalone),
    }
}

fn cluster(cx: &mut Ctx, raw: &Spanned<RawRedis>) -> Option<RedisTarget> {
    let r = &raw.value;
    if let Some(u) = &r.url {
        cx.err(
            pos(u),
            "`url` belongs to `redis`; `redis_cluster` takes `nodes`",
        );
    }
    let Some(nodes) = r.nodes.as_ref().filter(|n| !n.value.is_empty()) else {
        cx.err(
            pos(raw),
            "rate_limit.store.redis_cluster needs `nodes` (some of the cluster's nodes)",
        );
        return None;
    };
    let list: Vec<String> = nodes
        .value
        .iter()
        .filter_map(|n| redis_url(cx, n, pos(nodes)))
        .collect();
    (list.len() == nodes.value.len()).then_some(RedisTarget::Cluster(list))
}

#[cfg(test)]
mod tests {
    use crate::*;

    const HEAD: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n\
                        routes:\n  - name: r\n    respond: { status: 200 }\n    policies: [p]\n\
                        policies:\n  - name: p\n";

    fn spec(policy: &str) -> PolicySpec {
        let l = parse("t.yaml", &format!("{HEAD}{policy}"), None).unwrap_or_else(|e| panic!("{e}"));
        l.config.policies[0].spec.clone()
    }

    fn errors(policy: &str) -> String {
        match parse("t.yaml", &format!("{HEAD}{policy}"), None) {
            Ok(_) => panic!("expected errors for {policy}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_fill_in_a_local_rate_limit() {
        let PolicySpec::RateLimit(r) = spec("    rate_limit: { requests: 10 }\n") else {
            panic!()
        };
        assert_eq!(r.per, std::time::Duration::from_secs(1));
        assert_eq!(r.burst, 10);
        assert_eq!(r.key, [LimitKey::ClientIp]);
        assert_eq!(r.missing_key, MissingKey::ClientIp);
        assert_eq!(r.max_keys, 100_000);
        assert!(r.store.is_none());
        assert_eq!(spec("    rate_limit: { requests: 10 }\n").rank(), 500);
    }

    #[test]
    fn keys_and_a_redis_store_are_parsed() {
        let PolicySpec::RateLimit(r) = spec(
            "    rate_limit:\n      requests: 5\n      key: [header:X-Api-Key, consumer, claim:sub]\n      \
             store: { redis: { url: \"127.0.0.1:6379\", password: pw }, failure: closed }\n",
        ) else {
            panic!()
        };
        assert_eq!(
            r.key,
            [
                LimitKey::Header("x-api-key".into()),
                LimitKey::Consumer,
                LimitKey::Claim("sub".into())
            ]
        );
        let s = r.store.unwrap();
        assert_eq!(
            s.redis,
            RedisTarget::Standalone("redis://127.0.0.1:6379".into())
        );
        assert_eq!(s.failure, StoreFailure::Closed);
        assert_eq!(s.timeout, std::time::Duration::from_millis(50));
        assert_eq!(format!("{:?}", s.auth.password), "Some(<redacted>)");
        let PolicySpec::ConcurrencyLimit(c) = spec("    concurrency_limit: { max: 3 }\n") else {
            panic!()
        };
        assert_eq!((c.max, c.key.as_slice()), (3, [LimitKey::Route].as_slice()));
    }

    #[test]
    fn bad_settings_are_reported_with_their_position() {
        let e = errors("    rate_limit: { requests: 0 }\n");
        assert!(
            e.contains("t.yaml:10:29: rate_limit.requests must be a whole number"),
            "{e}"
        );
        let e = errors("    rate_limit: { requests: 5, key: ip }\n");
        assert!(e.contains("unknown rate_limit.key `ip`"), "{e}");
        let e = errors("    rate_limit: { per: 1s }\n");
        assert!(e.contains("rate_limit needs `requests`"), "{e}");
        let e =
            errors("    rate_limit: { requests: 5, store: { redis: { url: \"http://x\" } } }\n");
        assert!(e.contains("is not a Redis address"), "{e}");
        let e = errors("    rate_limit: { requests: 5, store: { failure: open } }\n");
        assert!(
            e.contains("needs `redis: { url }` or `redis_cluster: { nodes }`"),
            "{e}"
        );
        let e = errors("    concurrency_limit: { key: route }\n");
        assert!(e.contains("concurrency_limit needs `max`"), "{e}");
        let e = errors("    rate_limit: { requests: 5, bogus: 1 }\n");
        assert!(e.contains("bogus"), "{e}");
    }
}
