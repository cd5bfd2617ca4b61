//! The `concurrency_limit` policy: at most `max` requests in flight per key (route by default); one more gets 503. A request holds a slot from its request hook until its response body ends, the client goes away or the request fails, whichever comes first: the slot is a guard in the filter's state, released when that state is dropped.

use std::collections::hash_map::RandomState;
use std::sync::{Arc, Mutex};

use http::StatusCode;
use strait_core::{Filter, FilterState, Flow, Hooks, Outcome, Reply, RequestCtx};

use crate::ratelimit::table::{IdMap, SHARDS};
use crate::ratelimit::LimitKey;

/// In-flight counts per key, shared by every snapshot while the policy's settings stay.
pub struct InFlight {
    shards: Box<[Mutex<IdMap<u32>>]>,
    per_shard: usize,
    hasher: RandomState,
}

/// One request's place in an [`InFlight`] table; dropping it frees the place.
pub struct Slot {
    table: Arc<InFlight>,
    key: u64,
}

impl InFlight {
    /// A table for at most `max_keys` keys with requests in flight.
    pub fn new(max_keys: usize) -> Self {
        let n = SHARDS.min(max_keys.max(1));
        InFlight {
            shards: (0..n).map(|_| Mutex::new(IdMap::default())).collect(),
            per_shard: max_keys.max(1).div_ceil(n),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: u64) -> &Mutex<IdMap<u32>> {
        &self.shards[(key >> 40) as usize % self.shards.len()]
    }

    /// A slot for `key` if it has fewer than `max` in flight (and there is room for it).
    pub fn acquire(self: &Arc<Self>, key: u64, max: u32) -> Option<Slot> {
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let full = map.len() >= self.per_shard;
        match map.get_mut(&key) {
            Some(n) if *n >= max => return None,
            Some(n) => *n += 1,
            None if full => return None,
            None => {
                map.insert(key, 1);
            }
        }
        Some(Slot {
            table: self.clone(),
            key,
        })
    }

    /// Requests in flight now, all keys together.
    pub fn in_flight(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| {
                let m = s.lock().unwrap_or_else(|e| e.into_inner());
                m.values().map(|&n| u64::from(n)).sum::<u64>()
            })
            .sum()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .table
            .shard(self.key)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// A compiled concurrency limit.
pub struct ConcurrencyFilter {
    name: Arc<str>,
    max: u32,
    key: LimitKey,
    table: Arc<InFlight>,
}

impl ConcurrencyFilter {
    /// A limit called `name` of `max` in flight per `key`, counted in `table`.
    pub fn new(name: &str, max: u32, key: LimitKey, table: Arc<InFlight>) -> Self {
        ConcurrencyFilter {
            name: Arc::from(name),
            max,
            key,
            table,
        }
    }
}

impl Filter for ConcurrencyFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "concurrency_limit"
    }

    fn hooks(&self) -> Hooks {
        // The end hook keeps the chain's state (and so the slot) until the response body ends.
        Hooks {
            end: true,
            ..Hooks::REQUEST
        }
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a> {
        let Some(key) = self.key.hash(ctx, &self.table.hasher) else {
            return Flow::Continue;
        };
        match self.table.acquire(key, self.max) {
            Some(slot) => {
                state.set(slot);
                Flow::Continue
            }
            None => Flow::Reply(Reply::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "strait: too many requests in flight\n",
                "concurrency_limited",
            )),
        }
    }

    fn on_end(&self, _outcome: &Outcome<'_>, state: &mut FilterState) {
        drop(state.take::<Slot>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::KeyPart;
    use std::net::SocketAddr;
    use strait_core::{Chain, ChainRun};

    fn request(f: &ConcurrencyFilter, route: &str, state: &mut FilterState) -> bool {
        let (mut head, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        let mut ctx = RequestCtx {
            head: &mut head,
            client: SocketAddr::from(([127, 0, 0, 1], 1)),
            listener: "web",
            route,
            tls: false,
            peer: None,
        };
        let admitted = matches!(f.on_request(&mut ctx, state), Flow::Continue);
        admitted
    }

    #[test]
    fn beyond_max_in_flight_per_route_requests_are_refused_until_a_slot_frees() {
        let table = Arc::new(InFlight::new(100));
        let f = ConcurrencyFilter::new(
            "c",
            2,
            LimitKey::new(vec![KeyPart::Route], false),
            table.clone(),
        );
        let mut a = FilterState::default();
        let mut b = FilterState::default();
        let mut c = FilterState::default();
        assert!(request(&f, "api", &mut a));
        assert!(request(&f, "api", &mut b));
        assert!(!request(&f, "api", &mut c));
        assert!(
            request(&f, "other", &mut c),
            "another route has its own slots"
        );
        f.on_end(&Outcome::default(), &mut a);
        let mut d = FilterState::default();
        assert!(request(&f, "api", &mut d));
        // A request that ends without its end hook (its state dropped) frees its slot too.
        drop((b, c, d));
        assert_eq!(table.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_chain_run_dropped_midway_releases_the_slot() {
        let table = Arc::new(InFlight::new(10));
        let f: Arc<dyn Filter> = Arc::new(ConcurrencyFilter::new(
            "c",
            1,
            LimitKey::new(vec![KeyPart::Global], false),
            table.clone(),
        ));
        let chain = Chain::new(vec![f]);
        for _ in 0..100 {
            let (mut head, ()) = http::Request::get("/").body(()).unwrap().into_parts();
            let mut ctx = RequestCtx {
                head: &mut head,
                client: SocketAddr::from(([127, 0, 0, 1], 1)),
                listener: "web",
                route: "api",
                tls: false,
                peer: None,
            };
            let mut run = ChainRun::default();
            assert!(chain.on_request(&mut ctx, &mut run).await.is_none());
            assert_eq!(table.in_flight(), 1);
            drop(run);
            assert_eq!(table.in_flight(), 0);
        }
    }

    #[test]
    fn a_full_table_refuses_new_keys_and_frees_them_when_done() {
        let table = Arc::new(InFlight::new(1));
        let a = table.acquire(1, 5).expect("room");
        assert!(table.acquire(2, 5).is_none());
        drop(a);
        assert!(table.acquire(2, 5).is_some());
    }
}
