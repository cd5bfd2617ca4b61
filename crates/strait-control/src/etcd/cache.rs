//! The disk cache of the last valid configuration read from etcd, from which an instance starts while etcd is down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Kv;
use crate::provider::write_atomically;

/// The cache file's contents: the raw values, so an instance restores exactly what it had.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Cache {
    /// The prefix the values were read under; a cache for another prefix is not used.
    pub prefix: String,
    /// The etcd revision the values reflect.
    pub revision: i64,
    /// Values by key relative to the prefix.
    pub keys: BTreeMap<String, String>,
}

/// Where the cache goes when `config.cache` is not set: beside the bootstrap file, named after it.
pub fn default_cache_path(bootstrap_path: &Path) -> PathBuf {
    let name = bootstrap_path
        .file_name()
        .map_or_else(|| "strait".into(), |n| n.to_string_lossy().into_owned());
    bootstrap_path.with_file_name(format!(".{name}.etcd-cache.json"))
}

/// The values and revision in the cache at `path`, if it is readable and for `prefix`.
pub(super) fn read_cache(path: &Path, prefix: &str) -> Result<(BTreeMap<String, Kv>, i64), String> {
    // Bounded like a config file: the cache holds one.
    let text = strait_config::read_file(path).map_err(|e| e.to_string())?;
    let cache: Cache =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if cache.prefix != prefix {
        return Err(format!(
            "{} holds prefix {}, not {prefix}",
            path.display(),
            cache.prefix
        ));
    }
    let keys = cache
        .keys
        .into_iter()
        .map(|(k, value)| {
            (
                k,
                Kv {
                    value,
                    mod_revision: 0,
                },
            )
        })
        .collect();
    Ok((keys, cache.revision))
}

/// Writes the cache atomically; a failure is logged, never fatal (serving goes on).
pub(super) fn write_cache(path: &Path, cache: &Cache) {
    let result = (|| {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = serde_json::to_vec_pretty(cache).map_err(std::io::Error::other)?;
        write_atomically(path, &bytes)
    })();
    if let Err(e) = result {
        tracing::warn!(cache = %path.display(), error = %e, "cannot write the etcd configuration cache");
    }
}
