//! Short-lived listener certificates rotated on disk every ~300 ms, as SPIRE or cert-manager
//! renew them, while fresh TLS handshakes run: none fails, clients see each new certificate,
//! never an older one after a newer, and the expiry gauge follows them to the newest.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::Request;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use strait_e2e::certs::{client_config, Ca, Leaf};
use strait_e2e::{client, metrics, poll_until, Strait};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const HOST: &str = "rotate.test";
/// Rotations after the first certificate. With the period below, about 6 s of rotation.
const ROTATIONS: usize = 20;
/// The watcher reloads 50 ms after a change (docs/live-changes.md) and a debug-build compile
/// takes tens of milliseconds, so each certificate is normally served for most of its period
/// even on a loaded machine; the test only asserts that several were.
const PERIOD: Duration = Duration::from_millis(300);
/// Clients opening one connection after another.
const CLIENTS: usize = 4;
/// Each client opens at most one connection per pace, so the load lasts as long as the
/// rotations on a fast machine too (unpaced, 4 clients made 6,000 connections in 6.6 s)...
const PACE: Duration = Duration::from_millis(8);
/// ... and never more than this many, whatever happens.
const MAX_PER_CLIENT: usize = 1500;
const BODY: &str = "rotated-ok";
/// How often the expiry gauge is sampled while the certificates rotate.
const SCRAPE: Duration = Duration::from_millis(20);

/// The certificates the test writes, in order, and which one a presented DER is.
struct Issued {
    leaves: Vec<Leaf>,
    not_after: Vec<u64>,
    by_der: HashMap<Vec<u8>, usize>,
}

impl Issued {
    /// Each leaf has its own key and serial, and expires a few minutes from now, one second
    /// later than the one before, so the expiry gauge tells them apart.
    fn new(ca: &Ca) -> Issued {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut issued = Issued {
            leaves: Vec::new(),
            not_after: Vec::new(),
            by_der: HashMap::new(),
        };
        for i in 0..=ROTATIONS {
            let not_after = now + 240 + i as u64;
            let leaf = ca.leaf_valid(
                &[HOST],
                1000 + i as u64,
                UNIX_EPOCH + Duration::from_secs(now - 60),
                UNIX_EPOCH + Duration::from_secs(not_after),
            );
            issued.by_der.insert(leaf.der.to_vec(), i);
            issued.not_after.push(not_after);
            issued.leaves.push(leaf);
        }
        issued
    }
}

/// How a rotation puts the new pair in place.
#[derive(Clone, Copy, Debug)]
enum Write {
    /// Both written under temporary names, then renamed over the old ones, key first: what
    /// rotation agents do. Between the renames the pair on disk does not match.
    Rename,
    /// Written in place, key then cert, `gap` apart: a careless script. Each file is empty
    /// for a moment, and for `gap` the new key sits beside the old certificate; Strait
    /// promises to reject such a pair and keep serving the running one.
    InPlace { gap: Duration },
}

async fn install(dir: &Path, leaf: &Leaf, how: Write) {
    match how {
        Write::Rename => {
            std::fs::write(dir.join("server.key.tmp"), &leaf.key_pem).unwrap();
            std::fs::write(dir.join("server.pem.tmp"), &leaf.cert_pem).unwrap();
            std::fs::rename(dir.join("server.key.tmp"), dir.join("server.key")).unwrap();
            std::fs::rename(dir.join("server.pem.tmp"), dir.join("server.pem")).unwrap();
        }
        Write::InPlace { gap } => {
            std::fs::write(dir.join("server.key"), &leaf.key_pem).unwrap();
            tokio::time::sleep(gap).await;
            std::fs::write(dir.join("server.pem"), &leaf.cert_pem).unwrap();
        }
    }
}

/// One fresh connection: handshake (verifying the chain, the name and the validity period),
/// then one HTTP/1.1 request. The certificate presented, as its index in `issued`.
async fn one_request(
    addr: SocketAddr,
    tls: &TlsConnector,
    by_der: &HashMap<Vec<u8>, usize>,
) -> Result<usize, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(HOST).unwrap();
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let der = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate presented")?
        .to_vec();
    let generation = *by_der
        .get(&der)
        .ok_or("a certificate this test never issued")?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", HOST)
        .body(client::empty())
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if status != 200 || body != BODY {
        return Err(format!("answer {status}: {body:?}"));
    }
    Ok(generation)
}

/// Connections one after another until `stop` (or the bound): each outcome in order.
async fn client_loop(
    addr: SocketAddr,
    tls: TlsConnector,
    by_der: Arc<HashMap<Vec<u8>, usize>>,
    stop: Arc<AtomicBool>,
) -> Vec<Result<usize, String>> {
    let mut out = Vec::new();
    let mut pace = tokio::time::interval(PACE);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) && out.len() < MAX_PER_CLIENT {
        pace.tick().await;
        let r = tokio::time::timeout(Duration::from_secs(10), one_request(addr, &tls, &by_der))
            .await
            .unwrap_or_else(|_| Err("timed out after 10 s".into()));
        out.push(r);
    }
    out
}

/// The expiry gauge every [`SCRAPE`] until `stop`.
async fn scrape_loop(admin: SocketAddr, stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut out = Vec::new();
    let mut every = tokio::time::interval(SCRAPE);
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        let resp = client::get(admin, "/metrics").await.expect("GET /metrics");
        out.push(gauge(&String::from_utf8_lossy(resp.body())));
    }
    out
}

