//! The `cors` policy: preflights answered at the gateway (204 `preflight`, or 403 `cors_denied` when the origin, method or headers are not allowed) and CORS response headers plus `Vary: Origin` on actual requests from allowed origins.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use strait_core::{Filter, FilterState, Flow, Hooks, Reply, RequestCtx, ResponseCtx};

/// One allowed origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginRule {
    /// Any origin (`*`; never with credentials).
    Any,
    /// `scheme://host[:port]`, lowercased.
    Exact(String),
    /// `scheme://*.suffix`: `prefix` is `scheme://`, `suffix` is `.example.com` (lowercased);
    /// at least one label stands in for the `*`.
    Subdomain { prefix: String, suffix: String },
}

impl OriginRule {
    /// Parses an `allow_origins` entry.
    pub fn parse(s: &str) -> Result<OriginRule, String> {
        if s == "*" {
            return Ok(OriginRule::Any);
        }
        let lower = s.to_ascii_lowercase();
        let Some((scheme, host)) = lower.split_once("://") else {
            return Err(format!("origin `{s}` must be `*` or scheme://host[:port]"));
        };
        let host_ok = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        };
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(format!("origin `{s}` has an invalid scheme"));
        }
        if let Some(rest) = host.strip_prefix("*.") {
            if !host_ok(rest) || rest.contains('*') {
                return Err(format!(
                    "origin `{s}`: only a leading `*.` label is allowed"
                ));
            }
            return Ok(OriginRule::Subdomain {
                prefix: format!("{scheme}://"),
                suffix: format!(".{rest}"),
            });
        }
        if !host_ok(host) {
            return Err(format!(
                "origin `{s}` must be scheme://host[:port] without a path (wildcards only as `scheme://*.domain`)"
            ));
        }
        Ok(OriginRule::Exact(lower))
    }

    /// Whether `origin` (as the browser sent it) matches; ASCII case-insensitive.
    pub fn matches(&self, origin: &[u8]) -> bool {
        match self {
            OriginRule::Any => true,
            OriginRule::Exact(e) => origin.eq_ignore_ascii_case(e.as_bytes()),
            OriginRule::Subdomain { prefix, suffix } => {
                let (p, s) = (prefix.as_bytes(), suffix.as_bytes());
                if origin.len() <= p.len() + s.len() {
                    return false;
                }
                let (head, rest) = origin.split_at(p.len());
                let (label, tail) = rest.split_at(rest.len() - s.len());
                head.eq_ignore_ascii_case(p)
                    && tail.eq_ignore_ascii_case(s)
                    && label
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
                    && label.first() != Some(&b'.')
            }
        }
    }
}

/// CORS settings.
#[derive(Clone, Debug, Default)]
pub struct CorsSettings {
    /// Allowed origins.
    pub allow_origins: Vec<OriginRule>,
    /// Allowed methods (uppercase).
    pub allow_methods: Vec<Method>,
    /// Allowed request headers (lowercase); `*` allows any (not with credentials).
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    pub expose_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer.
    pub max_age: Option<Duration>,
}

/// A compiled CORS policy: header values are built once.
pub struct CorsFilter {
    name: Arc<str>,
    s: CorsSettings,
    any_origin: bool,
    any_header: bool,
    methods: HeaderValue,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

/// What an actual request leaves for the response hook: the origin to echo.
struct Allowed(HeaderValue);

impl CorsFilter {
    /// A CORS policy called `name`.
    pub fn new(name: &str, s: CorsSettings) -> Result<Self, String> {
        let any_origin = s.allow_origins.contains(&OriginRule::Any);
        let any_header = s.allow_headers.iter().any(|h| h == "*");
        if s.allow_credentials && (any_origin || any_header) {
            return Err("cors: `*` cannot be combined with allow_credentials".into());
        }
        let join = |v: &[String]| -> Result<Option<HeaderValue>, String> {
            if v.is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(&v.join(", "))
                .map(Some)
                .map_err(|e| format!("cors: {e}"))
        };
        let methods: Vec<String> = s.allow_methods.iter().map(|m| m.to_string()).collect();
        Ok(CorsFilter {
            name: Arc::from(name),
            any_origin,
            any_header,
            methods: join(&methods)?.unwrap_or(HeaderValue::from_static("GET, HEAD, POST")),
            headers: join(&s.allow_headers)?,
            expose: join(&s.expose_headers)?,
            max_age: s.max_age.map(|d| HeaderValue::from(d.as_secs())),
            s,
        })
    }

    fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        let o = origin.as_bytes();
        self.s.allow_origins.iter().any(|r| r.matches(o))
    }

