//! The effective form of the `colour` policy.

use super::node::M;
use super::Node;
use crate::policy::*;

/// `colour:`.
pub(super) fn colour(c: &ColourPolicy) -> Node {
    let ColourPolicy {
        header,
        label,
        values,
        derive,
        fallback,
    } = c;
    let key = derive.as_ref().map(|k| {
        let text = match k {
            ColourKey::Header(h) => format!("header:{h}"),
            ColourKey::Cookie(c) => format!("cookie:{c}"),
            ColourKey::Claim(c) => format!("claim:{c}"),
            ColourKey::Consumer => "consumer".to_owned(),
            ColourKey::ClientIp => "client_ip".to_owned(),
        };
        M::new().put("key", text)
    });
    M::new()
        .put("header", header.as_str())
        .put("label", label.as_str())
        .put("values", Node::from(values.clone()))
        .opt("derive", key)
        .put(
            "fallback",
            match fallback {
                ColourFallback::Any => "any",
                ColourFallback::Reject => "reject",
            },
        )
        .into()
}
