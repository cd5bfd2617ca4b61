//! The effective form of the access policies and of a listener's `client_address`.

use super::node::{int, M};
use super::Node;
use crate::access::*;

fn blocks(list: &[Cidr]) -> Node {
    Node::List(list.iter().map(|c| Node::Str(c.to_string())).collect())
}

pub(super) fn ip_rules(p: &IpRulesPolicy) -> Node {
    let IpRulesPolicy { allow, deny } = p;
    // An empty `allow` means "not set" (written empty it is an error), so it is left out.
    M::new()
        .opt("allow", (!allow.is_empty()).then(|| blocks(allow)))
        .put("deny", blocks(deny))
        .into()
}

pub(super) fn client_cert(p: &ClientCertPolicy) -> Node {
    let ClientCertPolicy {
        allow,
        allow_subjects,
    } = p;
    let list = |l: &[String]| Node::List(l.iter().map(|s| Node::Str(s.clone())).collect());
    M::new()
        .put("allow", list(allow))
        .put("allow_subjects", list(allow_subjects))
        .into()
}

pub(super) fn request_limits(p: &RequestLimitsPolicy) -> Node {
    let RequestLimitsPolicy { max_body, timeout } = p;
    M::new()
        .put("max_body", int(*max_body))
        .opt("timeout", *timeout)
        .into()
}

pub(super) fn cors(p: &CorsPolicy) -> Node {
    let CorsPolicy {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        allow_credentials,
        max_age,
    } = p;
    M::new()
        .put("allow_origins", allow_origins.clone())
        .put("allow_methods", allow_methods.clone())
        .put("allow_headers", allow_headers.clone())
        .put("expose_headers", expose_headers.clone())
        .put("allow_credentials", *allow_credentials)
        .opt("max_age", *max_age)
        .into()
}

pub(super) fn client_address(c: &ClientAddress) -> Node {
    let ClientAddress {
        trusted_proxies,
        header,
    } = c;
    M::new()
        .put("trusted_proxies", blocks(trusted_proxies))
        .put("header", header.as_str())
        .into()
}
