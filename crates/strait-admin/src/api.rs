//! The admin API: read and replace the configuration, edit one route/upstream/listener, list versions, roll back, read endpoint health; bearer-token protected, optimistic concurrency by version.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};
use strait_control::{control::WriteError, Control};

use crate::AdminState;

/// The resource kinds addressable one by one, as their config section names.
const KINDS: [&str; 3] = ["routes", "upstreams", "listeners"];

pub(crate) fn router(state: Arc<AdminState>) -> Router<Arc<AdminState>> {
    Router::new()
        .route("/config", get(get_config).put(put_config))
        .route("/status", get(status))
        .route("/versions", get(versions))
        .route("/versions/{version}", get(version_text))
        .route("/rollback/{version}", post(rollback))
        .route("/upstreams/{name}/health", get(upstream_health))
        .route("/{kind}", get(list))
        .route(
            "/{kind}/{name}",
            get(get_item).put(put_item).delete(delete_item),
        )
        .layer(DefaultBodyLimit::max(strait_config::MAX_CONFIG_BYTES))
        .layer(middleware::from_fn_with_state(state, authorize))
}

/// 401 unless the request carries the configured bearer token (compared in constant time).
async fn authorize(State(s): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let Some(token) = s.token.as_deref() else {
        return error(
            StatusCode::UNAUTHORIZED,
            "the admin API is disabled: set admin.token or STRAIT_ADMIN_TOKEN",
        );
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given, token.as_bytes()) {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"strait-admin\""),
        );
        return r;
    }
    next.run(req).await
}

/// Equal-length-independent comparison: the time taken does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

#[derive(Deserialize, Default)]
struct ConfigQuery {
    format: Option<String>,
    dry_run: Option<bool>,
}

