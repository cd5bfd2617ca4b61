//! Header maps as plugins see them: the pairs serialisation of the ABI, and get/set/add/remove/replace over the request, response, trailers and call-out maps, pseudo-headers (`:path`, `:method`, `:authority`, `:scheme`, `:status`) included.

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

use super::{RequestHead, Stream};
use crate::abi::{map, Status};

/// Serialises pairs: count, then each key and value length, then each key and value
/// followed by a NUL (all lengths little-endian `u32`).
pub fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let n = pairs.clone().into_iter().count();
    let size: usize = pairs
        .clone()
        .into_iter()
        .map(|(k, v)| 8 + k.len() + v.len() + 2)
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parses the pairs serialisation; `None` when it is malformed.
pub fn decode_pairs(data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if data.is_empty() {
        return Some(Vec::new());
    }
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let n = u32_at(0)?;
    let mut lens = Vec::with_capacity(n.min(1024));
    for i in 0..n {
        lens.push((u32_at(4 + i * 8)?, u32_at(8 + i * 8)?));
    }
    let mut at = 4usize.checked_add(n.checked_mul(8)?)?;
    let mut out = Vec::with_capacity(lens.len());
    for (kl, vl) in lens {
        let k = data.get(at..at.checked_add(kl)?)?;
        at = at.checked_add(kl + 1)?;
        let v = data.get(at..at.checked_add(vl)?)?;
        at = at.checked_add(vl + 1)?;
        out.push((k, v));
    }
    Some(out)
}

