//! A real Prometheus server (Debian's /usr/bin/prometheus) scraping Strait's admin `/metrics`
//! every second, with exemplar storage on; own config and TSDB in a temp dir, on a free loopback
//! port (never :9090), killed on drop. Queried through its HTTP API.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Prometheus.
pub struct Prometheus {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus scraping `target`'s `/metrics` every second; waits until it is ready.
    pub async fn start(target: SocketAddr) -> Prometheus {
        let bin = crate::tool("prometheus", &["/usr/bin/prometheus"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: strait\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .expect("write prometheus.yml");
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let p = Prometheus {
            child: Some(child),
            _dir: dir,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = crate::client::get(addr, "/-/ready").await {
                if r.status() == 200 {
                    return p;
                }
            }
            assert!(Instant::now() < deadline, "prometheus not ready within 30s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The address its HTTP API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET /api/v1/...?` + url-encoded `params`, parsed as JSON.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> serde_json::Value {
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let uri = format!("/api/v1/{path}?{}", q.join("&"));
        let r = crate::client::get(self.addr, &uri)
            .await
            .unwrap_or_else(|e| panic!("GET {uri}: {e}"));
        serde_json::from_slice(r.body()).unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    /// The value of an instant query returning one sample, if any.
    pub async fn query_value(&self, q: &str) -> Option<f64> {
        let v = self.api("query", &[("query", q)]).await;
        let first = v.pointer("/data/result/0/value/1")?.as_str()?;
        first.parse().ok()
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
