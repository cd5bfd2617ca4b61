//! Compiles a route's `split:` into the data plane's form: override upstreams resolved to backend indices, names parsed once.

use http::HeaderName;
use strait_config as cfg;
use strait_proxy::split::{Override, OverrideOn, Split, StickyKey};

/// The runtime split of a route forwarding to `backends`.
pub(super) fn split(s: &cfg::Split, backends: &[cfg::Backend]) -> Result<Split, String> {
    let overrides = s
        .overrides
        .iter()
        .map(|o| {
            let backend = backends
                .iter()
                .position(|b| b.upstream == o.upstream)
                .ok_or_else(|| format!("override upstream {} is not a backend", o.upstream))?;
            let on = match &o.on {
                cfg::OverrideOn::Header(n) => OverrideOn::Header(header(n)?),
                cfg::OverrideOn::Cookie(n) => OverrideOn::Cookie(n.as_str().into()),
                cfg::OverrideOn::Query(n) => OverrideOn::Query(n.as_str().into()),
            };
            Ok(Override {
                on,
                value: o.value.as_ref().map(|v| v.as_bytes().into()),
                backend,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let sticky = s
        .sticky
        .as_ref()
        .map(|k| {
            Ok::<_, String>(match k {
                cfg::StickyKey::Header(n) => StickyKey::Header(header(n)?),
                cfg::StickyKey::Cookie(n) => StickyKey::Cookie(n.as_str().into()),
                cfg::StickyKey::Claim(n) => StickyKey::Claim(n.as_str().into()),
                cfg::StickyKey::ClientIp => StickyKey::ClientIp,
            })
        })
        .transpose()?;
    Ok(Split {
        overrides: overrides.into(),
        sticky,
    })
}

fn header(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("split header {name}: {e}"))
}
