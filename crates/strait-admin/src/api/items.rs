//! Per-resource admin calls: list, read, create or replace, and delete one route, upstream or listener; writes place the body verbatim so errors point into it.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use strait_control::Control;

use super::{if_match, read, reply, write, Params};
use crate::{
    assemble::{Assembled, KINDS},
    AdminState,
};

fn known(kind: &str) -> Result<(), reply::Refused> {
    if KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(reply::Refused(
            StatusCode::NOT_FOUND,
            format!("no resource kind {kind} (expected {})", KINDS.join(", ")),
        ))
    }
}

fn items<'a>(tree: &'a Value, kind: &str) -> &'a [Value] {
    tree.get(kind)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn has_name(item: &Value, name: &str) -> bool {
    item.get("name").and_then(Value::as_str) == Some(name)
}

fn singular(kind: &str) -> &str {
    kind.strip_suffix('s').unwrap_or(kind)
}

pub(super) async fn list(State(s): State<Arc<AdminState>>, Path(kind): Path<String>) -> Response {
    if let Err(r) = known(&kind) {
        return r.into_response();
    }
    let (version, _, tree) = read(&s.control, Control::current).await;
    let list = tree.get(&kind).cloned().unwrap_or(json!([]));
    let mut r = Json(list).into_response();
    reply::set_etag(&mut r, version);
    r
}

pub(super) async fn get_item(
    State(s): State<Arc<AdminState>>,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    if let Err(r) = known(&kind) {
        return r.into_response();
    }
    let (version, _, tree) = read(&s.control, Control::current).await;
    match items(&tree, &kind).iter().find(|i| has_name(i, &name)) {
        Some(item) => {
            let mut r = Json(item.clone()).into_response();
            reply::set_etag(&mut r, version);
            r
        }
        None => reply::error(
            StatusCode::NOT_FOUND,
            &format!("no {} named {name}", singular(&kind)),
        ),
    }
}

pub(super) async fn put_item(
    State(s): State<Arc<AdminState>>,
    Path((kind, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = known(&kind) {
        return r.into_response();
    }
    let dry_run = match Params::parse(&uri, &["dry_run"]).and_then(|q| q.flag("dry_run")) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let base = match if_match(&headers, dry_run) {
        Ok(b) => b,
        Err((status, msg)) => return reply::error(status, msg),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return reply::error(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    let source = format!("{kind}/{name}");
    let item = match strait_config::to_value(&source, text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "the body must be one mapping (the YAML or JSON of one item)",
            )
        }
        Err(e) => return reply::invalid(e.0.iter().map(ToString::to_string).collect()),
    };
    let has = match item.get("name") {
        None => false,
        Some(Value::String(n)) if *n == name => true,
        Some(_) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                &format!("the body's name must be {name}, as in the URL"),
            )
        }
    };
    let (version, _, tree) = read(&s.control, Control::current).await;
    let created = !items(&tree, &kind).iter().any(|i| has_name(i, &name));
    let doc = match Assembled::item(&tree, &kind, &name, text, has) {
        Ok(d) => d,
        Err(((l, c), msg)) => return reply::invalid(vec![format!("{source}:{l}:{c}: {msg}")]),
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    write(&s, doc, base.or(Some(version)), dry_run, status).await
}

pub(super) async fn delete_item(
    State(s): State<Arc<AdminState>>,
    Path((kind, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = known(&kind) {
        return r.into_response();
    }
    if let Err(r) = Params::parse(&uri, &[]) {
        return r.into_response();
    }
    let base = match if_match(&headers, false) {
        Ok(b) => b,
        Err((status, msg)) => return reply::error(status, msg),
    };
    let (version, _, mut tree) = read(&s.control, Control::current).await;
    let Some(list) = tree.get_mut(&kind).and_then(Value::as_array_mut) else {
        return reply::error(
            StatusCode::NOT_FOUND,
            &format!("no {} named {name}", singular(&kind)),
        );
    };
    let before = list.len();
    list.retain(|i| !has_name(i, &name));
    if list.len() == before {
        return reply::error(
            StatusCode::NOT_FOUND,
            &format!("no {} named {name}", singular(&kind)),
        );
    }
    let doc = Assembled::tree(&tree);
    write(&s, doc, base.or(Some(version)), false, StatusCode::OK).await
}
