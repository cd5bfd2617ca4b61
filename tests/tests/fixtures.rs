//! Self-tests of the fixtures, without strait: every upstream, client and
//! external tool used by the suite works directly, so a failing end-to-end
//! test points at strait rather than at the harness.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{Request, Version};
use strait_e2e::certs::{client_config, Ca};
use strait_e2e::client::{self, full, raw_exchange, text, Proto};
use strait_e2e::grpc::{EchoClient, GrpcUpstream};
use strait_e2e::nginx::Nginx;
use strait_e2e::upstream::SilentUpstream;
use strait_e2e::ws::WsEcho;
use strait_e2e::{tool, within, Reply, ReplyBody, Upstream};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn recording_upstream_records_h1_and_h2c_requests() {
    let up = Upstream::with_handler("up", |_| Reply::text("").body(ReplyBody::Echo)).await;
    let req = Request::post("/a?b=1")
        .header("host", "x.test")
        .header("x-k", "v")
        .body(full("hello"))
        .unwrap();
    let resp = client::send(up.addr(), Proto::H1, req).await.unwrap();
    assert_eq!(text(&resp), "hello");
    assert_eq!(client::header(&resp, "x-upstream"), "up");
    let req = Request::post("http://y.test/c").body(full("h2")).unwrap();
    let resp = client::send(up.addr(), Proto::H2c, req).await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(text(&resp), "h2");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path_and_query(), "/a?b=1");
    assert_eq!(reqs[0].header("x-k"), "v");
    assert_eq!(reqs[0].body_len, 5);
    assert_eq!(reqs[1].version, Version::HTTP_2);
    assert_eq!(up.started(), 2);
    up.set_status_override(Some(503));
    assert_eq!(client::get(up.addr(), "/").await.unwrap().status(), 503);
}

#[tokio::test]
async fn generated_download_and_silent_upstream_behave() {
    let up = Upstream::with_handler("up", |_| {
        Reply::text("").body(ReplyBody::Generated(300_000))
    })
    .await;
    let resp = client::get(up.addr(), "/").await.unwrap();
    assert_eq!(resp.body().len(), 300_000);
    assert_eq!(
        resp.body()[70_000],
        strait_e2e::upstream::pattern_byte(70_000)
    );
    let silent = SilentUpstream::start().await;
    let r = raw_exchange(
        silent.addr(),
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        Duration::from_millis(300),
    )
    .await;
    assert!(!r.closed && r.bytes.is_empty());
    assert_eq!(silent.accepted(), 1);
}

#[tokio::test]
async fn grpc_upstream_answers_the_tonic_client_directly() {
    let up = GrpcUpstream::start().await;
    let mut c = EchoClient::connect(up.addr()).await.unwrap();
    assert_eq!(c.unary("hi").await.unwrap().get_ref().message, "hi");
    assert_eq!(
        c.unary("fail").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let mut s = c.stream("fail", 2).await.unwrap().into_inner();
    assert!(s.message().await.unwrap().is_some());
    assert!(s.message().await.unwrap().is_some());
    assert_eq!(s.message().await.unwrap_err().code(), tonic::Code::DataLoss);
    let (_, headers, _) = &up.requests()[0];
    assert_eq!(headers.get("te").unwrap(), "trailers");
}

#[tokio::test]
async fn websocket_echo_answers_directly() {
    let ws = WsEcho::start().await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/", ws.addr()))
        .await
        .unwrap();
    socket.send(Message::text("x")).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("x"));
    assert_eq!(ws.upgrades().len(), 1);
}

#[tokio::test]
async fn tls_upstream_serves_h2_to_a_verifying_client() {
    let ca = Ca::new("fixture");
    let leaf = ca.leaf(&["127.0.0.1"]);
    let up = Upstream::with_tls("tls", leaf.server_config(&[b"h2"]), |r| {
        Reply::text(&format!("{:?}", r.version))
    })
    .await;
    let cfg = client_config(&[ca.der()], rustls::DEFAULT_VERSIONS, &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(up.addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get("https://127.0.0.1/")
                .body(client::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let resp = client::collect(resp).await.unwrap();
    assert_eq!(text(&resp), "HTTP/2.0");
}

#[test]
fn nginx_serves_static_files_directly() {
    let nginx = Nginx::start(&[("a.txt", b"A\n")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let resp = rt.block_on(client::get(nginx.addr(), "/a.txt")).unwrap();
    assert_eq!(resp.status(), 200, "{}", nginx.error_log());
    assert_eq!(text(&resp), "A\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_and_curl_reach_the_upstream_directly() {
    let up = Upstream::start("up").await;
    let h2load = tool("h2load", &["/usr/bin/h2load"]);
    let out = within(
        Duration::from_secs(60),
        "h2load",
        tokio::process::Command::new(h2load)
            .args(["-n", "100", "-c", "2", "-m", "5"])
            .arg(format!("http://{}/", up.addr()))
            .output(),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("status codes: 100 2xx, 0 3xx, 0 4xx, 0 5xx"),
        "{stdout}"
    );
    let curl = tool("curl", &["/usr/bin/curl"]);
    let out = tokio::process::Command::new(curl)
        .args(["-sS", "--noproxy", "*", "--http2-prior-knowledge"])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .arg(format!("http://{}/", up.addr()))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "up\n200 2");
}
