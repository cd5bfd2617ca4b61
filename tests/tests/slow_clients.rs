//! Clients that hold connections without making progress, through the real binary: silent ones
//! (plain TCP, TLS after the handshake) are closed at `header_read_timeout`, and stalled readers
//! (HTTP/1 and HTTP/2) at `send_timeout`, with their upstream connections closed and memory
//! bounded while a legitimate client is served.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rustls_pki_types::ServerName;
use strait_e2e::certs::{accept_any_client_config, Leaf};
use strait_e2e::client::{self, read_until_close};
use strait_e2e::h2raw::{self, code, flag, ty, H2Raw, Read};
use strait_e2e::{raise_nofile, rss_kib, within, Reply, ReplyBody, Strait, Upstream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BIG: u64 = 10 << 20;

/// `/big` is 10 MiB, everything else a short text.
async fn upstream() -> Upstream {
    Upstream::with_handler("up", |r| {
        if r.uri.path().starts_with("/big") {
            Reply::text("").body(ReplyBody::Zeros(BIG))
        } else {
            Reply::text("small")
        }
    })
    .await
}

fn config(up: SocketAddr, limits: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    limits: {{ {limits} }}\n\
         routes:\n  - name: r\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{up}\"]\n"
    )
}

#[tokio::test]
async fn silent_connections_hold_no_slot_past_header_read_timeout() {
    let up = upstream().await;
    let s = Strait::start(&config(
        up.addr(),
        "max_connections: 20, header_read_timeout: 1s, idle_timeout: 300s",
    ))
    .await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(s.web()).await.unwrap());
    }
    let started = Instant::now();
    for tcp in &mut silent {
        let r = read_until_close(tcp, Duration::from_secs(5)).await;
        assert!(
            r.closed && r.bytes.is_empty(),
            "closed without a word: {r:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let resp = within(Duration::from_secs(5), "GET", client::get(s.web(), "/ok")).await;
    assert_eq!(resp.unwrap().status(), 200);
}

#[tokio::test]
async fn a_tls_connection_silent_after_its_handshake_is_closed_at_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = Leaf::self_signed(&["a.test"]).write(dir.path(), "a");
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    limits: {{ header_read_timeout: 1s }}\n\
         \x20   tls: {{ cert: \"{}\", key: \"{}\" }}\n\
         routes:\n  - name: r\n    respond: {{ status: 200 }}\n",
        cert.display(),
        key.display()
    );
    let s = Strait::start(&yaml).await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let tcp = TcpStream::connect(s.web()).await.unwrap();
        let name = ServerName::try_from("a.test").unwrap();
        let connector = tokio_rustls::TlsConnector::from(accept_any_client_config(&[alpn]));
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        let started = Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut buf),
        )
        .await;
        assert!(read.is_ok(), "{alpn:?}: still open after 5s");
        assert!(started.elapsed() < Duration::from_secs(4));
    }
}

/// 300 clients ask for 10 MiB each and read nothing. Each is let go at `send_timeout` with its
/// upstream connection closed; meanwhile a legitimate client is served, and RSS grows by a
/// bounded amount per stalled client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_http1_readers_are_cut_at_send_timeout_with_bounded_memory() {
    const N: usize = 300;
    raise_nofile(4 * N as u64);
    let up = upstream().await;
    let s = Strait::start(&config(up.addr(), "send_timeout: 5s")).await;
    let web = s.web();
    assert_eq!(client::get(web, "/warm").await.unwrap().status(), 200);
    let rss_before = rss_kib(s.pid());

    let stalled = futures_util::stream::iter(0..N)
        .map(|i| async move {
            // A small receive buffer: the kernel, not Strait, would otherwise hold megabytes.
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.set_recv_buffer_size(4096).unwrap();
            let mut tcp = sock.connect(web).await.unwrap();
            let req = format!("GET /big{i} HTTP/1.1\r\nhost: x\r\n\r\n");
            tcp.write_all(req.as_bytes()).await.unwrap();
            tcp
        })
        .buffer_unordered(50)
        .collect::<Vec<TcpStream>>();
    let stalled = within(Duration::from_secs(20), "stalled clients", stalled).await;
    let per_client = measure_stalled(&s, &up, N, rss_before, "HTTP/1").await;
    drop(stalled);
    assert!(
        per_client < 400 * 1024,
        "{per_client} bytes of RSS per stalled reader"
    );
}

