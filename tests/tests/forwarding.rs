//! Forwarding to upstreams over HTTP/1.1: Host and x-forwarded-* headers,
//! request ids, hop-by-hop stripping in both directions, streamed bodies
//! (chunked, 256 MiB up and down with bounded memory), Expect: 100-continue
//! with curl, and nginx as a real upstream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use strait_e2e::client::{self, empty, header, text, Body, Conn, Proto};
use strait_e2e::nginx::Nginx;
use strait_e2e::upstream::{pattern_byte, RecordedRequest};
use strait_e2e::{poll_until, rss_kib, tool, within, BoxError, Reply, ReplyBody, Strait, Upstream};

/// A config with listener `web` and a catch-all route to upstream `up` at `addr`.
fn proxy_to(addr: std::net::SocketAddr) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{addr}\"]\n"
    )
}

async fn forward(
    up: &Upstream,
    s: &Strait,
    req: Request<Body>,
) -> (http::Response<Bytes>, RecordedRequest) {
    let resp = client::send(s.web(), Proto::H1, req)
        .await
        .expect("request through strait");
    assert_eq!(resp.status(), 200, "body: {}", text(&resp));
    let rec = up
        .requests()
        .last()
        .cloned()
        .expect("upstream saw the request");
    (resp, rec)
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[tokio::test]
async fn host_header_is_kept_as_the_client_sent_it() {
    let up = Upstream::start("up").await;
    let s = Strait::start(&proxy_to(up.addr())).await;
    let req = Request::get("/p")
        .header("host", "app.example:8080")
        .body(empty())
        .unwrap();
    let (_, rec) = forward(&up, &s, req).await;
    assert_eq!(rec.header("host"), "app.example:8080");
    assert_eq!(rec.path_and_query(), "/p");
}

#[tokio::test]
async fn x_forwarded_headers_are_added_and_appended() {
    let up = Upstream::start("up").await;
    let s = Strait::start(&proxy_to(up.addr())).await;
    let req = Request::get("/")
        .header("host", "app.example")
        .body(empty())
        .unwrap();
    let (_, rec) = forward(&up, &s, req).await;
    assert_eq!(rec.header("x-forwarded-for"), "127.0.0.1");
    assert_eq!(rec.header("x-forwarded-proto"), "http");
    assert_eq!(rec.header("x-forwarded-host"), "app.example");

    let req = Request::get("/")
        .header("host", "app.example")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-proto", "https")
        .body(empty())
        .unwrap();
    let (_, rec) = forward(&up, &s, req).await;
    assert_eq!(rec.header("x-forwarded-for"), "10.0.0.1, 127.0.0.1");
    assert_eq!(
        rec.header("x-forwarded-proto"),
        "http",
        "a client cannot spoof the scheme"
    );
}

#[tokio::test]
async fn request_id_is_generated_or_kept_and_returned() {
    let up = Upstream::start("up").await;
    let s = Strait::start(&proxy_to(up.addr())).await;

    let (resp, rec) = forward(&up, &s, client::get_req(s.web(), "/")).await;
    let id = header(&resp, "x-request-id");
    assert!(is_hex32(&id), "generated id should be 32 hex chars: {id:?}");
    assert_eq!(
        rec.header("x-request-id"),
        id,
        "upstream and client see the same id"
    );

    let req = Request::get("/")
        .header("host", "h")
        .header("x-request-id", "client-id-123")
        .body(empty())
        .unwrap();
    let (resp, rec) = forward(&up, &s, req).await;
    assert_eq!(header(&resp, "x-request-id"), "client-id-123");
    assert_eq!(rec.header("x-request-id"), "client-id-123");

    let long = "a".repeat(200);
    let req = Request::get("/")
        .header("host", "h")
        .header("x-request-id", long.as_str())
        .body(empty())
        .unwrap();
    let (resp, rec) = forward(&up, &s, req).await;
    let id = header(&resp, "x-request-id");
    assert!(
        is_hex32(&id),
        "an over-long id is replaced by a generated one: {id:?}"
    );
    assert_eq!(rec.header("x-request-id"), id);
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_not_forwarded() {
    let up = Upstream::start("up").await;
    let s = Strait::start(&proxy_to(up.addr())).await;
    let req = Request::get("/")
        .header("host", "h")
        .header("connection", "keep-alive, x-secret")
        .header("x-secret", "named-in-connection")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "gzip")
        .header("trailer", "x-foo")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-kept", "yes")
        .body(empty())
        .unwrap();
    let (_, rec) = forward(&up, &s, req).await;
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "proxy-authorization",
        "x-secret",
    ] {
        assert!(
            !rec.headers.contains_key(h),
            "{h} was forwarded upstream: {:?}",
            rec.headers.get(h)
        );
    }
    assert_eq!(rec.header("x-kept"), "yes");
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_not_returned() {
    let up = Upstream::with_handler("up", |_| {
        Reply::text("ok")
            .header("connection", "x-internal")
            .header("x-internal", "secret")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic realm=x")
            .header("trailer", "x-foo")
            .header("upgrade", "h2c")
            .header("x-kept", "yes")
    })
    .await;
    let s = Strait::start(&proxy_to(up.addr())).await;
    let resp = client::get(s.web(), "/").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(text(&resp), "ok");
    for h in [
        "x-internal",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !resp.headers().contains_key(h),
            "{h} returned to client: {:?}",
            resp.headers()
        );
    }
    assert!(
        !header(&resp, "connection").contains("x-internal"),
        "upstream Connection header leaked"
    );
    assert_eq!(header(&resp, "x-kept"), "yes");
}

