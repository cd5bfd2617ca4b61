//! Load through strait with real external clients: h2load over h2c and
//! HTTP/1.1 (every response 2xx, every request forwarded), and curl with
//! HTTP/2 prior knowledge.

use std::time::Duration;

use strait_e2e::{tool, within, Strait, Upstream};

async fn start(up: &Upstream) -> Strait {
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    Strait::start(&yaml).await
}

/// The numbers after `prefix` in h2load's summary line starting with `prefix`.
fn numbers(out: &str, prefix: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in h2load output:\n{out}"));
    line[prefix.len()..]
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse().ok())
        .collect()
}

async fn h2load(args: &[&str], url: &str) -> String {
    let bin = tool("h2load", &["/usr/bin/h2load"]);
    let out = within(
        Duration::from_secs(180),
        "h2load",
        tokio::process::Command::new(bin)
            .args(args)
            .arg(url)
            .output(),
    )
    .await
    .expect("run h2load");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "h2load failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_all_2xx(out: &str, n: u64) {
    // requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout
    let req = numbers(out, "requests:");
    assert_eq!(req[..4], [n, n, n, n], "h2load requests line:\n{out}");
    assert_eq!(req[4..], [0, 0, 0], "failures in h2load output:\n{out}");
    let codes = numbers(out, "status codes:");
    assert_eq!(
        codes,
        [n, 0, 0, 0],
        "status codes (2xx,3xx,4xx,5xx):\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_over_h2c_gets_only_2xx() {
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    let out = h2load(&["-n", "2000", "-c", "10", "-m", "10"], &s.url("/load")).await;
    assert_all_2xx(&out, 2000);
    assert_eq!(
        up.requests().len(),
        2000,
        "every request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_over_http1_gets_only_2xx() {
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    let out = h2load(&["--h1", "-n", "2000", "-c", "10"], &s.url("/load")).await;
    assert_all_2xx(&out, 2000);
    assert_eq!(
        up.requests().len(),
        2000,
        "every request reached the upstream"
    );
}

#[tokio::test]
async fn curl_with_http2_prior_knowledge_works() {
    let curl = tool("curl", &["/usr/bin/curl"]);
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    let out = within(
        Duration::from_secs(30),
        "curl",
        tokio::process::Command::new(curl)
            .args(["-sS", "--noproxy", "*", "--http2-prior-knowledge"])
            .args(["-w", "\n%{http_code} %{http_version}"])
            .arg(s.url("/curl?q=1"))
            .output(),
    )
    .await
    .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "up\n200 2");
    let rec = up.only_request();
    assert_eq!(rec.path_and_query(), "/curl?q=1");
    assert_eq!(
        rec.header("host"),
        s.web().to_string(),
        ":authority becomes Host"
    );
}
