//! DNS discovery through the real binary: a name that resolves (through `/etc/hosts`, which the system resolver reads first) to two loopback addresses balances across both, and a changed answer applies without a restart, keeping the configuration version.
//!
//! The test adds its own uniquely named lines to `/etc/hosts` and removes them when it ends,
//! panicking or not. It needs write access to `/etc/hosts` (the test command runs as root).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use strait_e2e::client::{self, empty};
use strait_e2e::metrics::sum;
use strait_e2e::{poll_until, Strait, Upstream};

const HOSTS: &str = "/etc/hosts";

/// Lines of ours in /etc/hosts, removed on drop.
struct HostsEntries {
    marker: String,
}

impl HostsEntries {
    fn set(name: &str, ips: &[&str]) -> HostsEntries {
        let marker = format!("# strait-e2e {name}");
        let e = HostsEntries { marker };
        e.write(name, ips);
        e
    }

    fn write(&self, name: &str, ips: &[&str]) {
        let text = std::fs::read_to_string(HOSTS).expect("read /etc/hosts");
        let mut kept: Vec<String> = text
            .lines()
            .filter(|l| !l.ends_with(&self.marker))
            .map(str::to_owned)
            .collect();
        for ip in ips {
            kept.push(format!("{ip} {name} {}", self.marker));
        }
        // Written in place (not renamed): /etc/hosts may be a bind mount.
        std::fs::write(HOSTS, kept.join("\n") + "\n")
            .expect("this test edits /etc/hosts and needs write access to it (run as root)");
    }
}

impl Drop for HostsEntries {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(HOSTS) {
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !l.ends_with(&self.marker))
                .collect();
            let _ = std::fs::write(HOSTS, kept.join("\n") + "\n");
        }
    }
}

/// Three upstreams on one port of 127.0.0.2, .3 and .4.
async fn upstreams() -> (u16, Vec<Upstream>) {
    for _ in 0..20 {
        let port = strait_e2e::free_port();
        let mut ups = Vec::new();
        for (i, ip) in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].iter().enumerate() {
            let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            match Upstream::start_at(&format!("u{}", i + 2), addr).await {
                Ok(u) => ups.push(u),
                Err(_) => break,
            }
        }
        if ups.len() == 3 {
            return (port, ups);
        }
    }
    panic!("no port free on 127.0.0.2-4");
}

async fn served_by(s: &Strait, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let req = Request::get("/").header("host", "h").body(empty()).unwrap();
        let resp = client::send(s.web(), client::Proto::H1, req).await.unwrap();
        *seen.entry(client::text(&resp)).or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn a_name_with_two_addresses_balances_across_both_and_follows_a_changed_answer() {
    let (port, _ups) = upstreams().await;
    let name = format!("strait-dns-{}.test", std::process::id());
    let hosts = HostsEntries::set(&name, &["127.0.0.2", "127.0.0.3"]);
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: svc\n\
         upstreams:\n  - name: svc\n    endpoints: [\"{name}:{port}\"]\n    dns_refresh: 200ms\n"
    );
    let s = Strait::start(&yaml).await;
    // The first sample that sees both may straddle the moment the second address arrived; once
    // both are in, round robin gives each exactly half of every ten requests.
    poll_until(
        Duration::from_secs(10),
        "both addresses serve half each",
        || async {
            let seen = served_by(&s, 10).await;
            (seen.get("u2") == Some(&5) && seen.get("u3") == Some(&5)).then_some(())
        },
    )
    .await;

    hosts.write(&name, &["127.0.0.4"]);
    poll_until(
        Duration::from_secs(10),
        "the changed answer applies",
        || async {
            let seen = served_by(&s, 6).await;
            (seen.len() == 1 && seen.contains_key("u4")).then_some(())
        },
    )
    .await;
    let m = s.metrics().await;
    assert_eq!(
        sum(&m, "strait_config_version", &[]),
        1.0,
        "same configuration version"
    );
    let endpoint = format!("127.0.0.4:{port}");
    assert!(
        sum(
            &m,
            "strait_upstream_requests_total",
            &[("endpoint", endpoint.as_str())]
        ) > 0.0,
        "endpoints are labelled by address:\n{m}"
    );
}
