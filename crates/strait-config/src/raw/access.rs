//! The raw shape of the access policies (`ip_rules`, `request_limits`, `cors`) and a listener's `client_address`.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::S;

/// `ip_rules:` CIDR allow and deny lists.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIpRules {
    pub allow: Option<Spanned<Vec<S>>>,
    pub deny: Option<Spanned<Vec<S>>>,
}

/// `client_cert:` the verified client certificates allowed (mutual TLS).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientCert {
    pub allow: Option<Spanned<Vec<S>>>,
    pub allow_subjects: Option<Spanned<Vec<S>>>,
}

/// `request_limits:` per-route body cap and deadline.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequestLimits {
    pub max_body: Option<S>,
    pub timeout: Option<S>,
}

/// `cors:` settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCors {
    pub allow_origins: Option<Spanned<Vec<S>>>,
    pub allow_methods: Option<Spanned<Vec<S>>>,
    pub allow_headers: Option<Spanned<Vec<S>>>,
    pub expose_headers: Option<Spanned<Vec<S>>>,
    pub allow_credentials: Option<Spanned<bool>>,
    pub max_age: Option<S>,
}

/// `listeners[].client_address:` whose forwarded-for header to believe.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientAddress {
    pub trusted_proxies: Option<Spanned<Vec<S>>>,
    pub header: Option<S>,
}
