//! Fixtures for end-to-end tests: start the real strait binary and real upstreams.
//!
//! Every test drives the real `strait` binary (located by [`strait_bin`]) over
//! loopback sockets. Upstreams are real servers: hyper servers started in this
//! process ([`upstream`], [`grpc`], [`ws`]), a real nginx ([`nginx`]) and a real etcd
//! ([`etcd`]).
//! Clients are hyper/reqwest ([`client`]), quinn + h3 for HTTP/3 ([`h3`]), raw TCP for malformed input, and
//! external tools (curl, h2load) found by [`tool`]. All waits are bounded.

pub mod admin;
pub mod certs;
pub mod client;
pub mod config_file;
pub mod etcd;
pub mod grpc;
pub mod h2raw;
pub mod h3;
pub mod load;
pub mod metrics;
pub mod nginx;
pub mod otlp;
pub mod process;
pub mod prometheus;
pub mod raw;
pub mod rawup;
pub mod recorder;
pub mod redis;
pub mod strait;
pub mod upstream;
pub mod ws;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

pub use strait::{strait_bin, Strait};
pub use upstream::{Reply, ReplyBody, Upstream};

/// Boxed error used by fixture bodies and helpers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Await `fut`, panicking with `what` if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Poll `check` every 20 ms until it returns `Some`, or panic after `limit`.
pub async fn poll_until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("condition not reached within {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port that was free a moment ago (bind to port 0, read it, release it).
/// Only for external servers (nginx) and for "nothing listens here" endpoints.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A free loopback port outside the kernel's ephemeral range (32768–60999), for servers that are
/// stopped and started again on the same port: an ephemeral port can be taken in between by any
/// outgoing connection (for example a client retrying the stopped server), a port below it cannot.
pub fn stable_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..1000 {
        let n = seed.wrapping_add(NEXT.fetch_add(7919, Ordering::Relaxed));
        let port = 20_000 + (n % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    free_port()
}

/// An address on which nothing listens (connections are refused).
pub fn closed_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Path of an external tool; panics with a clear message when it is missing,
/// so a CI without it fails loudly instead of silently skipping.
pub fn tool(name: &str, candidates: &[&str]) -> PathBuf {
    for c in candidates {
        let p = PathBuf::from(c);
        if p.is_file() {
            return p;
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "external tool `{name}` not found (looked in {candidates:?} and $PATH); \
         install it (CI installs nginx, curl, nghttp2-client, prometheus)"
    );
}

/// The workspace root (parent of this package's manifest directory).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Runs the `openssl` CLI in `dir`; its stdout. Panics with its stderr when it fails.
pub fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Where `scripts/py-tools.sh` installs the Python clients the tests use (aioquic, tlslite-ng
/// with kyber-py): `$STRAIT_E2E_PYTHONPATH`, else /var/tmp/strait-py. Pass it as `PYTHONPATH`.
pub fn python_tools_path() -> PathBuf {
    std::env::var_os("STRAIT_E2E_PYTHONPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/strait-py"))
}

/// Resident set size of process `pid` in KiB, from /proc/PID/status (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Raises the open-files limit of this process, and so of the strait it starts (CI often has 1024).
pub fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The JSON objects of a JSON-lines file such as an access log (lines that do not parse, as a
/// half-written last line, are left out; a missing file has none).
pub fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// [`json_lines`] of `path` once it has at least `n` (the log is written asynchronously); panics
/// after 10 s.
pub async fn wait_json_lines(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    poll_until(Duration::from_secs(10), "JSON lines in the log", || async {
        let l = json_lines(path);
        (l.len() >= n).then_some(l)
    })
    .await
}
