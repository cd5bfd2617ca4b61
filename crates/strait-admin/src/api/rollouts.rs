//! `GET /api/rollouts` (phase, step, weights and last analysis of every rollout, and with a shared state the fleet's leader) and `POST /api/rollouts/NAME/{pause,resume,abort,promote}` (on any instance of a fleet).

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use strait_control::rollout::{view_json, CommandError};
use strait_core::rollout::Command;

use super::reply::error;
use crate::AdminState;

/// Every rollout of the running configuration.
pub(super) async fn list(State(s): State<Arc<AdminState>>) -> Response {
    let (views, fleet) = super::read(&s.control, |c| (c.rollout_view(), c.rollout_fleet())).await;
    let all: Vec<Value> = views.iter().map(view_json).collect();
    // With a shared state (etcd), which instance answered and which one leads.
    let fleet = fleet.map(|f| json!({ "instance": f.instance, "leader": f.leader }));
    Json(json!({ "rollouts": all, "fleet": fleet })).into_response()
}

/// Applies an operator's command; answers the rollout as it is afterwards.
pub(super) async fn command(
    State(s): State<Arc<AdminState>>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let Some(cmd) = Command::from_name(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            "no such rollout action: use pause, resume, abort or promote",
        );
    };
    let c = s.control.clone();
    // Blocking: a command that changes the weights compiles and publishes a snapshot.
    let done = tokio::task::spawn_blocking(move || c.rollout_command(&name, cmd)).await;
    match done {
        Ok(Ok(view)) => Json(view_json(&view)).into_response(),
        Ok(Err(CommandError::NotFound)) => error(StatusCode::NOT_FOUND, "no such rollout"),
        Ok(Err(CommandError::Conflict(why))) => error(StatusCode::CONFLICT, why),
        Ok(Err(CommandError::Unavailable(why))) => error(StatusCode::SERVICE_UNAVAILABLE, &why),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
