//! OpenMetrics 1.0 text exposition of the gathered metric families, with trace-id exemplars.
//!
//! The `prometheus` crate writes only the classic text format (what promtool and every scraper
//! read, and the `/metrics` default). When a scraper asks for `application/openmetrics-text`
//! this encoder writes the same families in OpenMetrics, adding the one thing the classic
//! format cannot carry: an exemplar (the trace id of a recent sampled request) on the request
//! duration bucket that request fell into. Exemplars live in [`ExemplarCell`]s, one per
//! histogram series, written best-effort by the request path (`try_lock`, never waiting).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use prometheus::proto::{MetricFamily, MetricType};

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The family whose buckets carry exemplars.
const EXEMPLAR_FAMILY: &str = "strait_http_request_duration_seconds";

/// One observation linked to a trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    /// Trace id of the request.
    pub trace_id: [u8; 16],
    /// Observed value (seconds).
    pub value: f64,
    /// Unix time of the observation, seconds.
    pub timestamp: f64,
}

/// The latest exemplar of one histogram series.
#[derive(Default, Debug)]
pub struct ExemplarCell(Mutex<Option<Exemplar>>);

impl ExemplarCell {
    /// Stores `e` unless someone else is writing or reading right now (then this one is skipped).
    pub fn offer(&self, e: Exemplar) {
        if let Ok(mut slot) = self.0.try_lock() {
            *slot = Some(e);
        }
    }

    fn get(&self) -> Option<Exemplar> {
        self.0.lock().ok().and_then(|g| *g)
    }
}

/// A series' labels as (name, value) pairs sorted by name, as gathered families list them.
type SeriesKey = Vec<(String, String)>;

/// Exemplar cells by their series' labels.
#[derive(Default)]
pub(crate) struct ExemplarIndex(Mutex<HashMap<SeriesKey, Arc<ExemplarCell>>>);

impl ExemplarIndex {
    /// The cell for a series; called when a series handle is resolved, not per request.
    pub(crate) fn cell(&self, labels: &[(&str, &str)]) -> Arc<ExemplarCell> {
        let mut key: SeriesKey = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        key.sort();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_default().clone()
    }

    /// Keeps only the cells whose series labels `keep` accepts.
    pub(crate) fn retain(&self, keep: impl Fn(&[(String, String)]) -> bool) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|key, _| keep(key));
    }

    fn lookup(&self, labels: &[(&str, &str)]) -> Option<Exemplar> {
        let key: SeriesKey = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key).and_then(|c| c.get())
    }
}

/// Encodes `families` as OpenMetrics text, ending with `# EOF`.
pub(crate) fn encode(families: &[MetricFamily], exemplars: &ExemplarIndex) -> String {
    let mut out = String::with_capacity(32 * 1024);
    for mf in families {
        encode_family(&mut out, mf, exemplars);
    }
    out.push_str("# EOF\n");
    out
}

fn encode_family(out: &mut String, mf: &MetricFamily, exemplars: &ExemplarIndex) {
    let name = mf.name();
    let kind = mf.get_field_type();
    // OpenMetrics names a counter family without its `_total` suffix; its samples carry it.
    let (family, ty) = match kind {
        MetricType::COUNTER => (name.strip_suffix("_total").unwrap_or(name), "counter"),
        MetricType::GAUGE => (name, "gauge"),
        MetricType::HISTOGRAM => (name, "histogram"),
        MetricType::SUMMARY => (name, "summary"),
        MetricType::UNTYPED => (name, "unknown"),
    };
    let _ = writeln!(out, "# TYPE {family} {ty}");
    out.push_str("# HELP ");
    out.push_str(family);
    out.push(' ');
    escape(out, mf.help());
    out.push('\n');
    for m in mf.get_metric() {
        let labels: Vec<(&str, &str)> = m
            .get_label()
            .iter()
            .map(|l| (l.name(), l.value()))
            .collect();
        match kind {
            MetricType::COUNTER => {
                sample(
                    out,
                    family,
                    "_total",
                    &labels,
                    None,
                    m.get_counter().get_value(),
                );
                out.push('\n');
            }
            MetricType::GAUGE => {
                sample(out, name, "", &labels, None, m.get_gauge().get_value());
                out.push('\n');
            }
            MetricType::UNTYPED => {
                #[allow(deprecated)] // Strait registers no untyped metrics; kept for completeness.
                sample(out, name, "", &labels, None, m.get_untyped().get_value());
                out.push('\n');
            }
            MetricType::SUMMARY => {
                let s = m.get_summary();
                for q in s.get_quantile() {
                    let qv = float(q.quantile());
                    sample(out, name, "", &labels, Some(("quantile", &qv)), q.value());
                    out.push('\n');
                }
                sample(out, name, "_sum", &labels, None, s.sample_sum());
                out.push('\n');
                sample(out, name, "_count", &labels, None, s.sample_count() as f64);
                out.push('\n');
            }
            MetricType::HISTOGRAM => {
                let h = m.get_histogram();
                let mut ex = if name == EXEMPLAR_FAMILY {
                    exemplars.lookup(&labels)
                } else {
                    None
                };
                let mut saw_inf = false;
                for b in h.get_bucket() {
                    let ub = b.upper_bound();
                    saw_inf |= ub.is_infinite();
                    let le = float(ub);
                    sample(
                        out,
                        name,
                        "_bucket",
                        &labels,
                        Some(("le", &le)),
                        b.cumulative_count() as f64,
                    );
                    if let Some(e) = ex.filter(|e| e.value <= ub) {
                        exemplar(out, &e);
                        ex = None;
                    }
                    out.push('\n');
                }
                if !saw_inf {
                    sample(
                        out,
                        name,
                        "_bucket",
                        &labels,
                        Some(("le", "+Inf")),
                        h.get_sample_count() as f64,
                    );
                    if let Some(e) = ex {
                        exemplar(out, &e);
                    }
                    out.push('\n');
                }
                sample(out, name, "_sum", &labels, None, h.get_sample_sum());
                out.push('\n');
                sample(
                    out,
                    name,
                    "_count",
                    &labels,
                    None,
                    h.get_sample_count() as f64,
                );
                out.push('\n');
            }
        }
    }
}

