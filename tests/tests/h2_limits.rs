//! HTTP/2 downstream limits through the real binary, with hand-built frames over raw TCP:
//! header read and idle timeouts, keepalive PINGs, head limits (431/414), control-frame floods,
//! and the attacks the h2 codec already refuses (rapid reset, MadeYouReset, CONTINUATION flood).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Request;
use strait_e2e::client::{self, Proto};
use strait_e2e::h2raw::{self, code, flag, ty, Frame, H2Raw, Read};
use strait_e2e::metrics::sum;
use strait_e2e::{within, Strait, Upstream};

fn config(up: SocketAddr, limits: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    limits: {{ {limits} }}\n\
         routes:\n  - name: r\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{up}\"]\n"
    )
}

async fn start(limits: &str) -> (Upstream, Strait) {
    let up = Upstream::start("up").await;
    let s = Strait::start(&config(up.addr(), limits)).await;
    (up, s)
}

/// An h2c GET through hyper's client: the legitimate client of these tests.
async fn h2_get(s: &Strait, path: &str) -> u16 {
    let req = Request::get(format!("http://{}{path}", s.web()))
        .body(client::empty())
        .unwrap();
    match client::send(s.web(), Proto::H2c, req).await {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("h2c GET {path}: {e}"),
    }
}

async fn rejected(s: &Strait, reason: &str) -> f64 {
    let m = s.metrics().await;
    sum(
        &m,
        "strait_downstream_rejected_requests_total",
        &[("listener", "web"), ("reason", reason)],
    )
}

#[tokio::test]
async fn h2c_connections_with_only_a_preface_or_an_unfinished_header_block_are_closed_after_header_read_timeout(
) {
    let (up, s) = start("max_connections: 20, header_read_timeout: 1s, idle_timeout: 300s").await;
    let mut held = Vec::new();
    for i in 0..20u32 {
        let mut c = H2Raw::connect(s.web()).await;
        if i % 2 == 1 {
            // HEADERS without END_HEADERS, and no CONTINUATION ever.
            let block = h2raw::get_block("/never", &[]);
            c.send(&h2raw::frame(ty::HEADERS, flag::END_STREAM, 1, &block))
                .await;
        }
        held.push(c);
    }
    let started = Instant::now();
    for c in &mut held {
        assert!(
            c.until_closed(Duration::from_secs(5)).await.is_some(),
            "connection still open {:?} after a 1s header_read_timeout",
            started.elapsed()
        );
    }
    // Every slot is free again: a legitimate client is served.
    assert_eq!(
        within(Duration::from_secs(5), "h2c GET", h2_get(&s, "/ok")).await,
        200
    );
    assert_eq!(
        up.requests_except("/ok").len(),
        0,
        "nothing unfinished was forwarded"
    );
    assert_eq!(rejected(&s, "header_timeout").await, 10.0);
}

#[tokio::test]
async fn a_slow_continuation_drip_is_cut_at_header_read_timeout() {
    let (up, s) = start("header_read_timeout: 1s").await;
    let mut c = H2Raw::connect(s.web()).await;
    let block = h2raw::get_block("/drip", &[("x-a", "1")]);
    c.send(&h2raw::frame(ty::HEADERS, flag::END_STREAM, 1, &block[..4]))
        .await;
    let started = Instant::now();
    let mut closed = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // An empty CONTINUATION: progress, but never the end of the block.
        if !c.try_send(&h2raw::frame(ty::CONTINUATION, 0, 1, &[])).await {
            closed = true;
            break;
        }
    }
    closed = closed || c.until_closed(Duration::from_secs(3)).await.is_some();
    assert!(closed, "dripping CONTINUATIONs kept the connection open");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(up.started(), 0);
}

