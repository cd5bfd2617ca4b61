//! DNS discovery: an endpoint written as a DNS name is resolved again every `dns_refresh`, and every address it resolves to is an endpoint (as Envoy's STRICT_DNS does), so a headless Kubernetes service or a round-robin name spreads load.
//!
//! Names go through the system resolver (`/etc/hosts`, then `/etc/resolv.conf`), off the
//! request path. The answers live in a [`DnsCache`] kept in the live-state registry; the
//! compiler expands names from it. When an answer changes, the running configuration is
//! compiled again under the same version (live state is kept, as in any reload). A failed
//! lookup keeps the last good answer: a DNS outage does not take endpoints away. Before the
//! first answer, the name itself is the endpoint (resolved when connecting).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use strait_config as cfg;

/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The live-state kind of the cache (one per process).
pub const KIND: &str = "dns";

/// The last good answer for each `host:port` name.
#[derive(Default)]
pub struct DnsCache {
    answers: Mutex<HashMap<String, Answer>>,
}

struct Answer {
    addrs: Vec<SocketAddr>,
    resolved_at: Instant,
}

impl DnsCache {
    /// The addresses `name` (`host:port`) resolved to last, if it ever did.
    pub fn get(&self, name: &str) -> Option<Vec<SocketAddr>> {
        let map = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        map.get(name).map(|a| a.addrs.clone())
    }

    fn due(&self, name: &str, refresh: Duration, now: Instant) -> bool {
        let map = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        map.get(name)
            .is_none_or(|a| now.duration_since(a.resolved_at) >= refresh)
    }

    /// Stores an answer; true when it differs from the previous one.
    fn store(&self, name: &str, mut addrs: Vec<SocketAddr>, now: Instant) -> bool {
        addrs.sort();
        addrs.dedup();
        let mut map = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let changed = map.get(name).is_none_or(|a| a.addrs != addrs);
        map.insert(
            name.to_owned(),
            Answer {
                addrs,
                resolved_at: now,
            },
        );
        changed
    }

    /// Marks a failed lookup as tried now (the last good answer stays).
    fn tried(&self, name: &str, now: Instant) {
        let mut map = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = map.get_mut(name) {
            a.resolved_at = now;
        }
    }
}

/// Whether an endpoint address names a host to resolve (not an IP literal).
pub fn is_name(address: &str) -> bool {
    address.parse::<SocketAddr>().is_err()
        && address
            .rsplit_once(':')
            .is_some_and(|(host, _)| host.trim_matches(['[', ']']).parse::<IpAddr>().is_err())
}

/// The endpoints of `u` with DNS names expanded to their last answer: `(address, weight,
/// index of the written endpoint)`, the index giving the written endpoint's labels.
pub fn expand(u: &cfg::Upstream, cache: &DnsCache) -> Vec<(String, u32, usize)> {
    let mut out: Vec<(String, u32, usize)> = Vec::with_capacity(u.endpoints.len());
    for (i, e) in u.endpoints.iter().enumerate() {
        match is_name(&e.address)
            .then(|| cache.get(&e.address))
            .flatten()
            .filter(|a| !a.is_empty())
        {
            Some(addrs) => {
                for a in addrs {
                    let a = a.to_string();
                    // Two names may resolve to one address: it is one endpoint.
                    if !out.iter().any(|(x, _, _)| *x == a) {
                        out.push((a, e.weight, i));
                    }
                }
            }
            None => out.push((e.address.clone(), e.weight, i)),
        }
    }
    out
}

/// The names `config` resolves, each with its shortest refresh interval.
pub fn names(config: &cfg::Config) -> Vec<(String, Duration)> {
    let mut out: HashMap<String, Duration> = HashMap::new();
    for u in &config.upstreams {
        for e in u.endpoints.iter().filter(|e| is_name(&e.address)) {
            let d = out.entry(e.address.clone()).or_insert(u.dns_refresh);
            *d = (*d).min(u.dns_refresh);
        }
    }
    out.into_iter().collect()
}

/// Resolves the running configuration's names when due, for as long as `control` lives;
/// a changed answer compiles the configuration again.
pub async fn run(control: Weak<crate::Control>) {
    loop {
        let Some(c) = control.upgrade() else { return };
        let (names, cache) = (c.dns_names(), c.dns_cache());
        drop(c);
        let now = Instant::now();
        let mut changed = false;
        let mut next = Duration::from_secs(1);
        for (name, refresh) in &names {
            next = next.min(*refresh);
            if !cache.due(name, *refresh, now) {
                continue;
            }
            match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(name.as_str())).await
            {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.is_empty() {
                        cache.tried(name, now);
                    } else if cache.store(name, addrs, now) {
                        tracing::info!(name, answer = ?cache.get(name), "DNS answer changed");
                        changed = true;
                    }
                }
                Ok(Err(e)) => {
                    cache.tried(name, now);
                    tracing::warn!(name, error = %e, "DNS lookup failed; keeping the last answer");
                }
                Err(_) => {
                    cache.tried(name, now);
                    tracing::warn!(name, "DNS lookup timed out; keeping the last answer");
                }
            }
        }
        if changed {
            if let Some(c) = control.upgrade() {
                let _ = tokio::task::spawn_blocking(move || c.recompile("dns")).await;
            }
        }
        tokio::time::sleep(next.max(Duration::from_millis(100))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_told_from_ip_literals() {
        assert!(is_name("svc.default.svc.cluster.local:8080"));
        assert!(is_name("localhost:80"));
        assert!(!is_name("127.0.0.1:80"));
        assert!(!is_name("[::1]:80"));
    }

    #[test]
    fn a_changed_answer_is_reported_once() {
        let c = DnsCache::default();
        let now = Instant::now();
        let a: SocketAddr = "127.0.0.2:80".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:80".parse().unwrap();
        assert!(c.store("x:80", vec![b, a], now));
        assert!(!c.store("x:80", vec![a, b], now), "same set, other order");
        assert!(c.store("x:80", vec![a], now));
        assert!(!c.due("x:80", Duration::from_secs(5), now));
        assert!(c.due("x:80", Duration::from_secs(5), now + Duration::from_secs(5)));
    }
}
