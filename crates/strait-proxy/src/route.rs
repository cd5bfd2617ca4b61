//! Runtime routes: what a matched request does (forward to weighted backends, respond, redirect).
//!
//! A route's filter chain is per listener (listener policies come first), so it lives in the
//! snapshot's `RouteEntry`, not here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use http::request::Parts;
use strait_core::split::StickyLayout;

use crate::{
    retry::RetryPolicy,
    split::{Choice, Split},
    upstream::Upstream,
};

/// A compiled route.
pub struct Route {
    /// Route name (metric label, logs).
    pub name: Arc<str>,
    /// What to do with a matching request.
    pub action: Action,
}

/// The action of a route.
pub enum Action {
    /// Forward to an upstream chosen among weighted backends.
    Forward(Box<Forward>),
    /// Answer directly.
    Respond(Respond),
    /// Answer with a redirect built from the request.
    Redirect(Redirect),
}

/// How a route forwards.
pub struct Forward {
    /// The upstreams and their weights.
    pub backends: Backends,
    /// Path/host rewrite applied before forwarding.
    pub rewrite: Option<Rewrite>,
    /// Retries of failed attempts, if a retry policy applies.
    pub retry: Option<Arc<RetryPolicy>>,
    /// `Upgrade` tokens tunnelled (lowercase); others are dropped from the request.
    pub upgrades: Box<[Box<str>]>,
    /// Gray overrides and sticky assignment ahead of the weights, if configured.
    pub split: Option<Box<Split>>,
}

impl Forward {
    /// Chooses the backend for one request (an index into [`Backends::all`]) and says how:
    /// a gray override, else the sticky key's interval, else the smooth weighted round robin.
    pub fn select(&self, head: &Parts, client_ip: &HeaderValue) -> (usize, Choice) {
        self.split
            .as_ref()
            .and_then(|s| s.choose(self.backends.layout(), head, client_ip))
            .unwrap_or_else(|| (self.backends.pick(), Choice::Weights))
    }
}

/// Weighted backends: the first step of forwarding picks one by smooth weighted round robin,
/// which gives each its exact share over every period of the weights' sum.
pub struct Backends {
    upstreams: Box<[(Arc<Upstream>, u32)]>,
    /// Backend indices in smooth weighted order (backends of weight 0 never appear).
    sequence: Box<[u32]>,
    cursor: AtomicUsize,
    /// Grid intervals by weight, for sticky keys.
    layout: StickyLayout,
}

impl Backends {
    /// Backends with their weights (at least one above 0).
    pub fn new(upstreams: Vec<(Arc<Upstream>, u32)>) -> Self {
        let live: Vec<usize> = (0..upstreams.len())
            .filter(|&i| upstreams[i].1 > 0)
            .collect();
        let weights: Vec<u32> = live.iter().map(|&i| upstreams[i].1).collect();
        let all: Vec<u32> = upstreams.iter().map(|(_, w)| *w).collect();
        let layout = StickyLayout::new(&all);
        let sequence = strait_core::balance::smooth_sequence(&weights)
            .into_iter()
            .map(|k| live[k as usize] as u32)
            .collect();
        Backends {
            upstreams: upstreams.into(),
            sequence,
            cursor: AtomicUsize::new(0),
            layout,
        }
    }

    /// Picks the backend for one request; its index into [`Backends::all`].
    pub fn pick(&self) -> usize {
        if self.upstreams.len() == 1 {
            return 0;
        }
        let i = self.cursor.fetch_add(1, Ordering::Relaxed);
        self.sequence
            .get(i % self.sequence.len().max(1))
            .copied()
            .unwrap_or(0) as usize
    }

    /// The backends' grid intervals by weight, for sticky keys.
    pub fn layout(&self) -> &StickyLayout {
        &self.layout
    }

    /// Every backend with its weight, in configuration order.
    pub fn all(&self) -> &[(Arc<Upstream>, u32)] {
        &self.upstreams
    }

