//! Route `split:` validation: gray overrides name one of the route's upstreams, and the sticky key is one of the known sources.

use serde_saphyr::Spanned;

use super::values;
use super::{pos, pos_or, Ctx};
use crate::diag::Pos;
use crate::policy::Backend;
use crate::raw::{RawOverride, RawSplit, RawSticky};
use crate::types::{OverrideOn, Split, SplitOverride, StickyKey};

/// The accepted sticky key forms, for messages.
const STICKY_FORMS: &str = "header:NAME, cookie:NAME, claim:NAME or client_ip";

/// Converts `split:`; `backends` is `None` when the route does not forward (reported here)
/// or its action is invalid (reported already).
pub(super) fn split(
    cx: &mut Ctx,
    raw: &Spanned<RawSplit>,
    backends: Option<&[Backend]>,
    forwards: bool,
) -> Split {
    let at = pos(raw);
    if !forwards {
        cx.err(at, "split only applies to routes that forward to upstreams");
    }
    let s = &raw.value;
    if s.overrides.is_none() && s.sticky.is_none() {
        cx.err(at, "split is empty: set `overrides`, `sticky` or both");
    }
    let overrides = s.overrides.as_ref().map_or_else(Vec::new, |list| {
        list.value
            .iter()
            .filter_map(|o| rule(cx, o, pos_or(o, pos(list)), backends))
            .collect()
    });
    let sticky = s.sticky.as_ref().and_then(|k| sticky(cx, k));
    Split { overrides, sticky }
}

/// One override; `None` when it is invalid (reported).
fn rule(
    cx: &mut Ctx,
    raw: &Spanned<RawOverride>,
    at: Pos,
    backends: Option<&[Backend]>,
) -> Option<SplitOverride> {
    let o = &raw.value;
    let sources: Vec<(&str, &crate::raw::S)> = [
        ("header", o.header.as_ref()),
        ("cookie", o.cookie.as_ref()),
        ("query", o.query.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    let on = match sources.as_slice() {
        [] => {
            cx.err(at, "override needs one of `header`, `cookie` or `query`");
            None
        }
        [(kind, name)] => source(cx, kind, name),
        [(first, _), (second, name), ..] => {
            cx.err(
                pos_or(name, at),
                format!("override has both `{first}` and `{second}`: one rule reads one value"),
            );
            None
        }
    };
    let value = o.value.as_ref().map(|v| v.value.clone());
    if let (Some(OverrideOn::Header(_)), Some(v)) = (&on, &o.value) {
        if let Err(e) = values::header_value(&v.value) {
            cx.err(pos_or(v, at), e);
        }
    }
    let upstream = match &o.upstream {
        None => {
            cx.err(at, "override needs the `upstream` it forces");
            None
        }
        Some(u) => {
            let listed = backends.is_none_or(|b| b.iter().any(|b| b.upstream == u.value));
            if !listed {
                let names: Vec<&str> = backends
                    .unwrap_or_default()
                    .iter()
                    .map(|b| b.upstream.as_str())
                    .collect();
                cx.err(
                    pos_or(u, at),
                    format!(
                        "override upstream `{}` is not one of the route's upstreams ({})",
                        u.value,
                        names.join(", ")
                    ),
                );
            }
            Some(u.value.clone())
        }
    };
    Some(SplitOverride {
        on: on?,
        value,
        upstream: upstream?,
    })
}

/// The header, cookie or query name an override reads.
fn source(cx: &mut Ctx, kind: &str, name: &crate::raw::S) -> Option<OverrideOn> {
    let at = pos(name);
    if name.value.is_empty() {
        cx.err(at, format!("override `{kind}` name is empty"));
        return None;
    }
    match kind {
        "header" => match values::header_name(&name.value) {
            Ok(n) => Some(OverrideOn::Header(n)),
            Err(e) => {
                cx.err(at, e);
                None
            }
        },
        "cookie" if !name.value.bytes().all(values::is_token_char) => {
            cx.err(at, format!("`{}` is not a valid cookie name", name.value));
            None
        }
        "cookie" => Some(OverrideOn::Cookie(name.value.clone())),
        _ => Some(OverrideOn::Query(name.value.clone())),
    }
}

/// `sticky: { key: SOURCE }`.
fn sticky(cx: &mut Ctx, raw: &Spanned<RawSticky>) -> Option<StickyKey> {
    let Some(key) = &raw.value.key else {
        cx.err(pos(raw), format!("sticky needs a `key`: {STICKY_FORMS}"));
        return None;
    };
    let at = pos_or(key, pos(raw));
    match sticky_key(&key.value) {
        Ok(k) => Some(k),
        Err(e) => {
            cx.err(at, e);
            None
        }
    }
}

/// Parses a sticky key source.
fn sticky_key(s: &str) -> Result<StickyKey, String> {
    if s == "client_ip" {
        return Ok(StickyKey::ClientIp);
    }
    let bad = || format!("invalid sticky key `{s}`: use {STICKY_FORMS}");
    let (kind, name) = s.split_once(':').ok_or_else(bad)?;
    if name.is_empty() {
        return Err(format!("sticky key `{s}` has no name after `{kind}:`"));
    }
    match kind {
        "header" => values::header_name(name).map(StickyKey::Header),
        "cookie" if name.bytes().all(values::is_token_char) => {
            Ok(StickyKey::Cookie(name.to_owned()))
        }
        "cookie" => Err(format!("`{name}` is not a valid cookie name")),
        "claim" => Ok(StickyKey::Claim(name.to_owned())),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
