//! The raw shape of the `jwt` policy.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Pairs, StrOrList, S};

/// `jwt:` token verification.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    pub algorithms: Option<Spanned<Vec<S>>>,
    pub jwks: Option<Spanned<RawJwks>>,
    pub keys: Option<Spanned<Vec<Spanned<RawJwtKey>>>>,
    pub issuer: Option<Spanned<StrOrList>>,
    pub audiences: Option<Spanned<StrOrList>>,
    pub leeway: Option<S>,
    pub required_claims: Option<Spanned<Vec<S>>>,
    pub scopes: Option<Spanned<Vec<S>>>,
    pub token: Option<Spanned<RawJwtToken>>,
    pub max_token_size: Option<S>,
    pub forward_claims: Option<Spanned<Pairs<S>>>,
    pub strip_token: Option<Spanned<bool>>,
    pub consumer_claim: Option<S>,
    pub realm: Option<S>,
    pub cache_size: Option<S>,
}

/// `jwt.jwks:` a key set served by a named upstream.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwks {
    pub upstream: Option<S>,
    pub path: Option<S>,
    pub refresh: Option<S>,
    pub cooldown: Option<S>,
    pub timeout: Option<S>,
}

/// One of `jwt.keys:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwtKey {
    pub kid: Option<S>,
    pub pem: Option<S>,
    pub pem_file: Option<S>,
    pub secret: Option<S>,
    pub secret_file: Option<S>,
}

/// `jwt.token:` where the token is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwtToken {
    pub header: Option<S>,
    pub prefix: Option<S>,
    pub query: Option<S>,
    pub cookie: Option<S>,
}
