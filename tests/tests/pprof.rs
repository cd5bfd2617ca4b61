//! The profiler on the admin listener through the real binary: a CPU profile taken under proxied load is a gzipped `profile.proto` with samples and function names; both endpoints take the admin token as `/api/` does; one profile at a time (409); parameters out of range are 400; a client that goes away stops its profile; the heap endpoint reports resident and allocator memory.

use std::{
    io::Read,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use prost::Message;
use strait_e2e::admin::{routed_config, start_routed as start, AdminClient, Answer, TOKEN};
use strait_e2e::{poll_until, within, Strait, Upstream};
use strait_profile::proto::Profile;
use tokio::io::AsyncWriteExt;

/// `GET path` with the token, the body kept as bytes.
async fn get_bytes(admin: &AdminClient, path: &str) -> (u16, String, Vec<u8>) {
    let r = admin
        .req(reqwest::Method::GET, path)
        .send()
        .await
        .expect("admin request");
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, kind, r.bytes().await.expect("body").to_vec())
}

/// Sends proxied requests until `stop` is set (at most 20,000 or 30 s).
fn drive_load(s: &Strait, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    let url = s.url("/api/load");
    tokio::spawn(async move {
        let http = strait_e2e::client::reqwest_client();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut ok = 0;
        for _ in 0..20_000 {
            if stop.load(Ordering::Relaxed) || tokio::time::Instant::now() > deadline {
                break;
            }
            if let Ok(r) = http.get(&url).send().await {
                ok += usize::from(r.status().is_success());
                let _ = r.bytes().await;
            }
        }
        ok
    })
}

