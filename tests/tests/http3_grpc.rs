//! gRPC over HTTP/3 through the real binary: a raw HTTP/3 client (quinn + h3) sends gRPC calls,
//! length-prefixed protobuf written by hand, to a TLS listener with `http3`, in front of a tonic
//! upstream over h2c; replies, `grpc-status` in trailers, server streaming, and errors from the
//! upstream and from Strait itself.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode, Version};
use prost::Message;
use strait_e2e::certs::{Ca, Leaf};
use strait_e2e::grpc::{EchoReply, EchoRequest, GrpcUpstream, STREAM, UNARY};
use strait_e2e::h3::{H3Client, H3Response};
use strait_e2e::{within, Strait};

const HOST: &str = "grpc.h3.test";

/// Strait with a TLS + `http3` listener routing `strait.test.Echo` to `up` over h2c, and a
/// second service to an address where nothing listens.
async fn start(ca: &Ca, up: SocketAddr) -> Strait {
    let leaf: Leaf = ca.leaf(&[HOST]);
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls: {{ cert: server.pem, key: server.key }}\n\
         \x20   http3: true\n\
         routes:\n  - name: echo\n    match: {{ path_prefix: /strait.test.Echo/ }}\n    upstream: echo\n\
         \x20 - name: gone\n    match: {{ path_prefix: /strait.test.Gone/ }}\n    upstream: gone\n\
         upstreams:\n  - name: echo\n    endpoints: [\"{up}\"]\n    protocol: h2c\n\
         \x20 - name: gone\n    endpoints: [\"{}\"]\n    protocol: h2c\n",
        strait_e2e::closed_addr()
    );
    Strait::start_with_files(
        &yaml,
        &[
            ("server.pem", leaf.cert_pem.as_bytes()),
            ("server.key", leaf.key_pem.as_bytes()),
        ],
    )
    .await
}

async fn connect(ca: &Ca, addr: SocketAddr) -> H3Client {
    within(
        Duration::from_secs(10),
        "HTTP/3 connect",
        H3Client::connect(addr, HOST, &[ca.der()]),
    )
    .await
    .expect("HTTP/3 connection")
}

/// One gRPC message on the wire: uncompressed flag, big-endian length, protobuf.
fn frame(msg: &EchoRequest) -> Bytes {
    let pb = msg.encode_to_vec();
    let mut out = BytesMut::with_capacity(5 + pb.len());
    out.put_u8(0);
    out.put_u32(pb.len() as u32);
    out.put_slice(&pb);
    out.freeze()
}

/// Every message of a response body, checking the framing leaves nothing over.
fn messages(mut body: Bytes) -> Vec<EchoReply> {
    let mut out = Vec::new();
    while body.has_remaining() {
        assert!(body.len() >= 5, "truncated gRPC prefix: {body:?}");
        assert_eq!(body.get_u8(), 0, "compressed flag set");
        let len = body.get_u32() as usize;
        assert!(body.len() >= len, "truncated gRPC message");
        out.push(EchoReply::decode(body.split_to(len)).expect("protobuf EchoReply"));
    }
    out
}

/// A gRPC call as a client library makes it: POST, `application/grpc`, `te: trailers`.
async fn call(c: &mut H3Client, addr: SocketAddr, path: &str, msg: &EchoRequest) -> H3Response {
    let req = Request::post(format!("https://{HOST}:{}{path}", addr.port()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "10S")
        .body(frame(msg))
        .unwrap();
    let resp = within(Duration::from_secs(15), path, c.send(req))
        .await
        .unwrap_or_else(|e| panic!("{path} over HTTP/3: {e}"));
    assert_eq!(resp.response.version(), Version::HTTP_3);
    // gRPC's own status travels inside a 200; any other HTTP status is a transport failure.
    assert_eq!(resp.response.status(), StatusCode::OK, "{path}");
    assert!(
        resp.response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc")),
        "{path}: {:?}",
        resp.response.headers()
    );
    resp
}

fn field<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    h?.get(name).map(|v| v.to_str().unwrap())
}

fn request(message: &str, count: u32) -> EchoRequest {
    EchoRequest {
        message: message.into(),
        count,
    }
}

