//! The live-state registry: state that outlives snapshots (endpoint health, pools, listener ids), found by stable keys at compile time, never per request.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use crate::upstream::EndpointState;

/// Registry of live state shared by successive snapshots.
#[derive(Default)]
pub struct LiveState {
    /// By (upstream, address, transport).
    endpoints: Mutex<HashMap<(String, String, String), Weak<EndpointState>>>,
    listener_ids: Mutex<HashMap<String, usize>>,
}

impl LiveState {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of an endpoint of `upstream` at `address` over `transport`, reused while any
    /// snapshot (or request still in flight on one) holds it.
    pub fn endpoint(&self, upstream: &str, address: &str, transport: &str) -> Arc<EndpointState> {
        let key = (
            upstream.to_owned(),
            address.to_owned(),
            transport.to_owned(),
        );
        let mut map = self.endpoints.lock().expect("live state lock");
        if let Some(s) = map.get(&key).and_then(Weak::upgrade) {
            return s;
        }
        // Forget endpoints no snapshot references any more, so churn does not grow the map.
        map.retain(|_, w| w.strong_count() > 0);
        let s = Arc::new(EndpointState::new());
        map.insert(key, Arc::downgrade(&s));
        s
    }

    /// Calls `f` with the (upstream, address) of every endpoint whose state is still held.
    pub fn endpoints_in_use(&self, mut f: impl FnMut(&str, &str)) {
        let map = self.endpoints.lock().expect("live state lock");
        for ((upstream, address, _), w) in map.iter() {
            if w.strong_count() > 0 {
                f(upstream, address);
            }
        }
    }

    /// A small stable id for a listener name, used to index snapshots without string lookups.
    pub fn listener_id(&self, name: &str) -> usize {
        let mut map = self.listener_ids.lock().expect("live state lock");
        let next = map.len();
        *map.entry(name.to_string()).or_insert(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_state_is_shared_while_referenced_and_freed_after() {
        let live = LiveState::new();
        let in_use = |live: &LiveState| {
            let mut v = Vec::new();
            live.endpoints_in_use(|u, a| v.push(format!("{u} {a}")));
            v
        };
        let a = live.endpoint("u", "127.0.0.1:1", "http1");
        a.set_healthy(false);
        let b = live.endpoint("u", "127.0.0.1:1", "http1");
        assert!(!b.is_healthy());
        assert_eq!(in_use(&live), ["u 127.0.0.1:1"]);
        drop((a, b));
        assert!(in_use(&live).is_empty());
        assert!(live.endpoint("u", "127.0.0.1:1", "http1").is_healthy());
    }

    #[test]
    fn listener_ids_are_stable() {
        let live = LiveState::new();
        assert_eq!(live.listener_id("a"), 0);
        assert_eq!(live.listener_id("b"), 1);
        assert_eq!(live.listener_id("a"), 0);
    }
}
