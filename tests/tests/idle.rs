//! Idle keep-alive connections through the real binary. Strait parks an HTTP/1 connection that
//! has been quiet for 100 ms between requests (it drops hyper's state and waits on the bare
//! socket) and resumes it on the next bytes. Nothing of that may be visible to a client: requests
//! after an idle period, split around the park moment, pipelined, or upgraded to a WebSocket all
//! work, and idle timeout and drain still close parked connections. TLS connections park too.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use strait_e2e::certs::{accept_any_client_config, Ca};
use strait_e2e::client::{self, read_until_close, text, Conn, Proto};
use strait_e2e::ws::WsEcho;
use strait_e2e::{raise_nofile, rss_kib, within, Reply, ReplyBody, Strait, Upstream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

/// Longer than the park delay (100 ms), so the connection is parked when the next bytes come.
const IDLE: Duration = Duration::from_millis(300);

fn config(up: SocketAddr, limits: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n{limits}\
         routes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{up}\"]\n"
    )
}

/// An upstream answering each request with its own path, and strait in front of it.
async fn start() -> (Upstream, Strait) {
    let up = Upstream::with_handler("up", |r| Reply::text(r.uri.path())).await;
    let s = Strait::start(&config(up.addr(), "")).await;
    (up, s)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: app.test\r\n\r\n").into_bytes()
}

/// A raw HTTP/1.1 client connection that reads responses one at a time (pipelining-safe).
struct Raw<S = TcpStream> {
    tcp: S,
    buf: Vec<u8>,
    /// The head of the last response read.
    head: String,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let tcp = within(Duration::from_secs(5), "connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        Raw {
            tcp,
            buf: Vec::new(),
            head: String::new(),
        }
    }
}

