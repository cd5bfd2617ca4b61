//! The PROXY protocol (v1 text, v2 binary) a load balancer sends before anything else: read without consuming a byte of what follows, within a time and size bound; its source address becomes the connection's peer.
//!
//! Parsed here rather than with a crate: the parse is small and pure, and the reading must
//! take exactly the header's bytes off the socket (peek, then read that many) so the TLS or
//! HTTP bytes behind it stay for the sniffing that follows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature.
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (the specification's bound).
const V1_MAX: usize = 107;
/// The largest v2 header accepted (16-byte prefix, addresses, TLVs); load balancers send far less.
pub(crate) const V2_MAX: usize = 1024;

/// Why a header was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Not a PROXY header, or a malformed one.
    Malformed,
    /// Larger than the bound.
    TooLarge,
    /// Closed or failed before the header was complete.
    Closed,
    /// Not complete in time.
    Timeout,
}

/// What the first bytes say so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Peeked {
    /// More bytes are needed to decide.
    Incomplete,
    /// A header of this many bytes is complete in the buffer.
    Complete(usize),
}

/// Looks at the bytes received so far.
pub(crate) fn peek(buf: &[u8]) -> Result<Peeked, Bad> {
    let n = buf.len().min(V2_SIG.len());
    if buf[..n] == V2_SIG[..n] {
        if buf.len() < 16 {
            return Ok(Peeked::Incomplete);
        }
        let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if len > V2_MAX {
            return Err(Bad::TooLarge);
        }
        return Ok(if buf.len() >= len {
            Peeked::Complete(len)
        } else {
            Peeked::Incomplete
        });
    }
    let n = buf.len().min(6);
    if buf[..n] != b"PROXY "[..n] {
        return Err(Bad::Malformed);
    }
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i + 2 <= V1_MAX => Ok(Peeked::Complete(i + 2)),
        Some(_) => Err(Bad::TooLarge),
        None if buf.len() >= V1_MAX => Err(Bad::TooLarge),
        None => Ok(Peeked::Incomplete),
    }
}

/// Parses a complete header: the client's address, or `None` for a header that names none
/// (v1 `UNKNOWN`, v2 `LOCAL` or a non-IP family): the peer stays the client.
pub(crate) fn parse(h: &[u8]) -> Result<Option<SocketAddr>, Bad> {
    if h.starts_with(V2_SIG) {
        return parse_v2(h);
    }
    let line = h.strip_suffix(b"\r\n").ok_or(Bad::Malformed)?;
    let line = std::str::from_utf8(line).map_err(|_| Bad::Malformed)?;
    let mut parts = line.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(Bad::Malformed);
    }
    let v6 = match parts.next() {
        Some("TCP4") => false,
        Some("TCP6") => true,
        Some("UNKNOWN") => return Ok(None),
        _ => return Err(Bad::Malformed),
    };
    let fields: Vec<&str> = parts.collect();
    let [src, dst, sport, dport] = fields.as_slice() else {
        return Err(Bad::Malformed);
    };
    let ip = |s: &str| -> Result<IpAddr, Bad> {
        if v6 {
            s.parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| Bad::Malformed)
        } else {
            s.parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| Bad::Malformed)
        }
    };
    let port = |s: &str| -> Result<u16, Bad> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Bad::Malformed);
        }
        s.parse().map_err(|_| Bad::Malformed)
    };
    let (src, _dst, sport, _dport) = (ip(src)?, ip(dst)?, port(sport)?, port(dport)?);
    Ok(Some(SocketAddr::new(src, sport)))
}

fn parse_v2(h: &[u8]) -> Result<Option<SocketAddr>, Bad> {
    if h.len() < 16 {
        return Err(Bad::Malformed);
    }
    let (ver, cmd) = (h[12] >> 4, h[12] & 0x0f);
    if ver != 2 {
        return Err(Bad::Malformed);
    }
    let len = usize::from(u16::from_be_bytes([h[14], h[15]]));
    let body = h.get(16..16 + len).ok_or(Bad::Malformed)?;
    match cmd {
        // LOCAL: the balancer's own connection (health checks); no client address.
        0 => return Ok(None),
        1 => {}
        _ => return Err(Bad::Malformed),
    }
    match h[13] >> 4 {
        0 | 3 => Ok(None),
        1 => {
            let a = body.get(..12).ok_or(Bad::Malformed)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([a[8], a[9]]),
            )))
        }
        2 => {
            let a = body.get(..36).ok_or(Bad::Malformed)?;
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port)))
        }
        _ => Err(Bad::Malformed),
    }
}

