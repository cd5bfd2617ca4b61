//! `/debug/pprof/`: a CPU profile of the live process in pprof's format (`profile`) and the allocator's heap statistics (`heap`), behind the admin API's bearer token, one of each at a time.

use std::{sync::Arc, time::Duration};

use axum::{
    http::{header, StatusCode, Uri},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use strait_profile::{cpu, cpu::CpuProfile, heap, Error};

use crate::{
    api::reply::{self, error, Params},
    AdminState,
};

/// A profile's length unless asked: long enough for a steady load to show, short enough to
/// wait for at a terminal (Go's default is 30 s).
pub const DEFAULT_SECONDS: u64 = 10;

/// The longest profile: the request holds its connection (and the one profiler) that long.
pub const MAX_SECONDS: u64 = 60;

pub(crate) fn router(state: Arc<AdminState>) -> Router<Arc<AdminState>> {
    Router::new()
        .route("/profile", get(profile))
        .route("/heap", get(heap_stats))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such profile: /debug/pprof/ serves profile and heap",
            )
        })
        .layer(middleware::from_fn_with_state(state, crate::api::authorize))
        .layer(middleware::from_fn(reply::json_errors))
}

/// Samples for `seconds` (default [`DEFAULT_SECONDS`], at most [`MAX_SECONDS`]) at
/// `frequency` Hz and answers the gzipped `profile.proto`. If the client goes away, this
/// future is dropped with the profile in it, which stops the sampling.
async fn profile(uri: Uri) -> Response {
    let q = match Params::parse(&uri, &["seconds", "frequency"]) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let asked = (
        q.number("seconds", 1..=MAX_SECONDS),
        q.number("frequency", 1..=u64::from(cpu::MAX_FREQUENCY)),
    );
    let (seconds, frequency) = match asked {
        (Ok(s), Ok(f)) => (
            s.unwrap_or(DEFAULT_SECONDS),
            f.map_or(cpu::DEFAULT_FREQUENCY, |f| f as u32),
        ),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let running = match blocking(move || CpuProfile::start(frequency)).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    tracing::info!(seconds, frequency, "CPU profile started");
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    match blocking(move || running.finish()).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"profile\"",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        Err(r) => r,
    }
}

/// The allocator's statistics and the process's resident memory, as JSON.
async fn heap_stats(uri: Uri) -> Response {
    if let Err(r) = Params::parse(&uri, &[]) {
        return r.into_response();
    }
    match blocking(heap::stats).await {
        Ok(stats) => Json(stats).into_response(),
        Err(r) => r,
    }
}

/// Runs `f` off the runtime's workers (starting, symbolising and encoding block) and answers
/// its error: 409 while another one runs, 500 otherwise, with the cause logged.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Response> {
    let cause = match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => return Ok(v),
        Ok(Err(e @ Error::Busy(_))) => return Err(error(StatusCode::CONFLICT, &e.to_string())),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::error!(error = %cause, "profiling failed");
    Err(error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "profiling failed; the cause is in the log",
    ))
}