/// Writes `name{labels} value` without the line end (an exemplar may follow).
fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(extra) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&float(value));
}

fn exemplar(out: &mut String, e: &Exemplar) {
    out.push_str(" # {trace_id=\"");
    for b in e.trace_id {
        let _ = write!(out, "{b:02x}");
    }
    let _ = write!(out, "\"}} {} {:.3}", float(e.value), e.timestamp);
}

/// OpenMetrics numbers: integers without a fraction are fine, infinities are `+Inf`/`-Inf`.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// Escapes `\\`, newlines and `"` (OpenMetrics escapes all three in HELP text and label values).
fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

    fn registry() -> (Registry, IntCounterVec, HistogramVec) {
        let r = Registry::new();
        let c = IntCounterVec::new(
            Opts::new("x_requests_total", "Requests \"served\"."),
            &["route"],
        )
        .unwrap();
        let h = HistogramVec::new(
            HistogramOpts::new(EXEMPLAR_FAMILY, "Latency.").buckets(vec![0.1, 1.0]),
            &["route"],
        )
        .unwrap();
        r.register(Box::new(c.clone())).unwrap();
        r.register(Box::new(h.clone())).unwrap();
        (r, c, h)
    }

    #[test]
    fn counters_drop_total_from_the_family_name_and_output_ends_with_eof() {
        let (r, c, _) = registry();
        c.with_label_values(&["a\"b"]).inc_by(3);
        let text = encode(&r.gather(), &ExemplarIndex::default());
        assert!(text.contains("# TYPE x_requests counter\n"), "{text}");
        assert!(
            text.contains("# HELP x_requests Requests \\\"served\\\".\n"),
            "{text}"
        );
        assert!(
            text.contains("x_requests_total{route=\"a\\\"b\"} 3.0\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn exemplar_lands_on_the_first_bucket_holding_its_value() {
        let (r, _, h) = registry();
        let idx = ExemplarIndex::default();
        h.with_label_values(&["api"]).observe(0.5);
        idx.cell(&[("route", "api")]).offer(Exemplar {
            trace_id: [0xab; 16],
            value: 0.5,
            timestamp: 1700000000.0,
        });
        let text = encode(&r.gather(), &idx);
        let line = text.lines().find(|l| l.contains("le=\"1.0\"")).unwrap();
        assert_eq!(
            line,
            format!(
                "{EXEMPLAR_FAMILY}_bucket{{route=\"api\",le=\"1.0\"}} 1.0 # {{trace_id=\"{}\"}} 0.5 1700000000.000",
                "ab".repeat(16)
            )
        );
        assert!(text.contains(&format!(
            "{EXEMPLAR_FAMILY}_bucket{{route=\"api\",le=\"+Inf\"}} 1.0\n"
        )));
        assert!(text.contains(&format!("{EXEMPLAR_FAMILY}_count{{route=\"api\"}} 1.0\n")));
        assert_eq!(text.matches("trace_id").count(), 1);
    }

    #[test]
    fn numbers_follow_openmetrics_spelling() {
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(2.0), "2.0");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(f64::NAN), "NaN");
    }
}
