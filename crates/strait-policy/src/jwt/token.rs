//! The pure parts of JWT checking: finding the token where it is configured, splitting and decoding it, and checking its header and claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderName};
use serde_json::{Map, Value};

use super::keys::Alg;

/// Where the token is read from; a token anywhere else is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A header, with a prefix that must be there (`Bearer `, matched without regard to case).
    Header {
        /// Header name.
        name: HeaderName,
        /// Prefix before the token (may be empty).
        prefix: String,
    },
    /// A query parameter.
    Query(String),
    /// A cookie.
    Cookie(String),
}

impl Default for TokenSource {
    fn default() -> Self {
        TokenSource::Header {
            name: http::header::AUTHORIZATION,
            prefix: "Bearer ".into(),
        }
    }
}

/// The token in a request, if the configured place has one (`None` also for an empty one).
pub fn extract<'a>(
    source: &TokenSource,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Option<&'a str> {
    let t = match source {
        TokenSource::Header { name, prefix } => {
            let v = headers.get(name)?.to_str().ok()?;
            if v.len() < prefix.len() || !v.is_char_boundary(prefix.len()) {
                return None;
            }
            let (p, rest) = v.split_at(prefix.len());
            if !p.eq_ignore_ascii_case(prefix) {
                return None;
            }
            rest.trim()
        }
        TokenSource::Query(param) => query?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == param.as_str()).then_some(v)
        })?,
        TokenSource::Cookie(name) => headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == name.as_str()).then_some(v.trim().trim_matches('"'))
            })?,
    };
    (!t.is_empty()).then_some(t)
}

/// Removes the token from the query string, keeping the other parameters in order.
pub fn strip_query(query: &str, param: &str) -> String {
    query
        .split('&')
        .filter(|kv| kv.split_once('=').map_or(*kv, |(k, _)| k) != param)
        .collect::<Vec<_>>()
        .join("&")
}

/// A token split and decoded, not yet verified.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The signed part (`header.payload`).
    pub signing_input: &'a str,
    /// The algorithm, one Strait knows and the policy allows.
    pub alg: Alg,
    /// The key id, if the header names one.
    pub kid: Option<String>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

/// Why a token was refused (each is a `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token where it is expected.
    Missing,
    /// Malformed, wrong algorithm, a header that is not trusted, a bad signature, wrong iss/aud.
    Invalid,
    /// `exp` is past.
    Expired,
    /// `nbf` is ahead.
    NotYetValid,
    /// The `kid` is in no key set.
    UnknownKid,
    /// A required claim is missing.
    MissingClaims,
    /// A required scope is missing.
    MissingScope,
    /// No keys could be had (the key server never answered).
    NoKeys,
}

impl Refusal {
    /// The reason label.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "missing_token",
            Refusal::Invalid => "invalid_token",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::UnknownKid => "unknown_kid",
            Refusal::MissingClaims => "insufficient_claims",
            Refusal::MissingScope => "insufficient_scope",
            Refusal::NoKeys => "keys_unavailable",
        }
    }
}

fn b64(part: &str) -> Result<Vec<u8>, Refusal> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| Refusal::Invalid)
}

/// Splits and decodes `token`, checking its size, its header (`alg` allowed, no `jku`, `x5u`,
/// `jwk`, `x5c`, no `crit`) and that the claims are a JSON object.
pub fn parse<'a>(token: &'a str, allowed: &[Alg], max_len: usize) -> Result<Parsed<'a>, Refusal> {
    if token.len() > max_len {
        return Err(Refusal::Invalid);
    }
    let (signing_input, sig) = token.rsplit_once('.').ok_or(Refusal::Invalid)?;
    let (head, payload) = signing_input.split_once('.').ok_or(Refusal::Invalid)?;
    if payload.contains('.') {
        // Five parts: an encrypted token (JWE), which this policy does not take.
        return Err(Refusal::Invalid);
    }
    let header: Map<String, Value> =
        serde_json::from_slice(&b64(head)?).map_err(|_| Refusal::Invalid)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Alg::from_name)
        .filter(|a| allowed.contains(a))
        .ok_or(Refusal::Invalid)?;
    // Keys named or embedded by the token itself would let its sender choose the key.
    for p in ["jku", "x5u", "jwk", "x5c"] {
        if header.contains_key(p) {
            return Err(Refusal::Invalid);
        }
    }
    // No critical extension is understood, so any `crit` must be refused (RFC 7515 §4.1.11).
    if header.contains_key("crit") {
        return Err(Refusal::Invalid);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Refusal::Invalid),
    };
    let claims: Map<String, Value> =
        serde_json::from_slice(&b64(payload)?).map_err(|_| Refusal::Invalid)?;
    let signature = b64(sig)?;
    if signature.is_empty() {
        return Err(Refusal::Invalid);
    }
    Ok(Parsed {
        signing_input,
        alg,
        kid,
        claims,
        signature,
    })
}

