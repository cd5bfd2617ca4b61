//! The admin listener's connection slots (pure): at the cap, a new connection takes the slot of the connection idle the longest (waiting for its first request, or between requests), as nginx reuses connections when it runs out; one that is answering a request is never closed for it.
//!
//! Time is a logical clock (one tick per event), so the decision is deterministic and needs no
//! timer: "idle the longest" is "became idle first".

use std::collections::HashMap;

/// A connection's identity in the table.
pub(crate) type SlotId = u64;

/// What to do with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Serve it in slot `id`.
    Open(SlotId),
    /// Close connection `evict` to make room, then serve the new one in slot `id`.
    Evict {
        /// The connection to close.
        evict: SlotId,
        /// The new connection's slot.
        id: SlotId,
    },
    /// Every slot is answering a request: close the new connection.
    Refuse,
}

#[derive(Debug, Default)]
struct Slot {
    /// Requests being answered.
    busy: u32,
    /// When it last became idle (its accept, or the end of its last request).
    idle_since: u64,
}

/// Open admin connections and whether each is answering a request.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    clock: u64,
    next: SlotId,
    open: HashMap<SlotId, Slot>,
}

impl Slots {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Decides about a new connection with `max` slots in all.
    pub(crate) fn admit(&mut self, max: usize) -> Admit {
        let evict = if self.open.len() >= max.max(1) {
            let victim = self
                .open
                .iter()
                .filter(|(_, s)| s.busy == 0)
                .min_by_key(|(id, s)| (s.idle_since, **id))
                .map(|(id, _)| *id);
            match victim {
                Some(v) => {
                    self.open.remove(&v);
                    Some(v)
                }
                None => return Admit::Refuse,
            }
        } else {
            None
        };
        let id = self.next;
        self.next += 1;
        let idle_since = self.tick();
        self.open.insert(
            id,
            Slot {
                busy: 0,
                idle_since,
            },
        );
        match evict {
            Some(evict) => Admit::Evict { evict, id },
            None => Admit::Open(id),
        }
    }

    /// Connection `id` started answering a request.
    pub(crate) fn busy(&mut self, id: SlotId) {
        if let Some(s) = self.open.get_mut(&id) {
            s.busy += 1;
        }
    }

    /// Connection `id` finished answering a request.
    pub(crate) fn idle(&mut self, id: SlotId) {
        let now = self.tick();
        if let Some(s) = self.open.get_mut(&id) {
            s.busy = s.busy.saturating_sub(1);
            if s.busy == 0 {
                s.idle_since = now;
            }
        }
    }

    /// Connection `id` closed (or was evicted).
    pub(crate) fn close(&mut self, id: SlotId) {
        self.open.remove(&id);
    }

    /// Open connections.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn below_the_cap_every_connection_is_served() {
        let mut s = Slots::default();
        assert_eq!(s.admit(2), Admit::Open(0));
        assert_eq!(s.admit(2), Admit::Open(1));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let mut s = Slots::default();
        let (a, b) = (s.admit(2), s.admit(2));
        assert_eq!((a, b), (Admit::Open(0), Admit::Open(1)));
        // 0 answers a request and becomes idle again after 1 did: 1 is now the longest idle.
        s.busy(0);
        s.idle(0);
        assert_eq!(s.admit(2), Admit::Evict { evict: 1, id: 2 });
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_connection_answering_a_request_is_never_evicted() {
        let mut s = Slots::default();
        s.admit(2);
        s.admit(2);
        s.busy(0);
        assert_eq!(s.admit(2), Admit::Evict { evict: 1, id: 2 });
        s.busy(2);
        assert_eq!(s.admit(2), Admit::Refuse);
        s.idle(2);
        assert_eq!(s.admit(2), Admit::Evict { evict: 2, id: 3 });
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit,
        Busy(usize),
        Idle(usize),
        Close(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Admit),
            1 => (0usize..64).prop_map(Op::Busy),
            1 => (0usize..64).prop_map(Op::Idle),
            1 => (0usize..64).prop_map(Op::Close),
        ]
    }

    proptest! {
        #[test]
        fn the_cap_holds_and_busy_connections_survive(max in 1usize..8, ops in prop::collection::vec(op(), 0..200)) {
            let mut s = Slots::default();
            let mut ids: Vec<SlotId> = Vec::new();
            for op in ops {
                match op {
                    Op::Admit => {
                        let busy_before: Vec<SlotId> =
                            s.open.iter().filter(|(_, x)| x.busy > 0).map(|(i, _)| *i).collect();
                        match s.admit(max) {
                            Admit::Open(id) => ids.push(id),
                            Admit::Evict { evict, id } => {
                                prop_assert!(!busy_before.contains(&evict));
                                ids.push(id);
                            }
                            Admit::Refuse => prop_assert_eq!(busy_before.len(), s.len()),
                        }
                    }
                    Op::Busy(i) => if let Some(id) = ids.get(i) { s.busy(*id) },
                    Op::Idle(i) => if let Some(id) = ids.get(i) { s.idle(*id) },
                    Op::Close(i) => if let Some(id) = ids.get(i) { s.close(*id) },
                }
                prop_assert!(s.len() <= max);
            }
        }
    }
}
