//! Validated settings of the `wasm` policy: the plugin module, the configuration bytes handed to it, its failure mode and its sandbox limits.

use std::path::PathBuf;
use std::time::Duration;

use crate::diag::Pos;

/// `wasm:` a proxy-wasm plugin run as a filter.
#[derive(Debug, Clone, PartialEq)]
pub struct WasmPolicy {
    /// The `.wasm` file (resolved against the config's directory).
    pub module: PathBuf,
    /// Where `module` is written, for errors found when the module is compiled.
    pub module_at: Pos,
    /// The plugin configuration as written (`None` = empty), handed over as JSON, or as
    /// written when it is a string.
    pub config: Option<serde_json::Value>,
    /// On a plugin failure, skip the plugin (`open`) instead of answering 500 (`closed`, the default).
    pub fail_open: bool,
    /// Memory cap per instance (default 64 MiB).
    pub memory_limit: u64,
    /// CPU deadline per callback (default 10 ms).
    pub cpu_limit: Duration,
    /// Largest body the plugin may hold back at once (default 1 MiB).
    pub max_body: u64,
    /// The root id the plugin is told (`plugin_root_id`, default empty).
    pub root_id: String,
}

impl WasmPolicy {
    /// The configuration bytes the plugin reads: a string as written, anything else as JSON.
    pub fn config_bytes(&self) -> Vec<u8> {
        match &self.config {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(s)) => s.clone().into_bytes(),
            Some(v) => v.to_string().into_bytes(),
        }
    }
}