/// A map's entries as owned key and value bytes.
pub type OwnedPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The pairs of map `ty`, pseudo-headers first.
pub fn pairs(s: &Stream, ty: i32) -> Result<OwnedPairs, Status> {
    let mut out = Vec::new();
    let plain = |out: &mut OwnedPairs, h: &HeaderMap| {
        for (k, v) in h {
            out.push((k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
    };
    match ty {
        map::REQUEST_HEADERS => {
            if let Some(r) = &s.request {
                for p in [":authority", ":path", ":method", ":scheme"] {
                    if let Some(v) = request_pseudo(r, s, p) {
                        out.push((p.as_bytes().to_vec(), v.into_bytes()));
                    }
                }
                plain(&mut out, &r.headers);
            } else if let Some(i) = &s.info {
                plain(&mut out, &i.headers);
            } else {
                return Err(Status::NotFound);
            }
        }
        map::RESPONSE_HEADERS => {
            let r = s.response.as_ref().ok_or(Status::NotFound)?;
            out.push((b":status".to_vec(), r.status.as_str().as_bytes().to_vec()));
            plain(&mut out, &r.headers);
        }
        map::HTTP_CALL_RESPONSE_HEADERS => {
            let r = s.call_response.as_ref().ok_or(Status::NotFound)?;
            out.push((b":status".to_vec(), r.status.as_str().as_bytes().to_vec()));
            plain(&mut out, &r.headers);
        }
        map::REQUEST_TRAILERS => plain(
            &mut out,
            s.request_trailers.as_ref().unwrap_or(&HeaderMap::new()),
        ),
        map::RESPONSE_TRAILERS => plain(
            &mut out,
            s.response_trailers.as_ref().unwrap_or(&HeaderMap::new()),
        ),
        map::HTTP_CALL_RESPONSE_TRAILERS => {}
        _ => return Err(Status::BadArgument),
    }
    Ok(out)
}

fn request_pseudo(r: &RequestHead, s: &Stream, name: &str) -> Option<String> {
    match name {
        ":path" => Some(
            r.uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned(),
        ),
        ":method" => Some(r.method.as_str().to_owned()),
        ":authority" => r
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| r.headers.get(HOST)?.to_str().ok().map(str::to_owned)),
        ":scheme" => Some(
            match s.info.as_ref().is_some_and(|i| i.tls) {
                true => "https",
                false => "http",
            }
            .to_owned(),
        ),
        _ => None,
    }
}

/// The value of `key` in map `ty` (several values joined with `,`).
pub fn get(s: &Stream, ty: i32, key: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    let key = std::str::from_utf8(key)
        .map_err(|_| Status::BadArgument)?
        .to_ascii_lowercase();
    if key.starts_with(':') {
        return Ok(match ty {
            map::REQUEST_HEADERS => match &s.request {
                Some(r) => request_pseudo(r, s, &key).map(String::into_bytes),
                None => None,
            },
            map::RESPONSE_HEADERS => s
                .response
                .as_ref()
                .filter(|_| key == ":status")
                .map(|r| r.status.as_str().as_bytes().to_vec()),
            map::HTTP_CALL_RESPONSE_HEADERS => s
                .call_response
                .as_ref()
                .filter(|_| key == ":status")
                .map(|r| r.status.as_str().as_bytes().to_vec()),
            _ => None,
        });
    }
    let h = headers(s, ty)?;
    let mut values = h.get_all(key.as_str()).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let mut out = first.as_bytes().to_vec();
    for v in values {
        out.push(b',');
        out.extend_from_slice(v.as_bytes());
    }
    Ok(Some(out))
}

fn headers(s: &Stream, ty: i32) -> Result<&HeaderMap, Status> {
    static EMPTY: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
    let empty = || EMPTY.get_or_init(HeaderMap::new);
    match ty {
        map::REQUEST_HEADERS => match (&s.request, &s.info) {
            (Some(r), _) => Ok(&r.headers),
            (None, Some(i)) => Ok(&i.headers),
            _ => Err(Status::NotFound),
        },
        map::RESPONSE_HEADERS => s
            .response
            .as_ref()
            .map(|r| &r.headers)
            .ok_or(Status::NotFound),
        map::HTTP_CALL_RESPONSE_HEADERS => s
            .call_response
            .as_ref()
            .map(|r| &r.headers)
            .ok_or(Status::NotFound),
        map::REQUEST_TRAILERS => Ok(s.request_trailers.as_ref().unwrap_or_else(empty)),
        map::RESPONSE_TRAILERS => Ok(s.response_trailers.as_ref().unwrap_or_else(empty)),
        map::HTTP_CALL_RESPONSE_TRAILERS => Ok(empty()),
        _ => Err(Status::BadArgument),
    }
}

/// How an edit changes a key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Replace every value with one.
    Replace,
    /// Add a value.
    Add,
    /// Remove the key.
    Remove,
}

/// Applies `edit` of `key` (to `value`) in map `ty`; only maps of the current phase change.
pub fn edit(s: &mut Stream, ty: i32, key: &[u8], value: &[u8], edit: Edit) -> Status {
    let Ok(key) = std::str::from_utf8(key) else {
        return Status::BadArgument;
    };
    if key.starts_with(':') {
        return pseudo_edit(s, ty, &key.to_ascii_lowercase(), value, edit);
    }
    let map = match ty {
        map::REQUEST_HEADERS => s.request.as_mut().map(|r| &mut r.headers),
        map::RESPONSE_HEADERS => s.response.as_mut().map(|r| &mut r.headers),
        map::REQUEST_TRAILERS => s.request_trailers.as_mut(),
        map::RESPONSE_TRAILERS => s.response_trailers.as_mut(),
        map::HTTP_CALL_RESPONSE_HEADERS | map::HTTP_CALL_RESPONSE_TRAILERS => None,
        _ => return Status::BadArgument,
    };
    let Some(map) = map else {
        // Not this phase's map (request headers once forwarded, say): nothing to change.
        return Status::NotFound;
    };
    // `from_bytes` lowercases the name itself.
    let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
        return Status::BadArgument;
    };
    if edit == Edit::Remove {
        map.remove(&name);
        return Status::Ok;
    }
    let Ok(v) = HeaderValue::from_bytes(value) else {
        return Status::BadArgument;
    };
    match edit {
        Edit::Replace => {
            map.insert(name, v);
        }
        _ => {
            map.append(name, v);
        }
    }
    Status::Ok
}