#[tokio::test]
async fn idle_h2_connection_gets_goaway_and_is_closed_even_while_the_client_pings() {
    let (_up, s) = start("idle_timeout: 1s, ping_timeout: 1s").await;
    let mut c = H2Raw::connect(s.web()).await;
    c.send(&h2raw::get(1, "/one")).await;
    let end = c
        .until(Duration::from_secs(5), |f| {
            f.stream == 1 && f.flags & flag::END_STREAM != 0
        })
        .await;
    assert!(end.is_some(), "the request was answered");
    // The client's PINGs are not activity: the connection still goes at the idle timeout.
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut closed = false;
    'outer: while started.elapsed() < Duration::from_secs(6) {
        c.send(&h2raw::frame(ty::PING, 0, 0, &[0; 8])).await;
        let tick = Instant::now();
        while tick.elapsed() < Duration::from_millis(200) {
            match c.read(Duration::from_millis(200) - tick.elapsed()).await {
                Read::Frame(f) => seen.push(f),
                Read::Closed => {
                    closed = true;
                    break 'outer;
                }
                Read::TimedOut => break,
            }
        }
    }
    assert!(
        closed,
        "an idle connection that keeps pinging was not closed: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|f| f.ty == ty::GOAWAY && f.code() == Some(code::NO_ERROR)),
        "a graceful GOAWAY came first: {:?}",
        seen.iter().filter(|f| f.ty != ty::PING).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn keepalive_pings_are_sent_and_an_unanswered_one_closes_the_connection() {
    let up = Upstream::with_handler("slow", |_| {
        strait_e2e::Reply::text("late").delay(Duration::from_secs(30))
    })
    .await;
    let s = Strait::start(&config(up.addr(), "ping_interval: 1s, ping_timeout: 1s")).await;
    let mut c = H2Raw::connect(s.web()).await;
    // A stream that stays open (its upstream answers late), so only the PINGs can end it.
    c.send(&h2raw::get(1, "/slow")).await;
    let frames = c
        .until_closed(Duration::from_secs(8))
        .await
        .expect("a peer that never answers PINGs is closed");
    assert!(
        frames
            .iter()
            .any(|f| f.ty == ty::PING && f.flags & flag::ACK == 0),
        "a keepalive PING was sent: {frames:?}"
    );
}

#[tokio::test]
async fn h2_request_with_1500_headers_gets_431_is_not_forwarded_and_is_counted() {
    let (up, s) = start("").await;
    let mut req = Request::get(format!("http://{}/many", s.web()));
    for i in 0..1500 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let req = req.body(client::empty()).unwrap();
    let resp = client::send(s.web(), Proto::H2c, req)
        .await
        .expect("response");
    assert_eq!(resp.status(), 431);
    assert_eq!(up.started(), 0, "nothing was forwarded");
    assert_eq!(rejected(&s, "headers_too_large").await, 1.0);
    let m = s.metrics().await;
    let unmatched = sum(
        &m,
        "strait_http_requests_total",
        &[("route", "unmatched"), ("code", "431")],
    );
    assert_eq!(unmatched, 1.0);
}

#[tokio::test]
async fn h2_headers_over_max_request_headers_by_size_get_431() {
    let (up, s) = start("max_request_headers: 16KiB").await;
    let big = "v".repeat(1000);
    let mut req = Request::get(format!("http://{}/big", s.web()));
    for i in 0..20 {
        req = req.header(format!("x-h{i}"), big.as_str());
    }
    let resp = client::send(s.web(), Proto::H2c, req.body(client::empty()).unwrap())
        .await
        .expect("response");
    assert_eq!(resp.status(), 431);
    assert_eq!(up.started(), 0);
    // Just under the limit is forwarded.
    let mut req = Request::get(format!("http://{}/fits", s.web()));
    for i in 0..14 {
        req = req.header(format!("x-h{i}"), big.as_str());
    }
    let resp = client::send(s.web(), Proto::H2c, req.body(client::empty()).unwrap())
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
}

/// Sends `frames` in batches while a reader drains what comes back; the frames read and whether
/// the connection was closed.
async fn flood(s: &Strait, setup: &[u8], unit: &[u8], count: usize) -> (Vec<Frame>, bool) {
    let c = H2Raw::connect(s.web()).await;
    let (mut rd, mut wr) = c.tcp.into_split();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut raw = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
        };
        (split_frames(&raw), closed)
    });
    use tokio::io::AsyncWriteExt;
    let _ = wr.write_all(setup).await;
    let batch: Vec<u8> = unit.repeat(100);
    for _ in 0..count / 100 {
        if wr.write_all(&batch).await.is_err() {
            break;
        }
    }
    reader.await.unwrap()
}

fn split_frames(mut raw: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while raw.len() >= 9 {
        let len = u32::from_be_bytes([0, raw[0], raw[1], raw[2]]) as usize;
        if raw.len() < 9 + len {
            break;
        }
        out.push(Frame {
            ty: raw[3],
            flags: raw[4],
            stream: u32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]]) & 0x7fff_ffff,
            payload: raw[9..9 + len].to_vec(),
        });
        raw = &raw[9 + len..];
    }
    out
}

fn goaway(frames: &[Frame]) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.ty == ty::GOAWAY)
        .and_then(Frame::code)
}

