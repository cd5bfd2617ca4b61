//! The admin API: read and replace the configuration (as written or effective), read the status, list versions, roll back, read endpoint health; bearer-token protected, optimistic concurrency by version, JSON for every answer.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Request, State},
    http::{header, HeaderMap, StatusCode, Uri},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use strait_control::Control;

use crate::{assemble::Assembled, AdminState};

mod items;
pub(crate) mod reply;
mod rollouts;

use reply::{error, set_etag, written, Params};

pub(crate) fn router(state: Arc<AdminState>) -> Router<Arc<AdminState>> {
    Router::new()
        .route("/config", get(get_config).put(put_config))
        .route("/status", get(status))
        .route("/versions", get(versions))
        .route("/versions/{version}", get(version_text))
        .route("/rollback/{version}", post(rollback))
        .route("/upstreams/{name}/health", get(upstream_health))
        .route("/rollouts", get(rollouts::list))
        .route("/rollouts/{name}/{action}", post(rollouts::command))
        .route("/{kind}", get(items::list))
        .route(
            "/{kind}/{name}",
            get(items::get_item)
                .put(items::put_item)
                .delete(items::delete_item),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such admin API path") })
        .layer(DefaultBodyLimit::max(strait_config::MAX_CONFIG_BYTES))
        .layer(middleware::from_fn(reply::declared_size))
        .layer(middleware::from_fn_with_state(state, authorize))
        .layer(middleware::from_fn(reply::json_errors))
}

/// 401 unless the request carries the configured bearer token (compared in constant time).
pub(crate) async fn authorize(
    State(s): State<Arc<AdminState>>,
    req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    let verdict = s.with_token(|token| token.map(|t| constant_time_eq(given, t.as_bytes())));
    match verdict {
        Some(true) => next.run(req).await,
        None => error(
            StatusCode::UNAUTHORIZED,
            "the admin API is disabled: set admin.token or STRAIT_ADMIN_TOKEN",
        ),
        Some(false) => {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"strait-admin\""),
            );
            r
        }
    }
}

/// Equal-length-independent comparison: the time taken does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

async fn get_config(State(s): State<Arc<AdminState>>, uri: Uri) -> Response {
    let q = match Params::parse(&uri, &["format", "effective"]) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let (format, effective) = match (q.choice("format", &["json", "yaml"]), q.flag("effective")) {
        (Ok(f), Ok(e)) => (f, e),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let (version, doc, tree) = read(&s.control, Control::current).await;
    let (text, tree) = if effective {
        let (_, config) = read(&s.control, Control::config).await;
        let shown = strait_config::effective(&config);
        (strait_config::effective_yaml(&config), shown.to_json())
    } else {
        (doc.text, tree)
    };
    let mut r = if format == Some("yaml") {
        (
            [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
            text,
        )
            .into_response()
    } else {
        Json(json!({
            "version": version,
            "provider": s.control.provider().kind(),
            "source": doc.source,
            "effective": effective,
            "last_error": read(&s.control, Control::last_error).await,
            "config": tree,
        }))
        .into_response()
    };
    set_etag(&mut r, version);
    r
}

async fn put_config(
    State(s): State<Arc<AdminState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let dry_run = match Params::parse(&uri, &["dry_run"]).and_then(|q| q.flag("dry_run")) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let base = match if_match(&headers, dry_run) {
        Ok(b) => b,
        Err((status, msg)) => return error(status, msg),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    // The admin section is local to this instance: a document without it keeps the running
    // one (its token and address), so a write cannot lose them by leaving them out.
    let (_, _, running) = read(&s.control, Control::current).await;
    let doc = match strait_config::to_value("admin", text) {
        Ok(Value::Object(doc)) => doc,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "the body must be one mapping"),
        Err(e) => return reply::invalid(e.0.iter().map(ToString::to_string).collect()),
    };
    let keep = match doc.get("admin") {
        Some(admin) => {
            if let Some(r) = token_kept(&s, admin, &running) {
                return r;
            }
            None
        }
        None => running.get("admin"),
    };
    let assembled = Assembled::document(text, "admin", keep);
    write(&s, assembled, base, dry_run, StatusCode::OK).await
}

/// A refusal when `admin` (from a written document) drops the running token: that would close
/// the API on whoever wrote it, since the token in force is read per request.
fn token_kept(s: &AdminState, admin: &Value, running: &Value) -> Option<Response> {
    let had = running
        .pointer("/admin/token")
        .is_some_and(|t| !t.is_null());
    let keeps = admin.get("token").is_some_and(|t| !t.is_null());
    if had && !keeps && !s.token_from_env() {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "this write would remove admin.token and close the admin API: keep `token` in `admin`, or leave `admin` out to keep the running section",
        ));
    }
    None
}

async fn status(State(s): State<Arc<AdminState>>) -> Response {
    let (version, doc, _) = read(&s.control, Control::current).await;
    let pending = read(&s.control, Control::pending_restart).await;
    let mut warnings: Vec<String> = read(&s.control, Control::warnings)
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    warnings.extend(pending.iter().cloned());
    Json(json!({
        "version": version,
        "provider": s.control.provider().kind(),
        "source": doc.source,
        "last_error": read(&s.control, Control::last_error).await,
        "warnings": warnings,
        "pending_restart": pending,
    }))
    .into_response()
}

