//! Choosing the configuration provider at start: an etcd bootstrap file starts the etcd provider.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use strait_config::Bootstrap;
use strait_control::{EtcdProvider, Provider};

/// Reads `path` far enough to tell whether it is an etcd bootstrap (`config: { provider: etcd }`).
/// Prints the diagnostics and returns the exit code when the file cannot be read or is invalid.
pub fn bootstrap_of(path: &Path) -> Result<Option<Bootstrap>, ExitCode> {
    let source = path.display().to_string();
    let result = strait_config::read_file(path).and_then(|text| {
        // A bootstrap file is a config file: its references are expanded too.
        let expanded = strait_config::env::expand_env(&source, &text)?;
        let base = Some(path.parent().unwrap_or(Path::new(".")));
        strait_config::provider::bootstrap(&source, &expanded.text, base).map_err(|mut errors| {
            for d in &mut errors.0 {
                (d.line, d.column) = expanded.source_pos((d.line, d.column));
            }
            errors
        })
    });
    result.map_err(|errors| {
        for d in &errors.0 {
            eprintln!("{d}");
        }
        ExitCode::from(1)
    })
}

/// Connects the etcd provider for the bootstrap file at `path` (falling back to its cache
/// when etcd is unreachable). Runs on the runtime that will serve.
pub async fn etcd_provider(path: &Path, bootstrap: Bootstrap) -> Result<Arc<dyn Provider>, String> {
    let provider = EtcdProvider::connect(bootstrap, path).await?;
    Ok(provider)
}
