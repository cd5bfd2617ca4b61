//! Compiles the `wasm` policy: reads and compiles the module (once per content hash, through the disk cache of `server.wasm_cache_dir`), and fetches the plugin from live state by policy name, so a reload that keeps the module bytes and settings keeps its instances, and a changed module or configuration starts a new plugin while requests in flight finish on the old one.

use std::collections::HashMap;
use std::sync::Arc;

use strait_config as cfg;
use strait_core::{live::fingerprint, Filter, UpstreamClient};
use strait_wasm::{Counters, Plugin, Settings, WasmFilter};

use super::policy::PolicyCx;

/// A `wasm` policy's filter.
pub(super) fn wasm(
    name: &str,
    w: &cfg::WasmPolicy,
    cx: &PolicyCx<'_>,
) -> Result<Arc<dyn Filter>, String> {
    let rt = strait_wasm::runtime().map_err(|e| e.to_string())?;
    // Plugin-defined metrics join /metrics once per process.
    cx.live.get_or_insert("wasm_metrics", "", 0, || {
        cx.metrics.register_collector(Box::new(rt.metrics.clone()));
    });
    let bytes = std::fs::read(&w.module)
        .map_err(|e| format!("wasm.module: cannot read {}: {e}", w.module.display()))?;
    let cache_dir = match cx.wasm_cache_dir {
        cfg::WasmCacheDir::Off => None,
        cfg::WasmCacheDir::Dir(d) => Some(d.clone()),
        cfg::WasmCacheDir::Default => strait_wasm::cache::default_dir(),
    };
    let (module, cached) = rt
        .compile_cached(&bytes, cache_dir.as_deref())
        .map_err(|e| e.to_string())?;
    if let Some(r) = cached {
        cx.metrics
            .wasm_module_cache
            .with_label_values(&[r.label()])
            .inc();
    }
    let settings = Settings {
        name: name.to_owned(),
        root_id: w.root_id.clone(),
        config: w.config_bytes().into(),
        memory_limit: w.memory_limit as usize,
        cpu_limit: w.cpu_limit,
        fail_open: w.fail_open,
        max_body: w.max_body as usize,
    };
    let clients: HashMap<String, Arc<dyn UpstreamClient>> = cx
        .upstreams
        .keys()
        .filter_map(|u| Some((u.to_string(), cx.client(u).ok()?)))
        .collect();
    let counters = Counters {
        failures: cx.metrics.wasm_failures.clone(),
        instances: cx.metrics.wasm_instances.clone(),
    };
    let mut error = None;
    let plugin = cx.live.get_or_insert(
        "wasm",
        name,
        fingerprint(&(module.digest, &settings)),
        || match Plugin::new(
            rt.clone(),
            module.clone(),
            settings.clone(),
            clients.clone(),
            counters,
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                error = Some(e);
                None
            }
        },
    );
    match (&*plugin, error) {
        (Some(p), _) => {
            // A kept plugin calls the upstreams of this snapshot.
            p.set_clients(clients);
            Ok(Arc::new(WasmFilter::new(p.clone())))
        }
        (None, Some(e)) => Err(format!("{e} ({})", w.module.display())),
        (None, None) => Err(format!("wasm plugin {name} failed to load")),
    }
}

/// The module files the configuration loads (watched: a changed module reloads).
pub(crate) fn module_files(config: &cfg::Config) -> Vec<std::path::PathBuf> {
    super::policy::every_policy(config)
        .filter_map(|p| match &p.spec {
            cfg::PolicySpec::Wasm(w) => Some(w.module.clone()),
            _ => None,
        })
        .collect()
}
