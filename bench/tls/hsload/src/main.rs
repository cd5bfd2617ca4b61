//! hsload: TLS 1.3 full handshakes per second. C concurrent loops on one single-threaded tokio
//! runtime (pin it with taskset); each iteration opens a TCP connection, does a full TLS 1.3
//! handshake (rustls on ring, client session resumption disabled, key exchange X25519 only),
//! sends `GET PATH HTTP/1.1` with `Connection: close`, reads the response until the server
//! closes, and drops the connection. Every connection is checked after its handshake: a
//! connection that was resumed, needed a HelloRetryRequest, or used another group is counted
//! apart and not as a handshake.
//!
//! The server's certificate chain is not checked against roots (self-signed, loopback), but the
//! handshake signature (CertificateVerify) is verified as a real client does.
//!
//! With `--server-pid PID[,PID...]` it reads those processes' utime+stime (all threads) from
//! /proc/PID/stat at the start and end of the measured window, and /proc/stat for each core's
//! busy %. Output: one line of `key=value` pairs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{ring, CryptoProvider};
use rustls::{DigitallySignedStruct, HandshakeKind, NamedGroup, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    non200: AtomicU64,
    not_full: AtomicU64,
    other_group: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
}

struct Shared {
    counting: AtomicBool,
    stop: AtomicBool,
    c: Counts,
    request: Vec<u8>,
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

async fn one(sh: &Shared) -> Result<(), BoxError> {
    let tcp = tokio::net::TcpStream::connect(sh.addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = sh.connector.connect(sh.name.clone(), tcp).await?;
    let (full, x25519) = {
        let c = tls.get_ref().1;
        (
            c.handshake_kind() == Some(HandshakeKind::Full),
            c.negotiated_key_exchange_group().map(|g| g.name()) == Some(NamedGroup::X25519),
        )
    };
    tls.write_all(&sh.request).await?;
    let mut buf = Vec::with_capacity(512);
    match tls.read_to_end(&mut buf).await {
        Ok(_) => {}
        // A server that closes without close_notify: the response is complete if it came.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    if sh.counting.load(Ordering::Relaxed) {
        let c = &sh.c;
        c.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        if !full {
            c.not_full.fetch_add(1, Ordering::Relaxed);
        } else if !x25519 {
            c.other_group.fetch_add(1, Ordering::Relaxed);
        } else if buf.starts_with(b"HTTP/1.1 200 ") {
            c.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            c.non200.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn proc_cpu_ticks(pids: &[u32]) -> Option<(u64, u64)> {
    let mut sum = (0, 0);
    for pid in pids {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &s[s.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        sum.0 += f[11].parse::<u64>().ok()?;
        sum.1 += f[12].parse::<u64>().ok()?;
    }
    Some(sum)
}

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

extern "C" {
    fn sysconf(name: i32) -> i64;
}

fn usage() -> ! {
    eprintln!("usage: hsload --addr 127.0.0.1:PORT [--sni localhost] [--path /] [-c CONC] [-d SECS] [--warmup SECS] [--server-pid PID[,PID]]");
    std::process::exit(2)
}

fn main() {
    let (mut addr, mut sni, mut path) = (None, "localhost".to_string(), "/".to_string());
    let (mut conc, mut dur, mut warm, mut pids) = (16usize, 10.0f64, 1.0f64, Vec::<u32>::new());
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--addr" => addr = Some(v.parse::<SocketAddr>().unwrap_or_else(|_| usage())),
            "--sni" => sni = v,
            "--path" => path = v,
            "-c" => conc = v.parse().unwrap_or_else(|_| usage()),
            "-d" => dur = v.parse().unwrap_or_else(|_| usage()),
            "--warmup" => warm = v.parse().unwrap_or_else(|_| usage()),
            "--server-pid" => pids = v.split(',').map(|p| p.parse().unwrap_or_else(|_| usage())).collect(),
            _ => usage(),
        }
    }
    let addr = addr.unwrap_or_else(|| usage());

    let base = ring::default_provider();
    let provider = Arc::new(CryptoProvider {
        kx_groups: vec![ring::kx_group::X25519],
        ..base
    });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyChain(provider)))
        .with_no_client_auth();
    cfg.resumption = Resumption::disabled();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let sh = Arc::new(Shared {
        counting: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        c: Counts::default(),
        request: format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").into_bytes(),
        addr,
        name: ServerName::try_from(sni).expect("server name"),
        connector: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
    });

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let sh = sh.clone();
            tasks.push(tokio::spawn(async move {
                while !sh.stop.load(Ordering::Relaxed) {
                    if let Err(e) = one(&sh).await {
                        if sh.c.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("hsload: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(warm)).await;
        let me = [std::process::id()];
        let (cpu0, me0, cores0) = (proc_cpu_ticks(&pids), proc_cpu_ticks(&me), cores());
        let t0 = Instant::now();
        sh.counting.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(dur)).await;
        sh.counting.store(false, Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        let (cpu1, me1, cores1) = (proc_cpu_ticks(&pids), proc_cpu_ticks(&me), cores());
        sh.stop.store(true, Ordering::Relaxed);
        let c = &sh.c;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ok = ld(&c.ok);
        let mut line = format!(
            "conc={conc} secs={secs:.2} handshakes_ok={ok} non200={} not_full={} other_group={} errors={} hs_s={:.0} resp_bytes_per_conn={:.0}",
            ld(&c.non200),
            ld(&c.not_full),
            ld(&c.other_group),
            ld(&c.errors),
            ok as f64 / secs,
            ld(&c.bytes) as f64 / (ok + ld(&c.non200)).max(1) as f64,
        );
        if let (Some(a), Some(b)) = (cpu0, cpu1) {
            // SAFETY: sysconf has no preconditions; 2 = _SC_CLK_TCK.
            let tck = match unsafe { sysconf(2) } { t if t > 0 => t as f64, _ => 100.0 };
            let (u, s) = ((b.0 - a.0) as f64 / tck, (b.1 - a.1) as f64 / tck);
            let n = ok.max(1) as f64;
            line += &format!(
                " server_cpu_s={:.2} server_cpu_pct={:.0} cpu_us_hs={:.1} user_us_hs={:.1} sys_us_hs={:.1} hs_s_per_core={:.0}",
                u + s,
                100.0 * (u + s) / secs,
                1e6 * (u + s) / n,
                1e6 * u / n,
                1e6 * s / n,
                n / (u + s).max(1e-9),
            );
        }
        if let (Some(a), Some(b)) = (me0, me1) {
            // SAFETY: as above.
            let tck = match unsafe { sysconf(2) } { t if t > 0 => t as f64, _ => 100.0 };
            line += &format!(" client_cpu_pct={:.0}", 100.0 * ((b.0 + b.1) - (a.0 + a.1)) as f64 / tck / secs);
        }
        for (i, (a, b)) in cores0.iter().zip(cores1.iter()).enumerate() {
            line += &format!(" core{i}_busy_pct={:.0}", 100.0 * (b.0 - a.0) as f64 / (b.1 - a.1).max(1) as f64);
        }
        println!("{line}");
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    });
}