#[tokio::test]
async fn chunked_request_body_is_streamed_to_the_upstream() {
    let up = Upstream::with_handler("up", |_| Reply::text("").body(ReplyBody::Echo)).await;
    let s = Strait::start(&proxy_to(up.addr())).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, BoxError>(Frame::data(b)), rx))
    });
    let body: Body = BodyExt::boxed(StreamBody::new(stream));
    let req = Request::post("/upload")
        .header("host", "h")
        .body(body)
        .unwrap();
    let mut conn = Conn::connect(s.web(), Proto::H1).await.unwrap();
    let pending = tokio::spawn(async move {
        let resp = conn.send(req).await?;
        client::collect(resp).await
    });
    tx.send(Bytes::from_static(b"part1-")).await.unwrap();
    // The upstream sees the request before the client has finished the body:
    // strait streams instead of buffering.
    up.wait_started(1, Duration::from_secs(5)).await;
    assert!(up.requests().is_empty(), "body cannot be complete yet");
    tx.send(Bytes::from_static(b"part2-")).await.unwrap();
    tx.send(Bytes::from_static(b"part3")).await.unwrap();
    drop(tx);
    let resp = within(Duration::from_secs(10), "chunked upload response", pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(text(&resp), "part1-part2-part3");
    assert_eq!(up.only_request().body_len, 17);
}

