//! Admin HTTP listener: `/healthz`, `/readyz`, `/metrics` (open), and the token-protected admin API under `/api/`.
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
use strait_control::Control;
use tokio::net::TcpListener;

mod api;

/// What the admin endpoints read.
pub struct AdminState {
    /// The control plane the API reads and writes through.
    pub control: Arc<Control>,
    /// Bearer token for `/api/`; `None` answers every API call with 401.
    pub token: Option<String>,
    /// False once draining: `/readyz` answers 503 so orchestrators stop sending traffic.
    pub ready: AtomicBool,
}

impl AdminState {
    /// A ready admin state over `control`.
    pub fn new(control: Arc<Control>, token: Option<String>) -> Arc<Self> {
        Arc::new(AdminState {
            control,
            token,
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
        .nest("/api", api::router(state.clone()))
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
        s.control.metrics.render_text(),
    )
}

/// Serves the admin router on `listener` until the process exits.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    if let Err(e) = axum::serve(listener, router(state)).await {
        tracing::error!(error = %e, "admin listener failed");
    }
}
