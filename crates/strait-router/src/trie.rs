//! Radix tries over path keys, walked along the request path to find candidate routes.
//!
//! A walk visits every node whose key is a prefix of the path, shortest first, and stops once
//! nothing below can beat the best match so far.

/// What an entry's key means for a path that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The key is an exact path: the walk must end at this node.
    Exact,
    /// The key is a string prefix: reaching the node is enough.
    Prefix,
    /// The key is a prefix of any matching path; the route's own matcher decides.
    Check,
    /// The route matches any path.
    Any,
}

/// One route at one trie node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Position in try order; lower wins.
    pub(crate) rank: u32,
    pub(crate) kind: Kind,
    /// The route's methods as a mask of `router::method_bit`s; 0 allows any.
    pub(crate) methods: u16,
    /// Whether the route has header, query or non-standard method conditions to check.
    pub(crate) extra: bool,
}

/// The best match found so far in one lookup, shared across every trie the lookup walks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Best {
    pub(crate) rank: u32,
    pub(crate) prefix_len: usize,
}

impl Best {
    /// No match yet: every rank beats it.
    pub(crate) const NONE: Best = Best {
        rank: u32::MAX,
        prefix_len: 0,
    };
}

/// The root node of one trie in a [`Forest`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Root {
    at: u32,
    min_rank: u32,
}

impl Root {
    /// A placeholder for unused table slots; never walked.
    pub(crate) const EMPTY: Root = Root {
        at: 0,
        min_rank: u32::MAX,
    };
}

/// Size of a node record's fixed header: label length, child count, entries offset and count.
const HEADER: usize = 16;

/// Radix tries from path keys to entries, one per host bucket, in one flat byte arena.
///
/// Each node is one record, so a step of the walk touches one or two cache lines (separate
/// arrays per field cost a cache miss each in profiles of large tables): `HEADER`, then the
/// edge label into the node, then each child's first label byte, sorted, then one
/// `(offset, min_rank)` pair of u32s per child, so a child that cannot win is never fetched.
/// Entries live apart because most steps do not need them.
#[derive(Debug, Default)]
pub(crate) struct Forest {
    arena: Vec<u8>,
    entries: Vec<Entry>,
}

/// Sorted, unique keys with their entries, sorted by rank.
type Keys<'a> = [(&'a [u8], Vec<Entry>)];

// === impl Forest ===

impl Forest {
    /// Adds a trie built from `(key, entry)` pairs in any order.
    pub(crate) fn add(&mut self, mut items: Vec<(&[u8], Entry)>) -> Root {
        items.sort_by(|a, b| a.0.cmp(b.0).then(a.1.rank.cmp(&b.1.rank)));
        items.dedup();
        let mut keys: Vec<(&[u8], Vec<Entry>)> = Vec::new();
        for (key, entry) in items {
            match keys.last_mut() {
                Some((k, entries)) if *k == key => entries.push(entry),
                _ => keys.push((key, vec![entry])),
            }
        }
        let (at, min_rank) = self.add_node(&keys, 0, &[]);
        Root { at, min_rank }
    }

    /// Adds the node for `keys`, which are sorted and share their first `depth` bytes; returns
    /// its offset and the lowest rank in it and below.
    fn add_node(&mut self, keys: &Keys<'_>, depth: usize, label: &[u8]) -> (u32, u32) {
        let (entries, rest): (&[Entry], _) = match keys.first() {
            Some((key, entries)) if key.len() == depth => (entries, &keys[1..]),
            _ => (&[], keys),
        };
        // Split the rest into groups by their next byte; each group becomes one child whose
        // label runs as far as the group's keys agree.
        let mut groups = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let byte = rest[i].0[depth];
            let len = rest[i..]
                .iter()
                .take_while(|(k, _)| k[depth] == byte)
                .count();
            groups.push((byte, &rest[i..i + len]));
            i += len;
        }
        let at = self.arena.len();
        for word in [label.len(), groups.len(), self.entries.len(), entries.len()] {
            self.arena.extend_from_slice(&to_u32(word).to_le_bytes());
        }
        self.arena.extend_from_slice(label);
        self.arena.extend(groups.iter().map(|(b, _)| b));
        let slots = self.arena.len();
        // Child slots are filled in once each child is built.
        self.arena.resize(slots + 8 * groups.len(), 0);
        self.entries.extend_from_slice(entries);
        let mut min_rank = entries.first().map_or(u32::MAX, |e| e.rank);
        for (slot, (_, group)) in groups.into_iter().enumerate() {
            // Sorted keys: the first and last share what all of them share.
            let (first, last) = (group[0].0, group[group.len() - 1].0);
            let common = first.iter().zip(last).take_while(|(a, b)| a == b).count();
            let (child, child_min) = self.add_node(group, common, &first[depth..common]);
            let slot = slots + 8 * slot;
            self.arena[slot..slot + 4].copy_from_slice(&child.to_le_bytes());
            self.arena[slot + 4..slot + 8].copy_from_slice(&child_min.to_le_bytes());
            min_rank = min_rank.min(child_min);
        }
        (to_u32(at), min_rank)
    }

    fn word(&self, at: usize) -> usize {
        // One bounds check and one unaligned load, not four byte loads.
        let bytes: [u8; 4] = self.arena[at..at + 4].try_into().expect("4 bytes");
        u32::from_le_bytes(bytes) as usize
    }

    /// Calls `visit(entries, depth, best)` for each node of the trie at `root` whose key is a
    /// prefix of `path`, shortest first, while the node or something below it could beat `best`.
    pub(crate) fn walk(
        &self,
        root: Root,
        path: &[u8],
        best: &mut Best,
        mut visit: impl FnMut(&[Entry], usize, &mut Best),
    ) {
        if root.min_rank >= best.rank {
            return;
        }
        let mut at = root.at as usize;
        let mut depth = 0;
        loop {
            let label_len = self.word(at);
            let child_count = self.word(at + 4);
            let entry_count = self.word(at + 12);
            if entry_count > 0 {
                let first = self.word(at + 8);
                visit(&self.entries[first..first + entry_count], depth, best);
            }
            let Some(&byte) = path.get(depth) else { return };
            let first_bytes = at + HEADER + label_len;
            // Few children per node: a linear scan of adjacent bytes beats a binary search.
            let Some(i) = self.arena[first_bytes..first_bytes + child_count]
                .iter()
                .position(|&b| b == byte)
            else {
                return;
            };
            let slot = first_bytes + child_count + 8 * i;
            if self.word(slot + 4) >= best.rank as usize {
                return;
            }
            at = self.word(slot);
            let label = &self.arena[at + HEADER..at + HEADER + self.word(at)];
            if !starts_with(&path[depth..], label) {
                return;
            }
            depth += label.len();
        }
    }
}

/// `haystack.starts_with(needle)` for the short labels of a trie, compared inline: a call to
/// `memcmp` costs more than the few bytes it would compare.
fn starts_with(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack.iter().zip(needle).all(|(a, b)| a == b)
}

fn to_u32(n: usize) -> u32 {
    // Every count is bounded by route and key sizes, checked at build.
    u32::try_from(n).expect("trie arena fits in u32 offsets")
}
