//! Tests of [`H3Body`] over a real QUIC connection on 127.0.0.1 (a quinn endpoint pair, h3 on
//! both sides): the body is tied to quinn's receive stream, so there is no in-memory double.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use h3::error::Code;
use http::{HeaderMap, HeaderValue, Request};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{H3Body, LengthMismatch};

type ClientStream = h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;
type ServerConn = h3::server::Connection<h3_quinn::Connection, Bytes>;

/// Bounds every wait: a broken test fails in seconds instead of hanging the suite.
async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("timed out")
}

/// An HTTP/3 client and server connected over loopback UDP.
struct Pair {
    client: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    server: ServerConn,
    // Dropping an endpoint closes its connections.
    _endpoints: [quinn::Endpoint; 2],
}

impl Pair {
    async fn new() -> Pair {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let mut server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        server_tls.alpn_protocols = vec![b"h3".to_vec()];
        let server_cfg = quinn::ServerConfig::with_crypto(Arc::new(
            QuicServerConfig::try_from(Arc::new(server_tls)).unwrap(),
        ));
        let localhost: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server_ep = quinn::Endpoint::server(server_cfg, localhost).unwrap();

        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_tls.alpn_protocols = vec![b"h3".to_vec()];
        let mut client_ep = quinn::Endpoint::client(localhost).unwrap();
        client_ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(
            QuicClientConfig::try_from(Arc::new(client_tls)).unwrap(),
        )));

        let to = server_ep.local_addr().unwrap();
        let connecting = client_ep.connect(to, "localhost").unwrap();
        let (client_conn, server_conn) = within(async {
            let incoming = server_ep.accept().await.unwrap();
            tokio::join!(connecting, incoming.accept().unwrap())
        })
        .await;
        let (client_conn, server_conn) = (client_conn.unwrap(), server_conn.unwrap());
        // h3's handshakes (SETTINGS on the control streams) need both sides polled at once.
        let (client, server) = within(async {
            tokio::join!(
                h3::client::new(h3_quinn::Connection::new(client_conn)),
                h3::server::Connection::new(h3_quinn::Connection::new(server_conn)),
            )
        })
        .await;
        let (mut driver, client) = client.unwrap();
        tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Pair {
            client,
            server: server.unwrap(),
            _endpoints: [client_ep, server_ep],
        }
    }

    /// Opens a POST request stream, its head sent.
    async fn open(&mut self, content_length: Option<u64>) -> ClientStream {
        let mut req = Request::post("https://localhost/body");
        if let Some(n) = content_length {
            req = req.header("content-length", n);
        }
        within(self.client.send_request(req.body(()).unwrap()))
            .await
            .unwrap()
    }

    /// The server's side of the next request stream as an [`H3Body`], plus the stream's send
    /// half (kept: dropping it would reset the stream under the body).
    async fn accept(&mut self) -> (H3Body, super::SendHalf) {
        let resolver = within(self.server.accept()).await.unwrap().unwrap();
        let (req, stream) = within(resolver.resolve_request()).await.unwrap();
        let (send, recv) = stream.split();
        (
            H3Body::new(recv, super::declared_length(req.headers())),
            send,
        )
    }

    /// Like [`Pair::accept`], once everything the client sent on the stream, FIN included, has
    /// reached the server, so that `H3Body::new`'s read-ahead sees it.
    ///
    /// Why it works: a second request opened after the first was finished is sent after it
    /// (quinn sends streams' data in the order it was queued, at equal priority), loopback UDP
    /// keeps datagram order, and quinn processes a datagram whole before h3 sees any of it; so
    /// when the second request's head has been read, the first stream's bytes are buffered.
    async fn accept_all_arrived(&mut self) -> (H3Body, super::SendHalf) {
        let mut marker = self.open(None).await;
        within(marker.finish()).await.unwrap();
        let first = within(self.server.accept()).await.unwrap().unwrap();
        let second = within(self.server.accept()).await.unwrap().unwrap();
        within(second.resolve_request()).await.unwrap();
        let (req, stream) = within(first.resolve_request()).await.unwrap();
        let (send, recv) = stream.split();
        (
            H3Body::new(recv, super::declared_length(req.headers())),
            send,
        )
    }
}

