//! The `api_key` policy: a key in a header or query parameter, hashed once and looked up among the configured keys' SHA-256 digests (compared in constant time), naming a consumer.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, StatusCode};
use strait_core::{Filter, FilterState, Flow, Reply, RequestCtx};

use crate::consumer::{ct_eq, sha256, ConsumerTag};

/// A compiled `api_key` policy.
pub struct ApiKeyFilter {
    name: Arc<str>,
    header: HeaderName,
    query: Option<Box<str>>,
    hide: bool,
    consumer_header: HeaderName,
    /// First 8 bytes of a digest → indexes into `keys` (collisions of the prefix are kept).
    index: HashMap<u64, Vec<usize>>,
    keys: Vec<([u8; 32], ConsumerTag)>,
}

impl ApiKeyFilter {
    /// A filter called `name` accepting `keys` (SHA-256 digest, consumer).
    pub fn new(
        name: &str,
        header: HeaderName,
        query: Option<&str>,
        hide: bool,
        consumer_header: HeaderName,
        keys: Vec<([u8; 32], ConsumerTag)>,
    ) -> Self {
        let mut index: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, (d, _)) in keys.iter().enumerate() {
            index.entry(prefix(d)).or_default().push(i);
        }
        ApiKeyFilter {
            name: Arc::from(name),
            header,
            query: query.map(Box::from),
            hide,
            consumer_header,
            index,
            keys,
        }
    }

    /// The consumer of the key `presented`, if it is one of ours.
    fn find(&self, presented: &[u8]) -> Option<&ConsumerTag> {
        let d = sha256(&[presented]);
        let candidates = self.index.get(&prefix(&d))?;
        let mut found = None;
        // Every candidate is compared, so the time does not tell which one matched.
        for &i in candidates {
            if ct_eq(&self.keys[i].0, &d) {
                found = Some(&self.keys[i].1);
            }
        }
        found
    }
}

/// The SHA-256 digest a key is stored and looked up as.
pub fn digest(key: &[u8]) -> [u8; 32] {
    sha256(&[key])
}

fn prefix(d: &[u8; 32]) -> u64 {
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn deny(reason: &'static str) -> Reply {
    let body = if reason == "missing_key" {
        "strait: an API key is required\n"
    } else {
        "strait: invalid API key\n"
    };
    Reply::text(StatusCode::UNAUTHORIZED, body, reason)
}

/// Finds parameter `name` in `query`: its first value (percent-decoded) and the query without
/// any occurrence of it (`None` when nothing is left). Names are compared as written.
pub fn take_param(query: &str, name: &str) -> Option<(Vec<u8>, Option<String>)> {
    let mut value = None;
    let mut rest = String::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if value.is_none() {
                value = Some(percent_decode(v).into_owned());
            }
        } else {
            if !rest.is_empty() {
                rest.push('&');
            }
            rest.push_str(pair);
        }
    }
    value.map(|v| (v, (!rest.is_empty()).then_some(rest)))
}

/// `%XX` and `+` decoded; malformed escapes are kept as written.
fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hexval(b[i + 1]), hexval(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(out)
}

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// `uri` with its query replaced by `query`.
fn with_query(uri: &http::Uri, query: Option<&str>) -> Option<http::Uri> {
    let mut parts = uri.clone().into_parts();
    let pq = match query {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    };
    parts.path_and_query = Some(pq.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

impl Filter for ApiKeyFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "api_key"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        // A client must never name its own consumer.
        ctx.head.headers.remove(&self.consumer_header);
        let tag = if let Some(v) = ctx.head.headers.get(&self.header) {
            let tag = self.find(v.as_bytes());
            if tag.is_some() && self.hide {
                ctx.head.headers.remove(&self.header);
            }
            tag
        } else if let Some((value, rest)) = self
            .query
            .as_deref()
            .and_then(|name| take_param(ctx.head.uri.query()?, name))
        {
            let tag = self.find(&value);
            if tag.is_some() && self.hide {
                match with_query(&ctx.head.uri, rest.as_deref()) {
                    Some(u) => ctx.head.uri = u,
                    None => return Flow::Reply(deny("invalid_key")),
                }
            }
            match tag {
                Some(t) => Some(t),
                None => return Flow::Reply(deny("invalid_key")),
            }
        } else {
            return Flow::Reply(deny("missing_key"));
        };
        match tag {
            Some(t) => {
                t.apply(ctx.head, &self.consumer_header);
                Flow::Continue
            }
            None => Flow::Reply(deny("invalid_key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn takes_the_parameter_and_keeps_the_rest() {
        assert_eq!(
            take_param("a=1&api_key=s%2Fx&b=2", "api_key"),
            Some((b"s/x".to_vec(), Some("a=1&b=2".to_owned())))
        );
        assert_eq!(
            take_param("api_key=k", "api_key"),
            Some((b"k".to_vec(), None))
        );
        assert_eq!(take_param("api_keyx=k", "api_key"), None);
        assert_eq!(
            take_param("api_key=a&api_key=b&c", "api_key"),
            Some((b"a".to_vec(), Some("c".to_owned())))
        );
        assert_eq!(percent_decode("%zz%4").as_ref(), b"%zz%4");
    }

    proptest! {
        #[test]
        fn never_leaves_the_parameter_behind(
            pairs in proptest::collection::vec(("[a-z]{1,8}", "[a-zA-Z0-9%+]{0,8}"), 0..8),
            key in "[a-zA-Z0-9]{1,16}",
            at in 0usize..8,
        ) {
            let mut items: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            items.insert(at.min(items.len()), format!("api_key={key}"));
            let q = items.join("&");
            let (v, rest) = take_param(&q, "api_key").unwrap();
            prop_assert_eq!(v, key.into_bytes());
            let rest = rest.unwrap_or_default();
            prop_assert!(rest.split('&').all(|p| p.split('=').next() != Some("api_key")));
            let others: Vec<&String> = items.iter().filter(|p| !p.starts_with("api_key=")).collect();
            prop_assert_eq!(rest.split('&').filter(|s| !s.is_empty()).count(), others.len());
        }

        #[test]
        fn percent_decoding_never_panics(s in ".{0,32}") {
            let _ = percent_decode(&s);
        }
    }
}
