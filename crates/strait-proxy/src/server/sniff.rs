//! Which protocol a plain-TCP connection speaks: HTTP/2 with prior knowledge opens with the
//! connection preface (RFC 9113 §3.4), anything else is HTTP/1.
//!
//! Decided by peeking, so the usual case (the first segment decides) consumes nothing. A client
//! that sends a prefix of the preface and then pauses has those bytes consumed, so that the next
//! peek waits for new ones instead of spinning; they are always `H2_PREFACE[..consumed]`, and the
//! caller puts them back in front of the stream ([`Prefixed`], or the HTTP/1 guard's `unread`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::h1guard::{H1Limits, H2_PREFACE};

/// The protocol, and how many preface bytes were consumed to decide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    H1(usize),
    H2(usize),
    /// Closed, failed, or stalled inside the preface beyond the header read timeout.
    Gone,
}

/// Waits for the first bytes of a fresh connection and peeks them into `buf`: how many, or
/// `None` when the client closed, failed or stayed silent for `header_read_timeout`.
///
/// Keep-alive is for clients that have made a request: a connection that sends nothing holds a
/// connection slot, so it gets the time an honest client needs to send a head, not
/// `idle_timeout`. Drain does not end the wait early: the connection was accepted before its
/// listener closed, so its client has sent, or is about to send, a request, and closing now would
/// reset it (a close with unread bytes is answered with RST); the response then closes the
/// connection. (tokio reports a new socket readable before any byte arrives, so only a peek
/// really waits.)
pub(crate) async fn first_bytes(
    tcp: &TcpStream,
    buf: &mut [u8],
    limits: &H1Limits,
) -> Option<usize> {
    match tokio::time::timeout(limits.header_read_timeout, tcp.peek(buf)).await {
        Ok(Ok(n)) if n > 0 => Some(n),
        _ => None,
    }
}

/// Decides the protocol from `seen`, the first bytes peeked from `tcp` (at least one).
pub(crate) async fn sniff(tcp: &TcpStream, seen: &[u8], header_read_timeout: Duration) -> Sniffed {
    match classify(seen, 0) {
        Some(sniffed) => sniffed,
        None => Box::pin(sniff_split(tcp, header_read_timeout)).await,
    }
}

/// The rare case: the bytes so far are a strict prefix of the preface.
async fn sniff_split(tcp: &TcpStream, limit: Duration) -> Sniffed {
    let deadline = Instant::now() + limit;
    let mut buf = [0; H2_PREFACE.len()];
    let mut consumed = 0;
    loop {
        let want = H2_PREFACE.len() - consumed;
        let n = match tokio::time::timeout_at(deadline, tcp.peek(&mut buf[..want])).await {
            Ok(Ok(n)) => n,
            _ => return Sniffed::Gone,
        };
        if let Some(sniffed) = classify(&buf[..n], consumed) {
            return sniffed;
        }
        // All preface bytes: take them, so the next peek waits for more.
        match tcp.try_read(&mut buf[..n]) {
            Ok(0) => return Sniffed::Gone,
            Ok(m) => consumed += m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Sniffed::Gone,
        }
    }
}

/// The decision for `seen`, the bytes after `consumed` preface bytes; `None` while undecided.
fn classify(seen: &[u8], consumed: usize) -> Option<Sniffed> {
    if seen.is_empty() {
        // EOF: nothing to serve, unless HTTP/1 has something to say about a partial preface.
        return Some(if consumed == 0 {
            Sniffed::Gone
        } else {
            Sniffed::H1(consumed)
        });
    }
    let want = &H2_PREFACE[consumed..];
    let same = want.iter().zip(seen).take_while(|(a, b)| a == b).count();
    if same == want.len() {
        Some(Sniffed::H2(consumed))
    } else if same < seen.len() {
        Some(Sniffed::H1(consumed))
    } else {
        None
    }
}

/// A stream with bytes already taken from it put back in front.
#[derive(Debug)]
pub(crate) struct Prefixed<IO> {
    prefix: &'static [u8],
    io: IO,
}

// === impl Prefixed ===