async fn send(stream: &mut ClientStream, parts: &[&'static [u8]]) {
    for p in parts {
        within(stream.send_data(Bytes::from_static(p)))
            .await
            .unwrap();
    }
}

/// The next frame, within the test's bound.
async fn next(body: &mut H3Body) -> Option<Result<Frame<Bytes>, super::BoxError>> {
    within(body.frame()).await
}

/// Reads DATA frames until `want` bytes arrived (h3 may hand a frame over in pieces), checking
/// the size hint counts down before each read.
async fn read_data(body: &mut H3Body, want: usize, declared: Option<u64>) -> Bytes {
    let mut got = BytesMut::new();
    while got.len() < want {
        if let Some(d) = declared {
            assert_eq!(body.size_hint().exact(), Some(d - got.len() as u64));
        }
        assert!(!body.is_end_stream());
        let frame = next(body).await.expect("a frame").expect("not an error");
        let data = frame.into_data().expect("a DATA frame before the trailers");
        assert!(!data.is_empty(), "an empty DATA frame was yielded");
        got.extend_from_slice(&data);
    }
    got.freeze()
}

fn assert_ended(body: &H3Body) {
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));
}

#[tokio::test]
async fn data_frames_arrive_in_order_then_the_body_ends() {
    let mut pair = Pair::new().await;
    let mut c = pair.open(None).await;
    let (mut body, _send) = pair.accept().await;
    // Sent one at a time, each read before the next is sent: nothing can be coalesced.
    for part in [&b"first "[..], b"second ", b"third"] {
        send(&mut c, &[part]).await;
        assert_eq!(read_data(&mut body, part.len(), None).await, part);
        // Without a Content-Length nothing is known about what remains.
        assert_eq!(body.size_hint().lower(), 0);
        assert_eq!(body.size_hint().upper(), None);
    }
    within(c.finish()).await.unwrap();
    assert!(next(&mut body).await.is_none());
    assert_ended(&body);
    // Polling an ended body again stays ended.
    assert!(next(&mut body).await.is_none());
}

#[tokio::test]
async fn trailers_come_after_the_data_and_end_the_body() {
    let mut pair = Pair::new().await;
    let mut c = pair.open(Some(11)).await;
    send(&mut c, &[b"hello ", b"world"]).await;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    within(c.send_trailers(trailers.clone())).await.unwrap();
    within(c.finish()).await.unwrap();
    let (mut body, _send) = pair.accept_all_arrived().await;

    assert_eq!(read_data(&mut body, 11, Some(11)).await, "hello world");
    // All data is in, but the trailers are not yet taken: the body has not ended.
    assert!(!body.is_end_stream());
    let frame = next(&mut body).await.unwrap().unwrap();
    assert_eq!(frame.into_trailers().expect("trailers"), trailers);
    assert_ended(&body);
    assert!(next(&mut body).await.is_none());
}

#[tokio::test]
async fn trailers_without_data_are_a_body_of_trailers_only() {
    let mut pair = Pair::new().await;
    let mut c = pair.open(None).await;
    let mut trailers = HeaderMap::new();
    trailers.insert("x-only", HeaderValue::from_static("1"));
    within(c.send_trailers(trailers.clone())).await.unwrap();
    within(c.finish()).await.unwrap();
    let (mut body, _send) = pair.accept_all_arrived().await;
    // The trailers were read ahead, and the stream is over, but they are still to be yielded.
    assert!(body.first.is_some());
    assert!(!body.is_end_stream());
    let frame = next(&mut body).await.unwrap().unwrap();
    assert_eq!(frame.into_trailers().expect("trailers"), trailers);
    assert_ended(&body);
}

#[tokio::test]
async fn a_request_finished_with_its_head_is_known_empty_before_the_first_poll() {
    // What lets a GET keep its framing upstream instead of going chunked.
    let mut pair = Pair::new().await;
    let mut c = pair.open(None).await;
    within(c.finish()).await.unwrap();
    let (mut body, _send) = pair.accept_all_arrived().await;
    assert_ended(&body);
    assert!(next(&mut body).await.is_none());

    // With `content-length: 0` as well.
    let mut c = pair.open(Some(0)).await;
    within(c.finish()).await.unwrap();
    let (mut body, _send) = pair.accept_all_arrived().await;
    assert_ended(&body);
    assert!(next(&mut body).await.is_none());
}

