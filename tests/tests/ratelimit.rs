//! Rate and concurrency limits through the real binary: a local limit's 429 with `Retry-After` and `RateLimit` headers, key kinds, three Strait instances sharing one Redis (standalone, TLS with a password, and Cluster) limit exactly, Redis killed mid-run under both failure modes and restarted, and concurrency limits that free their slots however a request ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strait_e2e::json_lines as lines;

use http::Request;
use strait_e2e::client::{self, empty, Conn, Proto};
use strait_e2e::metrics::sum;
use strait_e2e::redis::{Redis, RedisCluster};
use strait_e2e::{poll_until, Reply, Strait, Upstream};

fn get(path: &str, headers: &[(&str, &str)]) -> Request<client::Body> {
    let mut b = Request::get(path).header("host", "h");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(empty()).unwrap()
}

/// A config answering every path directly (`ok`), with `policy` on the route.
fn respond_config(policy: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - {policy}\n\
         routes:\n  - name: api\n    respond: {{ status: 200, body: ok }}\n    policies: [limit]\n"
    )
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: u32,
    limited: u32,
    unavailable: u32,
    other: u32,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.ok += o.ok;
        self.limited += o.limited;
        self.unavailable += o.unavailable;
        self.other += o.other;
    }
}

/// `workers` keep-alive clients per address sending GET / as fast as they can for `length`
/// (each bounded to 100,000 requests); the statuses seen.
async fn drive(addrs: &[SocketAddr], workers: usize, length: Duration) -> Tally {
    let deadline = Instant::now() + length;
    let mut tasks = Vec::new();
    for &addr in addrs {
        for _ in 0..workers {
            tasks.push(tokio::spawn(async move {
                let mut t = Tally::default();
                let mut conn = None;
                for _ in 0..100_000 {
                    if Instant::now() >= deadline {
                        break;
                    }
                    if conn.is_none() {
                        conn = Conn::connect(addr, Proto::H1).await.ok();
                    }
                    let Some(c) = conn.as_mut() else {
                        t.other += 1;
                        continue;
                    };
                    let sent = tokio::time::timeout(Duration::from_secs(5), async {
                        let r = c.send(get("/", &[])).await?;
                        client::collect(r).await
                    })
                    .await;
                    match sent {
                        Ok(Ok(r)) => match r.status().as_u16() {
                            200 => t.ok += 1,
                            429 => t.limited += 1,
                            503 => t.unavailable += 1,
                            _ => t.other += 1,
                        },
                        _ => {
                            t.other += 1;
                            conn = None;
                        }
                    }
                }
                t
            }));
        }
    }
    let mut total = Tally::default();
    for t in tasks {
        total += t.await.expect("driver task");
    }
    total
}

/// The fleet tests measure rates on a two-core machine: one at a time.
static FLEET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn fleet(config: &str) -> Vec<Strait> {
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(Strait::start(config).await);
    }
    warm(&webs(&v)).await;
    v
}

