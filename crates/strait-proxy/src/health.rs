//! Active health checks: one task per endpoint probes it and flips its live health after consecutive results.

use std::{collections::HashMap, sync::Arc};

use crate::snapshot::Snapshot;
use crate::upstream::{Endpoint, HealthCheck, HealthCheckKind, Upstream};
use http::{header, Request};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;

use crate::{body::ProxyBody, pool::EndpointPool, Shared};

/// The running health-check tasks, per upstream; checks of an upstream a reload kept unchanged
/// keep running (no probe burst, thresholds keep counting), the others are replaced.
#[derive(Default)]
pub struct HealthCheckers {
    running: Vec<(Arc<Upstream>, Vec<JoinHandle<()>>)>,
}

impl HealthCheckers {
    /// Starts the checks of `snap`'s upstreams that are new or changed and stops those of
    /// upstreams it no longer has. Health already learned stays in live state.
    pub fn update(&mut self, shared: &Arc<Shared>, snap: &Snapshot) {
        // Keyed by allocation: an upstream a reload kept is the same `Arc`.
        let mut old: HashMap<*const Upstream, _> = std::mem::take(&mut self.running)
            .into_iter()
            .map(|(u, tasks)| (Arc::as_ptr(&u), (u, tasks)))
            .collect();
        for up in &snap.upstreams {
            if let Some(kept) = old.remove(&Arc::as_ptr(up)) {
                self.running.push(kept);
                continue;
            }
            let Some(hc) = up.health_check.clone() else {
                continue;
            };
            let tasks = up
                .endpoints
                .iter()
                .map(|ep| {
                    let task = probe_loop(shared.clone(), up.clone(), ep.clone(), hc.clone());
                    tokio::spawn(task)
                })
                .collect();
            self.running.push((up.clone(), tasks));
        }
        for (_, tasks) in old.into_values() {
            for t in tasks {
                t.abort();
            }
        }
    }

    /// Stops every check.
    pub fn stop(&mut self) {
        for t in self.running.drain(..).flat_map(|(_, t)| t) {
            t.abort();
        }
    }
}

impl Drop for HealthCheckers {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn probe_loop(shared: Arc<Shared>, up: Arc<Upstream>, ep: Arc<Endpoint>, hc: HealthCheck) {
    let gauge = shared
        .metrics
        .endpoint_healthy
        .with_label_values(&[&up.name, &ep.address]);
    gauge.set(if ep.state.is_healthy() { 1.0 } else { 0.0 });
    let pool = shared.pools.of(&up, &ep, &shared.metrics);
    let (mut passes, mut fails) = (0u32, 0u32);
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ok = tokio::time::timeout(hc.timeout, probe(&up, &ep, pool, &hc.kind))
            .await
            .unwrap_or(false);
        if ok {
            passes += 1;
            fails = 0;
            // A passing probe returns an endpoint that passive health ejected (as Envoy does).
            let now_ms = strait_core::clock::millis(std::time::Instant::now());
            if ep.state.outlier.uneject(now_ms) {
                tracing::info!(upstream = %up.name, endpoint = %ep.address, "ejected endpoint passed a health check");
            }
        } else {
            fails += 1;
            passes = 0;
        }
        let healthy = ep.state.is_healthy();
        if healthy && fails >= hc.unhealthy_threshold {
            ep.state.set_healthy(false);
            gauge.set(0.0);
            tracing::warn!(upstream = %up.name, endpoint = %ep.address, "endpoint unhealthy");
        } else if !healthy && passes >= hc.healthy_threshold {
            ep.state.set_healthy(true);
            gauge.set(1.0);
            tracing::info!(upstream = %up.name, endpoint = %ep.address, "endpoint healthy");
        }
    }
}

async fn probe(up: &Upstream, ep: &Endpoint, pool: &EndpointPool, kind: &HealthCheckKind) -> bool {
    let Ok(io) = pool.dial(up).await else {
        return false;
    };
    let HealthCheckKind::Http {
        path,
        expected_status,
    } = kind
    else {
        return true;
    };
    let req = |uri: http::Uri| {
        Request::get(uri)
            .header(header::USER_AGENT, "strait-health-check")
            .body(ProxyBody::Empty)
    };
    let status = if up.protocol.is_h2() {
        let Ok((mut tx, conn)) = http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await
        else {
            return false;
        };
        tokio::spawn(conn);
        let scheme = if up.tls.is_some() { "https" } else { "http" };
        let Ok(r) = req(format!("{scheme}://{}{path}", ep.authority)
            .parse()
            .unwrap_or_default())
        else {
            return false;
        };
        match tx.send_request(r).await {
            Ok(resp) => resp.status().as_u16(),
            Err(_) => return false,
        }
    } else {
        let Ok((mut tx, conn)) = http1::handshake(TokioIo::new(io)).await else {
            return false;
        };
        tokio::spawn(conn);
        let Ok(mut r) = req(path.parse().unwrap_or_default()) else {
            return false;
        };
        if let Ok(h) = http::HeaderValue::from_str(ep.authority.as_str()) {
            r.headers_mut().insert(header::HOST, h);
        }
        match tx.send_request(r).await {
            Ok(resp) => resp.status().as_u16(),
            Err(_) => return false,
        }
    };
    if expected_status.is_empty() {
        (200..300).contains(&status)
    } else {
        expected_status.contains(&status)
    }
}
