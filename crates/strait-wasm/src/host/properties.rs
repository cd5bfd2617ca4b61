//! Properties (`proxy_get_property`) in Envoy's names: `request.*`, `source.*`, `response.code`, `plugin_name`, `plugin_root_id`, `route_name`, ... plus those the plugin set itself.
//!
//! A path arrives as parts joined by NUL (the SDKs' encoding), or dotted in one part.
//! Integers are 8 bytes little-endian, as Envoy encodes them.

use super::maps::encode_pairs;
use super::HostState;

/// The path's parts.
fn parts(path: &[u8]) -> Vec<&[u8]> {
    let nul: Vec<&[u8]> = path.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
    if nul.len() == 1 {
        return nul[0].split(|b| *b == b'.').collect();
    }
    nul
}

/// The value of property `path`, if it has one here.
pub fn get(h: &HostState, path: &[u8]) -> Option<Vec<u8>> {
    if let Some((_, v)) = h.stream.properties.iter().find(|(k, _)| k == path) {
        return Some(v.clone());
    }
    let p = parts(path);
    let plugin = &h.plugin;
    let text = |s: &str| Some(s.as_bytes().to_vec());
    let int = |n: u64| Some(n.to_le_bytes().to_vec());
    match p.as_slice() {
        [b"plugin_name"] => return text(&plugin.name),
        [b"plugin_root_id"] => return text(&plugin.root_id),
        [b"plugin_vm_id"] => return text(""),
        _ => {}
    }
    let info = h.stream.info.as_ref()?;
    // Edits made so far count while the request head is loaded.
    let (method, uri, headers) = match &h.stream.request {
        Some(r) => (&r.method, &r.uri, &r.headers),
        None => (&info.method, &info.uri, &info.headers),
    };
    match p.as_slice() {
        [b"request", b"path"] => text(uri.path_and_query().map_or("/", |p| p.as_str())),
        [b"request", b"url_path"] => text(uri.path()),
        [b"request", b"query"] => text(uri.query().unwrap_or("")),
        [b"request", b"method"] => text(method.as_str()),
        [b"request", b"host"] => match (&info.host, uri.authority()) {
            (_, Some(a)) => text(a.as_str()),
            (Some(h), None) => Some(h.as_bytes().to_vec()),
            _ => None,
        },
        [b"request", b"scheme"] => text(if info.tls { "https" } else { "http" }),
        [b"request", b"protocol"] => text(match info.version {
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        }),
        [b"request", b"id"] => headers.get("x-request-id").map(|v| v.as_bytes().to_vec()),
        [b"request", b"headers"] => {
            let pairs: Vec<(&[u8], &[u8])> = headers
                .iter()
                .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()))
                .collect();
            Some(encode_pairs(pairs))
        }
        [b"request", b"headers", name] => {
            let name = std::str::from_utf8(name).ok()?;
            headers.get(name).map(|v| v.as_bytes().to_vec())
        }
        [b"source", b"address"] => text(&info.client.to_string()),
        [b"source", b"port"] => int(info.client.port() as u64),
        [b"response", b"code"] => info.status.and_then(|s| int(s as u64)),
        [b"route_name"] | [b"xds", b"route_name"] => text(&info.route),
        [b"listener_name"] | [b"xds", b"listener_name"] => text(&info.listener),
        [b"connection", b"mtls"] => Some(vec![0]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_on_nul_or_dots() {
        assert_eq!(parts(b"request\0path"), vec![&b"request"[..], b"path"]);
        assert_eq!(parts(b"request.path"), vec![&b"request"[..], b"path"]);
        assert_eq!(parts(b"plugin_root_id"), vec![&b"plugin_root_id"[..]]);
    }
}