fn pseudo_edit(s: &mut Stream, ty: i32, key: &str, value: &[u8], edit: Edit) -> Status {
    if edit == Edit::Remove {
        // Pseudo-headers cannot be removed; Envoy ignores this too.
        return Status::Ok;
    }
    match (ty, key) {
        (map::REQUEST_HEADERS, ":path") => {
            let Some(r) = s.request.as_mut() else {
                return Status::NotFound;
            };
            match Uri::try_from(value) {
                Ok(u) if u.path().starts_with('/') => {
                    let mut parts = r.uri.clone().into_parts();
                    parts.path_and_query = u.into_parts().path_and_query;
                    match Uri::from_parts(parts) {
                        Ok(u) => r.uri = u,
                        Err(_) => return Status::BadArgument,
                    }
                    Status::Ok
                }
                _ => Status::BadArgument,
            }
        }
        (map::REQUEST_HEADERS, ":method") => {
            match (s.request.as_mut(), Method::from_bytes(value)) {
                (Some(r), Ok(m)) => {
                    r.method = m;
                    Status::Ok
                }
                (None, _) => Status::NotFound,
                _ => Status::BadArgument,
            }
        }
        (map::REQUEST_HEADERS, ":authority") => {
            match (s.request.as_mut(), HeaderValue::from_bytes(value)) {
                (Some(r), Ok(v)) => {
                    r.headers.insert(HOST, v);
                    Status::Ok
                }
                (None, _) => Status::NotFound,
                _ => Status::BadArgument,
            }
        }
        (map::RESPONSE_HEADERS, ":status") => {
            let code = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok());
            match (s.response.as_mut(), code) {
                (Some(r), Some(c)) => {
                    r.status = c;
                    Status::Ok
                }
                (None, _) => Status::NotFound,
                _ => Status::BadArgument,
            }
        }
        // `:scheme` and the rest follow from the connection.
        _ => Status::Ok,
    }
}

/// Replaces map `ty` with `pairs`.
pub fn set_pairs(s: &mut Stream, ty: i32, pairs: &[(&[u8], &[u8])]) -> Status {
    let map = match ty {
        map::REQUEST_HEADERS => s.request.as_mut().map(|r| &mut r.headers),
        map::RESPONSE_HEADERS => s.response.as_mut().map(|r| &mut r.headers),
        map::REQUEST_TRAILERS => s.request_trailers.as_mut(),
        map::RESPONSE_TRAILERS => s.response_trailers.as_mut(),
        _ => return Status::BadArgument,
    };
    let Some(map) = map else {
        return Status::NotFound;
    };
    map.clear();
    for (k, v) in pairs {
        if !k.starts_with(b":") {
            let st = edit(s, ty, k, v, Edit::Add);
            if st != Status::Ok {
                return st;
            }
        } else {
            let st = edit(s, ty, k, v, Edit::Replace);
            if st != Status::Ok {
                return st;
            }
        }
    }
    Status::Ok
}

/// Headers from pairs (for local responses and call-outs), pseudo-headers left out.
pub fn header_map(pairs: &[(&[u8], &[u8])]) -> Result<HeaderMap, Status> {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if k.starts_with(b":") {
            continue;
        }
        let name = HeaderName::from_bytes(k).map_err(|_| Status::BadArgument)?;
        let value = HeaderValue::from_bytes(v).map_err(|_| Status::BadArgument)?;
        h.append(name, value);
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_malformed_input_is_refused() {
        let data = encode_pairs([(&b"a"[..], &b"1"[..]), (&b"bb"[..], &b""[..])]);
        let back = decode_pairs(&data).unwrap();
        assert_eq!(back, vec![(&b"a"[..], &b"1"[..]), (&b"bb"[..], &b""[..])]);
        assert!(decode_pairs(&data[..data.len() - 3]).is_none());
        assert!(decode_pairs(&[255, 255, 255, 255]).is_none());
        assert_eq!(decode_pairs(&[]), Some(vec![]));
    }
}