    /// The upstream of backend `i`.
    pub fn upstream(&self, i: usize) -> &Arc<Upstream> {
        &self.upstreams[i].0
    }
}

/// Path and host rewrite for forwarded requests.
#[derive(Clone, Debug, Default)]
pub struct Rewrite {
    /// Replaces the matched `path_prefix`.
    pub path_prefix: Option<String>,
    /// Replaces the whole path (query kept).
    pub path: Option<String>,
    /// Sets the upstream Host.
    pub host: Option<HeaderValue>,
}

/// A direct response.
#[derive(Clone, Debug)]
pub struct Respond {
    /// Status code.
    pub status: StatusCode,
    /// Body (shared, never copied per request).
    pub body: Bytes,
    /// Extra headers.
    pub headers: HeaderMap,
}

/// A redirect; unset parts are taken from the request.
#[derive(Clone, Debug)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308.
    pub status: StatusCode,
    /// New scheme.
    pub scheme: Option<String>,
    /// New host (without port).
    pub host: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// New path (query kept).
    pub path: Option<String>,
}

impl Redirect {
    /// Builds the Location for a request arriving with `scheme`, `host` (may hold a port) and `path_and_query`.
    pub fn location(&self, scheme: &str, host: &str, path_and_query: &str) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(scheme);
        let (req_host, req_port) = split_host_port(host);
        let host = self.host.as_deref().unwrap_or(req_host);
        let port = match (self.port, self.scheme.is_some() || self.host.is_some()) {
            (Some(p), _) => Some(p.to_string()),
            (None, false) => req_port.map(str::to_string),
            (None, true) => None,
        };
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let path = self.path.as_deref().unwrap_or(path);
        let mut out = format!("{scheme}://{host}");
        if let Some(p) = port {
            let default = (scheme == "http" && p == "80") || (scheme == "https" && p == "443");
            if !default {
                out.push(':');
                out.push_str(&p);
            }
        }
        out.push_str(path);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

/// Splits `host[:port]`, keeping IPv6 brackets intact.
pub fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.find("]:") {
            Some(i) => (&host[..=i], Some(&host[i + 2..])),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_of_weight_zero_get_nothing() {
        // The sequence logic is shared with the balancer; here only the index mapping.
        let w = [0u32, 3, 1];
        let live: Vec<usize> = (0..3).filter(|&i| w[i] > 0).collect();
        let seq: Vec<usize> = strait_core::balance::smooth_sequence(&[3, 1])
            .into_iter()
            .map(|k| live[k as usize])
            .collect();
        assert_eq!(seq.iter().filter(|&&i| i == 0).count(), 0);
        assert_eq!(seq.iter().filter(|&&i| i == 1).count(), 3);
        assert_eq!(seq.iter().filter(|&&i| i == 2).count(), 1);
    }

    fn redirect() -> Redirect {
        Redirect {
            status: StatusCode::FOUND,
            scheme: None,
            host: None,
            port: None,
            path: None,
        }
    }

    #[test]
    fn https_redirect_drops_the_request_port_and_keeps_the_query() {
        let r = Redirect {
            scheme: Some("https".into()),
            ..redirect()
        };
        assert_eq!(
            r.location("http", "example.com:8080", "/a?b=1"),
            "https://example.com/a?b=1"
        );
    }

    #[test]
    fn path_redirect_keeps_scheme_host_and_port() {
        let r = Redirect {
            path: Some("/new".into()),
            ..redirect()
        };
        assert_eq!(
            r.location("http", "example.com:8080", "/old"),
            "http://example.com:8080/new"
        );
    }

    #[test]
    fn ipv6_host_port_split() {
        assert_eq!(split_host_port("[::1]:80"), ("[::1]", Some("80")));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
        assert_eq!(split_host_port("a.b:9"), ("a.b", Some("9")));
    }
}
