//! The process's one wasmtime engine (pooling allocator, epoch interruption) with its epoch ticker, and modules compiled once per content hash.
//!
//! Compiling runs in the control plane while a snapshot is built, never on the request path;
//! a module whose bytes did not change is not compiled again (the cache holds it while a
//! plugin uses it), and with a cache directory the compiled artefact is kept on disk too,
//! so a restart loads it instead of compiling (see `cache.rs`). Each callback's CPU deadline
//! is counted in epochs: a thread advances the epoch every [`epoch_tick`], and a store traps
//! once its deadline passes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};

use crate::cache::{self, CacheResult, DiskCache};
use crate::metrics::PluginMetrics;
use crate::shared::{SharedData, SharedQueues};
use crate::Error;

/// Finest epoch tick, what a `cpu_limit` of 4 ms or less gets.
pub const MIN_EPOCH_TICK: Duration = Duration::from_millis(1);

/// Coarsest epoch tick, the ticker's period before any plugin asked for a finer one.
pub const MAX_EPOCH_TICK: Duration = Duration::from_millis(25);

/// The current epoch tick in nanoseconds (process-wide, like the engine).
static EPOCH_TICK_NS: AtomicU64 = AtomicU64::new(MAX_EPOCH_TICK.as_nanos() as u64);

/// The ticker thread, woken when the tick gets finer so it does not finish a coarse sleep first.
static TICKER: OnceLock<std::thread::Thread> = OnceLock::new();

/// How often the epoch advances now: the granularity of the per-callback CPU deadline.
pub fn epoch_tick() -> Duration {
    Duration::from_nanos(EPOCH_TICK_NS.load(Ordering::Relaxed))
}

/// The tick `cpu_limit` needs: a quarter of it, so a deadline fires within 25 % past the limit,
/// between [`MIN_EPOCH_TICK`] and [`MAX_EPOCH_TICK`].
pub fn tick_for(cpu_limit: Duration) -> Duration {
    (cpu_limit / 4).clamp(MIN_EPOCH_TICK, MAX_EPOCH_TICK)
}

/// Makes the epoch tick at least as fine as `cpu_limit` needs.
///
/// The ticker wakes the worker's core once per tick, so it ticks no finer than the smallest
/// limit of any plugin loaded asks (a 1 ms tick cost a saturated proxy's core about 1,000
/// preemptions a second for a 10 ms limit). The tick only gets finer, never coarser again: a
/// callback running while it changes may be cut up to that many times earlier, but no deadline
/// ever stretches.
pub fn fit_epoch_tick(cpu_limit: Duration) {
    let want = tick_for(cpu_limit).as_nanos() as u64;
    if EPOCH_TICK_NS.fetch_min(want, Ordering::Relaxed) > want {
        if let Some(t) = TICKER.get() {
            t.unpark();
        }
    }
}

/// Epochs a callback may run for under `cpu_limit` at the current tick: one more than the
/// limit holds, since the current epoch may be about to end.
pub fn deadline_ticks(cpu_limit: Duration) -> u64 {
    ticks_for(cpu_limit, EPOCH_TICK_NS.load(Ordering::Relaxed))
}

fn ticks_for(cpu_limit: Duration, tick_ns: u64) -> u64 {
    (cpu_limit.as_nanos() as u64)
        .div_ceil(tick_ns.max(1))
        .max(1)
        + 1
}

/// Largest memory a plugin may be given (each pool slot reserves this much address space).
pub const MAX_MEMORY_LIMIT: usize = 256 << 20;

/// Most instances alive at once across all plugins (one per request in flight through a
/// plugin, plus idle and tick instances); a request beyond it fails as the policy says.
pub const MAX_INSTANCES: u32 = 1000;

/// The engine, shared by every plugin of the process.
pub struct Runtime {
    engine: Engine,
    modules: Mutex<HashMap<[u8; 32], Weak<CompiledModule>>>,
    /// Shared data of every plugin (kept across reloads).
    pub shared_data: SharedData,
    /// Shared queues of every plugin.
    pub queues: SharedQueues,
    /// Metrics plugins defined.
    pub metrics: PluginMetrics,
}

/// The process's runtime, made on first use.
pub fn runtime() -> Result<Arc<Runtime>, Error> {
    static RUNTIME: OnceLock<Result<Arc<Runtime>, Error>> = OnceLock::new();
    RUNTIME.get_or_init(Runtime::new).clone()
}

/// A module compiled from some bytes, shared by every plugin that loads the same bytes.
pub struct CompiledModule {
    /// The compiled module.
    pub module: Module,
    /// SHA-256 of the bytes it came from.
    pub digest: [u8; 32],
    /// The ABI version its marker export names.
    pub abi: &'static str,
}

