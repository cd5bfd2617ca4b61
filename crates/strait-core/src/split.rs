//! Sticky split assignment, a pure decision: a user key's fixed hash is a point on a fine grid whose consecutive intervals belong to a route's backends by weight.
//!
//! The same key always lands on the same backend, on every instance and across restarts
//! (the hash is fixed, never `RandomState`). The intervals are laid out as: the backends
//! between the first and the last in configuration order, then the first, then the last.
//! So the first and the last are neighbours: moving weight from the first backend to the
//! last (what a canary rollout does, listing the canary last) moves users of the first onto
//! the last and nobody else, and raising the last backend's weight never moves a user off it.

use crate::balance::Hasher;

/// Points of the grid a key is scaled onto: fine enough that weights summing to millions
/// still split it with no visible rounding.
const GRID: u64 = 1 << 32;

/// Hashed ahead of every key, so that sticky assignment and an upstream's consistent-hash
/// ring on the same key are independent: without it the canary's users would all sit on
/// one arc of the canary upstream's ring, and so on a few of its endpoints.
const DOMAIN: &[u8] = b"strait/split\0";

/// The grid intervals of a route's backends, computed once per snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StickyLayout {
    /// `(exclusive end on the grid, backend index)` in layout order; backends of weight 0
    /// own nothing and are left out. The last end is the grid's size.
    ends: Box<[(u64, u32)]>,
}

impl StickyLayout {
    /// The layout for backends of `weights` in configuration order.
    pub fn new(weights: &[u32]) -> Self {
        let n = weights.len();
        let order: Vec<usize> = if n <= 2 {
            (0..n).collect()
        } else {
            (1..n - 1).chain([0, n - 1]).collect()
        };
        let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
        if total == 0 {
            return StickyLayout::default();
        }
        let mut acc: u128 = 0;
        let ends = order
            .into_iter()
            .filter(|&i| weights[i] > 0)
            .map(|i| {
                acc += u128::from(weights[i]);
                // acc ≤ total, so the end is at most GRID and fits.
                ((acc * u128::from(GRID) / total) as u64, i as u32)
            })
            .collect();
        StickyLayout { ends }
    }

    /// The backend index owning `hash` (from [`key_hash`]); `None` when no backend has weight.
    pub fn pick(&self, hash: u64) -> Option<usize> {
        let point = hash >> 32;
        let k = self.ends.partition_point(|&(end, _)| end <= point);
        self.ends.get(k).map(|&(_, i)| i as usize)
    }
}

/// The fixed hash of a sticky key (FNV-1a with a murmur3 finaliser, behind a domain prefix).
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h = Hasher::new();
    h.write(DOMAIN);
    h.write(key);
    h.finish()
}

#[cfg(test)]
mod tests;
