//! The raw shape of the `wasm` policy (a proxy-wasm plugin).

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::S;

/// `wasm:` a plugin module, its configuration and its limits.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWasm {
    pub module: Option<S>,
    /// Any YAML: handed to the plugin as JSON (a string is handed over as written).
    pub config: Option<Spanned<serde_json::Value>>,
    pub fail: Option<S>,
    pub memory_limit: Option<S>,
    pub cpu_limit: Option<S>,
    pub max_body: Option<S>,
    pub root_id: Option<S>,
}