/// While `n` stalled clients hold their responses (all forwarded): the legitimate client is
/// served, and the RSS peak is measured; then every stalled client, and its upstream
/// connection, must be closed at `send_timeout`. Returns the RSS growth per stalled client.
async fn measure_stalled(s: &Strait, up: &Upstream, n: usize, rss_before: u64, what: &str) -> u64 {
    up.wait_started(n + 1, Duration::from_secs(10)).await;
    let attacked = Instant::now();
    let mut ok = 0;
    let mut peak = 0;
    for i in 0..20 {
        let r = within(
            Duration::from_secs(5),
            "GET",
            client::get(s.web(), &format!("/s{i}")),
        )
        .await;
        ok += usize::from(r.is_ok_and(|r| r.status() == 200));
        peak = peak.max(rss_kib(s.pid()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ok, 20, "the legitimate client was served throughout");
    assert!(
        attacked.elapsed() < Duration::from_secs(5),
        "measured while stalled"
    );
    let per_client = peak.saturating_sub(rss_before) * 1024 / n as u64;
    eprintln!(
        "stalled {what} readers: RSS {rss_before} KiB -> {peak} KiB, {per_client} bytes each, {:.1} MB per 1000",
        per_client as f64 * 1000.0 / 1e6
    );
    // After send_timeout every stalled client is gone, and so are their upstream connections.
    // (A kernel that reopens a few bytes of window now and then is progress: such a client
    // gets a fresh send_timeout, as nginx's send_timeout does.)
    strait_e2e::poll_until(
        Duration::from_secs(15),
        "stalled clients closed",
        || async { (s.connections_active("web").await <= 1.0).then_some(()) },
    )
    .await;
    strait_e2e::poll_until(
        Duration::from_secs(5),
        "upstream connections closed",
        || async { (up.open_connections() <= 2).then_some(()) },
    )
    .await;
    per_client
}

/// An h2 client that reads a big response on stream 1 but never opens its window: the stream
/// is reset at `send_timeout`, the connection stays usable, the upstream connection is closed.
#[tokio::test]
async fn a_stalled_h2_stream_is_reset_at_send_timeout_and_the_connection_lives_on() {
    let up = upstream().await;
    let s = Strait::start(&config(up.addr(), "send_timeout: 1s")).await;
    let mut c = H2Raw::connect(s.web()).await;
    // A large connection window, the stream's stays at 64 KiB.
    c.send(&h2raw::window_update(0, 100 << 20)).await;
    c.send(&h2raw::get(1, "/big")).await;
    let started = Instant::now();
    let reset = c
        .until(Duration::from_secs(5), |f| {
            f.ty == ty::RST_STREAM && f.stream == 1
        })
        .await
        .expect("the stalled stream is reset");
    assert_eq!(reset.code(), Some(code::CANCEL));
    assert!(started.elapsed() >= Duration::from_millis(900));
    strait_e2e::poll_until(
        Duration::from_secs(5),
        "upstream connection closed",
        || async { (up.open_connections() == 0).then_some(()) },
    )
    .await;
    // The same connection still serves.
    c.send(&h2raw::get(3, "/small")).await;
    let end = c
        .until(Duration::from_secs(5), |f| {
            f.stream == 3 && f.flags & flag::END_STREAM != 0
        })
        .await;
    assert!(end.is_some(), "stream 3 was answered");
}

/// An h2 client that stops reading altogether (its connection window stays shut) loses the
/// connection at `send_timeout`.
#[tokio::test]
async fn an_h2_client_that_reads_nothing_is_closed_at_send_timeout() {
    let up = upstream().await;
    let s = Strait::start(&config(up.addr(), "send_timeout: 1s")).await;
    let mut c = H2Raw::connect(s.web()).await;
    c.send(&h2raw::get(1, "/big")).await;
    let started = Instant::now();
    loop {
        match c.read(Duration::from_secs(5)).await {
            Read::Frame(_) => {}
            Read::Closed => break,
            Read::TimedOut => panic!("still open after {:?}", started.elapsed()),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    strait_e2e::poll_until(
        Duration::from_secs(5),
        "upstream connection closed",
        || async { (up.open_connections() == 0).then_some(()) },
    )
    .await;
}

/// 200 h2c clients ask for 10 MiB each and never open their windows: bounded memory while a
/// legitimate client is served, and every connection (and its upstream connection) closed at
/// `send_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_h2_readers_are_cut_at_send_timeout_with_bounded_memory() {
    const N: usize = 200;
    raise_nofile(4 * N as u64);
    let up = upstream().await;
    let s = Strait::start(&config(up.addr(), "send_timeout: 5s")).await;
    let web = s.web();
    assert_eq!(client::get(web, "/warm").await.unwrap().status(), 200);
    let rss_before = rss_kib(s.pid());
    let stalled = futures_util::stream::iter(0..N)
        .map(|i| async move {
            let mut c = H2Raw::connect(web).await;
            c.send(&h2raw::get(1, &format!("/big{i}"))).await;
            c
        })
        .buffer_unordered(50)
        .collect::<Vec<H2Raw>>();
    let stalled = within(Duration::from_secs(20), "stalled h2 clients", stalled).await;
    let per_client = measure_stalled(&s, &up, N, rss_before, "HTTP/2").await;
    drop(stalled);
    assert!(
        per_client < 400 * 1024,
        "{per_client} bytes of RSS per stalled h2 reader"
    );
}