/// Samples the RSS of `pid` every 50 ms until dropped; `max()` is the peak in KiB.
struct RssSampler {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let max = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, st) = (max.clone(), stop.clone());
        tokio::spawn(async move {
            while !st.load(Ordering::SeqCst) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if s.contains("VmRSS") {
                        m.fetch_max(rss_kib(pid), Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { max, stop }
    }

    fn max(&self) -> u64 {
        self.max.load(Ordering::SeqCst)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

const LARGE: u64 = 256 * 1024 * 1024;
const RSS_LIMIT_KIB: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_is_streamed_with_bounded_memory() {
    let up = Upstream::with_handler("up", |_| Reply::text("").body(ReplyBody::BodyLen)).await;
    let s = Strait::start(&proxy_to(up.addr())).await;
    let rss = RssSampler::start(s.pid());
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let n = LARGE / chunk.len() as u64;
    let stream = futures_util::stream::iter(
        (0..n).map(move |_| Ok::<_, BoxError>(Frame::data(chunk.clone()))),
    );
    let body: Body = BodyExt::boxed(StreamBody::new(stream));
    let req = Request::post("/big")
        .header("host", "h")
        .header("content-length", LARGE.to_string())
        .body(body)
        .unwrap();
    let resp = within(Duration::from_secs(240), "256 MiB upload", async {
        let mut conn = Conn::connect(s.web(), Proto::H1).await.unwrap();
        client::collect(conn.send(req).await.unwrap())
            .await
            .unwrap()
    })
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        text(&resp),
        LARGE.to_string(),
        "upstream received every byte"
    );
    assert_eq!(up.only_request().body_len, LARGE);
    assert!(
        rss.max() < RSS_LIMIT_KIB,
        "strait RSS peaked at {} KiB during a 256 MiB upload (limit {RSS_LIMIT_KIB} KiB)",
        rss.max()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_download_is_streamed_with_bounded_memory() {
    let up =
        Upstream::with_handler("up", |_| Reply::text("").body(ReplyBody::Generated(LARGE))).await;
    let s = Strait::start(&proxy_to(up.addr())).await;
    let rss = RssSampler::start(s.pid());
    let total = within(Duration::from_secs(240), "256 MiB download", async {
        let mut conn = Conn::connect(s.web(), Proto::H1).await.unwrap();
        let resp = conn.send(client::get_req(s.web(), "/big")).await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut off = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("body frame").into_data() {
                for (i, b) in data.iter().enumerate() {
                    if *b != pattern_byte(off + i as u64) {
                        panic!("byte {} corrupted", off + i as u64);
                    }
                }
                off += data.len() as u64;
            }
        }
        off
    })
    .await;
    assert_eq!(total, LARGE);
    assert!(
        rss.max() < RSS_LIMIT_KIB,
        "strait RSS peaked at {} KiB during a 256 MiB download (limit {RSS_LIMIT_KIB} KiB)",
        rss.max()
    );
}

#[tokio::test]
async fn expect_100_continue_upload_works_with_curl() {
    let curl = tool("curl", &["/usr/bin/curl"]);
    let up = Upstream::with_handler("up", |_| Reply::text("").body(ReplyBody::BodyLen)).await;
    let s = Strait::start(&proxy_to(up.addr())).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.bin");
    std::fs::write(&file, vec![7u8; 2 * 1024 * 1024]).unwrap();
    let out = within(
        Duration::from_secs(30),
        "curl upload",
        tokio::process::Command::new(curl)
            .args(["-sS", "-v", "--noproxy", "*", "-H", "Expect: 100-continue"])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .args(["-w", "\n%{http_code}"])
            .arg(s.url("/upload"))
            .output(),
    )
    .await
    .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed: {stderr}");
    assert_eq!(stdout, "2097152\n200", "curl stdout (body + status)");
    assert!(
        stderr.contains("< HTTP/1.1 100 Continue"),
        "client never got 100 Continue:\n{stderr}"
    );
    assert_eq!(up.only_request().body_len, 2 * 1024 * 1024);
}

#[tokio::test]
async fn nginx_upstream_serves_static_files_through_strait() {
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let nginx = Nginx::start(&[
        ("hello.txt", b"hello from nginx\n"),
        ("blob/data.bin", &big),
    ]);
    let s = Strait::start(&proxy_to(nginx.addr())).await;

    let resp = client::get_host(s.web(), "static.test", "/hello.txt")
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "nginx error.log:\n{}",
        nginx.error_log()
    );
    assert_eq!(text(&resp), "hello from nginx\n");
    assert_eq!(header(&resp, "content-type"), "text/plain");
    assert!(!header(&resp, "x-request-id").is_empty());

    let resp = client::get_host(s.web(), "static.test", "/blob/data.bin")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.body()[..] == big[..],
        "1 MB file corrupted through strait"
    );

    let resp = client::get_host(s.web(), "static.test", "/missing.txt")
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "nginx's own 404 passes through");
    assert!(
        text(&resp).contains("nginx"),
        "404 body should be nginx's: {}",
        text(&resp)
    );

    // nginx writes its access log line after sending the response: wait for it.
    let log = poll_until(
        Duration::from_secs(3),
        "three nginx access log lines",
        || async {
            let log = nginx.access_log();
            (log.lines().count() >= 3).then_some(log)
        },
    )
    .await;
    assert_eq!(log.lines().count(), 3, "nginx access log:\n{log}");
    assert!(
        log.contains("GET /hello.txt HTTP/1.1"),
        "nginx access log:\n{log}"
    );
}

#[tokio::test]
async fn te_trailers_is_not_forwarded_to_an_http1_upstream_and_bad_request_ids_are_replaced() {
    let up = Upstream::start("up").await;
    let s = Strait::start(&proxy_to(up.addr())).await;
    let req = Request::get("/")
        .header("host", "h")
        .header("te", "trailers")
        .header("x-request-id", "has space")
        .body(empty())
        .unwrap();
    let (resp, rec) = forward(&up, &s, req).await;
    assert!(
        !rec.headers.contains_key("te"),
        "te: trailers is only for h2/gRPC upstreams"
    );
    let id = header(&resp, "x-request-id");
    assert!(
        is_hex32(&id),
        "an id with a space is not sane and is replaced: {id:?}"
    );
    assert_eq!(rec.header("x-request-id"), id);
}

/// Reads from `tcp` into `buf` until `needle` is in it (or the peer closes), within 5 s.
async fn read_until(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, needle: &[u8]) {
    use tokio::io::AsyncReadExt;
    let found = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    within(Duration::from_secs(5), "bytes from the socket", async {
        let mut chunk = [0u8; 4096];
        while !found(buf) {
            let n = tcp.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before {:?}", String::from_utf8_lossy(needle));
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
}

#[tokio::test]
async fn a_response_streams_back_while_its_request_body_is_still_uploading() {
    // The upstream answers the head at once and echoes each piece of the body as it comes: the
    // exchange only moves if Strait carries both directions at the same time, on one
    // connection, after the response head has gone back.
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        read_until(&mut tcp, &mut seen, b"\r\n\r\n").await;
        tcp.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let mut chunk = [0u8; 4096];
        let mut body = Vec::new();
        // Echo each read as one chunk until the request's last chunk.
        while !body.ends_with(b"0\r\n\r\n") {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the proxy closed mid-upload");
            body.extend_from_slice(&chunk[..n]);
            tcp.write_all(format!("{n:x}\r\n").as_bytes())
                .await
                .unwrap();
            tcp.write_all(&chunk[..n]).await.unwrap();
            tcp.write_all(b"\r\n").await.unwrap();
        }
        tcp.write_all(b"0\r\n\r\n").await.unwrap();
        body
    });
    let s = Strait::start(&proxy_to(addr)).await;
    let mut client = tokio::net::TcpStream::connect(s.web()).await.unwrap();
    client
        .write_all(b"POST /duplex HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut client, &mut got, b"\r\n\r\n").await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    for part in ["ping-one", "ping-two", "ping-three"] {
        // Each piece comes back before the next is sent.
        client
            .write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes())
            .await
            .unwrap();
        read_until(&mut client, &mut got, part.as_bytes()).await;
    }
    client.write_all(b"0\r\n\r\n").await.unwrap();
    read_until(&mut client, &mut got, b"0\r\n\r\n\r\n0\r\n\r\n").await;
    let body = within(Duration::from_secs(5), "upstream", upstream)
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("ping-one") && body.contains("ping-three"),
        "{body}"
    );
}

