//! The live-state registry: state that outlives snapshots (endpoint health and pools, breaker and budget counters, key caches, plugin pools), found by kind and name at compile time, never per request.
//!
//! Each entry is held weakly: it lives while a snapshot (or a request still in flight on one)
//! holds it, so the next compile finds it, and it is freed once nothing uses it. An entry is
//! reused only while its settings are unchanged (the `settings` fingerprint): a changed limit
//! starts from fresh state, an unchanged one keeps its counters across any number of reloads.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    ty: TypeId,
    kind: &'static str,
    name: String,
}

struct Entry {
    settings: u64,
    value: Weak<dyn Any + Send + Sync>,
}

/// Registry of live state shared by successive snapshots.
#[derive(Default)]
pub struct LiveState {
    entries: Mutex<HashMap<Key, Entry>>,
    listener_ids: Mutex<HashMap<String, usize>>,
}

impl LiveState {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of kind `kind` called `name`: the one still in use if its settings
    /// fingerprint equals `settings`, else a new one made by `init`.
    pub fn get_or_insert<T: Any + Send + Sync>(
        &self,
        kind: &'static str,
        name: &str,
        settings: u64,
        init: impl FnOnce() -> T,
    ) -> Arc<T> {
        let key = Key {
            ty: TypeId::of::<T>(),
            kind,
            name: name.to_owned(),
        };
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get(&key) {
            if e.settings == settings {
                if let Some(v) = e.value.upgrade().and_then(|v| v.downcast::<T>().ok()) {
                    return v;
                }
            }
        }
        // Forget entries nothing holds any more, so churn does not grow the map.
        map.retain(|_, e| e.value.strong_count() > 0);
        let v = Arc::new(init());
        let weak: Weak<dyn Any + Send + Sync> = Arc::downgrade(&v) as _;
        map.insert(
            key,
            Entry {
                settings,
                value: weak,
            },
        );
        v
    }

    /// Calls `f` with the name of every entry of type `T` and `kind` still in use.
    pub fn in_use<T: Any + Send + Sync>(&self, kind: &'static str, mut f: impl FnMut(&str)) {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (k, e) in map.iter() {
            if k.ty == TypeId::of::<T>() && k.kind == kind && e.value.strong_count() > 0 {
                f(&k.name);
            }
        }
    }

    /// A small stable id for a listener name, used to index snapshots without string lookups.
    pub fn listener_id(&self, name: &str) -> usize {
        let mut map = self.listener_ids.lock().unwrap_or_else(|e| e.into_inner());
        let next = map.len();
        *map.entry(name.to_string()).or_insert(next)
    }
}

/// A fingerprint of validated settings (their `Debug` form), for [`LiveState::get_or_insert`].
///
/// Compile-time only; `Debug` covers every field, including floats that cannot be hashed.
pub fn fingerprint(settings: &impl Debug) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{settings:?}").hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn state_is_shared_while_held_and_settings_unchanged() {
        let live = LiveState::new();
        let a = live.get_or_insert("limit", "l", 1, || AtomicU32::new(0));
        a.fetch_add(5, Ordering::Relaxed);
        let b = live.get_or_insert("limit", "l", 1, || AtomicU32::new(0));
        assert_eq!(b.load(Ordering::Relaxed), 5);
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn changed_settings_or_a_dropped_state_start_fresh() {
        let live = LiveState::new();
        let a = live.get_or_insert("limit", "l", 1, || AtomicU32::new(7));
        let changed = live.get_or_insert("limit", "l", 2, || AtomicU32::new(0));
        assert_eq!(changed.load(Ordering::Relaxed), 0);
        drop((a, changed));
        let again = live.get_or_insert("limit", "l", 2, || AtomicU32::new(1));
        assert_eq!(again.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn kinds_names_and_types_are_separate_and_in_use_lists_held_entries() {
        let live = LiveState::new();
        let a = live.get_or_insert("k1", "n", 0, || 1u32);
        let b = live.get_or_insert("k2", "n", 0, || 2u32);
        let c = live.get_or_insert("k1", "n", 0, || String::from("s"));
        assert_eq!((*a, *b, c.as_str()), (1, 2, "s"));
        let mut names = Vec::new();
        live.in_use::<u32>("k1", |n| names.push(n.to_string()));
        assert_eq!(names, ["n"]);
        drop(a);
        names.clear();
        live.in_use::<u32>("k1", |n| names.push(n.to_string()));
        assert!(names.is_empty());
    }

    #[test]
    fn state_survives_a_hundred_recompiles_with_unchanged_settings() {
        let live = LiveState::new();
        let settings = fingerprint(&("rate", 100, 1.5f64));
        let mut held = live.get_or_insert("limit", "api", settings, || AtomicU32::new(0));
        for _ in 0..100 {
            held.fetch_add(1, Ordering::Relaxed);
            // A recompile fetches the state while the previous snapshot still holds it.
            let next = live.get_or_insert("limit", "api", settings, || AtomicU32::new(0));
            held = next;
        }
        assert_eq!(held.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn listener_ids_are_stable() {
        let live = LiveState::new();
        assert_eq!(live.listener_id("a"), 0);
        assert_eq!(live.listener_id("b"), 1);
        assert_eq!(live.listener_id("a"), 0);
    }
}
