//! The etcd provider: the configuration of a fleet as keys under a prefix, watched, cached on disk, written with optimistic concurrency.
//!
//! One task on the Tokio runtime owns the etcd client. It reads every key under the prefix
//! (a range), then watches the prefix from the revision after the one it read. Each batch of
//! events updates the in-memory [`State`], reassembles the document (see [`layout`]) and
//! notifies the control plane, which calls [`Provider::load`]: that only reads the state, so
//! it is cheap and works while etcd is unreachable (the last document stays). When the watch
//! breaks, the task reconnects with backoff and resumes from the last revision it applied
//! plus one, so no event is missed or applied twice; if that revision was compacted away, it
//! reads the whole prefix again. Every valid document is also written to a cache file, from
//! which an instance starts when etcd cannot be reached at start.
//!
//! Rollout state is shared by the fleet under `<prefix>.state/` (outside the watched prefix),
//! so one instance leads each rollout: see `etcd/state.rs` and the rollout controller.
//!
//! Writes ([`Provider::store`]) go out as one etcd transaction that compares every touched
//! key's `mod_revision` with the one in the document the control plane last loaded, so a
//! concurrent change by another instance fails the write (`conflict: ...`) instead of being
//! overwritten.

mod cache;
pub mod client;
pub mod layout;
pub mod proto;
mod read;
mod remote;
mod state;
#[cfg(test)]
mod tests;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strait_config::provider::{Bootstrap, EtcdSettings};
use strait_config::Errors;
use tokio::sync::mpsc;

use crate::provider::{Document, Provider, StateStore};
use layout::Values;

pub use cache::default_cache_path;
pub use client::Client;
pub use read::{read_served, Served};
pub use remote::{client, push, read};
pub use state::state_prefix;

use cache::{read_cache, write_cache, Cache};
use remote::range;
#[cfg(test)]
use write::plan;

/// How long one etcd request (range, transaction) may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest range or watch response read: a whole configuration (at most
/// `strait_config::MAX_CONFIG_BYTES`) plus per-key metadata, where gRPC's default is 4 MiB.
const MAX_MESSAGE_BYTES: usize = 2 * strait_config::MAX_CONFIG_BYTES;
/// Reconnection backoff: starts small so a leader change costs little, capped so a long
/// outage costs a request every few seconds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(3);
/// A watch that lived this long resets the backoff.
const WATCH_HEALTHY: Duration = Duration::from_secs(5);

/// A key's value and the revision it was last modified at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kv {
    value: String,
    mod_revision: i64,
}

/// The configuration under the prefix as this instance last saw it.
struct State {
    /// Keys relative to the prefix.
    keys: BTreeMap<String, Kv>,
    /// The etcd revision the keys reflect; the watch resumes after it.
    revision: i64,
    /// The assembled document, or why it is invalid.
    current: Result<Document, Errors>,
    /// The keys as of the last valid document the control plane loaded, or of its last
    /// write: writes compare against these, so a change made since by someone else is a conflict.
    base: BTreeMap<String, Kv>,
    /// The cached document an instance starts on when etcd holds an invalid configuration;
    /// loads return it until the keys change.
    startup: Option<Document>,
}

/// Configuration from etcd (see the module docs).
pub struct EtcdProvider {
    inner: Arc<Inner>,
    rx: Mutex<Option<mpsc::Receiver<()>>>,
}

struct Inner {
    settings: EtcdSettings,
    bootstrap: Bootstrap,
    bootstrap_source: String,
    base_dir: PathBuf,
    cache: PathBuf,
    state: Mutex<State>,
    client: Mutex<Option<Client>>,
    changed: mpsc::Sender<()>,
    runtime: tokio::runtime::Handle,
    /// The revision last written to the cache; also serializes cache writes.
    cached: Arc<Mutex<i64>>,
}
// === impl EtcdProvider ===

