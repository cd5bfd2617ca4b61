//! Header hygiene for forwarding: hop-by-hop removal (RFC 9110 §7.6.1), X-Forwarded-*, request ids.

use http::{header, HeaderMap, HeaderName, HeaderValue};

/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-forwarded-for`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `x-forwarded-client-cert` (Envoy's XFCC): only Strait sets it, from a verified certificate.
pub static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers that never cross the proxy (Connection-named ones are removed too).
const HOP_BY_HOP: [&HeaderName; 8] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
];

/// Bits of [`strip_hop_by_hop`]'s scan: `HOP_BY_HOP[i]` is bit `i`.
const CONNECTION_BIT: u16 = 1 << 0;
const TE_BIT: u16 = 1 << 3;
const UPGRADE_BIT: u16 = 1 << 8;

/// What survives hop-by-hop removal for the next hop.
#[derive(Default, Clone, Copy)]
pub struct Kept {
    /// The request asked for an upgrade (`Connection: upgrade` + `Upgrade`), to be forwarded as such.
    pub upgrade: bool,
    /// The client sent `TE: trailers` (needed by gRPC over HTTP/2).
    pub te_trailers: bool,
}

/// Whether a response field would be removed by [`strip_hop_by_hop`] whatever else the head
/// holds: a hop-by-hop field, `Upgrade`, or a `Connection` naming only `close` and `keep-alive`
/// (one that names other fields is left for the strip, which removes those too).
pub(crate) fn dropped_from_response(name: &HeaderName, value: &[u8]) -> bool {
    if *name == header::CONNECTION {
        return value.split(|&b| b == b',').all(|t| {
            let t = t.trim_ascii();
            t.eq_ignore_ascii_case(b"close") || t.eq_ignore_ascii_case(b"keep-alive")
        });
    }
    *name == header::UPGRADE || HOP_BY_HOP.contains(&name)
}

/// Removes hop-by-hop headers and every header named in `Connection`; reports upgrade and `TE: trailers`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, allow_upgrade: bool) -> Kept {
    let mut kept = Kept::default();
    // One pass over the names finds which of these are present (most messages carry none, and
    // responses often only `Connection`): only those are looked up again, hashed.
    let mut present = 0u16;
    for k in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == k) {
            present |= 1 << i;
        } else if k == header::UPGRADE {
            present |= UPGRADE_BIT;
        }
    }
    if present == 0 {
        return kept;
    }
    if present & TE_BIT != 0 {
        if let Some(te) = headers.get(header::TE) {
            kept.te_trailers = te
                .as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
        }
    }
    let mut conn_upgrade = false;
    if present & CONNECTION_BIT != 0 {
        // Collect names first: the map cannot be mutated while its values are borrowed.
        let mut named: Vec<HeaderName> = Vec::new();
        for v in headers.get_all(header::CONNECTION) {
            for token in v.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"upgrade") {
                    conn_upgrade = true;
                    continue;
                }
                // Those in the list go below, if present: `keep-alive`, the usual token, is
                // not parsed into a name only to be dropped.
                if HOP_BY_HOP
                    .iter()
                    .any(|h| token.eq_ignore_ascii_case(h.as_str().as_bytes()))
                {
                    continue;
                }
                if let Ok(n) = HeaderName::from_bytes(token) {
                    named.push(n);
                }
            }
        }
        for n in named {
            headers.remove(n);
        }
    }
    for (i, h) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*h);
        }
    }
    let upgrade = present & UPGRADE_BIT != 0;
    if allow_upgrade && conn_upgrade && upgrade {
        kept.upgrade = true;
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if upgrade {
        headers.remove(header::UPGRADE);
    }
    kept
}

/// Appends the client IP to `X-Forwarded-For`.
pub fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    match headers.get(&X_FORWARDED_FOR) {
        None => {
            headers.insert(X_FORWARDED_FOR.clone(), client_ip.clone());
        }
        Some(prev) => {
            let mut v = Vec::with_capacity(prev.len() + 2 + client_ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(client_ip.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                headers.insert(X_FORWARDED_FOR.clone(), v);
            }
        }
    }
}

/// The request id to use: the client's if sane (1..=128 visible ASCII), else a new 32-hex-digit one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut id = match headers.get(&X_REQUEST_ID) {
        Some(v)
            if !v.is_empty()
                && v.len() <= 128
                && v.as_bytes().iter().all(|c| c.is_ascii_graphic()) =>
        {
            v.clone()
        }
        _ => new_request_id(),
    };
    // One value per request: HPACK would add each to the connection's table, and every one
    // would push out a field the next response reuses (`server`, `content-type`). Sensitive
    // values are sent as literals never indexed.
    id.set_sensitive(true);
    id
}

/// A fresh random request id of 32 hex digits.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    let (a, b) = (strait_core::rand::next_u64(), strait_core::rand::next_u64());
    for i in 0..16 {
        out[i] = HEX[((a >> (i * 4)) & 0xf) as usize];
        out[16 + i] = HEX[((b >> (i * 4)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&out).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Leaving out what `dropped_from_response` names, then stripping, ends where stripping
        /// everything ends.
        #[test]
        fn fields_dropped_early_are_those_the_strip_removes(
            fields in proptest::collection::vec((
                proptest::sample::select(vec![
                    "connection", "keep-alive", "proxy-connection", "te", "trailer",
                    "transfer-encoding", "proxy-authenticate", "upgrade", "x-a", "x-b", "server",
                ]),
                proptest::sample::select(vec![
                    "close", "keep-alive", "Close, Keep-Alive", "x-a", "close, x-b", "upgrade",
                    "", "1",
                ]),
            ), 0..8),
        ) {
            let mut all = HeaderMap::new();
            let mut early = HeaderMap::new();
            for (name, value) in &fields {
                let (name, value) = (HeaderName::from_static(name), HeaderValue::from_static(value));
                if !dropped_from_response(&name, value.as_bytes()) {
                    early.append(name.clone(), value.clone());
                }
                all.append(name, value);
            }
            strip_hop_by_hop(&mut all, false);
            strip_hop_by_hop(&mut early, false);
            proptest::prop_assert_eq!(all, early);
        }
    }

    #[test]
    fn connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, Keep-Alive ,x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h, true);
        assert!(h.get("x-secret").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get("connection").is_none());
        assert!(h.get("x-kept").is_some());
    }

    #[test]
    fn upgrade_survives_only_when_allowed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        let mut h2 = h.clone();
        assert!(strip_hop_by_hop(&mut h, true).upgrade);
        assert_eq!(h["connection"], "upgrade");
        assert!(!strip_hop_by_hop(&mut h2, false).upgrade);
        assert!(h2.get("upgrade").is_none());
    }

    #[test]
    fn insane_request_ids_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID.clone(), "has space".parse().unwrap());
        assert_eq!(request_id(&h).len(), 32);
        h.insert(X_REQUEST_ID.clone(), "abc-123".parse().unwrap());
        assert_eq!(request_id(&h), "abc-123");
    }

    #[test]
    fn request_ids_are_never_indexed_by_hpack() {
        let mut h = HeaderMap::new();
        assert!(request_id(&h).is_sensitive());
        h.insert(X_REQUEST_ID.clone(), "abc-123".parse().unwrap());
        assert!(request_id(&h).is_sensitive());
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        let ip = HeaderValue::from_static("127.0.0.1");
        append_forwarded_for(&mut h, &ip);
        append_forwarded_for(&mut h, &ip);
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1, 127.0.0.1");
    }
}