/// What the claims must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimRules {
    /// Accepted issuers (any one); empty = not checked.
    pub issuers: Vec<String>,
    /// Accepted audiences (the token's `aud` must name one); empty = not checked.
    pub audiences: Vec<String>,
    /// Clock skew allowed for `exp` and `nbf`, seconds.
    pub leeway: u64,
    /// Claims that must be present.
    pub required: Vec<String>,
    /// Scopes that must all be granted (`scope` or `scp`).
    pub scopes: Vec<String>,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Checks verified claims at unix time `now` (seconds).
pub fn check_claims(c: &Map<String, Value>, rules: &ClaimRules, now: u64) -> Result<(), Refusal> {
    let now = now as f64;
    let leeway = rules.leeway as f64;
    match c.get("exp") {
        None => {}
        Some(v) => match num(v) {
            Some(exp) if now - leeway >= exp => return Err(Refusal::Expired),
            Some(_) => {}
            None => return Err(Refusal::Invalid),
        },
    }
    match c.get("nbf") {
        None => {}
        Some(v) => match num(v) {
            Some(nbf) if now + leeway < nbf => return Err(Refusal::NotYetValid),
            Some(_) => {}
            None => return Err(Refusal::Invalid),
        },
    }
    if !rules.issuers.is_empty() {
        let iss = c.get("iss").and_then(Value::as_str);
        if !iss.is_some_and(|i| rules.issuers.iter().any(|r| r == i)) {
            return Err(Refusal::Invalid);
        }
    }
    if !rules.audiences.is_empty() {
        let ok = match c.get("aud") {
            Some(Value::String(a)) => rules.audiences.iter().any(|r| r == a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| rules.audiences.iter().any(|r| r == a)),
            _ => false,
        };
        if !ok {
            return Err(Refusal::Invalid);
        }
    }
    if rules
        .required
        .iter()
        .any(|r| c.get(r).is_none_or(Value::is_null))
    {
        return Err(Refusal::MissingClaims);
    }
    if !rules.scopes.is_empty() {
        let granted = scopes(c);
        if !rules.scopes.iter().all(|s| granted.contains(&s.as_str())) {
            return Err(Refusal::MissingScope);
        }
    }
    Ok(())
}