/// Reads the header off `tcp` within `timeout`, taking exactly its bytes.
pub(crate) async fn read(
    tcp: &mut TcpStream,
    timeout: Duration,
) -> Result<Option<SocketAddr>, Bad> {
    match tokio::time::timeout(timeout, read_inner(tcp)).await {
        Ok(r) => r,
        Err(_) => Err(Bad::Timeout),
    }
}

async fn read_inner(tcp: &mut TcpStream) -> Result<Option<SocketAddr>, Bad> {
    let mut buf = vec![0u8; V2_MAX];
    let mut last = 0;
    loop {
        let n = tcp.peek(&mut buf).await.map_err(|_| Bad::Closed)?;
        if n == 0 {
            return Err(Bad::Closed);
        }
        match peek(&buf[..n])? {
            Peeked::Complete(len) => {
                tcp.read_exact(&mut buf[..len])
                    .await
                    .map_err(|_| Bad::Closed)?;
                return parse(&buf[..len]);
            }
            Peeked::Incomplete => {
                // peek returns at once while the same bytes wait: poll again after a pause
                // rather than spin (only a slow or hostile sender gets here).
                if n == last {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                last = n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v1_headers() {
        let h = b"PROXY TCP4 192.0.2.7 198.51.100.1 5123 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(peek(h), Ok(Peeked::Complete(44)));
        assert_eq!(parse(&h[..44]), Ok(Some("192.0.2.7:5123".parse().unwrap())));
        let h = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        assert_eq!(parse(h), Ok(Some("[2001:db8::1]:1".parse().unwrap())));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok(None));
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 5123\r\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
            b"PROXY TCP9 1.1.1.1 1.1.1.1 1 2\r\n",
            b"PROXY TCP4 1.1.1.1 1.1.1.1 99999 2\r\n",
            b"PROXY TCP4  1.1.1.1 1.1.1.1 1 2\r\n",
        ] {
            assert_eq!(parse(bad), Err(Bad::Malformed));
        }
        assert_eq!(peek(b"GET / HTTP/1.1\r\n"), Err(Bad::Malformed));
        assert_eq!(peek(b"PROX"), Ok(Peeked::Incomplete));
        assert_eq!(peek(&[b'P'; 3]), Err(Bad::Malformed));
        let mut long = b"PROXY ".to_vec();
        long.resize(200, b'x');
        assert_eq!(peek(&long), Err(Bad::TooLarge));
    }

    #[test]
    fn v2_headers() {
        let mut body = vec![192, 0, 2, 7, 198, 51, 100, 1];
        body.extend_from_slice(&5123u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        let h = v2(1, 0x11, &body);
        assert_eq!(peek(&h[..10]), Ok(Peeked::Incomplete));
        assert_eq!(peek(&h), Ok(Peeked::Complete(28)));
        assert_eq!(parse(&h), Ok(Some("192.0.2.7:5123".parse().unwrap())));
        assert_eq!(parse(&v2(0, 0x00, &[])), Ok(None));
        assert_eq!(parse(&v2(1, 0x11, &body[..4])), Err(Bad::Malformed));
        let mut six = vec![0u8; 36];
        six[15] = 1;
        six[33] = 80;
        assert_eq!(
            parse(&v2(1, 0x21, &six)),
            Ok(Some("[::1]:80".parse().unwrap()))
        );
        let mut huge = v2(1, 0x11, &body);
        huge[14] = 0xff;
        assert_eq!(peek(&huge), Err(Bad::TooLarge));
        let mut v3 = h.clone();
        v3[12] = 0x31;
        assert_eq!(parse(&v3), Err(Bad::Malformed));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = peek(&bytes);
            let _ = parse(&bytes);
            let mut h = V2_SIG.to_vec();
            h.extend_from_slice(&bytes);
            if let Ok(Peeked::Complete(n)) = peek(&h) {
                let _ = parse(&h[..n]);
            }
        }
    }
}
