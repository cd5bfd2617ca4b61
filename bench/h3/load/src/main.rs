//! h3load: a closed-loop load client for comparing HTTP/3 with HTTP/2 on the same route.
//!
//! Both protocols use the same architecture: C connections (TLS 1.3, rustls on ring), S request
//! tasks per connection, each sending `GET PATH` and reading the whole body in a loop, on one
//! single-threaded tokio runtime (pin it to one core with taskset). Connections are made first,
//! then a warm-up, then the measured window; requests that complete inside the window are counted.
//!
//! With `--server-pid PID` it also reads that process's utime+stime (all its threads) from
//! /proc/PID/stat at the start and end of the window, and /proc/stat for per-core busy %, so the
//! CPU per request covers exactly the counted requests.
//!
//! Output: one line of `key=value` pairs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Empty};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    proto: String,
    addr: SocketAddr,
    sni: String,
    path: String,
    conns: usize,
    streams: usize,
    duration: f64,
    warmup: f64,
    server_pid: Option<u32>,
}

fn usage() -> ! {
    eprintln!(
        "usage: h3load --proto h2|h3 --addr 127.0.0.1:PORT [--sni localhost] [--path /] \
         [-c CONNS] [-s STREAMS] [-d SECS] [--warmup SECS] [--server-pid PID]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        proto: String::new(),
        addr: "127.0.0.1:0".parse().unwrap(),
        sni: "localhost".into(),
        path: "/".into(),
        conns: 4,
        streams: 16,
        duration: 10.0,
        warmup: 1.0,
        server_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--proto" => a.proto = v,
            "--addr" => a.addr = v.parse().unwrap_or_else(|_| usage()),
            "--sni" => a.sni = v,
            "--path" => a.path = v,
            "-c" => a.conns = v.parse().unwrap_or_else(|_| usage()),
            "-s" => a.streams = v.parse().unwrap_or_else(|_| usage()),
            "-d" => a.duration = v.parse().unwrap_or_else(|_| usage()),
            "--warmup" => a.warmup = v.parse().unwrap_or_else(|_| usage()),
            "--server-pid" => a.server_pid = Some(v.parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    if a.proto != "h2" && a.proto != "h3" || a.addr.port() == 0 || a.conns == 0 || a.streams == 0 {
        usage()
    }
    a
}

/// Accepts any certificate chain (loopback benchmark, self-signed certificate), but still
/// verifies the handshake signature, so the client does the work a real one does per handshake.
#[derive(Debug)]
struct AnyChain(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyChain {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(alpn: &[u8]) -> Result<Arc<rustls::ClientConfig>, BoxError> {
    let provider = Arc::new(ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyChain(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(cfg))
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    non200: AtomicU64,
    errors: AtomicU64,
    dead_streams: AtomicU64,
}

struct Shared {
    counting: AtomicBool,
    stop: AtomicBool,
    c: Counters,
}

impl Shared {
    fn record(&self, status: Result<u16, BoxError>) -> bool {
        let counting = self.counting.load(Ordering::Relaxed);
        match status {
            Ok(200) => {
                if counting {
                    self.c.ok.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Ok(_) => {
                if counting {
                    self.c.non200.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Err(e) => {
                if self.c.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("h3load: request error: {e}");
                }
                false
            }
        }
    }
}

// ---------------------------------------------------------------- HTTP/2 (hyper over tokio-rustls)

type H2Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

async fn h2_connect(a: &Args, tls: Arc<rustls::ClientConfig>) -> Result<H2Sender, BoxError> {
    let tcp = tokio::net::TcpStream::connect(a.addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(a.sni.clone())?;
    let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("server did not negotiate h2".into());
    }
    let (sender, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn h2_one(sender: &mut H2Sender, uri: &http::Uri) -> Result<u16, BoxError> {
    sender.ready().await?;
    let req = http::Request::get(uri.clone()).body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

// ---------------------------------------------------------------- HTTP/3 (quinn + h3)

type H3Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

async fn h3_connect(a: &Args, tls: Arc<rustls::ClientConfig>) -> Result<(H3Sender, quinn::Endpoint), BoxError> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let quic = endpoint.connect(a.addr, &a.sni)?.await?;
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(quic)).await?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok((sender, endpoint))
}

async fn h3_one(sender: &mut H3Sender, uri: &http::Uri) -> Result<u16, BoxError> {
    let req = http::Request::get(uri.clone()).body(())?;
    let mut stream = sender.send_request(req).await?;
    stream.finish().await?;
    let resp = stream.recv_response().await?;
    while let Some(mut chunk) = stream.recv_data().await? {
        chunk.advance(chunk.remaining());
    }
    Ok(resp.status().as_u16())
}

// ---------------------------------------------------------------- CPU accounting from /proc

fn proc_cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f[11].parse().ok()?, f[12].parse().ok()?))
}

/// (busy, total) jiffies per cpu from /proc/stat.
fn cores() -> Vec<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    s.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(|b| b.is_ascii_digit()))
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc_sysconf(2) }; // _SC_CLK_TCK
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

extern "C" {
    #[link_name = "sysconf"]
    fn libc_sysconf(name: i32) -> i64;
}

// ---------------------------------------------------------------- main

fn main() {
    let a = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    if let Err(e) = rt.block_on(run(a)) {
        eprintln!("h3load: {e}");
        std::process::exit(1);
    }
}

async fn run(a: Args) -> Result<(), BoxError> {
    let uri: http::Uri = format!("https://{}:{}{}", a.sni, a.addr.port(), a.path).parse()?;
    let shared = Arc::new(Shared {
        counting: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        c: Counters::default(),
    });
    let mut tasks = Vec::new();
    let mut endpoints = Vec::new();
    if a.proto == "h2" {
        let tls = tls_config(b"h2")?;
        for _ in 0..a.conns {
            let sender = h2_connect(&a, tls.clone()).await?;
            for _ in 0..a.streams {
                let (mut s, sh, u) = (sender.clone(), shared.clone(), uri.clone());
                tasks.push(tokio::spawn(async move {
                    while !sh.stop.load(Ordering::Relaxed) {
                        if !sh.record(h2_one(&mut s, &u).await) {
                            sh.c.dead_streams.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }));
            }
        }
    } else {
        let tls = tls_config(b"h3")?;
        for _ in 0..a.conns {
            let (sender, ep) = h3_connect(&a, tls.clone()).await?;
            endpoints.push(ep);
            for _ in 0..a.streams {
                let (mut s, sh, u) = (sender.clone(), shared.clone(), uri.clone());
                tasks.push(tokio::spawn(async move {
                    while !sh.stop.load(Ordering::Relaxed) {
                        if !sh.record(h3_one(&mut s, &u).await) {
                            sh.c.dead_streams.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }));
            }
        }
    }

    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
    let cpu0 = a.server_pid.and_then(proc_cpu_ticks);
    let me0 = proc_cpu_ticks(std::process::id());
    let cores0 = cores();
    let t0 = Instant::now();
    shared.counting.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    shared.counting.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = a.server_pid.and_then(proc_cpu_ticks);
    let me1 = proc_cpu_ticks(std::process::id());
    let cores1 = cores();
    shared.stop.store(true, Ordering::Relaxed);

    let ok = shared.c.ok.load(Ordering::Relaxed);
    let non200 = shared.c.non200.load(Ordering::Relaxed);
    let errors = shared.c.errors.load(Ordering::Relaxed);
    let dead = shared.c.dead_streams.load(Ordering::Relaxed);
    let mut line = format!(
        "proto={} conns={} streams={} secs={:.2} ok={} non200={} errors={} dead_streams={} req_s={:.0}",
        a.proto,
        a.conns,
        a.streams,
        elapsed,
        ok,
        non200,
        errors,
        dead,
        ok as f64 / elapsed
    );
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let tck = clk_tck();
        let user = (c1.0 - c0.0) as f64 / tck;
        let sys = (c1.1 - c0.1) as f64 / tck;
        let n = (ok + non200).max(1) as f64;
        line += &format!(
            " server_cpu_s={:.2} server_cpu_pct={:.0} cpu_us_req={:.2} user_us_req={:.2} sys_us_req={:.2}",
            user + sys,
            100.0 * (user + sys) / elapsed,
            1e6 * (user + sys) / n,
            1e6 * user / n,
            1e6 * sys / n
        );
    }
    if let (Some(m0), Some(m1)) = (me0, me1) {
        let own = ((m1.0 + m1.1) - (m0.0 + m0.1)) as f64 / clk_tck();
        line += &format!(" client_cpu_pct={:.0}", 100.0 * own / elapsed);
    }
    for (i, (before, after)) in cores0.iter().zip(cores1.iter()).enumerate() {
        let (db, dt) = (after.0 - before.0, after.1 - before.1);
        line += &format!(" core{}_busy_pct={:.0}", i, 100.0 * db as f64 / dt.max(1) as f64);
    }
    println!("{line}");

    // Let in-flight requests end (bounded), then close the QUIC connections cleanly.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    for ep in &endpoints {
        ep.close(0u32.into(), b"done");
    }
    for ep in endpoints {
        let _ = tokio::time::timeout(Duration::from_millis(500), ep.wait_idle()).await;
    }
    Ok(())
}