#[tokio::test]
async fn a_grpc_unary_call_over_http3_gets_its_reply_and_grpc_status_0_in_trailers() {
    let ca = Ca::new("grpc-h3");
    let up = GrpcUpstream::start().await;
    let s = start(&ca, up.addr()).await;
    let mut c = connect(&ca, s.web()).await;

    let resp = call(&mut c, s.web(), UNARY, &request("over h3", 0)).await;
    let head = resp.response.headers();
    // A reply with a message is never trailers-only: the status must wait for the trailers.
    assert_eq!(field(Some(head), "grpc-status"), None, "{head:?}");
    assert_eq!(
        messages(resp.response.body().clone()),
        vec![EchoReply {
            message: "over h3".into(),
            index: 0,
        }]
    );
    let trailers = resp.trailers.as_ref();
    assert_eq!(field(trailers, "grpc-status"), Some("0"), "{trailers:?}");

    // The upstream saw a gRPC request over HTTP/2, `te: trailers` kept (gRPC servers refuse
    // requests without it).
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    let (path, headers, version) = &reqs[0];
    assert_eq!(path, UNARY);
    assert_eq!(*version, Version::HTTP_2);
    assert_eq!(field(Some(headers), "te"), Some("trailers"), "{headers:?}");
    assert_eq!(
        field(Some(headers), "content-type"),
        Some("application/grpc")
    );
    assert_eq!(field(Some(headers), "grpc-timeout"), Some("10S"));

    // A message larger than a QUIC packet and than the client's 16 KiB DATA frames: split
    // across frames both ways, reassembled intact.
    let big: String = (0..200 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let resp = call(&mut c, s.web(), UNARY, &request(&big, 0)).await;
    let got = messages(resp.response.body().clone());
    assert_eq!(got.len(), 1);
    assert!(got[0].message == big, "the 200 KiB message differs");
    assert_eq!(field(resp.trailers.as_ref(), "grpc-status"), Some("0"));

    // Several calls share one QUIC connection, as a channel's calls do.
    for i in 0..5 {
        let text = format!("call {i}");
        let resp = call(&mut c, s.web(), UNARY, &request(&text, 0)).await;
        let got = messages(resp.response.body().clone());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message, text);
        assert_eq!(field(resp.trailers.as_ref(), "grpc-status"), Some("0"));
    }
}

#[tokio::test]
async fn a_server_streaming_call_over_http3_delivers_every_message_in_order_then_ok() {
    let ca = Ca::new("grpc-h3");
    let up = GrpcUpstream::start().await;
    let s = start(&ca, up.addr()).await;
    let mut c = connect(&ca, s.web()).await;

    let resp = call(&mut c, s.web(), STREAM, &request("s", 50)).await;
    let got: Vec<(u32, String)> = messages(resp.response.body().clone())
        .into_iter()
        .map(|m| (m.index, m.message))
        .collect();
    let want: Vec<(u32, String)> = (0..50).map(|i| (i, format!("s-{i}"))).collect();
    assert_eq!(got, want);
    assert_eq!(field(resp.trailers.as_ref(), "grpc-status"), Some("0"));
    assert_eq!(up.requests()[0].0, STREAM);
}

#[tokio::test]
async fn grpc_errors_over_http3_carry_their_status_from_the_upstream_and_from_strait() {
    let ca = Ca::new("grpc-h3");
    let up = GrpcUpstream::start().await;
    let s = start(&ca, up.addr()).await;
    let mut c = connect(&ca, s.web()).await;

    // An error after messages: the status can only come in trailers, after the DATA frames.
    let resp = call(&mut c, s.web(), STREAM, &request("fail", 3)).await;
    assert_eq!(messages(resp.response.body().clone()).len(), 3);
    let trailers = resp.trailers.as_ref();
    assert_eq!(field(trailers, "grpc-status"), Some("15"), "{trailers:?}"); // DATA_LOSS
                                                                            // gRPC percent-encodes the message; it must arrive byte for byte as the upstream wrote it.
    assert_eq!(
        field(trailers, "grpc-message"),
        Some("stream%20ended%20badly")
    );
    assert_eq!(
        field(Some(resp.response.headers()), "grpc-status"),
        None,
        "the status belongs to the trailers"
    );

    // Errors before any message are trailers-only responses (one HEADERS frame that ends the
    // stream): the status is in the head, and there is no body and no trailers section.
    let method = "/strait.test.Echo/Missing";
    let cases = [
        // The upstream's own errors: a method it does not implement, a handler's Status.
        (method, request("x", 0), "12"),  // UNIMPLEMENTED
        (UNARY, request("fail", 0), "5"), // NOT_FOUND
        // Strait's: the upstream cannot be reached (502 mapped for gRPC clients).
        ("/strait.test.Gone/Unary", request("x", 0), "14"), // UNAVAILABLE
        // No route (404 mapped for gRPC clients).
        ("/strait.test.Nowhere/Unary", request("x", 0), "12"), // UNIMPLEMENTED
    ];
    for (path, msg, status) in cases {
        let resp = call(&mut c, s.web(), path, &msg).await;
        let head = resp.response.headers();
        assert_eq!(
            field(Some(head), "grpc-status"),
            Some(status),
            "{path}: {head:?}"
        );
        assert!(resp.response.body().is_empty(), "{path}");
        assert!(
            field(resp.trailers.as_ref(), "grpc-status").is_none(),
            "{path}: {:?}",
            resp.trailers
        );
    }
    let resp = call(&mut c, s.web(), UNARY, &request("fail", 0)).await;
    assert_eq!(
        field(Some(resp.response.headers()), "grpc-message"),
        Some("no%20such%20echo")
    );
    // The connection survived every error: one more call succeeds on it.
    let resp = call(&mut c, s.web(), UNARY, &request("still here", 0)).await;
    assert_eq!(
        messages(resp.response.body().clone())[0].message,
        "still here"
    );
}