/// Traffic until every instance has (re)connected to the store, then a pause that lets the
/// shared bucket fill again, so a measurement starts from a quiet limit.
async fn warm(addrs: &[SocketAddr]) {
    drive(addrs, 1, Duration::from_millis(1500)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn webs(fleet: &[Strait]) -> Vec<SocketAddr> {
    fleet.iter().map(Strait::web).collect()
}

async fn metric_sum(fleet: &[Strait], name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for s in fleet {
        total += sum(&s.metrics().await, name, labels);
    }
    total
}

#[tokio::test]
async fn a_local_limit_answers_429_with_retry_after_and_ratelimit_headers() {
    let yaml = format!(
        "{}observability:\n  access_log: {{ path: access.log }}\n",
        respond_config(
            "name: limit\n    rate_limit: { requests: 3, per: 1m, response_headers: true }"
        )
    );
    let s = Strait::start(&yaml).await;
    for remaining in ["2", "1", "0"] {
        let r = client::send(s.web(), Proto::H1, get("/", &[]))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["ratelimit-policy"], "\"limit\";q=3;w=60");
        let rl = r.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            rl.starts_with(&format!("\"limit\";r={remaining};t=")),
            "{rl}"
        );
    }
    let r = client::send(s.web(), Proto::H1, get("/", &[]))
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(client::text(&r), "strait: too many requests\n");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "one request every 20 s: {retry}");
    assert_eq!(r.headers()["ratelimit-policy"], "\"limit\";q=3;w=60");
    assert_eq!(
        r.headers()["ratelimit"].to_str().unwrap(),
        format!("\"limit\";r=0;t={retry}")
    );

    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "limit"), ("reason", "rate_limited")]
        ),
        1.0,
        "{m}"
    );
    let path = s.dir().join("access.log");
    let log = poll_until(Duration::from_secs(10), "four access log lines", || async {
        let l = lines(&path);
        (l.len() >= 4).then_some(l)
    })
    .await;
    assert_eq!(log[2]["policy"], serde_json::Value::Null);
    assert_eq!(log[3]["policy"], "limit");
    assert_eq!(log[3]["policy_reason"], "rate_limited");
    assert_eq!(log[2]["policy_reason"], serde_json::Value::Null);
    assert_eq!(log[3]["status"], 429);

    // A reload that leaves the settings alone keeps the counts: still limited.
    s.write_config(&format!("{yaml}# touched\n"));
    s.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = client::send(s.web(), Proto::H1, get("/", &[]))
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "the reload kept the limit's state");
}

#[tokio::test]
async fn a_header_key_limits_each_value_apart_and_a_missing_header_falls_back_to_the_client_ip() {
    let s = Strait::start(&respond_config(
        "name: limit\n    rate_limit: { requests: 2, per: 1m, key: header:x-api-key }",
    ))
    .await;
    let status = |h: &'static [(&'static str, &'static str)]| {
        let addr = s.web();
        async move { client::status(addr, get("/", h)).await }
    };
    assert_eq!(status(&[("x-api-key", "a")]).await, 200);
    assert_eq!(status(&[("x-api-key", "a")]).await, 200);
    assert_eq!(status(&[("x-api-key", "a")]).await, 429);
    assert_eq!(
        status(&[("x-api-key", "b")]).await,
        200,
        "another key, its own budget"
    );
    // Without the header the client IP stands in: its own budget of 2.
    assert_eq!(status(&[]).await, 200);
    assert_eq!(status(&[]).await, 200);
    assert_eq!(status(&[]).await, 429);

    // `missing_key: allow` lets requests without the header through.
    let s = Strait::start(&respond_config(
        "name: limit\n    rate_limit: { requests: 1, per: 1m, key: [header:x-api-key, route], missing_key: allow }",
    ))
    .await;
    for _ in 0..5 {
        assert_eq!(client::status(s.web(), get("/", &[])).await, 200);
    }
    assert_eq!(
        client::status(s.web(), get("/", &[("x-api-key", "k")])).await,
        200
    );
    assert_eq!(
        client::status(s.web(), get("/", &[("x-api-key", "k")])).await,
        429
    );
}

fn redis_policy(store: &str, burst: u32) -> String {
    format!(
        "name: limit\n    rate_limit:\n      requests: 100\n      per: 1s\n      burst: {burst}\n      \
         key: global\n      store: {store}"
    )
}

/// Admitted requests within ±3% of `expected`.
fn assert_near(admitted: u32, expected: f64, what: &str) {
    let (lo, hi) = (expected * 0.97, expected * 1.03);
    assert!(
        (lo..=hi).contains(&f64::from(admitted)),
        "{what}: {admitted} admitted, expected {expected} ± 3%"
    );
}