impl<IO> Prefixed<IO> {
    pub(crate) fn new(io: IO, prefix: &'static [u8]) -> Self {
        Self { prefix, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = buf.remaining().min(this.prefix.len());
            buf.put_slice(&this.prefix[..n]);
            this.prefix = &this.prefix[n..];
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_differing_byte_decides_http1() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n", 0), Some(Sniffed::H1(0)));
        assert_eq!(classify(b"POST", 0), Some(Sniffed::H1(0)));
        assert_eq!(classify(b"PRI * HTTP/1.1", 0), Some(Sniffed::H1(0)));
        assert_eq!(classify(b"HTTP/2.0", 5), Some(Sniffed::H1(5)));
    }

    #[test]
    fn whole_preface_decides_http2() {
        assert_eq!(classify(H2_PREFACE, 0), Some(Sniffed::H2(0)));
        assert_eq!(classify(&H2_PREFACE[3..], 3), Some(Sniffed::H2(3)));
        let mut more = H2_PREFACE.to_vec();
        more.extend(b"\x00\x00\x00\x04");
        assert_eq!(classify(&more, 0), Some(Sniffed::H2(0)));
    }

    #[test]
    fn preface_prefix_is_undecided_and_eof_ends_it() {
        assert_eq!(classify(b"P", 0), None);
        assert_eq!(classify(b"RI * HTTP/2.0", 1), None);
        assert_eq!(classify(b"", 0), Some(Sniffed::Gone));
        assert_eq!(classify(b"", 4), Some(Sniffed::H1(4)));
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn limits(idle: u64, header: u64) -> H1Limits {
        H1Limits {
            idle_timeout: Duration::from_millis(idle),
            header_read_timeout: Duration::from_millis(header),
            ..H1Limits::default()
        }
    }

    async fn first(server: &TcpStream) -> ([u8; 24], usize) {
        let mut seen = [0; 24];
        let n = first_bytes(server, &mut seen, &limits(5_000, 5_000)).await;
        (seen, n.expect("first bytes"))
    }

    #[tokio::test]
    async fn a_silent_connection_ends_at_the_header_timeout_not_the_idle_timeout() {
        let (_client, server) = pair().await;
        let got = tokio::time::timeout(
            Duration::from_secs(10),
            first_bytes(&server, &mut [0; 1], &limits(60_000, 50)),
        )
        .await
        .expect("bounded by the header timeout");
        assert_eq!(got, None);
    }

    #[tokio::test]
    async fn stalled_preface_prefix_is_consumed_then_given_up() {
        use tokio::io::AsyncWriteExt;

        let (mut client, server) = pair().await;
        client.write_all(&H2_PREFACE[..5]).await.unwrap();
        let (seen, n) = first(&server).await;
        let sniffed = sniff(&server, &seen[..n], Duration::from_millis(50)).await;
        assert_eq!(sniffed, Sniffed::Gone);
        let mut rest = [0; 24];
        let left = server.try_read(&mut rest);
        assert!(
            matches!(&left, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "the prefix was consumed: {left:?}"
        );
    }

    #[tokio::test]
    async fn preface_in_two_writes_is_http2_with_consumed_bytes_reported() {
        use tokio::io::AsyncWriteExt;

        let (mut client, server) = pair().await;
        client.write_all(&H2_PREFACE[..5]).await.unwrap();
        let (seen, n) = first(&server).await;
        let sniffing = tokio::spawn(async move {
            let sniffed = sniff(&server, &seen[..n], Duration::from_secs(5)).await;
            (sniffed, server)
        });
        client.write_all(&H2_PREFACE[5..]).await.unwrap();
        let (sniffed, server) = sniffing.await.unwrap();
        let Sniffed::H2(consumed) = sniffed else {
            panic!("{sniffed:?}");
        };
        // Whether the second write arrived before the first peek or not, nothing is lost.
        let mut rest = [0; 24];
        assert_eq!(server.try_read(&mut rest).unwrap(), 24 - consumed);
        assert_eq!(&rest[..24 - consumed], &H2_PREFACE[consumed..]);
    }
}
