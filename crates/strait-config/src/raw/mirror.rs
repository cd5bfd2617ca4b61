//! The raw shape of the `mirror` policy.

use serde::Deserialize;

use super::S;

/// `mirror:` copies of a share of requests sent to a shadow upstream.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMirror {
    pub upstream: Option<S>,
    pub percentage: Option<S>,
    pub max_body: Option<S>,
    pub max_in_flight: Option<S>,
    pub timeout: Option<S>,
}
