//! The local limiter's per-key state: GCRA arrival times in a sharded map bounded in keys, the stalest evicted (and counted) when it is full.
//!
//! Keys are hashes (made with the table's own random `RandomState`), so a request allocates
//! nothing and locks one shard of [`SHARDS`] for a few map operations. A key whose arrival time
//! has passed holds no information (its bucket is full), so such keys are dropped first and
//! free; only when every key of a shard is live are the stalest ones evicted, an eighth of the
//! shard at a time so the scan is paid once per many insertions.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use strait_core::rate::{Gcra, RateDecision};

/// Shards of a table (fewer when the table holds fewer keys).
pub const SHARDS: usize = 64;

/// A hasher for keys that are hashes already.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map from key hashes, hashed no further.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Per-key GCRA state of one rate limit, shared by every snapshot while its settings stay.
pub struct LocalTable {
    shards: Box<[Mutex<IdMap<u64>>]>,
    per_shard: usize,
    hasher: RandomState,
    evicted: AtomicU64,
}

impl LocalTable {
    /// A table for at most `max_keys` keys (at least one per shard).
    pub fn new(max_keys: usize) -> Self {
        let n = SHARDS.min(max_keys.max(1));
        LocalTable {
            shards: (0..n).map(|_| Mutex::new(IdMap::default())).collect(),
            per_shard: max_keys.max(1).div_ceil(n),
            hasher: RandomState::new(),
            evicted: AtomicU64::new(0),
        }
    }

    /// The hasher keys are made with ([`super::LimitKey::hash`]).
    pub fn hasher(&self) -> &RandomState {
        &self.hasher
    }

    /// Decides a request of `key` at `now` (µs); returns the decision and how many live keys
    /// had to be evicted to make room for it.
    pub fn check(&self, key: u64, gcra: &Gcra, now: u64) -> (RateDecision, u64) {
        let shard = &self.shards[(key >> 40) as usize % self.shards.len()];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        let tat = map.get(&key).copied().unwrap_or(0);
        let (decision, next) = gcra.check(tat, now);
        let mut evicted = 0;
        if let Some(next) = next {
            if tat == 0 && map.len() >= self.per_shard {
                evicted = make_room(&mut map, self.per_shard, now);
            }
            map.insert(key, next);
        }
        drop(map);
        if evicted > 0 {
            self.evicted.fetch_add(evicted, Ordering::Relaxed);
        }
        (decision, evicted)
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live keys evicted so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// Frees room in a full shard: keys whose bucket is full again go first (no loss); if none
/// did, the stalest eighth (earliest arrival times) is evicted. Returns the live keys evicted.
fn make_room(map: &mut IdMap<u64>, cap: usize, now: u64) -> u64 {
    map.retain(|_, tat| *tat > now);
    if map.len() < cap {
        return 0;
    }
    let mut tats: Vec<u64> = map.values().copied().collect();
    let nth = (cap / 8).min(tats.len() - 1);
    let (_, threshold, _) = tats.select_nth_unstable(nth);
    let threshold = *threshold;
    let before = map.len();
    map.retain(|_, tat| *tat > threshold);
    (before - map.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_are_limited_separately() {
        let t = LocalTable::new(1000);
        let g = Gcra::new(1, Duration::from_secs(1), 1);
        assert!(t.check(1, &g, 10).0.allowed);
        assert!(!t.check(1, &g, 20).0.allowed);
        assert!(t.check(2, &g, 20).0.allowed);
    }

    #[test]
    fn the_table_never_holds_more_than_max_keys_and_counts_evictions() {
        let t = LocalTable::new(128);
        // A slow rate: every key stays live for a long time.
        let g = Gcra::new(1, Duration::from_secs(3600), 1);
        for k in 0..10_000u64 {
            let key = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert!(t.check(key, &g, 1_000 + k).0.allowed);
            assert!(t.len() <= 128 + SHARDS, "{}", t.len());
        }
        assert!(t.evicted() > 9_000, "{}", t.evicted());
    }

    #[test]
    fn replenished_keys_are_dropped_before_live_ones_are_evicted() {
        let t = LocalTable::new(64);
        let g = Gcra::new(1000, Duration::from_secs(1), 1);
        // Each key's bucket is full again 1 ms after its request.
        for k in 0..10_000u64 {
            let key = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            t.check(key, &g, 1 + k * 2_000);
        }
        assert_eq!(t.evicted(), 0);
    }
}