#[tokio::test]
async fn three_instances_sharing_one_redis_admit_the_limit_once() {
    let _one_at_a_time = FLEET.lock().await;
    let redis = Redis::start().await;
    // A generous timeout: this test is about exactness, not failures, on a busy machine.
    let store = format!("{{ redis: {{ url: \"{}\", timeout: 1s }} }}", redis.url());
    let fleet = fleet(&respond_config(&redis_policy(&store, 5))).await;
    let t = drive(&webs(&fleet), 6, Duration::from_secs(10)).await;
    assert_eq!(t.other + t.unavailable, 0, "{t:?}");
    assert!(t.limited > 1000, "driven hard: {t:?}");
    // 100 per second for 10 s, plus the burst of 5.
    assert_near(t.ok, 1005.0, "standalone Redis");
    let stats = redis.cli(&["info", "commandstats"]);
    assert!(stats.contains("cmdstat_evalsha:calls="), "{stats}");
}

#[tokio::test]
async fn three_instances_sharing_one_redis_cluster_admit_the_limit_once() {
    let _one_at_a_time = FLEET.lock().await;
    let cluster = RedisCluster::start().await;
    let store = format!(
        "{{ redis_cluster: {{ nodes: {}, timeout: 1s }} }}",
        cluster.nodes_yaml()
    );
    let fleet = fleet(&respond_config(&redis_policy(&store, 5))).await;
    let t = drive(&webs(&fleet), 6, Duration::from_secs(10)).await;
    assert_eq!(t.other + t.unavailable, 0, "{t:?}");
    assert!(t.limited > 1000, "driven hard: {t:?}");
    assert_near(t.ok, 1005.0, "Redis Cluster");
}

#[tokio::test]
async fn a_tls_redis_with_a_password_counts_the_limit_and_a_wrong_password_fails_closed() {
    let (redis, tls) = Redis::with_tls("s3cret").await;
    let ca = tls.ca.display().to_string();
    let policy = |password: &str| {
        format!(
            "name: limit\n    rate_limit:\n      requests: 2\n      per: 1m\n      \
             store:\n        redis: {{ url: \"{}\", password: \"{password}\", ca: \"{ca}\", timeout: 2s }}\n        \
             failure: closed",
            redis.url()
        )
    };
    let s = Strait::start(&respond_config(&policy("s3cret"))).await;
    assert_eq!(client::status(s.web(), get("/", &[])).await, 200);
    assert_eq!(client::status(s.web(), get("/", &[])).await, 200);
    assert_eq!(client::status(s.web(), get("/", &[])).await, 429);
    let wrong = Strait::start(&respond_config(&policy("wrong"))).await;
    let r = client::send(wrong.web(), Proto::H1, get("/", &[]))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        !client::text(&r).contains("redis"),
        "nothing about the store is told"
    );
    let m = wrong.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "limit"), ("reason", "store_unavailable")]
        ),
        1.0,
        "{m}"
    );
    assert!(
        !s.logs_text().contains("s3cret"),
        "the password is never logged"
    );
}

#[tokio::test]
async fn redis_killed_mid_run_fails_open_to_the_local_limit_and_the_shared_limit_resumes() {
    let _one_at_a_time = FLEET.lock().await;
    let mut redis = Redis::start().await;
    let store = format!(
        "\n        redis: {{ url: \"{}\", timeout: 200ms }}\n        failure: open",
        redis.url()
    );
    let fleet = fleet(&respond_config(&redis_policy(&store, 5))).await;
    let addrs = webs(&fleet);
    let t = drive(&addrs, 4, Duration::from_secs(3)).await;
    assert!((280..=330).contains(&t.ok), "shared: {t:?}");

    redis.kill();
    let t = drive(&addrs, 4, Duration::from_secs(3)).await;
    // Each instance now limits alone: up to three times the shared limit, never 503.
    assert_eq!(t.unavailable + t.other, 0, "{t:?}");
    assert!(t.ok >= 600, "local limits while Redis is down: {t:?}");
    assert!(
        metric_sum(
            &fleet,
            "strait_rate_limit_store_fallbacks_total",
            &[("policy", "limit"), ("mode", "open")]
        )
        .await
            > 0.0
    );
    assert!(
        metric_sum(
            &fleet,
            "strait_rate_limit_store_errors_total",
            &[("policy", "limit")]
        )
        .await
            > 0.0
    );

    redis.restart().await;
    // Recovery without a restart: once every instance has reconnected, the limit is shared again.
    warm(&addrs).await;
    let t = drive(&addrs, 4, Duration::from_secs(3)).await;
    assert_eq!(t.unavailable + t.other, 0, "{t:?}");
    assert!((280..=330).contains(&t.ok), "shared again: {t:?}");
    assert!(redis.pong());
}

