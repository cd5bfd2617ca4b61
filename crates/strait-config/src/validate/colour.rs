//! Validation of the `colour` policy: header, label, the known colours, the derive key and the fallback, each error with its position.

use serde_saphyr::Spanned;

use super::{pos, pos_or, values, Ctx};
use crate::diag::Pos;
use crate::policy::*;
use crate::raw::{RawColour, S};

/// Most colours one policy knows: each is a metric label value and a subset per upstream.
const MAX_VALUES: usize = 64;

pub(super) fn colour(cx: &mut Ctx, raw: &Spanned<RawColour>) -> ColourPolicy {
    let c = &raw.value;
    let at = pos(raw);
    let header = match &c.header {
        None => {
            cx.err(
                at,
                "colour needs `header` (the request header that carries the colour)",
            );
            String::new()
        }
        Some(h) => values::header_name(h.value.trim()).unwrap_or_else(|e| {
            cx.err(pos(h), format!("colour.header: {e}"));
            h.value.clone()
        }),
    };
    let label = match &c.label {
        None => {
            cx.err(
                at,
                "colour needs `label` (the endpoint label the colour selects by)",
            );
            String::new()
        }
        Some(l) => {
            if let Err(e) = values::label_name(&l.value) {
                cx.err(pos(l), format!("colour.label: {e}"));
            }
            l.value.clone()
        }
    };
    let values = colours(cx, c.values.as_ref(), at);
    let derive = c.derive.as_ref().and_then(|d| match &d.value.key {
        None => {
            cx.err(pos(d), "colour.derive needs `key` (e.g. header:x-user-id)");
            None
        }
        Some(k) => key(cx, k, pos(d)),
    });
    let fallback = cx.token(
        c.fallback.as_ref(),
        "colour.fallback",
        &[
            ("any", ColourFallback::Any),
            ("reject", ColourFallback::Reject),
        ],
        ColourFallback::Any,
    );
    ColourPolicy {
        header,
        label,
        values,
        derive,
        fallback,
    }
}

/// `values:` the known colours: label values, unique, at least one.
fn colours(cx: &mut Ctx, raw: Option<&Spanned<Vec<S>>>, at: Pos) -> Vec<String> {
    let Some(list) = raw else {
        cx.err(
            at,
            "colour needs `values` (the colours it knows, e.g. [eu, us])",
        );
        return Vec::new();
    };
    let lat = pos(list);
    if list.value.is_empty() {
        cx.err(lat, "colour.values is empty: list the colours it knows");
    }
    if list.value.len() > MAX_VALUES {
        cx.err(
            lat,
            format!(
                "colour.values has {} colours; at most {MAX_VALUES}",
                list.value.len()
            ),
        );
    }
    let mut out: Vec<String> = Vec::with_capacity(list.value.len());
    for v in &list.value {
        let p = pos_or(v, lat);
        if let Err(e) = values::label_value(&v.value) {
            cx.err(p, format!("colour.values: {e}"));
        } else if out.contains(&v.value) {
            cx.err(p, format!("colour.values lists `{}` twice", v.value));
            continue;
        }
        out.push(v.value.clone());
    }
    out
}

/// `derive.key:` header:NAME, cookie:NAME, claim:NAME, consumer or client_ip.
fn key(cx: &mut Ctx, raw: &S, parent: Pos) -> Option<ColourKey> {
    let p = pos_or(raw, parent);
    let text = raw.value.trim();
    let named = |prefix: &str| text.strip_prefix(prefix).map(str::trim);
    let key = match text {
        "consumer" => ColourKey::Consumer,
        "client_ip" => ColourKey::ClientIp,
        _ => {
            if let Some(h) = named("header:") {
                match values::header_name(h) {
                    Ok(n) => ColourKey::Header(n),
                    Err(e) => {
                        cx.err(p, format!("colour.derive.key: {e}"));
                        return None;
                    }
                }
            } else if let Some(c) = named("cookie:") {
                if !super::upstream::cookie_name(c) {
                    cx.err(
                        p,
                        format!("colour.derive.key: `{c}` is not a valid cookie name"),
                    );
                    return None;
                }
                ColourKey::Cookie(c.to_owned())
            } else if let Some(c) = named("claim:").filter(|c| !c.is_empty()) {
                ColourKey::Claim(c.to_owned())
            } else {
                cx.err(
                    p,
                    format!(
                        "unknown colour.derive.key `{text}`: expected header:NAME, cookie:NAME, \
                         claim:NAME, consumer or client_ip"
                    ),
                );
                return None;
            }
        }
    };
    Some(key)
}

#[cfg(test)]
mod tests;