impl Raw<TlsStream<TcpStream>> {
    /// A TLS connection (HTTP/1.1 by ALPN) to a listener serving `app.test`.
    async fn connect_tls(addr: SocketAddr) -> Self {
        let tls = within(Duration::from_secs(10), "TLS connect", async {
            let tcp = TcpStream::connect(addr).await?;
            let name = rustls_pki_types::ServerName::try_from("app.test").unwrap();
            tokio_rustls::TlsConnector::from(accept_any_client_config(&[b"http/1.1"]))
                .connect(name, tcp)
                .await
        })
        .await
        .expect("TLS connect");
        Raw {
            tcp: tls,
            buf: Vec::new(),
            head: String::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write request");
        // A TLS stream may keep records queued until flushed.
        self.tcp.flush().await.expect("flush request");
    }

    /// The next response: status and body (Content-Length framing, as strait sends here).
    async fn response(&mut self) -> (u16, String) {
        within(Duration::from_secs(10), "response", async {
            loop {
                if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    let len = content_length(&head);
                    if self.buf.len() >= end + 4 + len {
                        let body = self.buf[end + 4..end + 4 + len].to_vec();
                        self.buf.drain(..end + 4 + len);
                        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                        self.head = head;
                        return (status, String::from_utf8(body).unwrap());
                    }
                }
                let mut chunk = [0; 4096];
                let n = self.tcp.read(&mut chunk).await.expect("read response");
                assert!(n > 0, "connection closed; got so far: {:?}", self.text());
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
    }

    async fn exchange(&mut self, path: &str) {
        self.send(&get(path)).await;
        assert_eq!(self.response().await, (200, path.to_string()));
    }

    /// Sends a request in two halves, the first `before_ms` after the last response (before,
    /// near or after the park moment), the second 150 ms later; each must be answered whole.
    async fn split_around_park(&mut self, before_ms: &[u64]) {
        for (i, &before) in before_ms.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(before)).await;
            let path = format!("/split-{i}");
            let request = get(&path);
            let (a, b) = request.split_at(request.len() / 2);
            self.send(a).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            self.send(b).await;
            assert_eq!(
                self.response().await,
                (200, path),
                "first half after {before} ms"
            );
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

/// A connection with `idle_timeout: 1s` closed `waited` after its last request: at 1 s, give or
/// take the scheduling of a loaded machine.
fn assert_closed_at_one_second(waited: Duration) {
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}, idle_timeout is 1s"
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn keep_alive_connection_idle_past_park_after_serves_the_next_request() {
    let (up, s) = start().await;
    let mut conn = Conn::connect(s.web(), Proto::H1).await.unwrap();
    for path in ["/one", "/two", "/three"] {
        let resp = conn.send(client::get_req(s.web(), path)).await.unwrap();
        let resp = client::collect(resp).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(text(&resp), path);
        tokio::time::sleep(IDLE).await;
    }
    let paths: Vec<String> = up.requests().iter().map(|r| r.path_and_query()).collect();
    assert_eq!(paths, ["/one", "/two", "/three"]);
}

#[tokio::test]
async fn request_split_around_the_park_moment_is_served_whole() {
    let (up, s) = start().await;
    let mut raw = Raw::connect(s.web()).await;
    raw.exchange("/first").await;
    raw.split_around_park(&[0, 50, 90, 100, 110, 150, 300])
        .await;
    assert_eq!(up.requests().len(), 8);
}

#[tokio::test]
async fn a_bad_head_after_a_park_is_refused_and_counted_and_the_next_connection_works() {
    // A parked plain connection's guard is put away and rebuilt on the next bytes: it must
    // check them as strictly as the first request's, and count the refusal once.
    let (up, s) = start().await;
    let mut raw = Raw::connect(s.web()).await;
    raw.exchange("/first").await;
    tokio::time::sleep(IDLE).await;
    raw.send(b"GET /second HTTP/1.1\r\nHost: app.test\r\nBad Name: x\r\n\r\n")
        .await;
    let (status, _) = raw.response().await;
    assert_eq!(status, 400);
    let rest = read_until_close(&mut raw.tcp, Duration::from_secs(5)).await;
    assert!(rest.closed, "a refused connection closes");
    let m = s.metrics().await;
    let rejected = strait_e2e::metrics::sum(
        &m,
        "strait_downstream_rejected_requests_total",
        &[("listener", "web")],
    );
    assert_eq!(rejected, 1.0, "{m}");
    let mut again = Raw::connect(s.web()).await;
    again.exchange("/third").await;
    let paths: Vec<String> = up.requests().iter().map(|r| r.path_and_query()).collect();
    assert_eq!(paths, ["/first", "/third"]);
}

#[tokio::test]
async fn slow_upstream_response_is_not_cut_short_by_parking() {
    let up = Upstream::with_handler("up", |r| {
        Reply::text(r.uri.path()).delay(Duration::from_millis(400))
    })
    .await;
    let s = Strait::start(&config(up.addr(), "")).await;
    let mut raw = Raw::connect(s.web()).await;
    for path in ["/slow-1", "/slow-2"] {
        raw.exchange(path).await;
        // Ending hyper while it waits for the service would add `connection: close`.
        assert!(
            !raw.head.to_ascii_lowercase().contains("connection: close"),
            "{}",
            raw.head
        );
    }
}

#[tokio::test]
async fn body_paused_past_park_after_arrives_whole() {
    let up = Upstream::with_handler("up", |r| match r.method {
        http::Method::POST => Reply::text("").body(ReplyBody::Echo),
        _ => Reply::text(r.uri.path()),
    })
    .await;
    let s = Strait::start(&config(up.addr(), "")).await;
    let mut raw = Raw::connect(s.web()).await;
    raw.send(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nhello")
        .await;
    tokio::time::sleep(IDLE).await;
    raw.send(b"world").await;
    assert_eq!(raw.response().await, (200, "helloworld".to_string()));
    raw.exchange("/after").await;
}

#[tokio::test]
async fn pipelined_requests_after_idle_are_answered_in_order() {
    let (up, s) = start().await;
    let mut raw = Raw::connect(s.web()).await;
    raw.exchange("/warm").await;
    tokio::time::sleep(IDLE).await;
    let batch = [get("/p1"), get("/p2"), get("/p3")].concat();
    raw.send(&batch).await;
    for path in ["/p1", "/p2", "/p3"] {
        assert_eq!(raw.response().await, (200, path.to_string()));
    }
    // And once more after another idle period, split across two writes.
    tokio::time::sleep(IDLE).await;
    let batch = [get("/p4"), get("/p5")].concat();
    raw.send(&batch[..40]).await;
    raw.send(&batch[40..]).await;
    for path in ["/p4", "/p5"] {
        assert_eq!(raw.response().await, (200, path.to_string()));
    }
    assert_eq!(up.requests().len(), 6);
}

/// Opens `n` connections at once, serves one request on each and closes them all; returns the
/// RSS (KiB) while they were all open and unparked.
async fn burst(s: &Strait, n: usize) -> u64 {
    let open = futures_util::stream::iter(0..n)
        .map(|i| async move {
            let mut raw = Raw::connect(s.web()).await;
            raw.exchange(&format!("/b{i}")).await;
            raw
        })
        .buffer_unordered(n)
        .collect::<Vec<_>>();
    let conns = within(Duration::from_secs(60), "open connections", open).await;
    let peak = rss_kib(s.pid());
    drop(conns);
    peak
}

#[tokio::test]
async fn an_idle_proxy_returns_the_memory_of_a_burst_of_connections() {
    // Each live connection holds hyper's buffers until it parks or closes. mimalloc returned
    // freed pages only inside its own calls, a second after the last free, so a proxy that
    // went quiet after a burst kept the burst's memory resident (issue 15).
    raise_nofile(4096);
    // A slow upstream keeps the whole burst live at once, and the peak is the high-water
    // mark: parked connections now cost little, so a fast burst had parked before it ended.
    // Few idle upstream connections, so the pool's (tested in `the_upstream_pool_gives_back_
    // hyper_state_...`) do not count here. What stays after the burst varies from run to run
    // with where the allocator put what lives on: the build before resting and sleepers kept
    // about 13 MB of a 40 MB burst in 2 of 12 runs. The regression this guards against kept
    // nearly all of it, so at most half may stay.
    let up = Upstream::with_handler("up", |r| {
        Reply::text(r.uri.path()).delay(Duration::from_millis(200))
    })
    .await;
    let s = Strait::start(&format!(
        "{}    pool: {{ max_idle_per_endpoint: 16 }}\n",
        config(up.addr(), "")
    ))
    .await;
    // The first burst grows what stays (arenas, metric series, the pool's connections).
    burst(&s, 300).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(s.pid());
    burst(&s, 1000).await;
    let peak = peak_rss_kib(s.pid());
    assert!(
        peak > before + 8 * 1024,
        "a burst of 1,000 live connections took {} KiB",
        peak.saturating_sub(before)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut now = rss_kib(s.pid());
    while now > before + (peak - before) / 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = rss_kib(s.pid());
    }
    assert!(
        now <= before + (peak - before) / 2,
        "RSS {before} KiB before the burst, {peak} KiB at its height, still {now} KiB 5 s after it \
         ({} downstream connections open, {} upstream)",
        s.connections_active("web").await,
        up.open_connections()
    );
}

async fn active_becomes(s: &Strait, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut now = s.connections_active("web").await;
    while now != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        now = s.connections_active("web").await;
    }
    assert_eq!(now, want, "strait_downstream_connections_active");
}

#[tokio::test]
async fn parked_connections_keep_their_slot_and_are_counted_until_they_end() {
    // A parked connection has no task of its own (it waits in its listener's sleepers): it
    // must still count as open, hold its connection slot, and leave both when it ends by the
    // client's close, by its idle timeout or after waking and closing.
    let up = Upstream::with_handler("up", |r| Reply::text(r.uri.path())).await;
    let s = Strait::start(&config(
        up.addr(),
        "    limits: { max_connections: 3, idle_timeout: 2s }\n",
    ))
    .await;
    let mut conns = Vec::new();
    for i in 0..3 {
        let mut raw = Raw::connect(s.web()).await;
        raw.exchange(&format!("/c{i}")).await;
        conns.push(raw);
    }
    tokio::time::sleep(IDLE).await;
    active_becomes(&s, 3.0).await;
    // The listener is full: a fourth connection waits in the backlog, unanswered.
    let mut fourth = Raw::connect(s.web()).await;
    fourth.send(&get("/fourth")).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(400), fourth.response())
            .await
            .is_err(),
        "a fourth connection was served past max_connections: 3"
    );
    // A parked connection wakes and serves, then parks again.
    conns[1].exchange("/again").await;
    tokio::time::sleep(IDLE).await;
    active_becomes(&s, 3.0).await;
    // A client that closes its parked connection frees its slot: the fourth is served.
    drop(conns.remove(0));
    assert_eq!(
        within(
            Duration::from_secs(5),
            "the fourth's response",
            fourth.response()
        )
        .await,
        (200, "/fourth".to_string())
    );
    active_becomes(&s, 3.0).await;
    // Idle timeouts end the rest.
    for raw in conns.iter_mut().chain([&mut fourth]) {
        let rest = read_until_close(&mut raw.tcp, Duration::from_secs(5)).await;
        assert!(rest.closed && rest.bytes.is_empty(), "{:?}", rest.text());
    }
    active_becomes(&s, 0.0).await;
    assert_eq!(up.requests().len(), 5);
}

#[tokio::test]
async fn the_upstream_pool_gives_back_hyper_state_of_connections_it_keeps_idle() {
    // A burst of slow requests leaves the pool holding one upstream connection per request.
    // Kept live, each held hyper's task, channel and buffers (about 40 KB, 8 MB for 200);
    // resting, each keeps only its socket (issue 15).
    const N: usize = 200;
    raise_nofile(4096);
    let up = Upstream::with_handler("up", |r| {
        Reply::text(r.uri.path()).delay(Duration::from_millis(300))
    })
    .await;
    let s = Strait::start(&config(up.addr(), "")).await;
    Raw::connect(s.web()).await.exchange("/warm").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(s.pid());
    burst(&s, N).await;
    assert!(
        up.open_connections() >= N,
        "{} upstream connections",
        up.open_connections()
    );
    // At most half of what the connections held live (20 of 40 KB each): resting ones keep
    // about 1 KB, and what else of the burst stays varies with where the allocator put what
    // lives on (0.3 to 2.8 MB across runs). Kept live they held 6.7 MB.
    let bound = (N * 20) as u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut grown = rss_kib(s.pid()).saturating_sub(before);
    while grown > bound && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        grown = rss_kib(s.pid()).saturating_sub(before);
    }
    assert!(
        grown <= bound,
        "{grown} KiB still held 5 s after a burst left {} idle upstream connections",
        up.open_connections()
    );
    // They are kept, and serve again.
    assert!(up.open_connections() >= N);
    burst(&s, N).await;
    assert!(
        up.connections() <= N + 1,
        "{} upstream connections opened",
        up.connections()
    );
}

/// The highest resident set size of process `pid` so far (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM")
}