impl Runtime {
    /// The engine, configured for plugins, with its epoch ticker running.
    pub fn new() -> Result<Arc<Self>, Error> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(MAX_INSTANCES)
            .total_memories(MAX_INSTANCES)
            .total_tables(MAX_INSTANCES)
            .max_memory_size(MAX_MEMORY_LIMIT)
            // Committed pages are zeroed and kept warm for the next instance in the slot.
            .linear_memory_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            // A slot reserves exactly the largest memory; bounds checks replace a 4 GiB guard,
            // so a thousand slots fit in address space.
            .memory_reservation(MAX_MEMORY_LIMIT as u64)
            .memory_guard_size(64 << 10)
            .memory_may_move(false);
        let engine = Engine::new(&config).map_err(|e| Error::Engine(e.to_string()))?;
        let weak = engine.weak();
        // Ends once the engine is gone. `park_timeout` rather than `sleep`, so a finer tick
        // takes effect at once (`fit_epoch_tick` unparks it); the epoch still only advances
        // once a whole tick has passed, so an early wake-up never cuts a deadline short.
        let ticker = std::thread::Builder::new()
            .name("strait-wasm-epoch".into())
            .spawn(move || {
                let mut last = Instant::now();
                loop {
                    let tick = epoch_tick();
                    let waited = last.elapsed();
                    if waited < tick {
                        std::thread::park_timeout(tick - waited);
                        continue;
                    }
                    last = Instant::now();
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => return,
                    }
                }
            })
            .map_err(|e| Error::Engine(e.to_string()))?;
        // Only the first engine's ticker is woken early; tests that make several engines get
        // the others' ticks at the coarser period until they next wake.
        let _ = TICKER.set(ticker.thread().clone());
        Ok(Arc::new(Runtime {
            engine,
            modules: Mutex::new(HashMap::new()),
            shared_data: SharedData::default(),
            queues: SharedQueues::default(),
            metrics: PluginMetrics::default(),
        }))
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `bytes` compiled, or the module compiled earlier from the same bytes.
    pub fn compile(&self, bytes: &[u8]) -> Result<Arc<CompiledModule>, Error> {
        self.compile_cached(bytes, None).map(|(m, _)| m)
    }

    /// `bytes` compiled, or the module compiled earlier from the same bytes: from memory
    /// while a plugin holds it, else from the disk cache in `cache_dir` (when given), else
    /// compiled now (and written there). The second value says what the disk cache did;
    /// `None` when it was not asked (no directory, or the module was in memory).
    pub fn compile_cached(
        &self,
        bytes: &[u8],
        cache_dir: Option<&Path>,
    ) -> Result<(Arc<CompiledModule>, Option<CacheResult>), Error> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(m) = self.cached(&digest) {
            return Ok((m, None));
        }
        // Compiled outside the lock: another plugin's module need not wait for this one.
        let (module, result) = match cache_dir {
            None => (self.compile_now(bytes)?, None),
            Some(dir) => {
                let (m, r) = self.compile_via_disk(bytes, &digest, dir)?;
                (m, Some(r))
            }
        };
        let abi = abi_of(&module)?;
        let compiled = Arc::new(CompiledModule {
            module,
            digest,
            abi,
        });
        let mut map = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, m| m.strong_count() > 0);
        map.insert(digest, Arc::downgrade(&compiled));
        Ok((compiled, result))
    }

    fn compile_now(&self, bytes: &[u8]) -> Result<Module, Error> {
        Module::new(&self.engine, bytes).map_err(|e| Error::Compile(e.to_string()))
    }

    /// The module from its disk cache entry, or compiled and stored. A cache that cannot be
    /// used is logged and counted, never an error of the plugin: compiling still works.
    fn compile_via_disk(
        &self,
        bytes: &[u8],
        digest: &[u8; 32],
        dir: &Path,
    ) -> Result<(Module, CacheResult), Error> {
        let disk = match DiskCache::open(dir) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "wasm module cache unusable; compiling");
                return Ok((self.compile_now(bytes)?, CacheResult::Error));
            }
        };
        let key = cache::key(&self.engine, digest);
        let mut result = CacheResult::Miss;
        match disk.load(&self.engine, &key) {
            Ok(Some(m)) => return Ok((m, CacheResult::Hit)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "wasm module cache entry unusable; compiling");
                result = CacheResult::Error;
            }
        }
        let module = self.compile_now(bytes)?;
        if let Err(e) = disk.store(&key, &module) {
            tracing::warn!(error = %e, "wasm module cache entry not written");
            result = CacheResult::Error;
        }
        Ok((module, result))
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Arc<CompiledModule>> {
        let map = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        map.get(digest).and_then(Weak::upgrade)
    }
}

/// The ABI version a module declares by its marker export.
fn abi_of(module: &Module) -> Result<&'static str, Error> {
    let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
    for (marker, version) in crate::abi::ABI_MARKERS {
        if exports.contains(&marker) {
            return Ok(version);
        }
    }
    if exports.contains(&"proxy_abi_version_0_1_0") {
        return Err(Error::Compile(
            "proxy-wasm ABI 0.1.0 is not supported (0.2.0 and 0.2.1 are): rebuild the plugin with a current SDK".into(),
        ));
    }
    Err(Error::Compile(
        "not a proxy-wasm module: it exports no proxy_abi_version_0_2_x marker".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_is_a_quarter_of_the_limit_within_bounds() {
        assert_eq!(
            tick_for(Duration::from_millis(10)),
            Duration::from_micros(2500)
        );
        assert_eq!(tick_for(Duration::from_millis(2)), MIN_EPOCH_TICK);
        assert_eq!(tick_for(Duration::from_secs(1)), MAX_EPOCH_TICK);
    }

    #[test]
    fn a_deadline_never_fires_before_the_limit_nor_long_after() {
        for ms in [1u64, 3, 4, 7, 10, 11, 20, 99, 100, 101, 500, 1000] {
            let limit = Duration::from_millis(ms);
            for tick in [MIN_EPOCH_TICK, tick_for(limit), MAX_EPOCH_TICK] {
                let tick = tick.min(tick_for(limit));
                let n = ticks_for(limit, tick.as_nanos() as u64);
                // The first of the n epochs may be nearly over when the callback starts.
                assert!(tick * (n as u32 - 1) >= limit, "{ms} ms at {tick:?}: {n}");
                // With the tick the limit asks for, the cut comes within a quarter past it.
                if tick == tick_for(limit) && limit >= 4 * MIN_EPOCH_TICK {
                    assert!(tick * n as u32 <= limit + limit / 4 + tick, "{ms} ms: {n}");
                }
            }
        }
    }
}
