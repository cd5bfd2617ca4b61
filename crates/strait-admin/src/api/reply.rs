//! How the admin API answers: JSON bodies for every outcome (errors from extractors, unknown paths and methods included), query parameters checked strictly, and write results with their warnings.

use std::ops::RangeInclusive;

use axum::{
    body::Body,
    extract::{Query, Request},
    http::{header, HeaderValue, StatusCode, Uri},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use strait_control::control::{WriteError, Written};

use crate::assemble::Assembled;

/// `{"error": msg}` with `status`.
pub(crate) fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

/// A refused call, answered as `{"error": msg}`.
#[derive(Debug)]
pub(crate) struct Refused(pub StatusCode, pub String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

fn bad(msg: String) -> Refused {
    Refused(StatusCode::BAD_REQUEST, msg)
}

/// Turns every error response under `/api/` that is not JSON yet (an extractor's rejection,
/// an unknown path or method, a body over the limit) into `{"error": ...}`, keeping its status
/// and headers such as `Allow`.
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let failed = r.status().is_client_error() || r.status().is_server_error();
    let json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !failed || json {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    // Rejection texts are one line; the bound only guards against a surprise.
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let msg = match parts.status {
        _ if !text.is_empty() => text,
        StatusCode::NOT_FOUND => "no such admin API path (see docs/live-changes.md)".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            format!("method not allowed here; allowed: {allow}")
        }
        s => s.canonical_reason().unwrap_or("error").to_string(),
    };
    let body = serde_json::to_vec(&json!({ "error": msg })).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// 413 for a body whose `Content-Length` is over the limit, before any of it is read (a body
/// without one is still cut off at the limit while it is read).
pub(crate) async fn declared_size(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > strait_config::MAX_CONFIG_BYTES as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the body is larger than {} MiB",
                strait_config::MAX_CONFIG_BYTES >> 20
            ),
        );
    }
    next.run(req).await
}

/// The query parameters of one call, checked: only `allowed` names, each at most once.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `query`; an unknown or repeated name is a 400 (a misspelt `dry_run` must not
    /// turn a dry run into a write).
    pub(crate) fn parse(uri: &Uri, allowed: &[&str]) -> Result<Params, Refused> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| bad(format!("malformed query: {e}")))?;
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                let expected = if allowed.is_empty() {
                    "this call takes none".to_string()
                } else {
                    format!("expected {}", allowed.join(", "))
                };
                return Err(bad(format!("unknown query parameter `{k}` ({expected})")));
            }
            if pairs[..i].iter().any(|(p, _)| p == k) {
                return Err(bad(format!("query parameter `{k}` is given twice")));
            }
        }
        Ok(Params(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter: `true`/`1`/empty, or `false`/`0`; absent is false.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, Refused> {
        match self.get(name) {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1" | "") => Ok(true),
            Some(other) => Err(bad(format!(
                "`{name}` must be true or false (or 1 or 0), not `{other}`"
            ))),
        }
    }

    /// A whole number within `range`, or `None` when absent.
    pub(crate) fn number(
        &self,
        name: &str,
        range: RangeInclusive<u64>,
    ) -> Result<Option<u64>, Refused> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(bad(format!(
                "`{name}` must be a whole number from {} to {}, not `{v}`",
                range.start(),
                range.end()
            ))),
        }
    }

    /// One of `choices`, or `None` when absent.
    pub(crate) fn choice(&self, name: &str, choices: &[&str]) -> Result<Option<&str>, Refused> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if choices.contains(&v) => Ok(Some(v)),
            Some(v) => Err(bad(format!(
                "`{name}` must be one of {}, not `{v}`",
                choices.join(", ")
            ))),
        }
    }
}

/// The JSON of a successful write (or dry run): version, warnings (the document's, then the
/// settings that wait for a restart) and those settings on their own.
fn outcome(w: &Written, doc: &Assembled, dry_run: bool) -> Value {
    let mut warnings: Vec<String> = w.warnings.iter().map(|d| doc.describe(d)).collect();
    warnings.extend(w.pending_restart.iter().cloned());
    let mut v = json!({
        "version": w.version,
        "warnings": warnings,
        "pending_restart": w.pending_restart,
    });
    if dry_run {
        v["valid"] = Value::Bool(true);
    }
    v
}

/// The answer to a write of `doc`: `ok` with its outcome, or the error with positions told as
/// the user wrote them.
pub(crate) fn written(
    r: Result<Result<Written, WriteError>, tokio::task::JoinError>,
    doc: &Assembled,
    ok: StatusCode,
    dry_run: bool,
) -> Response {
    match r {
        Ok(Ok(w)) => {
            let status = if dry_run { StatusCode::OK } else { ok };
            let mut r = (status, Json(outcome(&w, doc, dry_run))).into_response();
            if !dry_run {
                set_etag(&mut r, w.version);
            }
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
        Ok(Err(WriteError::Invalid(e))) => {
            invalid(e.0.iter().map(|d| doc.describe(d)).collect())
        }
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

/// 400 with every error of an invalid document.
pub(crate) fn invalid(errors: Vec<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "invalid configuration; nothing changed", "errors": errors })),
    )
        .into_response()
}

/// `ETag: "VERSION"`.
pub(crate) fn set_etag(r: &mut Response, version: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(query: &str) -> Uri {
        format!("/api/config?{query}").parse().unwrap()
    }

    #[test]
    fn parameters_are_checked_strictly() {
        let p = Params::parse(&uri("dry_run=1"), &["dry_run"]).unwrap();
        assert!(p.flag("dry_run").unwrap());
        let p = Params::parse(&uri("dry_run=0"), &["dry_run"]).unwrap();
        assert!(!p.flag("dry_run").unwrap());
        let p = Params::parse(&uri("dry_run"), &["dry_run"]).unwrap();
        assert!(p.flag("dry_run").unwrap());
        let p = Params::parse(&uri("dry_run=yes"), &["dry_run"]).unwrap();
        assert!(p.flag("dry_run").is_err());
        assert!(Params::parse(&uri("dryrun=true"), &["dry_run"]).is_err());
        assert!(Params::parse(&uri("dry_run=1&dry_run=0"), &["dry_run"]).is_err());
        assert!(Params::parse(&uri("x=1"), &[]).is_err());
        assert!(Params::parse(&uri(""), &[]).is_ok());
        let p = Params::parse(&uri("format=yaml"), &["format"]).unwrap();
        assert_eq!(p.choice("format", &["yaml", "json"]).unwrap(), Some("yaml"));
        assert!(p.choice("format", &["json"]).is_err());
        let p = Params::parse(&uri("seconds=5"), &["seconds"]).unwrap();
        assert_eq!(p.number("seconds", 1..=60).unwrap(), Some(5));
        assert_eq!(p.number("other", 1..=60).unwrap(), None);
        assert!(p.number("seconds", 6..=60).is_err());
        for bad in ["seconds=x", "seconds=-1", "seconds=1.5", "seconds="] {
            let p = Params::parse(&uri(bad), &["seconds"]).unwrap();
            assert!(p.number("seconds", 0..=60).is_err(), "{bad}");
        }
    }
}