/// Opens `n` connections with `connect`, `batch` at a time, each serving one request and each
/// batch given time to park before the next (so the RSS measures parked connections, not the
/// peak of live ones the allocator keeps afterwards); then serves one more request on each.
/// Returns the RSS per idle connection in bytes.
async fn park_and_reuse<S, F, C>(s: &Strait, n: usize, batch: usize, connect: C) -> usize
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: std::future::Future<Output = Raw<S>>,
    C: Fn() -> F,
{
    let rss_before = rss_kib(s.pid());
    let mut conns = Vec::with_capacity(n);
    for b in 0..n / batch {
        let open = futures_util::stream::iter(b * batch..(b + 1) * batch)
            .map(|i| {
                let conn = connect();
                async move {
                    let mut raw = conn.await;
                    raw.exchange(&format!("/a{i}")).await;
                    raw
                }
            })
            .buffer_unordered(batch)
            .collect::<Vec<_>>();
        conns.extend(within(Duration::from_secs(60), "open connections", open).await);
        tokio::time::sleep(IDLE).await;
    }
    assert_eq!(conns.len(), n);
    tokio::time::sleep(IDLE).await;
    let per_conn = (rss_kib(s.pid()).saturating_sub(rss_before) * 1024) as usize / n;
    eprintln!("RSS per idle connection: {per_conn} bytes");
    let again = futures_util::stream::iter(conns.iter_mut().enumerate())
        .map(|(i, raw)| async move { raw.exchange(&format!("/b{i}")).await })
        .buffer_unordered(64)
        .collect::<Vec<()>>();
    within(Duration::from_secs(60), "reuse connections", again).await;
    per_conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_idle_connections_park_and_each_serves_again() {
    const N: usize = 1000;
    raise_nofile(4 * N as u64);
    let (up, s) = start().await;
    let web = s.web();
    // Warm up so the baseline includes the upstream pool and the first-request allocations.
    Raw::connect(web).await.exchange("/warm").await;
    let per_conn = park_and_reuse(&s, N, 100, || Raw::connect(web)).await;
    assert_eq!(up.requests().len(), 2 * N + 1);
    // A live hyper connection holds about 35 KiB; a parked one a few KiB. Generous, so that
    // only "nothing was parked" fails.
    assert!(
        per_conn < 16 * 1024,
        "{per_conn} bytes of RSS per idle connection: are idle connections parked?"
    );
}

#[tokio::test]
async fn websocket_through_strait_echoes_after_idling() {
    let ws = WsEcho::start().await;
    let yaml = [
        "listeners:",
        "  - name: web",
        "    listen: 127.0.0.1:0",
        "routes:",
        "  - name: plain",
        "    match: { path_prefix: /plain }",
        "    respond: { status: 200, body: /plain }",
        "  - name: ws",
        "    upstream: up",
        "upstreams:",
        "  - name: up",
        &format!("    endpoints: [\"{}\"]", ws.addr()),
        "",
    ]
    .join("\n");
    let s = Strait::start(&yaml).await;
    // A keep-alive connection that served a request and parked, then upgrades.
    let mut raw = Raw::connect(s.web()).await;
    raw.exchange("/plain").await;
    tokio::time::sleep(IDLE).await;
    let (mut socket, resp) = within(
        Duration::from_secs(10),
        "websocket handshake",
        tokio_tungstenite::client_async(format!("ws://{}/chat", s.web()), raw.tcp),
    )
    .await
    .expect("websocket handshake on a parked connection");
    assert_eq!(resp.status(), 101);
    for round in 0..3 {
        let msg = Message::text(format!("round {round}"));
        socket.send(msg.clone()).await.unwrap();
        let echoed = within(Duration::from_secs(5), "echo", socket.next())
            .await
            .expect("stream open")
            .expect("message");
        assert_eq!(echoed, msg);
        // The tunnel is not an idle HTTP/1 connection: idling inside it changes nothing.
        tokio::time::sleep(IDLE).await;
    }
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn parked_connection_closes_at_the_idle_timeout() {
    let up = Upstream::with_handler("up", |r| Reply::text(r.uri.path())).await;
    let s = Strait::start(&config(up.addr(), "    limits: { idle_timeout: 1s }\n")).await;
    let mut raw = Raw::connect(s.web()).await;
    raw.exchange("/once").await;
    let idle_from = Instant::now();
    let rest = read_until_close(&mut raw.tcp, Duration::from_secs(10)).await;
    assert!(rest.closed, "still open after 10 s");
    assert!(rest.bytes.is_empty(), "{:?}", rest.text());
    let waited = idle_from.elapsed();
    assert_closed_at_one_second(waited);
}

#[tokio::test]
async fn sigterm_closes_parked_connections_and_exits_promptly() {
    let (_up, mut s) = start().await;
    let mut raw = Raw::connect(s.web()).await;
    raw.exchange("/once").await;
    tokio::time::sleep(IDLE).await;
    let t = Instant::now();
    s.signal("TERM");
    let rest = read_until_close(&mut raw.tcp, Duration::from_secs(5)).await;
    assert!(
        rest.closed,
        "parked connection still open 5 s after SIGTERM"
    );
    let status = s.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
}

/// A TLS listener serving `app.test` in front of an upstream answering with the path, with
/// `limits` (YAML lines under the listener) and its certificate in `dir`.
async fn start_tls(dir: &std::path::Path, limits: &str) -> (Upstream, Strait) {
    let up = Upstream::with_handler("up", |r| Reply::text(r.uri.path())).await;
    let (cert, key) = Ca::new("idle").leaf(&["app.test"]).write(dir, "web");
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n{limits}\
         \x20   tls: {{ cert: \"{}\", key: \"{}\" }}\n\
         routes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        cert.display(),
        key.display(),
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    (up, s)
}

#[tokio::test]
async fn tls_connection_parks_and_serves_split_and_pipelined_requests_after() {
    let dir = tempfile::tempdir().unwrap();
    let (up, s) = start_tls(dir.path(), "").await;
    let mut raw = Raw::connect_tls(s.web()).await;
    raw.exchange("/first").await;
    // A request split into two TLS records around the park moment, as over plain TCP.
    raw.split_around_park(&[0, 90, 110, 300]).await;
    // Several requests in one TLS record after a park: all of them are served, in order,
    // although hyper's first read takes them all from rustls at once.
    tokio::time::sleep(IDLE).await;
    let batch = [get("/p1"), get("/p2"), get("/p3")].concat();
    raw.send(&batch).await;
    for path in ["/p1", "/p2", "/p3"] {
        assert_eq!(raw.response().await, (200, path.to_string()));
    }
    assert_eq!(up.requests().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_connections_park_and_each_serves_again() {
    const N: usize = 300;
    raise_nofile(4 * N as u64);
    let dir = tempfile::tempdir().unwrap();
    let (up, s) = start_tls(dir.path(), "").await;
    let web = s.web();
    Raw::connect_tls(web).await.exchange("/warm").await;
    tokio::time::sleep(IDLE).await;
    let per_conn = park_and_reuse(&s, N, 50, || Raw::connect_tls(web)).await;
    assert_eq!(up.requests().len(), 2 * N + 1);
    // Unparked, an idle TLS connection keeps hyper's connection too: about 44 KB here against
    // 25-28 KB parked (debug build, 300 connections).
    assert!(
        per_conn < 36 * 1024,
        "{per_conn} bytes of RSS per idle TLS connection: are TLS connections parked?"
    );
}

#[tokio::test]
async fn parked_tls_connection_closes_at_the_idle_timeout_and_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (_up, mut s) = start_tls(dir.path(), "    limits: { idle_timeout: 1s }\n").await;
    let mut raw = Raw::connect_tls(s.web()).await;
    raw.exchange("/once").await;
    let idle_from = Instant::now();
    let mut rest = Vec::new();
    let end = within(Duration::from_secs(10), "close at idle timeout", async {
        raw.tcp.read_to_end(&mut rest).await
    })
    .await;
    // A close_notify and EOF, or a reset: either way nothing but the close.
    assert!(rest.is_empty() || end.is_err(), "{rest:?}");
    let waited = idle_from.elapsed();
    assert_closed_at_one_second(waited);

    let mut raw = Raw::connect_tls(s.web()).await;
    raw.exchange("/again").await;
    tokio::time::sleep(IDLE).await;
    s.signal("TERM");
    let mut rest = Vec::new();
    let _ = within(Duration::from_secs(5), "close on SIGTERM", async {
        raw.tcp.read_to_end(&mut rest).await
    })
    .await;
    let status = s.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn trickled_tls_record_bytes_do_not_keep_a_parked_connection_open() {
    // Each byte wakes the parked connection and decrypts to nothing: the idle timeout still
    // counts from the last request, as it did before TLS connections parked.
    let dir = tempfile::tempdir().unwrap();
    let (_up, s) = start_tls(dir.path(), "    limits: { idle_timeout: 1s }\n").await;
    let mut raw = Raw::connect_tls(s.web()).await;
    raw.exchange("/once").await;
    let idle_from = Instant::now();
    let tcp = raw.tcp.get_mut().0;
    // An application-data record header announcing 100 bytes, then its bytes one by one.
    let mut sent = 0;
    let closed = loop {
        let byte = match sent {
            0 => 0x17,
            1 | 2 => 0x03,
            3 => 0x00,
            4 => 100,
            _ => 0x41,
        };
        if tcp.write_all(&[byte]).await.is_err() {
            break true;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut probe = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            // A close_notify alert, then EOF.
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
        if idle_from.elapsed() > Duration::from_secs(6) {
            break false;
        }
    };
    assert!(
        closed,
        "still open 6 s after its last request, idle_timeout 1s"
    );
    let waited = idle_from.elapsed();
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
}

#[tokio::test]
async fn close_notify_to_a_parked_tls_connection_closes_it_at_once() {
    // The alert arrives while parked: the wake-up decrypts it, and the connection ends then,
    // not at the idle timeout.
    let dir = tempfile::tempdir().unwrap();
    let (_up, s) = start_tls(dir.path(), "    limits: { idle_timeout: 30s }\n").await;
    let mut raw = Raw::connect_tls(s.web()).await;
    raw.exchange("/once").await;
    tokio::time::sleep(IDLE).await;
    let sent = Instant::now();
    raw.tcp.shutdown().await.expect("send close_notify");
    let mut rest = Vec::new();
    let _ = within(Duration::from_secs(10), "close after close_notify", async {
        raw.tcp.read_to_end(&mut rest).await
    })
    .await;
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        sent.elapsed()
    );
}
