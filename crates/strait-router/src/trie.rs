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

/// One trie node: where its edge label, children and entries sit in the [`Forest`] arrays.
/// Plain `u32` fields, so a step reads them with one bounds check and no decoding.
#[derive(Debug, Clone, Copy)]
struct Node {
    label: u32,
    label_len: u32,
    /// First index of this node's children in `Forest::first_bytes` and `Forest::links`.
    children: u32,
    child_count: u32,
    entries: u32,
    entry_count: u32,
}

/// The edge to a child, with the lowest rank in its subtree, so a child that cannot win is
/// never fetched.
#[derive(Debug, Clone, Copy)]
struct Link {
    node: u32,
    min_rank: u32,
}

/// Radix tries from path keys to entries, one per host bucket, sharing flat arrays.
///
/// A node's children are contiguous: their first label bytes (sorted) in `first_bytes`, so the
/// search for the next path byte scans a few adjacent bytes, and their links at the same
/// indices in `links`. Entries live apart because most steps do not need them.
#[derive(Debug, Default)]
pub(crate) struct Forest {
    nodes: Vec<Node>,
    labels: Vec<u8>,
    first_bytes: Vec<u8>,
    links: Vec<Link>,
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
        let Link { node, min_rank } = self.add_node(&keys, 0, &[]);
        Root { at: node, min_rank }
    }

    /// Adds the node for `keys`, which are sorted and share their first `depth` bytes; returns
    /// its link: its index and the lowest rank in it and below.
    fn add_node(&mut self, keys: &Keys<'_>, depth: usize, label: &[u8]) -> Link {
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
        let at = self.nodes.len();
        let children = self.links.len();
        self.nodes.push(Node {
            label: to_u32(self.labels.len()),
            label_len: to_u32(label.len()),
            children: to_u32(children),
            child_count: to_u32(groups.len()),
            entries: to_u32(self.entries.len()),
            entry_count: to_u32(entries.len()),
        });
        self.labels.extend_from_slice(label);
        self.entries.extend_from_slice(entries);
        // Reserve this node's child slots now so they stay contiguous; each is filled in once
        // its child is built.
        self.first_bytes.extend(groups.iter().map(|(b, _)| b));
        let empty = Link {
            node: 0,
            min_rank: u32::MAX,
        };
        self.links.resize(children + groups.len(), empty);
        let mut min_rank = entries.first().map_or(u32::MAX, |e| e.rank);
        for (slot, (_, group)) in groups.into_iter().enumerate() {
            // Sorted keys: the first and last share what all of them share.
            let (first, last) = (group[0].0, group[group.len() - 1].0);
            let common = first.iter().zip(last).take_while(|(a, b)| a == b).count();
            let link = self.add_node(group, common, &first[depth..common]);
            self.links[children + slot] = link;
            min_rank = min_rank.min(link.min_rank);
        }
        Link {
            node: to_u32(at),
            min_rank,
        }
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
        let mut node = self.nodes[root.at as usize];
        let mut depth = 0;
        loop {
            if node.entry_count > 0 {
                let first = node.entries as usize;
                visit(
                    &self.entries[first..first + node.entry_count as usize],
                    depth,
                    best,
                );
            }
            let Some(&byte) = path.get(depth) else { return };
            let children = node.children as usize..(node.children + node.child_count) as usize;
            // Few children per node: a linear scan of adjacent bytes beats a binary search.
            let Some(i) = self.first_bytes[children.clone()]
                .iter()
                .position(|&b| b == byte)
            else {
                return;
            };
            let link = self.links[children.start + i];
            if link.min_rank >= best.rank {
                return;
            }
            node = self.nodes[link.node as usize];
            let start = node.label as usize;
            let label = &self.labels[start..start + node.label_len as usize];
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
