//! Protocol translation through strait: the HTTP/1.1 × h2c client/upstream
//! matrix, WebSocket tunnelling, and gRPC (unary, server streaming, status in
//! trailers) over an h2c upstream.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{Request, Version};
use strait_e2e::client::{self, full, header, text, Proto};
use strait_e2e::grpc::{EchoClient, GrpcUpstream, STREAM, UNARY};
use strait_e2e::ws::WsEcho;
use strait_e2e::{within, Reply, ReplyBody, Strait, Upstream};
use tokio_tungstenite::tungstenite::Message;

fn proxy_to(addr: SocketAddr, protocol: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{addr}\"]\n    protocol: {protocol}\n"
    )
}

/// POST a body with `client_proto` through strait to an upstream speaking
/// `upstream_proto`; checks the echo and returns what the upstream saw.
async fn round_trip(client_proto: Proto, upstream_proto: &str) {
    let up = Upstream::with_handler("up", |_| Reply::text("").body(ReplyBody::Echo)).await;
    let s = Strait::start(&proxy_to(up.addr(), upstream_proto)).await;
    let req = match client_proto {
        Proto::H1 => Request::post("/echo?x=1").header("host", "app.test"),
        Proto::H2c => Request::post("http://app.test/echo?x=1"),
    }
    .header("x-custom", "v")
    .body(full("payload through strait"))
    .unwrap();
    let resp = client::send(s.web(), client_proto, req)
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(text(&resp), "payload through strait");
    let want_client_version = match client_proto {
        Proto::H1 => Version::HTTP_11,
        Proto::H2c => Version::HTTP_2,
    };
    assert_eq!(resp.version(), want_client_version);
    assert!(!header(&resp, "x-request-id").is_empty());

    let rec = up.only_request();
    let want_upstream_version = if upstream_proto == "h2c" {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    assert_eq!(
        rec.version, want_upstream_version,
        "upstream connection protocol"
    );
    assert_eq!(rec.uri.path(), "/echo");
    assert_eq!(rec.uri.query(), Some("x=1"));
    assert_eq!(rec.header("x-custom"), "v");
    let host = if rec.version == Version::HTTP_2 {
        rec.uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| rec.header("host"))
    } else {
        rec.header("host")
    };
    assert_eq!(
        host, "app.test",
        "client host/:authority reaches the upstream"
    );
}

#[tokio::test]
async fn http1_client_to_http1_upstream() {
    round_trip(Proto::H1, "http1").await;
}

#[tokio::test]
async fn h2c_client_to_http1_upstream_gets_authority_as_host() {
    round_trip(Proto::H2c, "http1").await;
}

#[tokio::test]
async fn http1_client_to_h2c_upstream() {
    round_trip(Proto::H1, "h2c").await;
}

#[tokio::test]
async fn h2c_client_to_h2c_upstream() {
    round_trip(Proto::H2c, "h2c").await;
}

#[tokio::test]
async fn websocket_messages_are_tunnelled_both_ways() {
    let ws = WsEcho::start().await;
    let s = Strait::start(&proxy_to(ws.addr(), "http1")).await;
    let (mut socket, resp) = within(
        Duration::from_secs(10),
        "websocket handshake",
        tokio_tungstenite::connect_async(format!("ws://{}/chat", s.web())),
    )
    .await
    .expect("websocket handshake through strait");
    assert_eq!(resp.status(), 101);

    for i in 0..50 {
        let msg = format!("message {i}");
        socket.send(Message::text(msg.clone())).await.unwrap();
        let echoed = within(Duration::from_secs(5), "text echo", socket.next())
            .await
            .expect("stream open")
            .expect("message");
        assert_eq!(echoed, Message::text(msg));
    }
    let bin = vec![0u8, 1, 2, 254, 255];
    socket.send(Message::binary(bin.clone())).await.unwrap();
    let echoed = within(Duration::from_secs(5), "binary echo", socket.next())
        .await
        .expect("stream open")
        .expect("message");
    assert_eq!(echoed, Message::binary(bin));
    socket.close(None).await.unwrap();

    let upgrades = ws.upgrades();
    assert_eq!(upgrades.len(), 1);
    let h = &upgrades[0];
    assert_eq!(
        h.get("upgrade")
            .map(|v| v.to_str().unwrap().to_ascii_lowercase()),
        Some("websocket".into()),
        "the Upgrade header is kept for an upgrade request"
    );
    assert!(h.contains_key("sec-websocket-key"));
}

