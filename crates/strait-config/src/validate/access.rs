//! Validation of the access policies (`ip_rules`, `request_limits`, `cors`) and of a listener's `client_address`.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{pos, Ctx};
use crate::access::*;
use crate::raw::{RawClientAddress, RawClientCert, RawCors, RawIpRules, RawRequestLimits, S};

fn cidrs(cx: &mut Ctx, raw: Option<&Spanned<Vec<S>>>, field: &str) -> Vec<Cidr> {
    let mut out = Vec::new();
    for s in raw.map(|l| l.value.as_slice()).unwrap_or_default() {
        match s.value.parse::<Cidr>() {
            Ok(c) => out.push(c),
            Err(e) => cx.err(pos(s), format!("{field}: {e}")),
        }
    }
    out
}

pub(super) fn ip_rules(cx: &mut Ctx, raw: &Spanned<RawIpRules>) -> IpRulesPolicy {
    let r = &raw.value;
    let allow = cidrs(cx, r.allow.as_ref(), "ip_rules.allow");
    let deny = cidrs(cx, r.deny.as_ref(), "ip_rules.deny");
    if r.allow.as_ref().is_some_and(|l| l.value.is_empty()) {
        let at = r.allow.as_ref().map_or(pos(raw), pos);
        cx.err(
            at,
            "ip_rules.allow is empty: omit it to allow every address not denied",
        );
    }
    if r.allow.is_none() && r.deny.is_none() {
        cx.err(
            pos(raw),
            "ip_rules does nothing: set `allow`, `deny` or both",
        );
    }
    IpRulesPolicy { allow, deny }
}

/// The items of an optional list (none when it is absent).
fn entries(l: &Option<Spanned<Vec<S>>>) -> &[S] {
    l.as_ref().map_or(&[], |l| &l.value)
}

pub(super) fn client_cert(cx: &mut Ctx, raw: &Spanned<RawClientCert>) -> ClientCertPolicy {
    let r = &raw.value;
    let mut allow = Vec::new();
    for s in entries(&r.allow) {
        match client_cert_uri(&s.value) {
            Ok(()) => allow.push(s.value.clone()),
            Err(e) => cx.err(pos(s), format!("client_cert.allow: {e}")),
        }
    }
    let mut allow_subjects = Vec::new();
    for s in entries(&r.allow_subjects) {
        if s.value.trim().is_empty() {
            cx.err(pos(s), "client_cert.allow_subjects: empty subject");
        } else {
            allow_subjects.push(s.value.clone());
        }
    }
    if entries(&r.allow).is_empty() && entries(&r.allow_subjects).is_empty() {
        cx.err(
            pos(raw),
            "client_cert allows nobody: list SAN URIs (SPIFFE IDs) in `allow` or subjects in `allow_subjects`",
        );
    }
    ClientCertPolicy {
        allow,
        allow_subjects,
    }
}

/// A SAN URI pattern: `scheme://...`, with `*` only as the last character (a prefix).
pub(super) fn client_cert_uri(s: &str) -> Result<(), String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!(
            "`{s}` is not a URI such as spiffe://example.org/ns/prod/sa/web"
        ));
    };
    if scheme.is_empty() || rest.is_empty() {
        return Err(format!("`{s}` needs a scheme and a trust domain"));
    }
    match s.find('*') {
        Some(i) if i + 1 != s.len() => Err(format!(
            "`{s}`: `*` may only end a pattern (a prefix such as spiffe://example.org/ns/prod/*)"
        )),
        _ => Ok(()),
    }
}

pub(super) fn request_limits(cx: &mut Ctx, raw: &Spanned<RawRequestLimits>) -> RequestLimitsPolicy {
    let r = &raw.value;
    if r.max_body.is_none() && r.timeout.is_none() {
        cx.err(
            pos(raw),
            "request_limits does nothing: set `max_body`, `timeout` or both",
        );
    }
    RequestLimitsPolicy {
        max_body: cx.size(r.max_body.as_ref(), "request_limits.max_body", 0),
        timeout: r.timeout.as_ref().map(|t| {
            cx.duration(
                Some(t),
                "request_limits.timeout",
                Duration::from_secs(1),
                false,
            )
        }),
    }
}

