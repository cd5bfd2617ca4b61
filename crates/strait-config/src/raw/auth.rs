//! The raw shape of the credential policies: `api_key`, `basic_auth` and `forward_auth`.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::S;

/// `api_key:` keys presented in a header or a query parameter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiKey {
    pub header: Option<S>,
    pub query: Option<S>,
    pub keys: Option<Spanned<Vec<Spanned<RawKey>>>>,
    pub hide_credentials: Option<Spanned<bool>>,
    pub consumer_header: Option<S>,
}

/// One key: `{ consumer, key }` or `{ consumer, sha256 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKey {
    pub consumer: Option<S>,
    pub key: Option<S>,
    pub sha256: Option<S>,
}

/// `basic_auth:` users with password hashes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBasicAuth {
    pub realm: Option<S>,
    pub users: Option<Spanned<Vec<Spanned<RawUser>>>>,
    pub hide_credentials: Option<Spanned<bool>>,
    pub consumer_header: Option<S>,
    pub max_concurrent_verifications: Option<S>,
    pub cache: Option<Spanned<RawCache>>,
}

/// One basic-auth user.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    pub username: Option<S>,
    pub password_hash: Option<S>,
    pub consumer: Option<S>,
}

/// A decision cache: `{ ttl, max_entries, key }` (`key` for forward auth only).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    pub ttl: Option<S>,
    pub max_entries: Option<S>,
    pub key: Option<Spanned<Vec<S>>>,
}

/// `forward_auth:` ask an auth service.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForwardAuth {
    pub upstream: Option<S>,
    pub path: Option<S>,
    pub timeout: Option<S>,
    pub request_headers: Option<Spanned<Vec<S>>>,
    pub response_headers: Option<Spanned<Vec<S>>>,
    pub failure: Option<S>,
    pub failure_status: Option<S>,
    pub max_body: Option<S>,
    pub cache: Option<Spanned<RawCache>>,
}