#[tokio::test]
async fn an_idle_pooled_connection_the_upstream_closes_is_closed_at_once() {
    // The upstream's FIN on an idle keep-alive connection is acted on at once: the socket must
    // not wait in CLOSE_WAIT for the next request or the pool's sweep. At 300 ms the connection
    // may still be live in hyper or just resting; at 1.2 s it rests (no hyper state).
    for close_after in [300, 1200] {
        upstream_fin_is_answered_at_once(Duration::from_millis(close_after)).await;
    }
}

async fn upstream_fin_is_answered_at_once(close_after: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        read_until(&mut tcp, &mut seen, b"\r\n\r\n").await;
        tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        // Let the connection go back to the pool, then close our side of it.
        tokio::time::sleep(close_after).await;
        tcp.shutdown().await.unwrap();
        let fin = std::time::Instant::now();
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
        let _ = closed_tx.send(fin.elapsed());
    });
    let s = Strait::start(&proxy_to(addr)).await;
    let resp = client::get(s.web(), "/").await.unwrap();
    assert_eq!(resp.status(), 200);
    let after = within(Duration::from_secs(10), "strait closes its side", closed_rx)
        .await
        .unwrap();
    assert!(
        after < Duration::from_millis(500),
        "the pooled connection was closed {after:?} after the upstream's FIN (idle {close_after:?})"
    );
}

