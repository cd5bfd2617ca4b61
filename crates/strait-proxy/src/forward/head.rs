//! The request head for the next hop: hop-by-hop headers removed, `X-Forwarded-*` and the request id set, Host or authority, rewritten path, HTTP version.

use http::{header, request::Parts, uri::PathAndQuery, HeaderValue, Request, Uri, Version};
use strait_core::ProxyError;

use super::Forward;
use crate::{
    headers::{
        self, Kept, X_FORWARDED_CLIENT_CERT, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID,
    },
    route::Rewrite,
    upstream::Upstream,
};

/// Prepares the head for the next hop: hop-by-hop headers, `X-Forwarded-*`, request id,
/// Host or authority, rewritten path, HTTP version.
pub(super) fn next_hop_head(
    f: &Forward<'_>,
    upstream: &Upstream,
    head: &mut Parts,
    may_upgrade: bool,
) -> Result<Kept, ProxyError> {
    let h2 = upstream.protocol.is_h2();
    let kept = headers::strip_hop_by_hop(&mut head.headers, may_upgrade);
    if h2 && kept.te_trailers {
        head.headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let peer_ip = f.conn.peer_ip.as_ref().unwrap_or(&f.conn.client_ip);
    headers::append_forwarded_for(&mut head.headers, peer_ip);
    head.headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if f.conn.is_tls() { "https" } else { "http" }),
    );
    if let Some(h) = f.host {
        head.headers.insert(X_FORWARDED_HOST.clone(), h.clone());
    }
    head.headers
        .insert(X_REQUEST_ID.clone(), f.request_id.clone());
    // A client could name any identity in this header: only the handshake's is ever sent.
    match &f.conn.peer {
        Some(peer) if f.conn.listener.forward_client_cert => {
            head.headers
                .insert(X_FORWARDED_CLIENT_CERT.clone(), peer.xfcc.clone());
        }
        _ => {
            head.headers.remove(&X_FORWARDED_CLIENT_CERT);
        }
    }

    let rewrite = f.spec.rewrite.as_ref();
    let host = match rewrite.and_then(|r| r.host.as_ref()) {
        Some(h) => Some(h.clone()),
        None => f.host.cloned(),
    };
    let path = rewritten_path(&head.uri, rewrite, f.prefix_len)
        .map_err(|r| crate::hygiene::refused(r, &f.conn.listener.name, &f.shared.metrics))?;
    let bad = |e: &dyn std::fmt::Display| ProxyError::Upstream {
        upstream: upstream.name.to_string(),
        endpoint: String::new(),
        source: e.to_string().into(),
    };
    if h2 {
        head.version = Version::HTTP_2;
        head.headers.remove(header::HOST);
        // Without a Host, HTTP/2 needs an authority: the first endpoint's names the upstream.
        let authority = host
            .as_ref()
            .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
            .or_else(|| upstream.endpoints.first().map(|e| e.authority.clone()))
            .ok_or_else(|| bad(&"no authority"))?;
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(if upstream.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        });
        parts.authority = Some(authority);
        parts.path_and_query = Some(path.unwrap_or_else(|| origin_form(&head.uri)));
        head.uri = Uri::from_parts(parts).map_err(|e| bad(&e))?;
    } else {
        head.version = Version::HTTP_11;
        let rewritten = rewrite.is_some_and(|r| r.host.is_some());
        match host {
            // The client's own Host header is already in place: only a rewrite or an HTTP/2
            // client (authority in the URI, no Host header) needs one written.
            Some(_) if !rewritten && head.headers.contains_key(header::HOST) => {}
            Some(h) => {
                head.headers.insert(header::HOST, h);
            }
            None => {
                // An HTTP/1.0 client without Host: the upstream's own address names it.
                if let Some(e) = upstream.endpoints.first() {
                    if let Ok(v) = HeaderValue::from_str(e.authority.as_str()) {
                        head.headers.insert(header::HOST, v);
                    }
                }
            }
        }
        if path.is_some() || head.uri.scheme().is_some() || head.uri.authority().is_some() {
            let pq = path.unwrap_or_else(|| origin_form(&head.uri));
            head.uri = Uri::from(pq);
        }
    }
    Ok(kept)
}

/// A copy of a request head for another attempt (extensions are not copied: nothing past
/// the filters reads them).
pub(super) fn copy_head(head: &Parts) -> Parts {
    let mut req = Request::new(());
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = head.uri.clone();
    *req.version_mut() = head.version;
    *req.headers_mut() = head.headers.clone();
    req.into_parts().0
}

/// Whether every protocol the client asks to upgrade to is one the route tunnels.
pub(super) fn upgrade_allowed(headers: &http::HeaderMap, allowed: &[Box<str>]) -> bool {
    let mut values = headers.get_all(header::UPGRADE).iter().peekable();
    values.peek().is_some() && values.all(|v| upgrade_allowed_value(v, allowed))
}

pub(super) fn upgrade_allowed_value(v: &HeaderValue, allowed: &[Box<str>]) -> bool {
    v.as_bytes().split(|&b| b == b',').all(|t| {
        // A protocol may carry a version (`websocket/13`): the name decides.
        let name = t
            .trim_ascii()
            .split(|&b| b == b'/')
            .next()
            .unwrap_or_default();
        !name.is_empty()
            && allowed
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(name))
    })
}

fn origin_form(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// The rewritten path-and-query, or `None` when the path is forwarded unchanged.
fn rewritten_path(
    uri: &Uri,
    rewrite: Option<&Rewrite>,
    prefix_len: usize,
) -> Result<Option<PathAndQuery>, strait_router::PathRejection> {
    let Some(rw) = rewrite else { return Ok(None) };
    let new_path = if let Some(p) = &rw.path {
        p.clone()
    } else if let Some(prefix) = &rw.path_prefix {
        // The join must not create a dot segment that leads out of `prefix`.
        strait_router::replace_prefix(uri.path(), prefix_len, prefix)?
    } else {
        return Ok(None);
    };
    let full = match uri.query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    Ok(PathAndQuery::try_from(full).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(prefix: &str) -> Rewrite {
        Rewrite {
            path_prefix: Some(prefix.into()),
            ..Default::default()
        }
    }

    #[test]
    fn prefix_rewrite_strips_and_replaces() {
        let uri: Uri = "/api/users?x=1".parse().unwrap();
        assert_eq!(
            rewritten_path(&uri, Some(&rw("/")), 5).unwrap().unwrap(),
            "/users?x=1"
        );
        assert_eq!(
            rewritten_path(&uri, Some(&rw("/v2/")), 5).unwrap().unwrap(),
            "/v2/users?x=1"
        );
        let uri: Uri = "/api".parse().unwrap();
        assert_eq!(
            rewritten_path(&uri, Some(&rw("/")), 4).unwrap().unwrap(),
            "/"
        );
    }

    #[test]
    fn only_allowed_upgrade_tokens_pass() {
        let allowed: Vec<Box<str>> = vec!["websocket".into()];
        let mut h = http::HeaderMap::new();
        h.insert(header::UPGRADE, "WebSocket".parse().unwrap());
        assert!(upgrade_allowed(&h, &allowed));
        h.insert(header::UPGRADE, "websocket/13".parse().unwrap());
        assert!(upgrade_allowed(&h, &allowed));
        for bad in ["h2c", "websocket, h2c", "", "tls/1.2"] {
            h.insert(header::UPGRADE, bad.parse().unwrap());
            assert!(!upgrade_allowed(&h, &allowed), "{bad}");
        }
        assert!(!upgrade_allowed(&http::HeaderMap::new(), &allowed));
    }
}