async fn get_config(State(s): State<Arc<AdminState>>, Query(q): Query<ConfigQuery>) -> Response {
    let (version, doc, tree) = read(&s.control, Control::current).await;
    let mut r = if q.format.as_deref() == Some("yaml") {
        (
            [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
            doc.text,
        )
            .into_response()
    } else {
        Json(json!({
            "version": version,
            "provider": s.control.provider().kind(),
            "source": doc.source,
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
    Query(q): Query<ConfigQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let dry_run = q.dry_run.unwrap_or(false);
    let base = match if_match(&headers, dry_run) {
        Ok(b) => b,
        Err((status, msg)) => return error(status, msg),
    };
    let Ok(mut text) = String::from_utf8(body.to_vec()) else {
        return error(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    // The admin section is read at start only; a document without it would lose the token and
    // address at the next restart, so the running one is kept.
    let (_, _, running) = read(&s.control, Control::current).await;
    if let (Some(admin), Ok(Value::Object(mut doc))) = (
        running.get("admin"),
        strait_config::to_value("request body", &text),
    ) {
        if !doc.contains_key("admin") {
            if text.trim_start().starts_with('{') {
                doc.insert("admin".into(), admin.clone());
                text = strait_config::to_yaml(&Value::Object(doc));
            } else {
                // Appended, so errors keep pointing at the lines the writer sent.
                let section = strait_config::to_yaml(&serde_json::json!({ "admin": admin }));
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&section);
            }
        }
    }
    write(&s, text, base, dry_run, StatusCode::OK).await
}

async fn status(State(s): State<Arc<AdminState>>) -> Response {
    let (version, doc, _) = read(&s.control, Control::current).await;
    Json(json!({
        "version": version,
        "provider": s.control.provider().kind(),
        "source": doc.source,
        "last_error": read(&s.control, Control::last_error).await,
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
    match s
        .control
        .versions()
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
    written(r, StatusCode::OK)
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

async fn list(State(s): State<Arc<AdminState>>, Path(kind): Path<String>) -> Response {
    if !KINDS.contains(&kind.as_str()) {
        return error(StatusCode::NOT_FOUND, &format!("no resource kind {kind}"));
    }
    let (version, _, tree) = read(&s.control, Control::current).await;
    let items = tree.get(&kind).cloned().unwrap_or(json!([]));
    let mut r = Json(items).into_response();
    set_etag(&mut r, version);
    r
}

async fn get_item(
    State(s): State<Arc<AdminState>>,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    if !KINDS.contains(&kind.as_str()) {
        return error(StatusCode::NOT_FOUND, &format!("no resource kind {kind}"));
    }
    let (version, _, tree) = read(&s.control, Control::current).await;
    match items(&tree, &kind).iter().find(|i| has_name(i, &name)) {
        Some(item) => {
            let mut r = Json(item.clone()).into_response();
            set_etag(&mut r, version);
            r
        }
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no {} named {name}", singular(&kind)),
        ),
    }
}

async fn put_item(
    State(s): State<Arc<AdminState>>,
    Path((kind, name)): Path<(String, String)>,
    Query(q): Query<ConfigQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !KINDS.contains(&kind.as_str()) {
        return error(StatusCode::NOT_FOUND, &format!("no resource kind {kind}"));
    }
    let dry_run = q.dry_run.unwrap_or(false);
    let base = match if_match(&headers, dry_run) {
        Ok(b) => b,
        Err((status, msg)) => return error(status, msg),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    let mut item = match strait_config::to_value("request body", text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "the body must be one object"),
        Err(e) => return invalid(&e),
    };
    match item.get("name") {
        None => {
            item.insert("name".into(), Value::String(name.clone()));
        }
        Some(Value::String(n)) if *n == name => {}
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body's name must be {name}, as in the URL"),
            )
        }
    }
    let (version, _, mut tree) = read(&s.control, Control::current).await;
    let base = base.or(Some(version));
    let list = section(&mut tree, &kind);
    let created = match list.iter_mut().find(|i| has_name(i, &name)) {
        Some(slot) => {
            *slot = Value::Object(item);
            false
        }
        None => {
            list.push(Value::Object(item));
            true
        }
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    write(&s, strait_config::to_yaml(&tree), base, dry_run, status).await
}

async fn delete_item(
    State(s): State<Arc<AdminState>>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !KINDS.contains(&kind.as_str()) {
        return error(StatusCode::NOT_FOUND, &format!("no resource kind {kind}"));
    }
    let base = match if_match(&headers, false) {
        Ok(b) => b,
        Err((status, msg)) => return error(status, msg),
    };
    let (version, _, mut tree) = read(&s.control, Control::current).await;
    let list = section(&mut tree, &kind);
    let before = list.len();
    list.retain(|i| !has_name(i, &name));
    if list.len() == before {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no {} named {name}", singular(&kind)),
        );
    }
    write(
        &s,
        strait_config::to_yaml(&tree),
        base.or(Some(version)),
        false,
        StatusCode::OK,
    )
    .await
}

async fn write(
    s: &AdminState,
    text: String,
    base: Option<u64>,
    dry_run: bool,
    ok: StatusCode,
) -> Response {
    let c = s.control.clone();
    let r = tokio::task::spawn_blocking(move || c.write(&text, base, "admin", dry_run)).await;
    if dry_run {
        return match r {
            Ok(Ok(v)) => Json(json!({ "valid": true, "version": v })).into_response(),
            other => written(other, ok),
        };
    }
    written(r, ok)
}

fn written(r: Result<Result<u64, WriteError>, tokio::task::JoinError>, ok: StatusCode) -> Response {
    match r {
        Ok(Ok(v)) => {
            let mut r = (ok, Json(json!({ "version": v }))).into_response();
            set_etag(&mut r, v);
            r
        }
        Ok(Err(WriteError::Conflict { current })) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": format!("the configuration changed: running version is {current}; read it again and retry"),
                "current_version": current,
            })),
        )
            .into_response(),
        Ok(Err(WriteError::Invalid(e))) => invalid(&e),
        Ok(Err(WriteError::Store(msg))) if msg.starts_with("conflict:") => {
            error(StatusCode::CONFLICT, &msg)
        }
        // Sent but unanswered: it may still apply, so it is not reported as a failure.
        Ok(Err(WriteError::Store(msg)))
            if msg.starts_with(strait_control::provider::OUTCOME_UNKNOWN) =>
        {
            error(StatusCode::GATEWAY_TIMEOUT, &msg)
        }
        Ok(Err(WriteError::Store(msg))) => error(StatusCode::SERVICE_UNAVAILABLE, &msg),
        Ok(Err(WriteError::UnknownVersion(v))) => error(
            StatusCode::NOT_FOUND,
            &format!("version {v} is not in the history"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
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

fn set_etag(r: &mut Response, version: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
}

fn items<'a>(tree: &'a Value, kind: &str) -> &'a [Value] {
    tree.get(kind)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn section<'a>(tree: &'a mut Value, kind: &str) -> &'a mut Vec<Value> {
    if !tree.is_object() {
        *tree = json!({});
    }
    let obj = tree.as_object_mut().expect("object");
    let entry = obj.entry(kind).or_insert_with(|| json!([]));
    if !entry.is_array() {
        *entry = json!([]);
    }
    entry.as_array_mut().expect("array")
}

fn has_name(item: &Value, name: &str) -> bool {
    item.get("name").and_then(Value::as_str) == Some(name)
}

fn singular(kind: &str) -> &str {
    kind.strip_suffix('s').unwrap_or(kind)
}

fn invalid(e: &strait_config::Errors) -> Response {
    let errors: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "invalid configuration; nothing changed", "errors": errors })),
    )
        .into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

#[cfg(test)]
mod tests {
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