impl EtcdProvider {
    /// Connects to etcd and reads the prefix; when etcd does not answer within
    /// `dial_timeout`, starts from the cache file (and keeps connecting in the background).
    /// Must be called on the Tokio runtime that will run the watch.
    pub async fn connect(bootstrap: Bootstrap, bootstrap_path: &Path) -> Result<Arc<Self>, String> {
        let settings = bootstrap.etcd.clone();
        let cache = settings
            .cache
            .clone()
            .unwrap_or_else(|| default_cache_path(bootstrap_path));
        let base_dir = read::base_dir_of(bootstrap_path);
        let (tx, rx) = mpsc::channel(1);
        let inner = Arc::new(Inner {
            settings,
            bootstrap,
            bootstrap_source: bootstrap_path.display().to_string(),
            base_dir,
            cache,
            state: Mutex::new(State {
                keys: BTreeMap::new(),
                revision: 0,
                current: Err(crate::provider::doc_error(
                    "etcd",
                    "the configuration has not been read from etcd yet",
                )),
                base: BTreeMap::new(),
                startup: None,
            }),
            client: Mutex::new(None),
            changed: tx,
            runtime: tokio::runtime::Handle::current(),
            cached: Arc::new(Mutex::new(-1)),
        });

        let dial = inner.settings.dial_timeout;
        let first = tokio::time::timeout(dial, async {
            let client = client(&inner.settings).await?;
            let (keys, revision) = range(&client, &inner.settings.prefix).await?;
            Ok::<_, String>((client, keys, revision))
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {dial:?}")));
        let need_range = match first {
            Ok((client, keys, revision)) => {
                *lock(&inner.client) = Some(client);
                inner.replace(keys, revision);
                inner.fall_back_if_invalid();
                false
            }
            Err(e) => {
                let endpoints = inner.settings.endpoints.join(",");
                let cached = read_cache(&inner.cache, &inner.settings.prefix).map_err(|c| {
                    format!("etcd at {endpoints} is unreachable ({e}) and there is no usable cache: {c}")
                })?;
                tracing::warn!(
                    endpoints = %endpoints, error = %e, cache = %inner.cache.display(),
                    "etcd is unreachable; serving the cached configuration until it answers"
                );
                inner.replace(cached.0, cached.1);
                true
            }
        };
        let task = inner.clone();
        tokio::spawn(async move { task.run(need_range).await });
        Ok(Arc::new(EtcdProvider {
            inner,
            rx: Mutex::new(Some(rx)),
        }))
    }

    /// The etcd revision the current document reflects.
    pub fn revision(&self) -> i64 {
        lock(&self.inner.state).revision
    }
}

impl Provider for EtcdProvider {
    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn load(&self) -> Result<Document, Errors> {
        let mut state = lock(&self.inner.state);
        // Writes compare against the document the control plane runs. An invalid one is
        // not run, so it does not become the base: a write never silently reverts a change
        // it was not built on.
        if state.current.is_ok() {
            state.base = state.keys.clone();
        } else if let Some(cached) = &state.startup {
            return Ok(cached.clone());
        }
        state.current.clone()
    }

    fn store(&self, text: &str) -> Result<(), String> {
        let desired = layout::split_shared(text, &self.inner.bootstrap.text)?;
        let inner = self.inner.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        // The client is async; run the transaction on the runtime and wait for it here
        // (callers run `store` off the runtime's worker threads).
        self.inner.runtime.spawn(async move {
            let _ = tx.send(inner.store(desired).await);
        });
        rx.recv_timeout(REQUEST_TIMEOUT + Duration::from_secs(1))
            .unwrap_or_else(|_| {
                Err(write::outcome_unknown(
                    "etcd did not answer the write in time",
                ))
            })
    }

    fn subscribe(&self) -> Option<mpsc::Receiver<()>> {
        lock(&self.rx).take()
    }

    /// Shared by every instance on the prefix, so the fleet runs one rollout (see `etcd/state.rs`).
    fn state_store(&self) -> Box<dyn StateStore> {
        Box::new(state::EtcdState {
            inner: self.inner.clone(),
            prefix: state_prefix(&self.inner.settings.prefix),
        })
    }
}

// === impl Inner ===

fn values_of(keys: &BTreeMap<String, Kv>) -> Values {
    keys.iter()
        .map(|(k, kv)| (k.clone(), kv.value.clone()))
        .collect()
}

impl Inner {
    /// Replaces every key (after a range or from the cache) and reassembles.
    fn replace(&self, keys: BTreeMap<String, Kv>, revision: i64) {
        let mut state = lock(&self.state);
        state.keys = keys;
        state.revision = revision;
        state.startup = None;
        self.reassemble(&mut state);
    }

    /// The validated document `values` assemble into (see [`read::validate`]).
    fn assemble(&self, values: &Values) -> Result<Document, Errors> {
        read::validate(
            &self.bootstrap,
            &self.bootstrap_source,
            &self.base_dir,
            values,
        )
        .map(|v| v.document)
    }

    /// At start, when etcd holds an invalid configuration, the cached one (if any) is served
    /// instead, as when etcd is down; the next valid change in etcd replaces it.
    fn fall_back_if_invalid(&self) {
        let mut state = lock(&self.state);
        let Err(errors) = &state.current else {
            return;
        };
        let Ok((keys, _)) = read_cache(&self.cache, &self.settings.prefix) else {
            return;
        };
        let Ok(cached) = self.assemble(&values_of(&keys)) else {
            return;
        };
        for e in &errors.0 {
            tracing::error!(error = %e, "invalid configuration in etcd");
        }
        tracing::warn!(
            cache = %self.cache.display(),
            "etcd holds an invalid configuration; serving the cached configuration until it is fixed"
        );
        state.startup = Some(cached);
    }

    /// Rebuilds the document from the keys; a valid one is written to the cache.
    fn reassemble(&self, state: &mut State) {
        let values = values_of(&state.keys);
        state.current = self.assemble(&values);
        if state.current.is_err() {
            return;
        }
        let cache = Cache {
            prefix: self.settings.prefix.clone(),
            revision: state.revision,
            keys: values,
        };
        let path = self.cache.clone();
        let cached = self.cached.clone();
        // Off the watch task: the write syncs to disk.
        self.runtime.spawn_blocking(move || {
            let mut last = lock(&cached);
            // Writes may run out of order; an older document never replaces a newer one.
            if cache.revision >= *last {
                write_cache(&path, &cache);
                *last = cache.revision;
            }
        });
    }

    /// Applies one watch batch; returns whether anything changed.
    fn apply(&self, events: &[proto::Event]) -> bool {
        let prefix = self.settings.prefix.as_bytes();
        let mut state = lock(&self.state);
        let mut changed = false;
        for ev in events {
            let Some(kv) = &ev.kv else { continue };
            let Some(rel) = kv.key.strip_prefix(prefix) else {
                continue;
            };
            let rel = String::from_utf8_lossy(rel).into_owned();
            state.revision = state.revision.max(kv.mod_revision);
            match ev.r#type {
                proto::EVENT_PUT => {
                    let value = String::from_utf8_lossy(&kv.value).into_owned();
                    state.keys.insert(
                        rel,
                        Kv {
                            value,
                            mod_revision: kv.mod_revision,
                        },
                    );
                }
                proto::EVENT_DELETE => {
                    state.keys.remove(&rel);
                }
                // No other event type exists; an unknown one changes nothing.
                _ => continue,
            }
            changed = true;
        }
        if changed {
            state.startup = None;
            self.reassemble(&mut state);
        }
        changed
    }

    fn notify(&self) {
        // A full channel already means "reload pending": bursts coalesce.
        let _ = self.changed.try_send(());
    }

    /// The background task: keep a client, range when needed, watch, resume after breaks.
    async fn run(self: Arc<Self>, mut need_range: bool) {
        let prefix = self.settings.prefix.clone();
        let mut backoff = BACKOFF_MIN;
        loop {
            let existing = lock(&self.client).clone();
            let c = match existing {
                Some(c) => c,
                None => match client(&self.settings).await {
                    Ok(c) => {
                        *lock(&self.client) = Some(c.clone());
                        c
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "cannot connect to etcd");
                        backoff = sleep_backoff(backoff).await;
                        continue;
                    }
                },
            };
            if need_range {
                match range(&c, &prefix).await {
                    Ok((keys, revision)) => {
                        tracing::info!(revision, "read the configuration from etcd");
                        self.replace(keys, revision);
                        self.notify();
                        need_range = false;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "cannot read the configuration from etcd");
                        backoff = sleep_backoff(backoff).await;
                        continue;
                    }
                }
            }
            let from = lock(&self.state).revision + 1;
            let create = proto::WatchCreateRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: proto::prefix_end(prefix.as_bytes()),
                start_revision: from,
                progress_notify: true,
            };
            let mut stream = match tokio::time::timeout(REQUEST_TIMEOUT, c.watch(create)).await {
                Ok(Ok(s)) => s,
                Ok(Err(s)) => {
                    let e = client::describe(&s);
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot watch etcd");
                    backoff = sleep_backoff(backoff).await;
                    continue;
                }
                Err(_) => {
                    tracing::warn!(retry_in = ?backoff, "etcd did not accept the watch in time");
                    backoff = sleep_backoff(backoff).await;
                    continue;
                }
            };
            tracing::debug!(from, "watching etcd");
            let watching = tokio::time::Instant::now();
            loop {
                match stream.message().await {
                    Ok(Some(resp)) => {
                        if resp.compact_revision > 0 {
                            tracing::warn!(
                                compacted = resp.compact_revision,
                                "etcd compacted past the last revision seen; reading the prefix again"
                            );
                            need_range = true;
                            break;
                        }
                        if resp.canceled {
                            tracing::warn!(
                                reason = resp.cancel_reason,
                                "etcd canceled the watch; resuming"
                            );
                            break;
                        }
                        if self.apply(&resp.events) {
                            self.notify();
                        }
                    }
                    Ok(None) => {
                        tracing::warn!("etcd closed the watch; resuming");
                        break;
                    }
                    Err(s)
                        if matches!(
                            s.code(),
                            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
                        ) =>
                    {
                        // A catch-up batch over the message limit would fail the same way on
                        // every resume; the prefix itself is bounded by the config size.
                        let e = client::describe(&s);
                        tracing::warn!(error = %e, "etcd watch response too large; reading the prefix again");
                        need_range = true;
                        break;
                    }
                    Err(s) => {
                        let e = client::describe(&s);
                        tracing::warn!(error = %e, "etcd watch failed; resuming");
                        break;
                    }
                }
            }
            // A watch that lasted was a success: retry quickly. One that keeps failing at once
            // (no leader during an election) backs off instead of spinning.
            if watching.elapsed() > WATCH_HEALTHY {
                backoff = BACKOFF_MIN;
            }
            backoff = sleep_backoff(backoff).await;
        }
    }
}

async fn sleep_backoff(current: Duration) -> Duration {
    tokio::time::sleep(current).await;
    (current * 2).min(BACKOFF_MAX)
}
/// Locks `m`, recovering the data if a panicking thread poisoned it (the state stays usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
