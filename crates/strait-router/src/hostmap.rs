//! The host index: normalised host names (exact hosts, or wildcard suffixes) to their tries.
//!
//! A small open-addressing table instead of `std`'s `HashMap` for two reasons found in
//! profiles: SipHash cost more than the rest of a small table's lookup, and a `HashMap` key
//! must be lowercased into a buffer before it can be looked up. Here the hash folds ASCII case
//! itself and equality ignores it, so a request host is looked up as it arrived.
//!
//! The hash is not keyed: the keys come from configuration, and a request can only probe, so
//! the worst probe is bounded by how the configured hosts themselves hash.

use crate::trie::Root;

/// A read-only map from lowercased host bytes to a trie root, probed case-insensitively.
#[derive(Debug, Default)]
pub(crate) struct HostMap {
    /// Power-of-two sized; at most half full so probe runs stay short.
    slots: Box<[Slot]>,
    /// `64 - log2(slots.len())`: the hash's top bits pick the home slot, because the
    /// multiplicative hash mixes upwards and its low bits are weak.
    shift: u32,
    /// Every key, back to back.
    keys: Box<[u8]>,
}

/// 16 bytes, four to a cache line: large tables are probed from L2 or beyond, where size is
/// what costs.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Low bits of the key's hash, so most mismatches skip the key comparison.
    tag: u16,
    /// The key's length; 0 marks an empty slot (no key is empty).
    key_len: u16,
    /// Offset of the key in `HostMap::keys`.
    key: u32,
    root: Root,
}

const EMPTY: Slot = Slot {
    tag: 0,
    key_len: 0,
    key: 0,
    root: Root::EMPTY,
};

// === impl HostMap ===

impl HostMap {
    /// Builds the map from unique, lowercased keys.
    pub(crate) fn new(entries: Vec<(Box<[u8]>, Root)>) -> Self {
        if entries.is_empty() {
            return Self::default();
        }
        let size = (entries.len() * 2).next_power_of_two();
        let shift = 64 - size.trailing_zeros();
        let mut slots = vec![EMPTY; size];
        let mut keys = Vec::new();
        for (key, root) in entries {
            let hash = hash(&key);
            let mut at = (hash >> shift) as usize;
            while slots[at].key_len != 0 {
                at = (at + 1) & (size - 1);
            }
            slots[at] = Slot {
                tag: hash as u16,
                key_len: u16::try_from(key.len()).expect("host patterns are at most 256 bytes"),
                key: u32::try_from(keys.len()).expect("host keys fit in u32 offsets"),
                root,
            };
            keys.extend_from_slice(&key);
        }
        Self {
            slots: slots.into(),
            shift,
            keys: keys.into(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The root for `host`, compared ignoring ASCII case.
    pub(crate) fn get(&self, host: &[u8]) -> Option<Root> {
        if self.slots.is_empty() {
            return None;
        }
        let hash = hash(host);
        let mask = self.slots.len() - 1;
        let mut at = (hash >> self.shift) as usize;
        loop {
            let slot = &self.slots[at];
            if slot.key_len == 0 {
                return None;
            }
            if slot.tag == hash as u16 && usize::from(slot.key_len) == host.len() {
                let start = slot.key as usize;
                let key = &self.keys[start..start + usize::from(slot.key_len)];
                if key.eq_ignore_ascii_case(host) {
                    return Some(slot.root);
                }
            }
            at = (at + 1) & mask;
        }
    }
}

/// An FxHash-style multiplicative hash over 8-byte words, with each byte ORed with 0x20 so
/// that ASCII upper and lower case hash alike. That also merges a few non-letter pairs (such
/// as `@` and `` ` ``), which costs only a rare failed comparison.
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let step = |h: u64, word: u64| (h.rotate_left(5) ^ (word | FOLD)).wrapping_mul(K);
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        h = step(h, u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        h = step(h, u64::from_le_bytes(word));
    }
    h
}