async fn flood_is_cut_off(setup: Vec<u8>, unit: Vec<u8>, reason: &str) {
    // A slow upstream keeps a request's stream open while the flood goes on.
    let up = Upstream::with_handler("slow", |r| {
        let delay = if r.path_and_query() == "/after" {
            0
        } else {
            10
        };
        strait_e2e::Reply::text("late").delay(Duration::from_secs(delay))
    })
    .await;
    let s = Strait::start(&config(up.addr(), "")).await;
    let started = Instant::now();
    let (frames, closed) = flood(&s, &setup, &unit, 20_000).await;
    assert!(closed, "the flooding connection was not closed");
    assert_eq!(
        goaway(&frames),
        Some(code::ENHANCE_YOUR_CALM),
        "GOAWAY(ENHANCE_YOUR_CALM) before the close"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(rejected(&s, reason).await, 1.0);
    assert_eq!(h2_get(&s, "/after").await, 200, "strait still serves");
}

#[tokio::test]
async fn window_update_flood_is_cut_off() {
    flood_is_cut_off(Vec::new(), h2raw::window_update(0, 1), "h2_flood").await;
}

#[tokio::test]
async fn priority_flood_is_cut_off() {
    flood_is_cut_off(
        Vec::new(),
        h2raw::frame(ty::PRIORITY, 0, 3, &[0, 0, 0, 1, 16]),
        "h2_flood",
    )
    .await;
}

#[tokio::test]
async fn settings_flood_is_cut_off() {
    flood_is_cut_off(Vec::new(), h2raw::settings(&[(0x3, 100)]), "h2_flood").await;
}

#[tokio::test]
async fn ping_flood_is_cut_off() {
    flood_is_cut_off(
        Vec::new(),
        h2raw::frame(ty::PING, 0, 0, &[7; 8]),
        "h2_flood",
    )
    .await;
}

#[tokio::test]
async fn rst_stream_flood_on_a_closed_stream_is_cut_off() {
    flood_is_cut_off(h2raw::get(1, "/x"), h2raw::rst(1, code::CANCEL), "h2_flood").await;
}

#[tokio::test]
async fn empty_data_flood_is_refused_by_the_codec() {
    // A POST whose body never ends, fed empty DATA frames.
    let post = h2raw::frame(
        ty::HEADERS,
        flag::END_HEADERS,
        1,
        &h2raw::block(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "localhost"),
            (":path", "/upload"),
        ]),
    );
    // h2 allows 100 empty DATA frames per connection, then answers ENHANCE_YOUR_CALM.
    let empty = h2raw::frame(ty::DATA, 0, 1, &[]);
    flood_is_cut_off(post, empty, "h2_enhance_your_calm").await;
}

#[tokio::test]
async fn rapid_reset_is_refused_by_the_codec() {
    let (up, s) = start("").await;
    let mut pairs = Vec::new();
    for i in 0..2000u32 {
        let id = 1 + 2 * i;
        pairs.extend(h2raw::get(id, "/rapid"));
        pairs.extend(h2raw::rst(id, code::CANCEL));
    }
    let (frames, closed) = flood(&s, &pairs, &[], 0).await;
    assert!(closed);
    assert_eq!(goaway(&frames), Some(code::ENHANCE_YOUR_CALM));
    assert!(
        up.started() < 200,
        "{} of 2000 reset requests reached the upstream",
        up.started()
    );
    assert_eq!(h2_get(&s, "/after").await, 200);
}

#[tokio::test]
async fn made_you_reset_is_refused_by_the_codec() {
    // Each stream provokes a reset by the server (a zero WINDOW_UPDATE is a stream error).
    let (up, s) = start("").await;
    let mut frames = Vec::new();
    for i in 0..3000u32 {
        let id = 1 + 2 * i;
        frames.extend(h2raw::get(id, "/myr"));
        frames.extend(h2raw::window_update(id, 0));
    }
    let (seen, closed) = flood(&s, &frames, &[], 0).await;
    assert!(closed);
    assert!(
        matches!(
            goaway(&seen),
            Some(code::ENHANCE_YOUR_CALM | code::PROTOCOL_ERROR)
        ),
        "{:?}",
        goaway(&seen)
    );
    assert!(up.started() < 3000);
    assert_eq!(h2_get(&s, "/after").await, 200);
}

#[tokio::test]
async fn continuation_flood_is_refused() {
    let (up, s) = start("").await;
    let block = h2raw::get_block("/cont", &[]);
    let mut setup = h2raw::frame(ty::HEADERS, flag::END_STREAM, 1, &block);
    setup.extend(h2raw::frame(
        ty::CONTINUATION,
        0,
        1,
        &h2raw::block(&[("x-a", "b")]),
    ));
    let unit = h2raw::frame(ty::CONTINUATION, 0, 1, &h2raw::block(&[("x-a", "b")]));
    let (frames, closed) = flood(&s, &setup, &unit, 50_000).await;
    assert!(closed, "the connection was closed");
    assert!(
        goaway(&frames).is_some_and(|c| c != code::NO_ERROR),
        "{frames:?}"
    );
    assert_eq!(up.started(), 0);
    assert_eq!(h2_get(&s, "/after").await, 200);
}

#[tokio::test]
async fn max_concurrent_streams_is_a_listener_setting() {
    let up = Upstream::with_handler("slow", |_| {
        strait_e2e::Reply::text("late").delay(Duration::from_secs(2))
    })
    .await;
    let s = Strait::start(&config(up.addr(), "max_concurrent_streams: 2")).await;
    let mut c = H2Raw::connect(s.web()).await;
    let mut burst = Vec::new();
    for id in [1, 3, 5] {
        burst.extend(h2raw::get(id, "/slow"));
    }
    c.send(&burst).await;
    let refused = c
        .until(Duration::from_secs(5), |f| f.ty == ty::RST_STREAM)
        .await
        .expect("the third stream is refused");
    assert_eq!(
        (refused.stream, refused.code()),
        (5, Some(code::REFUSED_STREAM))
    );
}
