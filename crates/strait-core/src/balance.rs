//! Pure load-balancing decisions: smooth weighted round robin, least request (P2C), weighted random, consistent hashing.
//!
//! Health and load come in as closures, so the choice is plain code tested without sockets.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::rand;

/// Load-balancing policy as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Smooth weighted round robin (nginx's algorithm).
    RoundRobin,
    /// Power of two choices by in-flight requests.
    LeastRequest,
    /// Weighted random.
    Random,
    /// Ketama-style hash ring.
    ConsistentHash,
}

/// Longest precomputed round-robin sequence; larger weight sums are scaled down to fit.
const MAX_SEQUENCE: u64 = 1 << 16;
/// Ring points per endpoint of average weight.
const RING_POINTS: u64 = 160;

/// A compiled balancer for one upstream's endpoints.
pub enum Balancer {
    /// Picks follow a precomputed smooth-weighted sequence; an atomic cursor makes it lock-free.
    RoundRobin {
        /// Endpoint indices in smooth weighted order.
        sequence: Box<[u32]>,
        /// Next position.
        cursor: AtomicUsize,
    },
    /// Two random candidates, the one with fewer requests in flight wins.
    LeastRequest,
    /// Weighted random by cumulative weights.
    Random {
        /// Running sums of weights.
        cumulative: Box<[u64]>,
    },
    /// Sorted ring of (point, endpoint index).
    ConsistentHash {
        /// The ring.
        ring: Box<[(u64, u32)]>,
    },
}

impl Balancer {
    /// Builds a balancer for endpoints with `weights` (each ≥ 1) and `keys` (stable endpoint names for the ring).
    pub fn new(policy: Policy, weights: &[u32], keys: &[&str]) -> Self {
        match policy {
            Policy::RoundRobin => Balancer::RoundRobin {
                sequence: smooth_sequence(weights).into(),
                cursor: AtomicUsize::new(0),
            },
            Policy::LeastRequest => Balancer::LeastRequest,
            Policy::Random => Balancer::Random {
                cumulative: weights
                    .iter()
                    .scan(0u64, |acc, w| {
                        *acc += u64::from(*w);
                        Some(*acc)
                    })
                    .collect(),
            },
            Policy::ConsistentHash => Balancer::ConsistentHash {
                ring: build_ring(weights, keys).into(),
            },
        }
    }

    /// Chooses an endpoint index among `n`, skipping unhealthy ones; `None` if none is healthy.
    pub fn pick(
        &self,
        n: usize,
        healthy: impl Fn(usize) -> bool,
        load: impl Fn(usize) -> u32,
        hash: Option<u64>,
    ) -> Option<usize> {
        if n == 0 {
            return None;
        }
        let first = match self {
            Balancer::RoundRobin { sequence, cursor } => {
                let len = sequence.len();
                let start = cursor.fetch_add(1, Ordering::Relaxed);
                // Skip unhealthy entries; looking at n entries past the first miss is enough
                // to find any healthy endpoint only if the sequence mixes well, so fall back below.
                for k in 0..len.min(n * 2) {
                    let i = sequence[(start + k) % len] as usize;
                    if healthy(i) {
                        return Some(i);
                    }
                }
                sequence[start % len] as usize
            }
            Balancer::LeastRequest => {
                let a = rand::below(n);
                if n == 1 {
                    a
                } else {
                    let b = (a + 1 + rand::below(n - 1)) % n;
                    match (healthy(a), healthy(b)) {
                        (true, true) => {
                            if load(b) < load(a) {
                                b
                            } else {
                                a
                            }
                        }
                        (true, false) => return Some(a),
                        (false, true) => return Some(b),
                        (false, false) => a,
                    }
                }
            }
            Balancer::Random { cumulative } => {
                let total = *cumulative.last().unwrap_or(&1);
                let r = rand::next_u64() % total;
                cumulative.partition_point(|&c| c <= r)
            }
            Balancer::ConsistentHash { ring } => {
                let h = hash.unwrap_or_else(rand::next_u64);
                let start = ring.partition_point(|&(p, _)| p < h);
                // Walk clockwise to the first healthy endpoint, so only keys of unhealthy endpoints move.
                for k in 0..ring.len() {
                    let i = ring[(start + k) % ring.len()].1 as usize;
                    if healthy(i) {
                        return Some(i);
                    }
                }
                return None;
            }
        };
        if healthy(first) {
            return Some(first);
        }
        (1..n).map(|k| (first + k) % n).find(|&i| healthy(i))
    }
}

/// nginx's smooth weighted round robin, unrolled into one full period.
pub fn smooth_sequence(weights: &[u32]) -> Vec<u32> {
    let g = weights
        .iter()
        .fold(0u64, |g, &w| gcd(g, u64::from(w.max(1))));
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x.max(1)) / g).collect();
    let mut total: u64 = w.iter().sum();
    if total > MAX_SEQUENCE {
        let scale = total.div_ceil(MAX_SEQUENCE);
        w.iter_mut().for_each(|x| *x = (*x / scale).max(1));
        total = w.iter().sum();
    }
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i] as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total as i64;
        out.push(best as u32);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn build_ring(weights: &[u32], keys: &[&str]) -> Vec<(u64, u32)> {
    let sum: u64 = weights.iter().map(|&w| u64::from(w.max(1))).sum();
    let n = weights.len().max(1) as u64;
    let mut ring = Vec::new();
    for (i, (&w, key)) in weights.iter().zip(keys).enumerate() {
        // Points proportional to weight, RING_POINTS for an endpoint of average weight.
        let points = (RING_POINTS * u64::from(w.max(1)) * n / sum.max(1)).max(1);
        for p in 0..points {
            let mut h = Hasher::new();
            h.write(key.as_bytes());
            h.write(b"#");
            h.write(&p.to_le_bytes());
            ring.push((h.finish(), i as u32));
        }
    }
    ring.sort_unstable();
    ring
}

/// FNV-1a with a murmur3 finaliser: stable across builds and processes, so a fleet agrees on the ring.
#[derive(Clone, Copy)]
pub struct Hasher(u64);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Hasher(0xcbf2_9ce4_8422_2325)
    }

    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The mixed 64-bit hash.
    pub fn finish(self) -> u64 {
        let mut k = self.0;
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

/// Hashes a consistent-hash key.
pub fn hash_key(bytes: &[u8]) -> u64 {
    let mut h = Hasher::new();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests;