#[tokio::test]
async fn the_size_hint_counts_down_from_content_length_including_the_frame_read_ahead() {
    let mut pair = Pair::new().await;
    let mut c = pair.open(Some(10)).await;
    send(&mut c, &[b"01234", b"56789"]).await;
    within(c.finish()).await.unwrap();
    let (mut body, _send) = pair.accept_all_arrived().await;
    // The first frame was read when the body was made: still all 10 bytes to come.
    assert!(body.first.is_some(), "nothing was read ahead");
    assert_eq!(body.size_hint().exact(), Some(10));
    assert!(!body.is_end_stream());
    assert_eq!(read_data(&mut body, 10, Some(10)).await, "0123456789");
    assert_eq!(body.size_hint().exact(), Some(0));
    assert!(next(&mut body).await.is_none());
    assert_ended(&body);

    // The same while the data arrives after the body was made (nothing read ahead).
    let mut c = pair.open(Some(6)).await;
    let (mut body, _send) = pair.accept().await;
    assert_eq!(body.size_hint().exact(), Some(6));
    send(&mut c, &[b"abc"]).await;
    assert_eq!(read_data(&mut body, 3, Some(6)).await, "abc");
    assert_eq!(body.size_hint().exact(), Some(3));
    send(&mut c, &[b"def"]).await;
    within(c.finish()).await.unwrap();
    assert_eq!(read_data(&mut body, 3, Some(3)).await, "def");
    assert!(next(&mut body).await.is_none());
    assert_ended(&body);
}

/// Whether `frame` is the length error.
fn is_mismatch(frame: Option<Result<Frame<Bytes>, super::BoxError>>) -> bool {
    match frame {
        Some(Err(e)) => e.is::<LengthMismatch>(),
        _ => false,
    }
}

#[tokio::test]
async fn a_body_longer_than_its_content_length_is_an_error_then_the_end() {
    let mut pair = Pair::new().await;
    let mut c = pair.open(Some(4)).await;
    send(&mut c, &[b"0123456789"]).await;
    within(c.finish()).await.unwrap();
    let (mut body, _send) = pair.accept_all_arrived().await;
    // Refused at the first byte over the declared length, before any of it is yielded.
    assert!(is_mismatch(next(&mut body).await));
    assert_ended(&body);
    assert!(next(&mut body).await.is_none());
}

/// Regression: h3-quinn 0.0.10 panicked when the body stopped the stream while a read was
/// outstanding, which is the case here (the DATA frame arrived after the body was made, and
/// the client has not finished).
#[tokio::test]
async fn a_body_over_its_content_length_while_still_arriving_stops_the_client_without_a_panic() {
    let mut pair = Pair::new().await;
    let mut c = pair.open(Some(4)).await;
    let (mut body, _send) = pair.accept().await;
    send(&mut c, &[b"0123456789"]).await;
    assert!(is_mismatch(next(&mut body).await));
    assert_ended(&body);
    // The client is told to stop, or it would go on sending a body nobody reads, up to flow
    // control. (With code 0 rather than H3_MESSAGE_ERROR, until h3-quinn lets us choose.)
    let refused = within(async {
        loop {
            if let Err(e) = c.send_data(Bytes::from_static(&[0; 16 * 1024])).await {
                return e;
            }
        }
    })
    .await;
    assert!(
        matches!(refused, h3::error::StreamError::RemoteTerminate { .. }),
        "expected STOP_SENDING, got {refused:?}"
    );
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_an_error_at_its_end() {
    let mut pair = Pair::new().await;
    let mut c = pair.open(Some(20)).await;
    send(&mut c, &[b"0123456789"]).await;
    within(c.finish()).await.unwrap();
    let (mut body, _send) = pair.accept_all_arrived().await;
    assert_eq!(read_data(&mut body, 10, Some(20)).await, "0123456789");
    assert!(is_mismatch(next(&mut body).await));
    assert_ended(&body);
    assert!(next(&mut body).await.is_none());
}

#[tokio::test]
async fn a_stream_reset_mid_body_is_an_error_then_the_end() {
    let mut pair = Pair::new().await;
    let mut c = pair.open(Some(100)).await;
    let (mut body, _send) = pair.accept().await;
    send(&mut c, &[b"partial"]).await;
    assert_eq!(read_data(&mut body, 7, Some(100)).await, "partial");
    // The client gives up: RESET_STREAM, not FIN. A truncated body must not look complete.
    c.stop_stream(Code::H3_REQUEST_CANCELLED);
    match next(&mut body).await {
        Some(Err(e)) => assert!(!e.is::<LengthMismatch>(), "{e}"),
        other => panic!("a reset body must fail, got {other:?}"),
    }
    assert_ended(&body);
    assert!(next(&mut body).await.is_none());
}
