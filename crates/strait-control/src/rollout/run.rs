//! The rollout controller's async shell: wakes every 100 ms, reads a fleet's shared state when a round is due, runs the analyses that are due (the built-in figures, or PromQL instant queries through Strait's own upstream client), and compiles the snapshot again when a rollout changed its route's weights.
//!
//! The controller's own steps may read and write the state store (etcd answers over the
//! network), so they run off the runtime's worker threads.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use strait_config as cfg;
use strait_core::UpstreamClient;

use crate::Control;

/// How often the controller looks for due analyses and finished steps.
const TICK: Duration = Duration::from_millis(100);

/// The largest Prometheus answer read.
const MAX_ANSWER: usize = 1 << 20;

/// Drives the rollouts of `control` until it is dropped.
pub async fn run(control: Weak<Control>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(c) = control.upgrade() else { return };
        let step = c.clone();
        let stepped = tokio::task::spawn_blocking(move || {
            let mut r = step.rollouts();
            let now = Instant::now();
            let adopted = r.round_if_due(now);
            let due = r.due(now);
            (due, adopted | r.tick())
        })
        .await;
        let Ok((due, mut changed)) = stepped else {
            // A panic in the controller is a bug; the next tick tries again.
            continue;
        };
        for d in due {
            let mut figures = d.figures;
            let mut source = "metrics";
            let mut error = None;
            if let Some(p) = &d.prometheus {
                source = "prometheus";
                match prometheus_figures(&c, p, d.timeout).await {
                    Ok((error_rate, p99)) => {
                        figures.error_rate = error_rate;
                        figures.p99 = p99;
                    }
                    Err(e) => {
                        tracing::warn!(rollout = %d.name, error = %e, "PromQL analysis failed; the interval is inconclusive");
                        figures.error_rate = None;
                        figures.p99 = None;
                        error = Some(e);
                    }
                }
            }
            let r = c.clone();
            changed |= tokio::task::spawn_blocking(move || {
                r.rollouts().record(&d.name, figures, source, error)
            })
            .await
            .unwrap_or(false);
        }
        if changed {
            let c = c.clone();
            // Compiling may read certificate files: off the runtime's worker threads.
            let _ = tokio::task::spawn_blocking(move || c.recompile("rollout")).await;
        }
    }
}

/// The error rate and p99 from `p`'s queries (`None` for an empty or NaN answer).
async fn prometheus_figures(
    control: &Control,
    p: &cfg::PrometheusAnalysis,
    timeout: Duration,
) -> Result<(Option<f64>, Option<f64>), String> {
    let snap = control.snapshot();
    let upstream = snap
        .upstreams
        .iter()
        .find(|u| *u.name == *p.upstream)
        .ok_or_else(|| format!("no upstream {}", p.upstream))?
        .clone();
    let client: Arc<dyn UpstreamClient> = Arc::new(strait_proxy::subrequest::Client::new(
        upstream,
        crate::compile::pools(control.live()),
        control.metrics.clone(),
    ));
    let error_rate = query(client.as_ref(), &p.error_rate, timeout).await?;
    let p99 = match &p.p99 {
        Some(q) => query(client.as_ref(), q, timeout).await?,
        None => None,
    };
    Ok((error_rate, p99))
}

/// Runs one instant query; the first sample's value.
async fn query(
    client: &dyn UpstreamClient,
    q: &str,
    timeout: Duration,
) -> Result<Option<f64>, String> {
    let uri = format!("/api/v1/query?query={}", encode(q));
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(Bytes::new())
        .map_err(|e| e.to_string())?;
    let resp = client
        .send(req, timeout, MAX_ANSWER)
        .await
        .map_err(|e| format!("query to {}: {e}", client.upstream()))?;
    if !resp.status().is_success() {
        return Err(format!(
            "query to {} answered {}: {}",
            client.upstream(),
            resp.status(),
            String::from_utf8_lossy(resp.body())
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    let v: Value =
        serde_json::from_slice(resp.body()).map_err(|e| format!("answer is not JSON: {e}"))?;
    sample(&v)
}

/// The first sample of an instant-query answer (`vector` or `scalar`); `None` when it has none.
pub(crate) fn sample(v: &Value) -> Result<Option<f64>, String> {
    if v.get("status").and_then(Value::as_str) != Some("success") {
        return Err(format!(
            "query failed: {}",
            v.get("error")
                .and_then(Value::as_str)
                .unwrap_or("no status")
        ));
    }
    let data = v.get("data").ok_or("answer has no data")?;
    let value = match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => data.pointer("/result/0/value/1"),
        Some("scalar") => data.pointer("/result/1"),
        other => return Err(format!("expected a vector or scalar result, got {other:?}")),
    };
    match value.and_then(Value::as_str) {
        None => Ok(None),
        Some(s) => s
            .parse::<f64>()
            .map(|x| x.is_finite().then_some(x))
            .map_err(|_| format!("sample value `{s}` is not a number")),
    }
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