async fn grpc_setup() -> (GrpcUpstream, Strait, EchoClient) {
    let up = GrpcUpstream::start().await;
    let s = Strait::start(&proxy_to(up.addr(), "h2c")).await;
    let client = within(
        Duration::from_secs(10),
        "grpc connect",
        EchoClient::connect(s.web()),
    )
    .await
    .expect("connect tonic channel to strait");
    (up, s, client)
}

#[tokio::test]
async fn grpc_unary_call_passes_through() {
    let (up, _s, mut client) = grpc_setup().await;
    let reply = within(Duration::from_secs(10), "unary", client.unary("hello"))
        .await
        .expect("unary call");
    assert_eq!(reply.get_ref().message, "hello");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    let (path, headers, version) = &reqs[0];
    assert_eq!(path, UNARY);
    assert_eq!(*version, Version::HTTP_2);
    assert_eq!(
        headers.get("te").map(|v| v.to_str().unwrap()),
        Some("trailers"),
        "te: trailers is forwarded to gRPC upstreams"
    );
    assert!(headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/grpc")));
}

#[tokio::test]
async fn grpc_server_streaming_delivers_every_message() {
    let (up, _s, mut client) = grpc_setup().await;
    let resp = within(Duration::from_secs(10), "stream", client.stream("s", 20))
        .await
        .expect("streaming call");
    let mut stream = resp.into_inner();
    let mut got = Vec::new();
    for _ in 0..25 {
        match within(Duration::from_secs(5), "stream message", stream.message()).await {
            Ok(Some(m)) => got.push((m.index, m.message)),
            Ok(None) => break,
            Err(status) => panic!("stream failed: {status:?}"),
        }
    }
    let want: Vec<(u32, String)> = (0..20).map(|i| (i, format!("s-{i}"))).collect();
    assert_eq!(got, want);
    assert_eq!(up.requests()[0].0, STREAM);
}

#[tokio::test]
async fn grpc_status_in_trailers_reaches_the_client() {
    let (_up, _s, mut client) = grpc_setup().await;
    // Unary error: a trailers-only response.
    let err = within(Duration::from_secs(10), "unary error", client.unary("fail"))
        .await
        .expect_err("unary call must fail");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert_eq!(err.message(), "no such echo");

    // Streaming error after data: grpc-status travels in real trailers.
    let resp = within(Duration::from_secs(10), "stream", client.stream("fail", 3))
        .await
        .expect("stream starts");
    let mut stream = resp.into_inner();
    let mut got = 0;
    let status = loop {
        assert!(got <= 3, "more messages than sent");
        match within(Duration::from_secs(5), "stream message", stream.message()).await {
            Ok(Some(_)) => got += 1,
            Ok(None) => panic!("stream ended with OK; the DATA_LOSS trailer was lost"),
            Err(status) => break status,
        }
    };
    assert_eq!(got, 3);
    assert_eq!(status.code(), tonic::Code::DataLoss, "{status:?}");
    assert_eq!(status.message(), "stream ended badly");

    // And a successful stream ends with grpc-status 0 (OK).
    let resp = client.stream("ok", 2).await.expect("stream starts");
    let mut stream = resp.into_inner();
    let mut n = 0;
    for _ in 0..3 {
        match within(Duration::from_secs(5), "stream message", stream.message()).await {
            Ok(Some(_)) => n += 1,
            Ok(None) => break,
            Err(status) => panic!("OK stream reported {status:?}"),
        }
    }
    assert_eq!(n, 2);
}

#[tokio::test]
async fn errors_reach_h2c_clients_with_the_request_id() {
    let s = Strait::start(&proxy_to(strait_e2e::closed_addr(), "http1")).await;
    let req = Request::get("http://app.test/x")
        .header("x-request-id", "h2-error-1")
        .body(client::empty())
        .unwrap();
    let resp = client::send(s.web(), Proto::H2c, req)
        .await
        .expect("h2 response");
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(header(&resp, "x-request-id"), "h2-error-1");
    assert!(
        text(&resp).ends_with("(request id h2-error-1)\n"),
        "{}",
        text(&resp)
    );
}