/// The granted scopes: `scope` or `scp`, space-separated text or an array of strings.
pub fn scopes(c: &Map<String, Value>) -> Vec<&str> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match c.get(name) {
            Some(Value::String(s)) => out.extend(s.split_ascii_whitespace()),
            Some(Value::Array(a)) => out.extend(a.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out
}

/// A claim as text: strings as they are, numbers and booleans printed, arrays of strings
/// joined by spaces; objects and null give `None`.
pub fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(a) => {
            let parts: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            (parts.len() == a.len()).then(|| parts.join(" "))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn enc(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn tok(h: Value, c: Value) -> String {
        format!("{}.{}.c2ln", enc(&h), enc(&c))
    }

    #[test]
    fn extraction_reads_only_the_configured_place() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "bearer abc".parse().unwrap());
        h.insert("x-token", "T1".parse().unwrap());
        h.insert("cookie", "a=1; jwt=C1".parse().unwrap());
        let q = Some("x=1&access_token=Q1");
        assert_eq!(extract(&TokenSource::default(), &h, q), Some("abc"));
        let hdr = TokenSource::Header {
            name: HeaderName::from_static("x-token"),
            prefix: String::new(),
        };
        assert_eq!(extract(&hdr, &h, q), Some("T1"));
        assert_eq!(
            extract(&TokenSource::Query("access_token".into()), &h, q),
            Some("Q1")
        );
        assert_eq!(
            extract(&TokenSource::Cookie("jwt".into()), &h, q),
            Some("C1")
        );
        assert_eq!(extract(&TokenSource::Cookie("no".into()), &h, q), None);
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(extract(&TokenSource::default(), &h, q), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(extract(&TokenSource::default(), &h, q), None);
        assert_eq!(
            strip_query("a=1&access_token=x&b=2", "access_token"),
            "a=1&b=2"
        );
    }

    #[test]
    fn header_attacks_are_refused() {
        let c = json!({"sub": "u"});
        let all = [Alg::HS256, Alg::RS256];
        assert!(parse(&tok(json!({"alg": "HS256"}), c.clone()), &all, 8192).is_ok());
        for h in [
            json!({"alg": "none"}),
            json!({"alg": "None"}),
            json!({"alg": "ES256"}),
            json!({"alg": "HS256", "jku": "http://x"}),
            json!({"alg": "HS256", "jwk": {}}),
            json!({"alg": "HS256", "x5u": "http://x"}),
            json!({"alg": "HS256", "crit": ["exp"]}),
            json!({"alg": "HS256", "kid": 5}),
            json!({}),
        ] {
            assert_eq!(
                parse(&tok(h, c.clone()), &all, 8192).unwrap_err(),
                Refusal::Invalid
            );
        }
        let big = tok(json!({"alg": "HS256"}), json!({"x": "a".repeat(9000)}));
        assert_eq!(parse(&big, &all, 8192).unwrap_err(), Refusal::Invalid);
        assert_eq!(parse("a.b", &all, 8192).unwrap_err(), Refusal::Invalid);
        assert_eq!(
            parse("a.b.c.d.e", &all, 8192).unwrap_err(),
            Refusal::Invalid
        );
        let unsigned = format!("{}.{}.", enc(&json!({"alg": "HS256"})), enc(&c));
        assert_eq!(parse(&unsigned, &all, 8192).unwrap_err(), Refusal::Invalid);
    }

    #[test]
    fn claims_are_checked() {
        let rules = ClaimRules {
            issuers: vec!["i1".into(), "i2".into()],
            audiences: vec!["api".into()],
            leeway: 10,
            required: vec!["sub".into()],
            scopes: vec!["read".into()],
        };
        let ok = |c: Value| check_claims(c.as_object().unwrap(), &rules, 1000);
        let good = json!({"iss": "i2", "aud": ["x", "api"], "sub": "u", "exp": 1001, "nbf": 1005, "scope": "write read"});
        assert_eq!(ok(good), Ok(()));
        assert_eq!(
            ok(json!({"iss": "i1", "aud": "api", "sub": "u", "scp": ["read"], "exp": 991})),
            Ok(())
        );
        assert_eq!(
            ok(json!({"iss": "i1", "aud": "api", "sub": "u", "scope": "read", "exp": 990})),
            Err(Refusal::Expired)
        );
        assert_eq!(
            ok(json!({"iss": "i1", "aud": "api", "sub": "u", "scope": "read", "nbf": 1011})),
            Err(Refusal::NotYetValid)
        );
        assert_eq!(
            ok(json!({"iss": "i3", "aud": "api", "sub": "u", "scope": "read"})),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            ok(json!({"iss": "i1", "aud": "web", "sub": "u", "scope": "read"})),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            ok(json!({"iss": "i1", "aud": "api", "scope": "read"})),
            Err(Refusal::MissingClaims)
        );
        assert_eq!(
            ok(json!({"iss": "i1", "aud": "api", "sub": "u", "scope": "reader"})),
            Err(Refusal::MissingScope)
        );
        assert_eq!(
            ok(json!({"iss": "i1", "aud": "api", "sub": "u", "scope": "read", "exp": "soon"})),
            Err(Refusal::Invalid)
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s, &[Alg::HS256, Alg::RS256, Alg::EdDSA], 8192);
        }

        #[test]
        fn extraction_never_panics(v in "[ -~]{0,80}", q in "[ -~]{0,80}") {
            let mut h = HeaderMap::new();
            if let Ok(val) = v.parse() { h.insert("authorization", val); }
            if let Ok(val) = v.parse() { h.insert("cookie", val); }
            let _ = extract(&TokenSource::default(), &h, Some(&q));
            let _ = extract(&TokenSource::Cookie("jwt".into()), &h, Some(&q));
            let _ = extract(&TokenSource::Query("t".into()), &h, Some(&q));
        }

        #[test]
        fn scopes_are_all_or_nothing(granted in proptest::collection::vec("[a-z]{1,4}", 0..5), need in proptest::collection::vec("[a-z]{1,4}", 0..3)) {
            let c = json!({"scope": granted.join(" ")});
            let rules = ClaimRules { scopes: need.clone(), ..ClaimRules::default() };
            let ok = check_claims(c.as_object().unwrap(), &rules, 0).is_ok();
            prop_assert_eq!(ok, need.iter().all(|n| granted.contains(n)));
        }
    }
}