/// A raw upstream that accepts connections and hands each to `serve`; counts them.
async fn raw_upstream<F, Fut>(serve: F) -> (std::net::SocketAddr, Arc<AtomicU64>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(tcp));
        }
    });
    (addr, accepted)
}

/// Longer than a pooled connection stays live unused (250 ms) plus the pool's tick (250 ms).
const RESTED: Duration = Duration::from_millis(900);

#[tokio::test]
async fn a_rested_pooled_connection_serves_again_and_still_upgrades() {
    // A pooled upstream connection unused for a while rests (hyper's state is freed, the
    // socket kept). The next requests must go on that same socket, and a WebSocket upgrade on
    // it must still be handed over to the tunnel.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, accepted) = raw_upstream(|mut tcp| async move {
        let mut seen = Vec::new();
        for n in 1..=2 {
            read_until(&mut tcp, &mut seen, b"\r\n\r\n").await;
            seen.clear();
            let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nr{n}");
            tcp.write_all(reply.as_bytes()).await.unwrap();
        }
        read_until(&mut tcp, &mut seen, b"\r\n\r\n").await;
        assert!(
            String::from_utf8_lossy(&seen)
                .to_ascii_lowercase()
                .contains("upgrade: websocket"),
            "{}",
            String::from_utf8_lossy(&seen)
        );
        tcp.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        )
        .await
        .unwrap();
        // The tunnel: echo until the client closes.
        let mut chunk = [0u8; 1024];
        while let Ok(n) = tcp.read(&mut chunk).await {
            if n == 0 || tcp.write_all(&chunk[..n]).await.is_err() {
                break;
            }
        }
    })
    .await;
    let s = Strait::start(&proxy_to(addr)).await;
    for n in 1..=2 {
        tokio::time::sleep(RESTED).await;
        let resp = client::get(s.web(), "/").await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.into_body(), format!("r{n}"));
    }
    tokio::time::sleep(RESTED).await;
    let mut client = tokio::net::TcpStream::connect(s.web()).await.unwrap();
    client
        .write_all(
            b"GET /chat HTTP/1.1\r\nhost: h\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
              sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut client, &mut got, b"\r\n\r\n").await;
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    client.write_all(b"through the tunnel").await.unwrap();
    got.clear();
    read_until(&mut client, &mut got, b"through the tunnel").await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "all three went on one connection"
    );
}

#[tokio::test]
async fn a_rested_pooled_connection_the_upstream_writes_to_is_never_reused() {
    // Bytes an upstream sends on an idle connection answer no request: the connection is
    // closed, and they never reach a client as the answer to the next request.
    use tokio::io::AsyncWriteExt;
    let (addr, accepted) = raw_upstream(|mut tcp| async move {
        let mut seen = Vec::new();
        read_until(&mut tcp, &mut seen, b"\r\n\r\n").await;
        tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ngood")
            .await
            .unwrap();
        tokio::time::sleep(RESTED).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil")
            .await;
        // Hold the connection open: only the bytes may tell Strait it is spoiled.
        let mut rest = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut rest).await;
    })
    .await;
    let s = Strait::start(&proxy_to(addr)).await;
    for _ in 0..2 {
        let resp = client::get(s.web(), "/").await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.into_body(), "good");
        tokio::time::sleep(RESTED + Duration::from_millis(300)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
