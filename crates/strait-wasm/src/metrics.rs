//! Metrics that plugins define (`proxy_define_metric`): counters, gauges and histograms, exported on `/metrics` as `strait_wasm_plugin_<name>{policy}` through one prometheus collector.
//!
//! A metric is identified by policy, kind and name, so a reloaded plugin that defines the
//! same metric again keeps counting into the same series. The number of metrics is bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use crate::abi::{metric, Status};

/// Most metrics (policy and name pairs) all plugins may define together.
pub const MAX_METRICS: usize = 10_000;

/// Prefix of every plugin metric's exported name.
pub const PREFIX: &str = "strait_wasm_plugin_";

#[derive(Clone)]
enum Family {
    Counter(IntCounterVec),
    Gauge(IntGaugeVec),
    Histogram(HistogramVec),
}

#[derive(Clone)]
enum Handle {
    Counter(IntCounter),
    Gauge(IntGauge),
    Histogram(Histogram),
}

#[derive(Default)]
struct Inner {
    families: HashMap<String, Family>,
    ids: HashMap<(String, i32, String), u32>,
    handles: Vec<Handle>,
}

/// Every plugin-defined metric of the process.
#[derive(Clone, Default)]
pub struct PluginMetrics {
    inner: Arc<Mutex<Inner>>,
}

/// `name` as a Prometheus metric name: `[a-zA-Z0-9_]`, anything else becomes `_`.
pub fn exported_name(name: &str) -> String {
    let mut out = String::with_capacity(PREFIX.len() + name.len());
    out.push_str(PREFIX);
    out.extend(
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
    out
}

impl PluginMetrics {
    /// The id of metric `name` of `kind` for `policy`, defining it if new.
    pub fn define(&self, policy: &str, kind: i32, name: &str) -> Result<u32, Status> {
        if name.is_empty() || !(metric::COUNTER..=metric::HISTOGRAM).contains(&kind) {
            return Err(Status::BadArgument);
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (policy.to_owned(), kind, name.to_owned());
        if let Some(&id) = inner.ids.get(&key) {
            return Ok(id);
        }
        if inner.handles.len() >= MAX_METRICS {
            return Err(Status::InternalFailure);
        }
        let fq = exported_name(name);
        let help = format!("Plugin metric `{name}`.");
        let family = match inner.families.get(&fq) {
            Some(f) => f.clone(),
            None => {
                let f = match kind {
                    metric::COUNTER => {
                        IntCounterVec::new(Opts::new(&fq, &help), &["policy"]).map(Family::Counter)
                    }
                    metric::GAUGE => {
                        IntGaugeVec::new(Opts::new(&fq, &help), &["policy"]).map(Family::Gauge)
                    }
                    _ => HistogramVec::new(HistogramOpts::new(&fq, &help), &["policy"])
                        .map(Family::Histogram),
                }
                .map_err(|_| Status::BadArgument)?;
                inner.families.insert(fq, f.clone());
                f
            }
        };
        let handle = match (&family, kind) {
            (Family::Counter(v), metric::COUNTER) => {
                Handle::Counter(v.with_label_values(&[policy]))
            }
            (Family::Gauge(v), metric::GAUGE) => Handle::Gauge(v.with_label_values(&[policy])),
            (Family::Histogram(v), metric::HISTOGRAM) => {
                Handle::Histogram(v.with_label_values(&[policy]))
            }
            // The name is taken by a metric of another kind.
            _ => return Err(Status::BadArgument),
        };
        let id = inner.handles.len() as u32;
        inner.handles.push(handle);
        inner.ids.insert(key, id);
        Ok(id)
    }

    fn handle(&self, id: u32) -> Result<Handle, Status> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .handles
            .get(id as usize)
            .cloned()
            .ok_or(Status::NotFound)
    }

    /// Adds `offset` (counters: only positive) to metric `id`.
    pub fn increment(&self, id: u32, offset: i64) -> Status {
        match self.handle(id) {
            Ok(Handle::Counter(c)) if offset >= 0 => c.inc_by(offset as u64),
            Ok(Handle::Gauge(g)) => g.add(offset),
            Ok(_) => return Status::BadArgument,
            Err(s) => return s,
        }
        Status::Ok
    }

    /// Sets a gauge, records a histogram value, or sets a counter forward to `value`.
    pub fn record(&self, id: u32, value: u64) -> Status {
        match self.handle(id) {
            Ok(Handle::Counter(c)) => {
                let now = c.get();
                if value >= now {
                    c.inc_by(value - now);
                }
            }
            Ok(Handle::Gauge(g)) => g.set(value as i64),
            Ok(Handle::Histogram(h)) => h.observe(value as f64),
            Err(s) => return s,
        }
        Status::Ok
    }

    /// The current value of a counter or gauge.
    pub fn get(&self, id: u32) -> Result<u64, Status> {
        match self.handle(id)? {
            Handle::Counter(c) => Ok(c.get()),
            Handle::Gauge(g) => Ok(g.get() as u64),
            Handle::Histogram(_) => Err(Status::BadArgument),
        }
    }
}

impl Collector for PluginMetrics {
    fn desc(&self) -> Vec<&Desc> {
        // Families appear at run time; the registry is told of none up front.
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let families: Vec<Family> = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.families.values().cloned().collect()
        };
        families
            .iter()
            .flat_map(|f| match f {
                Family::Counter(v) => v.collect(),
                Family::Gauge(v) => v.collect(),
                Family::Histogram(v) => v.collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_defined_once_per_policy_and_name() {
        let m = PluginMetrics::default();
        let a = m.define("p", metric::COUNTER, "hits").unwrap();
        assert_eq!(m.define("p", metric::COUNTER, "hits"), Ok(a));
        let b = m.define("q", metric::COUNTER, "hits").unwrap();
        assert_ne!(a, b);
        assert_eq!(m.increment(a, 3), Status::Ok);
        assert_eq!(m.get(a), Ok(3));
        assert_eq!(m.get(b), Ok(0));
        assert_eq!(
            m.define("p", metric::GAUGE, "hits"),
            Err(Status::BadArgument),
            "a name keeps its kind"
        );
        let fams = m.collect();
        assert_eq!(fams[0].name(), "strait_wasm_plugin_hits");
    }

    #[test]
    fn names_are_made_prometheus_safe() {
        assert_eq!(exported_name("a.b-c"), "strait_wasm_plugin_a_b_c");
    }
}