async fn versions(State(s): State<Arc<AdminState>>) -> Response {
    let (current, _, _) = read(&s.control, Control::current).await;
    let list: Vec<Value> = read(&s.control, Control::versions)
        .await
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "applied_at": v.applied_at,
                "source": v.origin,
                "current": v.version == current,
            })
        })
        .collect();
    Json(json!({ "current": current, "versions": list })).into_response()
}

async fn version_text(State(s): State<Arc<AdminState>>, Path(version): Path<u64>) -> Response {
    match read(&s.control, Control::versions)
        .await
        .into_iter()
        .find(|v| v.version == version)
    {
        Some(v) => (
            [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
            v.text.to_string(),
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("version {version} is not in the history"),
        ),
    }
}

async fn rollback(
    State(s): State<Arc<AdminState>>,
    Path(version): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let base = match if_match(&headers, false) {
        Ok(b) => b,
        Err((status, msg)) => return error(status, msg),
    };
    let c = s.control.clone();
    let r = tokio::task::spawn_blocking(move || c.rollback(version, base)).await;
    let doc = Assembled::named("", &format!("version {version}"));
    written(r, &doc, StatusCode::OK, false)
}

async fn upstream_health(State(s): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    let snap = s.control.snapshot();
    let Some(u) = snap.upstreams.iter().find(|u| *u.name == *name) else {
        return error(StatusCode::NOT_FOUND, &format!("no upstream named {name}"));
    };
    let mut r = Json(health_view(u)).into_response();
    set_etag(&mut r, snap.version);
    r
}

/// An upstream's health as the balancer sees it: active checks, passive ejection, breakers.
fn health_view(u: &strait_proxy::upstream::Upstream) -> Value {
    let now = std::time::Instant::now();
    let now_ms = strait_core::clock::millis(now);
    // The clock counts from the process's first use of it; wall time for ejection ends.
    let unix_ms = |at_ms: u64| {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        (wall + at_ms).saturating_sub(now_ms)
    };
    let endpoints: Vec<Value> = u
        .endpoints
        .iter()
        .map(|e| {
            let outlier = &e.state.outlier;
            let ejected = outlier.is_ejected(now_ms);
            json!({
                "address": &*e.address,
                "weight": e.weight,
                "healthy": e.state.is_healthy(),
                "ejected": ejected,
                "ejected_until_unix_ms": ejected.then(|| unix_ms(outlier.ejected_until())),
                "ejections": outlier.ejections(),
                "available": e.is_available(now_ms),
                "breaker": e.breaker.as_ref().map(|b| b.state().as_str()),
                "active_requests": e.state.active(),
            })
        })
        .collect();
    json!({
        "upstream": &*u.name,
        "health_check": u.health_check.is_some(),
        "circuit_breaker": u.breaker.as_ref().map(|b| b.state().as_str()),
        "endpoints": endpoints,
    })
}

/// Validates `doc` and, unless `dry_run`, stores and applies it; errors and warnings are told
/// as the user wrote them.
async fn write(
    s: &AdminState,
    doc: Assembled,
    base: Option<u64>,
    dry_run: bool,
    ok: StatusCode,
) -> Response {
    let c = s.control.clone();
    let text = doc.text.clone();
    let r = tokio::task::spawn_blocking(move || c.write(&text, base, "admin", dry_run)).await;
    written(r, &doc, ok, dry_run)
}

/// Runs a read of the control plane's state off the runtime's workers: the state lock is held
/// across provider I/O by reloads and writes (an fsync, an etcd put), which must not stall the
/// worker threads the data plane shares.
async fn read<T: Send + 'static>(control: &Arc<Control>, f: fn(&Control) -> T) -> T {
    let c = control.clone();
    match tokio::task::spawn_blocking(move || f(&c)).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The version a write is based on. Writes must say it (428 otherwise) so two writers never
/// overwrite each other silently; `*` opts out explicitly. Dry runs need none.
fn if_match(
    headers: &HeaderMap,
    optional: bool,
) -> Result<Option<u64>, (StatusCode, &'static str)> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        if optional {
            return Ok(None);
        }
        return Err((
            StatusCode::PRECONDITION_REQUIRED,
            "writes need If-Match: the version you read (the ETag of GET /api/config), or * to overwrite whatever runs",
        ));
    };
    let raw = v.to_str().unwrap_or_default().trim();
    if raw == "*" {
        return Ok(None);
    }
    let digits = raw.trim_start_matches("W/").trim_matches('"');
    digits.parse().map(Some).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "If-Match must be a configuration version such as \"7\"",
        )
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"abcdefgh", b"abcdefgh"));
        assert!(!constant_time_eq(b"abcdefgh", b"abcdefgx"));
        assert!(!constant_time_eq(b"abcdefg", b"abcdefgh"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn if_match_forms() {
        let mut h = HeaderMap::new();
        assert!(if_match(&h, false).is_err());
        assert_eq!(if_match(&h, true).ok(), Some(None));
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"7\""));
        assert_eq!(if_match(&h, false).ok(), Some(Some(7)));
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"8\""));
        assert_eq!(if_match(&h, false).ok(), Some(Some(8)));
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(if_match(&h, false).ok(), Some(None));
        h.insert(header::IF_MATCH, HeaderValue::from_static("x"));
        assert!(if_match(&h, false).is_err());
    }
}
