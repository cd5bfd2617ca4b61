//! What a limit counts by: the parts of a request (client IP, route, a header, the consumer, a JWT claim) that make its key, hashed for the local tables or spelt out for Redis.

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

use http::HeaderName;
use strait_core::{Claims, Consumer, RequestCtx};

/// One part of a limit's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPart {
    /// The client's address.
    ClientIp,
    /// The matched route's name.
    Route,
    /// The same for every request.
    Global,
    /// A request header's (first) value.
    Header(HeaderName),
    /// The consumer an authentication policy identified ([`Consumer`]).
    Consumer,
    /// A claim of the verified JWT ([`Claims`]).
    Claim(Box<str>),
}

/// A limit's key: its parts, and what to do when the request lacks one.
#[derive(Clone, Debug)]
pub struct LimitKey {
    parts: Box<[KeyPart]>,
    /// A missing part lets the request through (else the client IP stands in for it).
    missing_allows: bool,
}

/// The value of one part for one request.
enum Value<'a> {
    Ip(IpAddr),
    Text(&'a [u8]),
}

/// Values longer than this are spelt as a hash in Redis keys, to keep the keys short.
const MAX_TEXT: usize = 128;

impl LimitKey {
    /// A key of `parts` (at least one); a request lacking a part passes when `missing_allows`,
    /// else is counted under its client IP in that part's place.
    pub fn new(parts: Vec<KeyPart>, missing_allows: bool) -> Self {
        let parts = if parts.is_empty() {
            vec![KeyPart::ClientIp]
        } else {
            parts
        };
        LimitKey {
            parts: parts.into(),
            missing_allows,
        }
    }

    /// Calls `f` with a tag and value per part; false when the request is not limited.
    fn each<'c>(&self, ctx: &'c RequestCtx<'_>, mut f: impl FnMut(u8, Value<'c>)) -> bool {
        let ip = ctx.client.ip().to_canonical();
        for part in self.parts.iter() {
            let found = match part {
                KeyPart::ClientIp => Some((b'i', Value::Ip(ip))),
                KeyPart::Route => Some((b'r', Value::Text(ctx.route.as_bytes()))),
                KeyPart::Global => Some((b'g', Value::Text(b""))),
                KeyPart::Header(h) => ctx
                    .head
                    .headers
                    .get(h)
                    .map(|v| (b'h', Value::Text(v.as_bytes()))),
                KeyPart::Consumer => ctx
                    .head
                    .extensions
                    .get::<Consumer>()
                    .map(|c| (b'c', Value::Text(c.0.as_bytes()))),
                KeyPart::Claim(name) => ctx
                    .head
                    .extensions
                    .get::<Claims>()
                    .and_then(|c| c.get(name))
                    .map(|v| (b'l', Value::Text(v.as_bytes()))),
            };
            match found {
                Some((tag, v)) => f(tag, v),
                None if self.missing_allows => return false,
                // A distinct tag, so a missing header never shares a key with one holding an IP.
                None => f(b'm', Value::Ip(ip)),
            }
        }
        true
    }

    /// The key as a hash for in-memory tables, or `None` when the request is not limited.
    pub fn hash(&self, ctx: &RequestCtx<'_>, build: &impl BuildHasher) -> Option<u64> {
        let mut h = build.build_hasher();
        let limited = self.each(ctx, |tag, v| {
            tag.hash(&mut h);
            match v {
                Value::Ip(ip) => ip.hash(&mut h),
                Value::Text(t) => t.hash(&mut h),
            }
        });
        limited.then(|| h.finish())
    }

    /// The key spelt out (stable across processes, for a shared store), or `None` when the
    /// request is not limited. Bytes outside printable ASCII are %-escaped; long values are
    /// replaced by a 128-bit hash of them.
    pub fn text(&self, ctx: &RequestCtx<'_>) -> Option<String> {
        let mut out = String::with_capacity(48);
        let limited = self.each(ctx, |tag, v| {
            if !out.is_empty() {
                out.push('|');
            }
            out.push(tag as char);
            out.push(':');
            match v {
                Value::Ip(ip) => {
                    let _ = write!(out, "{ip}");
                }
                Value::Text(t) if t.len() > MAX_TEXT => {
                    let _ = write!(out, "#{:016x}{:016x}", stable_hash(0, t), stable_hash(1, t));
                }
                Value::Text(t) => escape(&mut out, t),
            }
        });
        limited.then_some(out)
    }
}

