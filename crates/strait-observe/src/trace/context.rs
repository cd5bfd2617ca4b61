//! Trace context on the wire: W3C `traceparent` and Zipkin B3, parsed without allocating and written for upstreams.
//!
//! Parsing is total: any malformed header yields `None` (the request then starts a new trace),
//! never a panic; the property tests feed arbitrary bytes.

use bytes::{BufMut, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent` (W3C Trace Context).
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `b3` (Zipkin single header).
pub static B3: HeaderName = HeaderName::from_static("b3");
/// `x-b3-traceid`.
pub static X_B3_TRACEID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// `x-b3-spanid`.
pub static X_B3_SPANID: HeaderName = HeaderName::from_static("x-b3-spanid");
/// `x-b3-parentspanid`.
pub static X_B3_PARENTSPANID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// `x-b3-sampled`.
pub static X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");

/// A 128-bit trace id (never all zeros).
pub type TraceId = [u8; 16];
/// A 64-bit span id (never all zeros).
pub type SpanId = [u8; 8];

/// The caller's context from request headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parent {
    /// The caller's trace.
    pub trace_id: TraceId,
    /// The caller's span: our server span's parent.
    pub span_id: SpanId,
    /// The caller's sampling decision; `None` when it deferred (B3 without a flag).
    pub sampled: Option<bool>,
}

/// Reads the caller's context: W3C first (when enabled), then B3.
pub fn extract(headers: &HeaderMap, w3c: bool, b3: bool) -> Option<Parent> {
    if w3c {
        if let Some(p) = headers
            .get(&TRACEPARENT)
            .and_then(|v| parse_traceparent(v.as_bytes()))
        {
            return Some(p);
        }
    }
    if b3 {
        if let Some(p) = headers.get(&B3).and_then(|v| parse_b3(v.as_bytes())) {
            return Some(p);
        }
        return parse_b3_multi(headers);
    }
    None
}

/// Parses `00-<32 hex>-<16 hex>-<2 hex>` (lowercase hex); later versions may append `-...`.
pub fn parse_traceparent(v: &[u8]) -> Option<Parent> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex_byte(&v[0..2])?;
    // Version ff is invalid; version 00 has exactly four fields.
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id: TraceId = hex_array(&v[3..35])?;
    let span_id: SpanId = hex_array(&v[36..52])?;
    let flags = hex_byte(&v[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled: Some(flags & 1 == 1),
    })
}

/// Parses the B3 single header `{trace}-{span}[-{sampled}[-{parent}]]`; a 64-bit trace id is left-padded.
pub fn parse_b3(v: &[u8]) -> Option<Parent> {
    let mut parts = v.split(|&b| b == b'-');
    let trace = parts.next()?;
    let span = parts.next()?;
    let sampled = match parts.next() {
        None => None,
        Some(s) => Some(b3_sampled(s)?),
    };
    if let Some(parent) = parts.next() {
        hex_array::<8>(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Parent {
        trace_id: b3_trace_id(trace)?,
        span_id: nonzero_span(hex_array(span)?)?,
        sampled,
    })
}

fn parse_b3_multi(headers: &HeaderMap) -> Option<Parent> {
    let trace = headers.get(&X_B3_TRACEID)?.as_bytes();
    let span = headers.get(&X_B3_SPANID)?.as_bytes();
    let sampled = match headers.get(&X_B3_SAMPLED) {
        Some(s) => Some(b3_sampled(s.as_bytes())?),
        None => None,
    };
    Some(Parent {
        trace_id: b3_trace_id(trace)?,
        span_id: nonzero_span(hex_array(span)?)?,
        sampled,
    })
}

fn b3_sampled(s: &[u8]) -> Option<bool> {
    match s {
        b"1" | b"d" | b"true" => Some(true),
        b"0" | b"false" => Some(false),
        _ => None,
    }
}

fn b3_trace_id(s: &[u8]) -> Option<TraceId> {
    let id = match s.len() {
        32 => hex_array::<16>(s)?,
        16 => {
            let low: [u8; 8] = hex_array(s)?;
            let mut id = [0; 16];
            id[8..].copy_from_slice(&low);
            id
        }
        _ => return None,
    };
    (id != [0; 16]).then_some(id)
}

fn nonzero_span(id: SpanId) -> Option<SpanId> {
    (id != [0; 8]).then_some(id)
}

/// `traceparent` for an upstream request whose parent is `span_id`.
pub fn traceparent(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> HeaderValue {
    let mut b = BytesMut::with_capacity(55);
    b.put_slice(b"00-");
    put_hex(&mut b, trace_id);
    b.put_u8(b'-');
    put_hex(&mut b, span_id);
    b.put_slice(if sampled { b"-01" } else { b"-00" });
    HeaderValue::from_maybe_shared(b.freeze()).expect("hex and dashes are a valid header value")
}

/// Writes the B3 single header and the `X-B3-*` headers for an upstream request.
pub fn inject_b3(
    headers: &mut HeaderMap,
    trace_id: &TraceId,
    span_id: &SpanId,
    parent: &SpanId,
    sampled: bool,
) {
    let flag: &[u8] = if sampled { b"1" } else { b"0" };
    let mut b = BytesMut::with_capacity(70);
    put_hex(&mut b, trace_id);
    b.put_u8(b'-');
    put_hex(&mut b, span_id);
    b.put_u8(b'-');
    b.put_slice(flag);
    b.put_u8(b'-');
    put_hex(&mut b, parent);
    let v = |bytes: bytes::Bytes| {
        HeaderValue::from_maybe_shared(bytes).expect("hex is a valid header value")
    };
    let all = b.freeze();
    headers.insert(B3.clone(), v(all.clone()));
    headers.insert(X_B3_TRACEID.clone(), v(all.slice(0..32)));
    headers.insert(X_B3_SPANID.clone(), v(all.slice(33..49)));
    headers.insert(X_B3_SAMPLED.clone(), v(all.slice(50..51)));
    headers.insert(X_B3_PARENTSPANID.clone(), v(all.slice(52..68)));
}

/// Lowercase hex of `id` (for logs).
pub fn hex(id: &[u8]) -> String {
    let mut b = BytesMut::with_capacity(id.len() * 2);
    put_hex(&mut b, id);
    String::from_utf8(b.to_vec()).unwrap_or_default()
}

/// Appends the lowercase hex of `id` to `out` (access log lines, without an allocation).
pub fn push_hex(out: &mut String, id: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &x in id {
        out.push(char::from(DIGITS[usize::from(x >> 4)]));
        out.push(char::from(DIGITS[usize::from(x & 15)]));
    }
}

fn put_hex(b: &mut BytesMut, id: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &x in id {
        b.put_u8(DIGITS[usize::from(x >> 4)]);
        b.put_u8(DIGITS[usize::from(x & 15)]);
    }
}

fn hex_array<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = hex_byte(pair)?;
    }
    Some(out)
}

fn hex_byte(s: &[u8]) -> Option<u8> {
    // W3C requires lowercase hex; B3 ids are lowercase hex too.
    let d = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(d(*s.first()?)? << 4 | d(*s.get(1)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn w3c_example_parses_and_round_trips() {
        let p = parse_traceparent(TP.as_bytes()).unwrap();
        assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p.span_id), "00f067aa0ba902b7");
        assert_eq!(p.sampled, Some(true));
        assert_eq!(traceparent(&p.trace_id, &p.span_id, true), TP);
    }

    #[test]
    fn malformed_traceparents_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
        // A later version may append fields.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what";
        assert_eq!(
            parse_traceparent(v1.as_bytes()).unwrap().sampled,
            Some(false)
        );
    }

    #[test]
    fn b3_single_and_multi_headers_parse() {
        let p = parse_b3(b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
            .unwrap();
        assert_eq!(hex(&p.span_id), "e457b5a2e4d86bd1");
        assert_eq!(p.sampled, Some(true));
        let p = parse_b3(b"64fe8b2a57d3eff7-e457b5a2e4d86bd1").unwrap();
        assert_eq!(hex(&p.trace_id), "000000000000000064fe8b2a57d3eff7");
        assert_eq!(p.sampled, None);
        assert_eq!(parse_b3(b"1"), None);
        let mut h = HeaderMap::new();
        inject_b3(&mut h, &[1; 16], &[2; 8], &[3; 8], false);
        assert_eq!(h[&X_B3_SAMPLED], "0");
        assert_eq!(h[&X_B3_SPANID], "0202020202020202");
        assert_eq!(h[&X_B3_PARENTSPANID], "0303030303030303");
        let back = extract(&h, false, true).unwrap();
        assert_eq!(
            (back.trace_id, back.span_id, back.sampled),
            ([1; 16], [2; 8], Some(false))
        );
        h.remove(&B3);
        assert_eq!(extract(&h, false, true).unwrap().span_id, [2; 8]);
        assert_eq!(extract(&h, true, false), None);
    }

    proptest! {
        #[test]
        fn arbitrary_header_bytes_never_panic(v in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = parse_traceparent(&v);
            let _ = parse_b3(&v);
        }

        #[test]
        fn written_traceparents_parse_back(t in any::<[u8; 16]>(), s in any::<[u8; 8]>(), sampled: bool) {
            prop_assume!(t != [0; 16] && s != [0; 8]);
            let v = traceparent(&t, &s, sampled);
            let p = parse_traceparent(v.as_bytes()).unwrap();
            prop_assert_eq!((p.trace_id, p.span_id, p.sampled), (t, s, Some(sampled)));
        }

        #[test]
        fn near_valid_traceparents_never_panic(i in 0usize..55, c in any::<u8>()) {
            let mut v = TP.as_bytes().to_vec();
            v[i] = c;
            let _ = parse_traceparent(&v);
        }
    }
}
