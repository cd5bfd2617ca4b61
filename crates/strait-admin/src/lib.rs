//! Admin HTTP listener: `/healthz`, `/readyz`, `/metrics` (Prometheus text, or OpenMetrics when asked; all open), and, token-protected, the admin API under `/api/` and the profiler under `/debug/pprof/`.
#![forbid(unsafe_code)]

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};
use strait_control::{admin_listener::AdminBinding, Control};
use tokio::sync::watch;

mod api;
mod assemble;
mod pprof;
mod serve;
mod slots;

pub use serve::serve;

/// What the admin endpoints read.
pub struct AdminState {
    /// The control plane the API reads and writes through.
    pub control: Arc<Control>,
    /// `STRAIT_ADMIN_TOKEN`: when set, it is the token, whatever `admin.token` says.
    env_token: Option<String>,
    /// The admin socket and the `admin` section in force (token, limits), from the control plane.
    binding: watch::Receiver<Option<AdminBinding>>,
    /// False once draining: `/readyz` answers 503 so orchestrators stop sending traffic.
    pub ready: AtomicBool,
}

impl AdminState {
    /// A ready admin state over `control`; `env_token` (from `STRAIT_ADMIN_TOKEN`) overrides
    /// `admin.token`.
    pub fn new(control: Arc<Control>, env_token: Option<String>) -> Arc<Self> {
        Arc::new(AdminState {
            binding: control.admin_binding(),
            control,
            env_token,
            ready: AtomicBool::new(true),
        })
    }

    /// Runs `f` with the bearer token in force (`None`: the API is closed). Read per request, so
    /// a changed `admin.token` applies at once.
    fn with_token<R>(&self, f: impl FnOnce(Option<&str>) -> R) -> R {
        if let Some(t) = &self.env_token {
            return f(Some(t));
        }
        let b = self.binding.borrow();
        f(b.as_ref().and_then(|b| b.settings.token.as_deref()))
    }

    /// Whether `STRAIT_ADMIN_TOKEN` decides the token (so `admin.token` has no effect).
    fn token_from_env(&self) -> bool {
        self.env_token.is_some()
    }
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api", api::router(state.clone()))
        .nest("/debug/pprof", pprof::router(state.clone()))
        .with_state(state)
}

async fn readyz(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    }
}

async fn metrics(State(s): State<Arc<AdminState>>, headers: HeaderMap) -> impl IntoResponse {
    let open = wants_openmetrics(&headers);
    // Off the worker threads: removing unused series waits for a reload being published, and
    // both steps walk every series.
    let control = s.control.clone();
    let (status, (kind, body)) = tokio::task::spawn_blocking(move || {
        // Series of endpoints the last requests on an old snapshot were still using go now.
        control.drop_unused_series();
        if open {
            (
                strait_observe::openmetrics::CONTENT_TYPE,
                control.metrics.render_openmetrics(),
            )
        } else {
            (
                "text/plain; version=0.0.4; charset=utf-8",
                control.metrics.render_text(),
            )
        }
    })
    .await
    .map_or_else(
        |e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                (
                    "text/plain; charset=utf-8",
                    format!("metrics failed: {e}\n"),
                ),
            )
        },
        |r| (StatusCode::OK, r),
    );
    (status, [(header::CONTENT_TYPE, kind)], body)
}

/// OpenMetrics when the scraper lists it with a non-zero weight (Prometheus does so first);
/// the classic text format otherwise, which every scraper and promtool read.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let q_zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().unwrap());
        h
    }

    #[test]
    fn prometheus_accept_header_gets_openmetrics_and_others_get_text() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(&accept(prom)));
        assert!(!wants_openmetrics(&accept("text/plain")));
        assert!(!wants_openmetrics(&accept("*/*")));
        assert!(!wants_openmetrics(&accept(
            "application/openmetrics-text;q=0"
        )));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }
}