/// A hash that is the same in every process of the same build (`DefaultHasher::new` has
/// fixed keys), so every instance of a fleet spells a long value alike.
fn stable_hash(seed: u8, t: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    t.hash(&mut h);
    h.finish()
}

fn escape(out: &mut String, t: &[u8]) {
    for &b in t {
        if (0x21..0x7f).contains(&b) && !matches!(b, b'%' | b'|' | b'{' | b'}') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;
    use std::net::SocketAddr;
    use std::sync::Arc;

    fn with_ctx<T>(
        headers: &[(&str, &str)],
        ext: impl FnOnce(&mut http::Extensions),
        f: impl FnOnce(&RequestCtx<'_>) -> T,
    ) -> T {
        let mut b = http::Request::get("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut head, ()) = b.body(()).unwrap().into_parts();
        ext(&mut head.extensions);
        let ctx = RequestCtx {
            head: &mut head,
            client: SocketAddr::from(([10, 0, 0, 7], 5555)),
            listener: "web",
            route: "api",
            tls: false,
            peer: None,
        };
        f(&ctx)
    }

    #[test]
    fn parts_combine_in_order_and_text_is_escaped() {
        let key = LimitKey::new(
            vec![
                KeyPart::Header(HeaderName::from_static("x-api-key")),
                KeyPart::Route,
            ],
            false,
        );
        let t = with_ctx(&[("x-api-key", "a b|c")], |_| {}, |c| key.text(c));
        assert_eq!(t.as_deref(), Some("h:a%20b%7Cc|r:api"));
    }

    #[test]
    fn a_missing_part_falls_back_to_the_client_ip_or_lets_the_request_pass() {
        let parts = vec![KeyPart::Consumer];
        let fallback = LimitKey::new(parts.clone(), false);
        let t = with_ctx(&[], |_| {}, |c| fallback.text(c));
        assert_eq!(t.as_deref(), Some("m:10.0.0.7"));
        let allow = LimitKey::new(parts, true);
        assert_eq!(with_ctx(&[], |_| {}, |c| allow.text(c)), None);
        let s = RandomState::new();
        assert_eq!(with_ctx(&[], |_| {}, |c| allow.hash(c, &s)), None);
    }

    #[test]
    fn consumer_and_claim_keys_read_what_authentication_left() {
        let key = LimitKey::new(vec![KeyPart::Consumer, KeyPart::Claim("sub".into())], false);
        let t = with_ctx(
            &[],
            |e| {
                e.insert(Consumer(Arc::from("acme")));
                e.insert(Claims(Arc::new(vec![("sub".into(), "u-1".into())])));
            },
            |c| key.text(c),
        );
        assert_eq!(t.as_deref(), Some("c:acme|l:u-1"));
        let s = RandomState::new();
        let a = with_ctx(
            &[],
            |e| {
                e.insert(Consumer(Arc::from("acme")));
            },
            |c| LimitKey::new(vec![KeyPart::Consumer], false).hash(c, &s),
        );
        let b = with_ctx(
            &[],
            |e| {
                e.insert(Consumer(Arc::from("other")));
            },
            |c| LimitKey::new(vec![KeyPart::Consumer], false).hash(c, &s),
        );
        assert_ne!(a, b);
    }

    #[test]
    fn long_values_are_hashed_stably() {
        let long = "x".repeat(500);
        let key = LimitKey::new(vec![KeyPart::Header(HeaderName::from_static("x-k"))], false);
        let a = with_ctx(&[("x-k", long.as_str())], |_| {}, |c| key.text(c)).unwrap();
        let b = with_ctx(&[("x-k", long.as_str())], |_| {}, |c| key.text(c)).unwrap();
        assert_eq!(a, b);
        assert!(a.len() < 40, "{a}");
    }
}
