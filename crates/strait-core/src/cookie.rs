//! Reading one cookie's value from a request's `Cookie` headers, without allocating (consistent-hash keys, colour keys).

use http::header;

/// The value of cookie `name` in `headers`, if the request sent it.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get_all(header::COOKIE).iter().find_map(|v| {
        v.as_bytes().split(|&b| b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_value_is_found_among_several() {
        let mut h = http::HeaderMap::new();
        h.insert(header::COOKIE, "a=1; sid=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&h, "sid"), Some(&b"xyz"[..]));
        assert_eq!(cookie(&h, "s"), None);
    }
}