#[tokio::test]
async fn redis_killed_mid_run_fails_closed_with_503_and_recovers() {
    let _one_at_a_time = FLEET.lock().await;
    let mut redis = Redis::start().await;
    let store = format!(
        "\n        redis: {{ url: \"{}\", timeout: 200ms }}\n        failure: closed",
        redis.url()
    );
    let fleet = fleet(&respond_config(&redis_policy(&store, 5))).await;
    let addrs = webs(&fleet);
    let t = drive(&addrs, 2, Duration::from_secs(2)).await;
    assert!((180..=230).contains(&t.ok), "{t:?}");
    assert_eq!(t.unavailable, 0);

    redis.kill();
    let t = drive(&addrs, 2, Duration::from_secs(2)).await;
    assert_eq!(t.ok, 0, "nothing admitted without the store: {t:?}");
    assert!(t.unavailable > 0);
    assert!(
        metric_sum(
            &fleet,
            "strait_policy_denials_total",
            &[("policy", "limit"), ("reason", "store_unavailable")]
        )
        .await
            >= f64::from(t.unavailable)
    );

    redis.restart().await;
    warm(&addrs).await;
    let t = drive(&addrs, 2, Duration::from_secs(2)).await;
    assert_eq!(t.unavailable, 0, "{t:?}");
    assert!((180..=230).contains(&t.ok), "shared again: {t:?}");
}

#[tokio::test]
async fn a_concurrency_limit_refuses_beyond_max_and_frees_slots_after_clients_abort() {
    let up = Upstream::with_handler("up", |r| {
        if r.uri.path() == "/slow" {
            Reply::text("slow").delay(Duration::from_secs(2))
        } else {
            Reply::text("fast")
        }
    })
    .await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - name: inflight\n    concurrency_limit: {{ max: 2, key: route }}\n\
         routes:\n  - name: api\n    upstream: up\n    policies: [inflight]\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    let addr = s.web();
    let up = Arc::new(up);

    // Two slow requests hold both slots; a third is refused at once.
    let slow = |n: usize| {
        (0..n)
            .map(|_| tokio::spawn(async move { client::status(addr, get("/slow", &[])).await }))
            .collect::<Vec<_>>()
    };
    let held = slow(2);
    up.wait_started(2, Duration::from_secs(10)).await;
    let r = client::send(addr, Proto::H1, get("/fast", &[]))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(client::text(&r), "strait: too many requests in flight\n");
    // The clients go away before their answers: their slots come back.
    for h in held {
        h.abort();
    }
    poll_until(
        Duration::from_secs(10),
        "a slot freed after the aborts",
        || async { (client::status(addr, get("/fast", &[])).await == 200).then_some(()) },
    )
    .await;
    // Exactly two slots again (none leaked): two slow ones pass, a third is refused.
    let started = up.started();
    let held = slow(2);
    up.wait_started(started + 2, Duration::from_secs(10)).await;
    assert_eq!(client::status(addr, get("/fast", &[])).await, 503);
    for h in held {
        assert_eq!(h.await.unwrap(), 200);
    }
    assert_eq!(client::status(addr, get("/fast", &[])).await, 200);

    let m = s.metrics().await;
    let denied = sum(
        &m,
        "strait_policy_denials_total",
        &[("policy", "inflight"), ("reason", "concurrency_limited")],
    );
    assert!(denied >= 2.0, "{m}");
}