fn gauge(m: &str) -> f64 {
    metrics::sum(
        m,
        "strait_tls_certificate_expiry_timestamp_seconds",
        &[
            ("kind", "listener"),
            ("name", "web"),
            ("cert", "server.pem"),
        ],
    )
}

#[tokio::test]
async fn short_lived_certificates_rotated_under_load_fail_no_handshake() {
    let ca = Ca::new("rotation");
    let issued = Issued::new(&ca);
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls: {{ cert: server.pem, key: server.key }}\n\
         routes:\n  - name: r\n    respond: {{ status: 200, body: \"{BODY}\" }}\n"
    );
    let first = &issued.leaves[0];
    let s = Strait::start_with_files(
        &yaml,
        &[
            ("server.pem", first.cert_pem.as_bytes()),
            ("server.key", first.key_pem.as_bytes()),
        ],
    )
    .await;
    assert_eq!(gauge(&s.metrics().await), issued.not_after[0] as f64);

    // Every connection a full handshake: a resumed session presents no certificate (and ticket
    // keys survive reloads, so without this most connections would resume the first one).
    let mut cfg = (*client_config(
        &[ca.der()],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &[b"http/1.1"],
    ))
    .clone();
    cfg.resumption = rustls::client::Resumption::disabled();
    let tls = TlsConnector::from(Arc::new(cfg));
    let by_der = Arc::new(issued.by_der.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(client_loop(
                s.web(),
                tls.clone(),
                by_der.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let scrapes = tokio::spawn(scrape_loop(s.admin(), stop.clone()));
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    for i in 1..=ROTATIONS {
        tick.tick().await;
        let how = match i {
            // Longer than the watcher's 50 ms: a reload sees the new key with the old cert.
            7 => Write::InPlace {
                gap: Duration::from_millis(150),
            },
            14 => Write::InPlace {
                gap: Duration::ZERO,
            },
            _ => Write::Rename,
        };
        install(s.dir(), &issued.leaves[i], how).await;
    }
    // Long enough for the last certificate to be served before the load stops.
    tick.tick().await;
    tick.tick().await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for c in clients {
        outcomes.push(
            strait_e2e::within(Duration::from_secs(30), "clients", c)
                .await
                .unwrap(),
        );
    }
    let elapsed = started.elapsed();
    let scrapes = scrapes.await.unwrap();

    let total: usize = outcomes.iter().map(Vec::len).sum();
    let failures: Vec<(usize, usize, &String)> = outcomes
        .iter()
        .enumerate()
        .flat_map(|(c, o)| {
            o.iter()
                .enumerate()
                .filter_map(move |(n, r)| r.as_ref().err().map(|e| (c, n, e)))
        })
        .collect();
    let m = s.metrics().await;
    let reload_errors = metrics::sum(&m, "strait_config_reload_total", &[("result", "error")]);
    let reloads = metrics::sum(&m, "strait_config_reload_total", &[("result", "success")]);
    let seen: BTreeSet<usize> = outcomes.iter().flatten().flatten().copied().collect();
    let exported: BTreeSet<u64> = scrapes.iter().map(|v| *v as u64).collect();
    eprintln!(
        "{total} connections by {CLIENTS} clients in {elapsed:?}; {} failed; certificates seen \
         {seen:?} of 0..={ROTATIONS}; reloads: {reloads} applied, {reload_errors} rejected; \
         {} scrapes, {} expiry values",
        failures.len(),
        scrapes.len(),
        exported.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} connections failed (client, attempt, error): {:?}\nstrait log tail:\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        tail(&s.logs_text(), 30)
    );
    assert!(total >= 100, "too little load to mean anything: {total}");
    assert!(
        seen.len() >= ROTATIONS / 2,
        "clients saw only certificates {seen:?} of 0..={ROTATIONS}"
    );
    // Reloads are published in order and each connection takes the listener's current
    // certificate: one client's later connection never gets an older one.
    for (c, o) in outcomes.iter().enumerate() {
        let gens: Vec<usize> = o.iter().flatten().copied().collect();
        assert!(
            gens.windows(2).all(|w| w[0] <= w[1]),
            "client {c} saw an older certificate after a newer one: {gens:?}"
        );
    }

    // Every scrape found the gauge holding a certificate the test wrote, never going back, and
    // it moved with the rotations.
    let issued_at: Vec<f64> = issued.not_after.iter().map(|&t| t as f64).collect();
    for v in &scrapes {
        assert!(issued_at.contains(v), "expiry gauge {v} in {scrapes:?}");
    }
    assert!(
        scrapes.windows(2).all(|w| w[0] <= w[1]),
        "the expiry gauge went back: {scrapes:?}"
    );
    assert!(
        exported.len() >= ROTATIONS / 2,
        "the expiry gauge took only {exported:?}"
    );

    // Once the writes stop, the newest certificate is served and exported.
    let last = ROTATIONS;
    let addr = s.web();
    poll_until(Duration::from_secs(10), "newest certificate served", || {
        let (tls, by_der) = (tls.clone(), by_der.clone());
        async move { (one_request(addr, &tls, &by_der).await == Ok(last)).then_some(()) }
    })
    .await;
    poll_until(
        Duration::from_secs(10),
        "expiry gauge of the newest certificate",
        || async { (gauge(&s.metrics().await) == issued.not_after[last] as f64).then_some(()) },
    )
    .await;
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
