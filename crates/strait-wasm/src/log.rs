//! Plugin log lines (`proxy_log`, stdout and stderr) as tracing events under the `strait::wasm` target, with the policy's name, at the plugin's level.

/// Logs `msg` from `policy`'s plugin at proxy-wasm `level` (0 trace .. 5 critical).
pub fn plugin_log(policy: &str, level: i32, msg: &str) {
    match level {
        0 => tracing::trace!(target: "strait::wasm", policy, "{msg}"),
        1 => tracing::debug!(target: "strait::wasm", policy, "{msg}"),
        2 => tracing::info!(target: "strait::wasm", policy, "{msg}"),
        3 => tracing::warn!(target: "strait::wasm", policy, "{msg}"),
        _ => tracing::error!(target: "strait::wasm", policy, "{msg}"),
    }
}

/// The most detailed proxy-wasm level that would be logged now (so plugins skip the rest).
pub fn current_level() -> i32 {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::TRACE => 0,
        LevelFilter::DEBUG => 1,
        LevelFilter::INFO => 2,
        LevelFilter::WARN => 3,
        LevelFilter::ERROR => 4,
        _ => 5,
    }
}
