//! The raw shape of the `colour` policy.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::S;

/// `colour:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawColour {
    pub header: Option<S>,
    pub label: Option<S>,
    pub values: Option<Spanned<Vec<S>>>,
    pub derive: Option<Spanned<RawColourDerive>>,
    pub fallback: Option<S>,
}

/// `colour.derive:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawColourDerive {
    pub key: Option<S>,
}