    fn method_allowed(&self, m: &[u8]) -> bool {
        if self.s.allow_methods.is_empty() {
            // The CORS-safelisted methods.
            return matches!(m, b"GET" | b"HEAD" | b"POST");
        }
        self.s
            .allow_methods
            .iter()
            .any(|x| x.as_str().as_bytes() == m)
    }

    fn headers_allowed(&self, req: &http::HeaderMap) -> bool {
        if self.any_header {
            return true;
        }
        req.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .all(|v| match v.to_str() {
                Err(_) => false,
                Ok(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .all(|h| {
                        self.s
                            .allow_headers
                            .iter()
                            .any(|a| a.eq_ignore_ascii_case(h))
                    }),
            })
    }

    /// The origin header value to answer with.
    fn allow_origin(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any_origin && !self.s.allow_credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    fn preflight(
        &self,
        head: &http::request::Parts,
        origin: &HeaderValue,
        method: &HeaderValue,
    ) -> Reply {
        if !(self.origin_allowed(origin)
            && self.method_allowed(method.as_bytes())
            && self.headers_allowed(&head.headers))
        {
            let mut r = Reply::text(
                StatusCode::FORBIDDEN,
                "strait: CORS request not allowed\n",
                "cors_denied",
            );
            r.response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
            return r;
        }
        let mut resp = http::Response::new(Bytes::new());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin(origin),
        );
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
        if self.any_header {
            // Echo what was asked: `*` is not honoured by every browser for every header.
            if let Some(v) = head.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
            }
        } else if let Some(v) = &self.headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if self.s.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.max_age {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        Reply {
            response: resp,
            reason: "preflight",
        }
    }
}

impl Filter for CorsFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "cors"
    }

    fn hooks(&self) -> Hooks {
        Hooks {
            response: true,
            ..Hooks::REQUEST
        }
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a> {
        let Some(origin) = ctx.head.headers.get(header::ORIGIN) else {
            return Flow::Continue;
        };
        if ctx.head.method == Method::OPTIONS {
            if let Some(m) = ctx.head.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD) {
                return Flow::Reply(self.preflight(&*ctx.head, origin, m));
            }
        }
        if self.origin_allowed(origin) {
            state.set(Allowed(origin.clone()));
        }
        Flow::Continue
    }

    fn on_response<'a>(
        &'a self,
        ctx: &'a mut ResponseCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a> {
        let h = &mut ctx.head.headers;
        if let Some(Allowed(origin)) = state.take::<Allowed>() {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                self.allow_origin(&origin),
            );
            if self.s.allow_credentials {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            if let Some(v) = &self.expose {
                h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
            }
        }
        // The answer depends on Origin whenever the policy runs: caches must key on it.
        let varies = h.get_all(header::VARY).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("origin") || p.trim() == "*")
            })
        });
        if !varies {
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(s: &str) -> OriginRule {
        OriginRule::parse(s).unwrap()
    }

    #[test]
    fn origin_rules() {
        let e = rule("https://App.Example");
        assert!(e.matches(b"https://app.example"));
        assert!(e.matches(b"HTTPS://APP.EXAMPLE"));
        assert!(!e.matches(b"https://app.example.evil"));
        assert!(!e.matches(b"http://app.example"));
        let w = rule("https://*.example.com");
        assert!(w.matches(b"https://a.example.com"));
        assert!(w.matches(b"https://a.b.Example.COM"));
        assert!(!w.matches(b"https://example.com"));
        assert!(!w.matches(b"https://.example.com"));
        assert!(!w.matches(b"https://evil.com/.example.com"));
        assert!(!w.matches(b"https://evilexample.com"));
        assert!(!w.matches(b"http://a.example.com"));
        for bad in [
            "app.example",
            "https://a.example/path",
            "https://a*.example",
            "https://*.*.x",
            "://x",
        ] {
            assert!(OriginRule::parse(bad).is_err(), "{bad}");
        }
        assert!(CorsFilter::new(
            "c",
            CorsSettings {
                allow_origins: vec![OriginRule::Any],
                allow_credentials: true,
                ..Default::default()
            }
        )
        .is_err());
    }

    proptest! {
        #[test]
        fn exact_rule_is_case_insensitive_equality(a in "[a-z]{1,8}", b in "[a-zA-Z.]{1,10}") {
            let r = rule(&format!("https://{a}.example"));
            let o = format!("https://{b}.example");
            prop_assert_eq!(r.matches(o.as_bytes()), b.eq_ignore_ascii_case(&a));
        }

        #[test]
        fn wildcard_never_matches_other_domains(o in "[ -~]{0,40}") {
            let r = rule("https://*.example.com");
            if r.matches(o.as_bytes()) {
                let l = o.to_ascii_lowercase();
                prop_assert!(l.starts_with("https://") && l.ends_with(".example.com"));
                prop_assert!(!l["https://".len()..].contains('/'));
            }
        }
    }
}
