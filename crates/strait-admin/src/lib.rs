//! Admin HTTP listener: `/healthz`, `/readyz`, `/metrics` (Prometheus text), and later the admin API under `/api/`.
#![forbid(unsafe_code)]

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};
use strait_observe::Metrics;
use tokio::net::TcpListener;

/// What the admin endpoints read.
pub struct AdminState {
    /// Metric families.
    pub metrics: Arc<Metrics>,
    /// False once draining: `/readyz` answers 503 so orchestrators stop sending traffic.
    pub ready: AtomicBool,
}

impl AdminState {
    /// A ready admin state over `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(AdminState {
            metrics,
            ready: AtomicBool::new(true),
        })
    }
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    }
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render_text(),
    )
}

/// Serves the admin router on `listener` until the process exits.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    if let Err(e) = axum::serve(listener, router(state)).await {
        tracing::error!(error = %e, "admin listener failed");
    }
}
