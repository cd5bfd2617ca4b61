//! Removing the series of listeners, routes, upstreams and endpoints nothing uses any more, so
//! configuration churn (endpoints coming and going with pods) does not grow `/metrics` forever.
//!
//! A series is judged by its labels only: one labelled with an (upstream, endpoint) pair is kept
//! while that endpoint's live state exists (an old snapshot still serving a request keeps it);
//! otherwise each `listener`, `route` and `upstream` label it carries must name one that still
//! exists. So a route moved from one upstream to another and back keeps both series (no counter
//! resets; their number is bounded by the configuration), while names and endpoints that are gone
//! take their series with them. Series without those labels are always kept.
//!
//! Removing a series only drops it from the registry: a handle somebody still holds keeps
//! counting into a detached metric, which is why the caller must compute [`InUse`] from the
//! running snapshot and call [`Metrics::retain`] under the lock that publishes snapshots.

use std::collections::{HashMap, HashSet};

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};

use crate::metrics::Metrics;

/// What the running configuration, and requests still in flight, use.
#[derive(Debug, Default)]
pub struct InUse {
    listeners: HashSet<String>,
    routes: HashSet<String>,
    upstreams: HashSet<String>,
    endpoints: HashSet<String>,
}

impl InUse {
    /// A listener of the running snapshot.
    pub fn listener(&mut self, name: &str) {
        self.listeners.insert(name.to_owned());
    }

    /// A route of the running snapshot.
    pub fn route(&mut self, name: &str) {
        self.routes.insert(name.to_owned());
    }

    /// An upstream of the running snapshot.
    pub fn upstream(&mut self, name: &str) {
        self.upstreams.insert(name.to_owned());
    }

    /// An endpoint whose live state exists.
    pub fn endpoint(&mut self, upstream: &str, address: &str) {
        self.endpoints.insert(pair(upstream, address));
    }

    /// Whether a series with these (name, value) labels is still in use.
    fn keeps<'a>(&self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        let (mut listener, mut route, mut upstream, mut endpoint) = (None, None, None, None);
        for (name, value) in labels {
            match name {
                "listener" => listener = Some(value),
                "route" => route = Some(value),
                "upstream" => upstream = Some(value),
                "endpoint" => endpoint = Some(value),
                _ => {}
            }
        }
        if let (Some(u), Some(e)) = (upstream, endpoint) {
            return self.endpoints.contains(&pair(u, e));
        }
        listener.is_none_or(|l| self.listeners.contains(l))
            && route.is_none_or(|r| r == "unmatched" || self.routes.contains(r))
            && upstream.is_none_or(|u| u.is_empty() || self.upstreams.contains(u))
    }
}

fn pair(u: &str, e: &str) -> String {
    format!("{u}\0{e}")
}

impl Metrics {
    /// Removes every series labelled with something `in_use` lacks; returns how many.
    pub fn retain(&self, in_use: &InUse) -> usize {
        self.exemplars
            .retain(|labels| in_use.keeps(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        self.labelled.iter().map(|f| f.prune(in_use)).sum()
    }
}

/// A family with labels: registered once, and its unused series removed.
pub(crate) trait Family: Send + Sync {
    /// A handle to register (shares the family's series).
    fn collector(&self) -> Box<dyn Collector>;

    /// Removes the series `in_use` does not keep; returns how many.
    fn prune(&self, in_use: &InUse) -> usize;
}

impl<T: MetricVecBuilder + 'static> Family for MetricVec<T> {
    fn collector(&self) -> Box<dyn Collector> {
        Box::new(self.clone())
    }

    fn prune(&self, in_use: &InUse) -> usize {
        remove_series(self, |labels| !in_use.keeps(labels.iter().copied()))
    }
}

/// Removes the series of `vec` whose (name, value) labels `drop` picks; returns how many.
pub(crate) fn remove_series<T: MetricVecBuilder>(
    vec: &MetricVec<T>,
    drop: impl Fn(&[(&str, &str)]) -> bool,
) -> usize {
    let mut removed = 0;
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: Vec<(&str, &str)> = metric
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if !drop(&labels) {
                continue;
            }
            let by_name: HashMap<&str, &str> = labels.into_iter().collect();
            if vec.remove(&by_name).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_of_removed_routes_endpoints_and_listeners_go_and_the_rest_stay() {
        let m = Metrics::new();
        m.requests
            .with_label_values(&["web", "a", "up", "GET", "200"])
            .inc();
        m.requests
            .with_label_values(&["web", "gone", "up", "GET", "200"])
            .inc();
        m.requests
            .with_label_values(&["web", "a", "old", "GET", "200"])
            .inc();
        m.requests
            .with_label_values(&["web", "unmatched", "", "GET", "404"])
            .inc();
        m.upstream_requests
            .with_label_values(&["up", "10.0.0.1:80", "ok"])
            .inc();
        m.upstream_requests
            .with_label_values(&["up", "10.0.0.2:80", "ok"])
            .inc();
        m.endpoint_healthy
            .with_label_values(&["up", "10.0.0.2:80"])
            .set(1.0);
        m.connections_total.with_label_values(&["web"]).inc();
        m.connections_total
            .with_label_values(&["old-listener"])
            .inc();
        m.retries.with_label_values(&["gone", "up"]).inc();
        m.config_reloads.with_label_values(&["ok"]).inc();

        let mut in_use = InUse::default();
        in_use.listener("web");
        in_use.route("a");
        in_use.upstream("up");
        in_use.endpoint("up", "10.0.0.1:80");
        assert_eq!(m.retain(&in_use), 6);

        let text = m.render_text();
        assert!(text.contains(r#"route="a",upstream="up""#), "{text}");
        assert!(text.contains(r#"route="unmatched""#));
        assert!(text.contains("10.0.0.1:80"));
        assert!(text.contains(r#"listener="web""#));
        assert!(text.contains(r#"strait_config_reload_total{result="ok"}"#));
        for gone in [
            r#"route="gone""#,
            r#"upstream="old""#,
            "10.0.0.2:80",
            "old-listener",
        ] {
            assert!(!text.contains(gone), "{gone} still exported:\n{text}");
        }
        // Nothing else to remove the second time.
        assert_eq!(m.retain(&in_use), 0);
    }
}
