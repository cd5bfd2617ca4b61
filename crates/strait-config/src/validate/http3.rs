//! `listeners[].http3`: HTTP/3 over QUIC on the listener's port, and its QUIC limits.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{pos, Ctx};
use crate::raw::RawHttp3;
use crate::types::Http3;

/// Request streams per connection: RFC 9114 §6.1 asks for at least 100 so a page's requests
/// are not serialised; more gives one client more of the proxy for itself.
const DEFAULT_STREAMS: u32 = 100;
/// QUIC has no TCP keepalive; 30 s frees a vanished client's state quickly while a browser
/// that pauses between clicks keeps its connection (it sends PINGs if it wants longer).
const DEFAULT_IDLE: Duration = Duration::from_secs(30);
/// Fits inside a 1500-byte Ethernet MTU with IPv6 and tunnel headers to spare (quiche's and
/// Cloudflare's value); larger datagrams risk fragmentation or loss on common paths.
const DEFAULT_UDP_PAYLOAD: u16 = 1350;

/// The validated setting; `None` when off. HTTP/3 needs the listener's certificates (QUIC
/// always runs TLS 1.3), so `http3` without `tls` is an error at `http3`.
pub(super) fn http3(
    cx: &mut Ctx,
    raw: &Spanned<RawHttp3>,
    listener: &str,
    has_tls: bool,
) -> Option<Http3> {
    let at = pos(raw);
    let full = match &raw.value {
        RawHttp3::Flag(false) => return None,
        RawHttp3::Flag(true) => None,
        RawHttp3::Full(f) => Some(&**f),
    };
    if !has_tls {
        cx.err(
            at,
            format!(
                "listener `{listener}`: http3 needs `tls` (HTTP/3 runs over QUIC, which always \
                 uses TLS 1.3 with the listener's certificates)"
            ),
        );
    }
    let max_concurrent_streams = cx.count(
        full.and_then(|f| f.max_concurrent_streams.as_ref()),
        "http3.max_concurrent_streams",
        DEFAULT_STREAMS,
        (1, 10_000),
    );
    let idle_timeout = cx.duration(
        full.and_then(|f| f.idle_timeout.as_ref()),
        "http3.idle_timeout",
        DEFAULT_IDLE,
        false,
    );
    // RFC 9000 §18.2: at least 1200; 65527 is the largest a UDP datagram can carry.
    let max_udp_payload_size = cx.count(
        full.and_then(|f| f.max_udp_payload_size.as_ref()),
        "http3.max_udp_payload_size",
        DEFAULT_UDP_PAYLOAD,
        (1200, 65_527),
    );
    Some(Http3 {
        max_concurrent_streams,
        idle_timeout,
        max_udp_payload_size,
    })
}

#[cfg(test)]
mod tests {
    use crate::parse;

    fn errors(yaml: &str) -> Vec<String> {
        match parse("t.yaml", yaml, None) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                    .collect()
            }
        }
    }

    const PLAIN: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n";

    #[test]
    fn http3_without_tls_is_an_error_at_the_field() {
        let errs = errors(&format!("{PLAIN}    http3: true\n"));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with("4:12: listener `web`: http3 needs `tls`"),
            "{errs:#?}"
        );
        let errs = errors(&format!("{PLAIN}    http3: {{ idle_timeout: 5s }}\n"));
        assert!(errs[0].contains("http3 needs `tls`"), "{errs:#?}");
    }

    #[test]
    fn http3_false_needs_nothing() {
        assert!(errors(&format!("{PLAIN}    http3: false\n")).is_empty());
    }

    #[test]
    fn unknown_http3_fields_and_wrong_types_are_reported() {
        let errs = errors(&format!("{PLAIN}    http3: {{ streams: 5 }}\n"));
        assert!(errs[0].contains("unknown field `streams`"), "{errs:#?}");
        let errs = errors(&format!("{PLAIN}    http3: yes please\n"));
        assert!(errs[0].starts_with("4:"), "{errs:#?}");
    }
}
