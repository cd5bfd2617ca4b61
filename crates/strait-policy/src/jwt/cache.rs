//! Verified tokens of one `jwt` policy, so a client sending the same token again costs a lookup instead of a signature check (Envoy's `jwt_cache_config`).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use http::{HeaderName, HeaderValue};
use strait_core::{Claims, Consumer};

use super::KeySet;

/// Longest token kept: a longer one is verified every time, so the cache's memory stays bounded
/// (entries × this) whatever tokens clients send.
pub const MAX_CACHED_TOKEN: usize = 4096;

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<Box<str>, Entry>>;

/// What a verified token that passed the claim checks hands on, built once.
pub struct Admitted {
    /// `exp`, seconds since the epoch, checked again on every use.
    pub exp: Option<f64>,
    /// `nbf`, seconds since the epoch, checked again on every use.
    pub nbf: Option<f64>,
    /// The claims later policies read.
    pub claims: Claims,
    /// Upstream headers made from claims.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The consumer the token names.
    pub consumer: Option<Consumer>,
}

struct Entry {
    /// The key set the token was verified against: after a JWKS rotation the entry no longer
    /// counts (held, not compared by address, so a new set at a freed set's address cannot match).
    keys: Arc<KeySet>,
    admitted: Arc<Admitted>,
}

/// A bounded, sharded map from token text to what it was admitted with.
pub struct TokenCache {
    shards: Box<[Shard]>,
    per_shard: usize,
    hasher: RandomState,
}

impl TokenCache {
    /// A cache of about `size` tokens; `None` when `size` is 0 (no caching).
    pub fn new(size: usize) -> Option<Self> {
        if size == 0 {
            return None;
        }
        Some(TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: size.div_ceil(SHARDS),
            hasher: RandomState::new(),
        })
    }

    fn shard(&self, token: &str) -> &Shard {
        // The hasher is randomly keyed, so clients cannot aim tokens at one shard.
        let h = self.hasher.hash_one(token) as usize;
        &self.shards[h % SHARDS]
    }

    /// What `token` was admitted with, if it was verified against `keys`.
    pub fn get(&self, token: &str, keys: &Arc<KeySet>) -> Option<Arc<Admitted>> {
        let shard = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        shard
            .get(token)
            .filter(|e| Arc::ptr_eq(&e.keys, keys))
            .map(|e| e.admitted.clone())
    }

    /// Remembers that `token` verified against `keys`; `now` (unix seconds) lets a full shard
    /// drop expired tokens first.
    pub fn insert(&self, token: &str, keys: &Arc<KeySet>, admitted: Arc<Admitted>, now: f64) {
        if token.len() > MAX_CACHED_TOKEN {
            return;
        }
        let mut shard = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(token) {
            shard.retain(|_, e| e.admitted.exp.is_none_or(|exp| exp > now));
            if shard.len() >= self.per_shard {
                // Any one: what matters is the bound, and the map's order is already random.
                if let Some(k) = shard.keys().next().cloned() {
                    shard.remove(&k);
                }
            }
        }
        shard.insert(
            token.into(),
            Entry {
                keys: keys.clone(),
                admitted,
            },
        );
    }

    /// Tokens held (for tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(exp: Option<f64>) -> Arc<Admitted> {
        Arc::new(Admitted {
            exp,
            nbf: None,
            claims: Claims(Arc::new(Vec::new())),
            headers: Vec::new(),
            consumer: None,
        })
    }

    fn keys() -> Arc<KeySet> {
        Arc::new(KeySet::default())
    }

    #[test]
    fn a_token_is_found_only_for_the_key_set_it_was_verified_against() {
        let c = TokenCache::new(8).unwrap();
        let (k1, k2) = (keys(), keys());
        c.insert("a.b.c", &k1, admitted(None), 0.0);
        assert!(c.get("a.b.c", &k1).is_some());
        assert!(c.get("a.b.c", &k2).is_none());
        assert!(c.get("a.b.d", &k1).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = TokenCache::new(32).unwrap();
        let k = keys();
        for i in 0..10_000 {
            c.insert(&format!("t{i}"), &k, admitted(Some(f64::from(i))), 9_990.0);
        }
        assert!(c.len() <= 32, "{}", c.len());
        assert!(c.get("t9999", &k).is_some(), "the newest token is kept");
        assert!(TokenCache::new(0).is_none());
        let long = "x".repeat(MAX_CACHED_TOKEN + 1);
        c.insert(&long, &k, admitted(None), 0.0);
        assert!(c.get(&long, &k).is_none());
    }
}
