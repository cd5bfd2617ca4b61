//! Property and behaviour tests of the balancing decisions.

use super::*;
use proptest::prelude::*;

fn all_healthy(_: usize) -> bool {
    true
}

#[test]
fn smooth_round_robin_interleaves_heavy_endpoint() {
    // nginx's documented example: weights 5,1,1 give a a b a c a a.
    assert_eq!(smooth_sequence(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn round_robin_skips_unhealthy_endpoints() {
    let b = Balancer::new(Policy::RoundRobin, &[1, 1, 1], &["a", "b", "c"]);
    for _ in 0..30 {
        let i = b.pick(3, |i| i != 1, |_| 0, None).unwrap();
        assert_ne!(i, 1);
    }
}

#[test]
fn no_healthy_endpoint_gives_none_for_every_policy() {
    for p in [
        Policy::RoundRobin,
        Policy::LeastRequest,
        Policy::Random,
        Policy::ConsistentHash,
    ] {
        let b = Balancer::new(p, &[1, 2], &["a", "b"]);
        assert_eq!(b.pick(2, |_| false, |_| 0, Some(7)), None, "{p:?}");
    }
}

#[test]
fn least_request_prefers_the_idle_endpoint() {
    let b = Balancer::new(Policy::LeastRequest, &[1, 1], &["a", "b"]);
    for _ in 0..100 {
        assert_eq!(
            b.pick(2, all_healthy, |i| if i == 0 { 10 } else { 0 }, None),
            Some(1)
        );
    }
}

#[test]
fn consistent_hash_moves_keys_of_an_unhealthy_endpoint_only() {
    let keys = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];
    let b = Balancer::new(Policy::ConsistentHash, &[1; 4], &keys);
    for k in 0..2000u64 {
        let h = hash_key(&k.to_le_bytes());
        let before = b.pick(4, all_healthy, |_| 0, Some(h)).unwrap();
        let after = b.pick(4, |i| i != 2, |_| 0, Some(h)).unwrap();
        if before != 2 {
            assert_eq!(before, after);
        } else {
            assert_ne!(after, 2);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_robin_period_matches_weights(weights in proptest::collection::vec(1u32..20, 1..8)) {
        let seq = smooth_sequence(&weights);
        let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w)));
        for (i, &w) in weights.iter().enumerate() {
            let n = seq.iter().filter(|&&x| x as usize == i).count() as u64;
            prop_assert_eq!(n, u64::from(w) / g);
        }
    }

    #[test]
    fn picks_are_always_healthy(
        weights in proptest::collection::vec(1u32..10, 1..8),
        mask in any::<u8>(),
        policy in 0..4usize,
        hash in any::<u64>(),
    ) {
        let policy = [Policy::RoundRobin, Policy::LeastRequest, Policy::Random, Policy::ConsistentHash][policy];
        let names: Vec<String> = (0..weights.len()).map(|i| format!("e{i}")).collect();
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        let b = Balancer::new(policy, &weights, &keys);
        let healthy = |i: usize| mask & (1 << i) != 0;
        let any = (0..weights.len()).any(healthy);
        for _ in 0..16 {
            match b.pick(weights.len(), healthy, |_| 0, Some(hash)) {
                Some(i) => prop_assert!(healthy(i)),
                None => prop_assert!(!any),
            }
        }
    }

    #[test]
    fn adding_an_endpoint_remaps_about_one_nth_of_keys(n in 3usize..12) {
        let names: Vec<String> = (0..=n).map(|i| format!("10.1.0.{i}:8080")).collect();
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        let before = Balancer::new(Policy::ConsistentHash, &vec![1; n], &keys[..n]);
        let after = Balancer::new(Policy::ConsistentHash, &vec![1; n + 1], &keys);
        let total = 4000u64;
        let moved = (0..total)
            .filter(|k| {
                let h = hash_key(&k.to_le_bytes());
                before.pick(n, all_healthy, |_| 0, Some(h)) != after.pick(n + 1, all_healthy, |_| 0, Some(h))
            })
            .count() as f64;
        let expected = total as f64 / (n + 1) as f64;
        // Keys only move to the new endpoint; allow ring variance around 1/(n+1).
        prop_assert!(moved < expected * 1.8, "moved {} expected ~{}", moved, expected);
    }
}