/// `*`, `scheme://host[:port]` or `scheme://*.domain`: no path, no other wildcard.
fn origin_ok(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let Some((scheme, host)) = o.split_once("://") else {
        return false;
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

fn names(cx: &mut Ctx, raw: Option<&Spanned<Vec<S>>>, field: &str, star: bool) -> Vec<String> {
    let mut out = Vec::new();
    for s in raw.map(|l| l.value.as_slice()).unwrap_or_default() {
        if star && s.value == "*" {
            out.push("*".to_owned());
            continue;
        }
        match super::values::header_name(&s.value) {
            Ok(n) => out.push(n),
            Err(e) => cx.err(pos(s), format!("{field}: {e}")),
        }
    }
    out
}

pub(super) fn cors(cx: &mut Ctx, raw: &Spanned<RawCors>) -> CorsPolicy {
    let r = &raw.value;
    let mut allow_origins = Vec::new();
    match &r.allow_origins {
        None => cx.err(
            pos(raw),
            "cors needs `allow_origins` (e.g. [\"https://app.example\"])",
        ),
        Some(l) if l.value.is_empty() => cx.err(pos(l), "cors.allow_origins is empty"),
        Some(l) => {
            for s in &l.value {
                if origin_ok(&s.value) {
                    allow_origins.push(s.value.clone());
                } else {
                    cx.err(
                        pos(s),
                        format!(
                            "cors.allow_origins: `{}` must be `*`, scheme://host[:port] or \
                             scheme://*.domain (no path, no other wildcard)",
                            s.value
                        ),
                    );
                }
            }
        }
    }
    let mut allow_methods = Vec::new();
    for s in r
        .allow_methods
        .as_ref()
        .map(|l| l.value.as_slice())
        .unwrap_or_default()
    {
        let m = s.value.to_ascii_uppercase();
        if http::Method::from_bytes(m.as_bytes()).is_ok() && !m.is_empty() {
            allow_methods.push(m);
        } else {
            cx.err(
                pos(s),
                format!("cors.allow_methods: `{}` is not a method", s.value),
            );
        }
    }
    let allow_headers = names(cx, r.allow_headers.as_ref(), "cors.allow_headers", true);
    let expose_headers = names(cx, r.expose_headers.as_ref(), "cors.expose_headers", false);
    let allow_credentials = r.allow_credentials.as_ref().is_some_and(|b| b.value);
    if allow_credentials {
        // Browsers refuse `*` with credentials; echoing every origin would be worse.
        if allow_origins.iter().any(|o| o == "*") || allow_headers.iter().any(|h| h == "*") {
            let at = r.allow_credentials.as_ref().map_or(pos(raw), pos);
            cx.err(
                at,
                "cors: `*` in allow_origins or allow_headers cannot be combined with \
                 allow_credentials: list the origins and headers",
            );
        }
    }
    CorsPolicy {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        allow_credentials,
        max_age: r
            .max_age
            .as_ref()
            .map(|m| cx.duration(Some(m), "cors.max_age", Duration::ZERO, true)),
    }
}

pub(super) fn client_address(cx: &mut Ctx, raw: &Spanned<RawClientAddress>) -> ClientAddress {
    let r = &raw.value;
    let trusted_proxies = cidrs(
        cx,
        r.trusted_proxies.as_ref(),
        "client_address.trusted_proxies",
    );
    if trusted_proxies.is_empty()
        && r.trusted_proxies
            .as_ref()
            .is_none_or(|l| l.value.is_empty())
    {
        cx.err(
            pos(raw),
            "client_address needs `trusted_proxies`: the peers whose forwarded-for header is believed",
        );
    }
    let header = match &r.header {
        None => "x-forwarded-for".to_owned(),
        Some(h) => super::values::header_name(&h.value).unwrap_or_else(|e| {
            cx.err(pos(h), format!("client_address.header: {e}"));
            "x-forwarded-for".to_owned()
        }),
    };
    ClientAddress {
        trusted_proxies,
        header,
    }
}