/// Waits for the log line of a profile that has started sampling.
async fn wait_profile_started(s: &Strait, n: usize) {
    poll_until(Duration::from_secs(10), "a profile to start", || async {
        (s.logs_text().matches("CPU profile started").count() >= n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn cpu_profile_under_load_is_a_gzipped_pprof_with_samples_and_names() {
    let (_up, s, admin) = start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = drive_load(&s, stop.clone());
    let (status, kind, body) = within(
        Duration::from_secs(30),
        "the profile",
        get_bytes(&admin, "/debug/pprof/profile?seconds=2&frequency=250"),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let served = load.await.unwrap();
    assert!(served > 0, "no proxied request succeeded");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(kind, "application/octet-stream");
    assert_eq!(&body[..2], &[0x1f, 0x8b], "not gzip");

    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut raw)
        .expect("gunzip");
    let p = Profile::decode(&raw[..]).expect("profile.proto");
    assert_eq!(p.string_table.first().map(String::as_str), Some(""));
    let s_of = |i: i64| p.string_table[i as usize].as_str();
    let types: Vec<_> = p
        .sample_type
        .iter()
        .map(|t| (s_of(t.r#type), s_of(t.unit)))
        .collect();
    assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
    assert_eq!(p.period, 1_000_000_000 / 250);
    assert!(p.duration_nanos >= 2_000_000_000, "{}", p.duration_nanos);
    assert!(!p.sample.is_empty(), "no samples");
    assert!(p
        .sample
        .iter()
        .all(|x| x.value.len() == 2 && x.value[0] > 0));
    // Every reference resolves: sample → location → function → name.
    for x in &p.sample {
        for id in &x.location_id {
            let loc = p.location.iter().find(|l| l.id == *id).expect("location");
            for line in &loc.line {
                assert!(p.function.iter().any(|f| f.id == line.function_id));
            }
        }
    }
    let names: Vec<&str> = p.function.iter().map(|f| s_of(f.name)).collect();
    // Inlined frames carry short names in release builds; the runtime's own show up anyway.
    assert!(
        names
            .iter()
            .any(|n| n.contains("strait") || n.contains("tokio")),
        "no strait or tokio function among {names:?}"
    );
    assert!(
        names.iter().all(|n| !n.starts_with("backtrace::")),
        "the unwinder's own frames are kept"
    );
    assert_go_pprof_reads(&body, &s);
}

/// `go tool pprof` (or Google's standalone `pprof`) reads the profile, where one is installed.
fn assert_go_pprof_reads(body: &[u8], s: &Strait) {
    let file = s.dir().join("cpu.pb.gz");
    std::fs::write(&file, body).unwrap();
    let tools: [&[&str]; 2] = [&["go", "tool", "pprof"], &["pprof"]];
    for tool in tools {
        let Ok(out) = std::process::Command::new(tool[0])
            .args(&tool[1..])
            .args(["-top", "-nodecount=5"])
            .arg(&file)
            .output()
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{tool:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("flat"), "{tool:?}: {text}");
    }
}

#[tokio::test]
async fn profiler_endpoints_take_the_admin_token_as_the_api_does() {
    let (_up, s, _) = start().await;
    let wrong = AdminClient::with_token(s.admin(), "not-the-token-0123456789");
    let http = strait_e2e::client::reqwest_client();
    for path in ["/debug/pprof/profile?seconds=1", "/debug/pprof/heap"] {
        let a = AdminClient::send(wrong.req(reqwest::Method::GET, path)).await;
        assert_eq!(a.status, 401, "{path}: {}", a.text);
        assert!(a.json["error"].is_string(), "{path}: {}", a.text);
        let a = AdminClient::send(http.get(wrong.url(path))).await;
        assert_eq!(a.status, 401, "{path}: {}", a.text);
    }
    // No token configured: closed, as the admin API is.
    let up = Upstream::start("up").await;
    let open = Strait::start(&routed_config(&up)).await;
    let admin = AdminClient::new(open.admin());
    for path in ["/debug/pprof/profile?seconds=1", "/debug/pprof/heap"] {
        let a = AdminClient::send(admin.req(reqwest::Method::GET, path)).await;
        assert_eq!(a.status, 401, "{path}: {}", a.text);
        assert!(
            a.json["error"].as_str().unwrap().contains("disabled"),
            "{path}: {}",
            a.text
        );
    }
}

#[tokio::test]
async fn a_second_profile_while_one_runs_gets_409() {
    let (_up, s, admin) = start().await;
    let first = {
        let admin = AdminClient::new(s.admin());
        tokio::spawn(async move { get_bytes(&admin, "/debug/pprof/profile?seconds=2").await })
    };
    wait_profile_started(&s, 1).await;
    let a =
        AdminClient::send(admin.req(reqwest::Method::GET, "/debug/pprof/profile?seconds=1")).await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert!(a.json["error"]
        .as_str()
        .unwrap()
        .contains("already running"));
    let (status, _, body) = within(Duration::from_secs(30), "the first profile", first)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Finished: the profiler is free again.
    let (status, _, _) = get_bytes(&admin, "/debug/pprof/profile?seconds=1").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn profile_parameters_out_of_range_are_400() {
    let (_up, _s, admin) = start().await;
    for path in [
        "/debug/pprof/profile?seconds=1000",
        "/debug/pprof/profile?seconds=61",
        "/debug/pprof/profile?seconds=0",
        "/debug/pprof/profile?seconds=abc",
        "/debug/pprof/profile?seconds=-1",
        "/debug/pprof/profile?frequency=0",
        "/debug/pprof/profile?frequency=5000",
        "/debug/pprof/profile?second=5",
        "/debug/pprof/profile?seconds=1&seconds=2",
        "/debug/pprof/heap?gc=1",
    ] {
        let a: Answer = AdminClient::send(admin.req(reqwest::Method::GET, path)).await;
        assert_eq!(a.status, 400, "{path}: {}", a.text);
        assert!(a.json["error"].is_string(), "{path}: {}", a.text);
    }
    let a = AdminClient::send(admin.req(reqwest::Method::GET, "/debug/pprof/profile?seconds=1000"))
        .await;
    assert!(a.text.contains("from 1 to 60"), "{}", a.text);
    let a = AdminClient::send(admin.req(reqwest::Method::POST, "/debug/pprof/profile")).await;
    assert_eq!(a.status, 405, "{}", a.text);
    let a = AdminClient::send(admin.req(reqwest::Method::GET, "/debug/pprof/goroutine")).await;
    assert_eq!(a.status, 404, "{}", a.text);
}

#[tokio::test]
async fn a_client_that_goes_away_stops_its_profile() {
    let (_up, s, admin) = start().await;
    let mut conn = tokio::net::TcpStream::connect(s.admin()).await.unwrap();
    let head = format!(
        "GET /debug/pprof/profile?seconds=60 HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {TOKEN}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    wait_profile_started(&s, 1).await;
    drop(conn);
    // Well before the 60 s asked for, the profiler is free again.
    poll_until(
        Duration::from_secs(10),
        "the profiler to be free",
        || async {
            let (status, _, _) = get_bytes(&admin, "/debug/pprof/profile?seconds=1").await;
            (status == 200).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn heap_reports_resident_and_allocator_memory() {
    let (_up, _s, admin) = start().await;
    let (status, v, _) = admin.json("/debug/pprof/heap").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["allocator"], "mimalloc");
    let rss = v["rss_bytes"].as_u64().expect("rss_bytes");
    let peak = v["peak_rss_bytes"].as_u64().expect("peak_rss_bytes");
    assert!(rss > 1 << 20 && peak >= rss, "{v}");
    let committed = v["committed_bytes"].as_u64().expect("committed_bytes");
    assert!(committed > 0, "{v}");
    assert!(
        v["peak_committed_bytes"].as_u64().unwrap() >= committed,
        "{v}"
    );
    assert!(v["mimalloc"]["process"].is_object(), "{v}");
    assert!(v["mimalloc"]["malloc_bins"].is_array(), "{v}");
}
