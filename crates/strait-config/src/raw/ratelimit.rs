//! The raw shape of the `rate_limit` and `concurrency_limit` policies.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::forms::StrOrList;
use super::S;

/// `rate_limit:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub requests: Option<S>,
    pub per: Option<S>,
    pub burst: Option<S>,
    pub key: Option<Spanned<StrOrList>>,
    pub missing_key: Option<S>,
    pub max_keys: Option<S>,
    pub response_headers: Option<Spanned<bool>>,
    pub store: Option<Spanned<RawStore>>,
}

/// `rate_limit.store:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub redis: Option<Spanned<RawRedis>>,
    pub redis_cluster: Option<Spanned<RawRedis>>,
    pub failure: Option<S>,
    pub prefix: Option<S>,
}

/// `store.redis:` / `store.redis_cluster:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedis {
    pub url: Option<S>,
    pub nodes: Option<Spanned<Vec<S>>>,
    pub username: Option<S>,
    pub password: Option<S>,
    pub ca: Option<S>,
    pub timeout: Option<S>,
}

/// `concurrency_limit:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConcurrencyLimit {
    pub max: Option<S>,
    pub key: Option<Spanned<StrOrList>>,
    pub missing_key: Option<S>,
    pub max_keys: Option<S>,
}
