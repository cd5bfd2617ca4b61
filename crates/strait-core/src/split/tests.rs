//! Property tests of sticky assignment: shares follow the weights, and a canary listed last only gains users.

use super::*;
use proptest::prelude::*;

fn assign(weights: &[u32], key: &str) -> usize {
    StickyLayout::new(weights)
        .pick(key_hash(key.as_bytes()))
        .expect("some weight is above 0")
}

#[test]
fn key_hash_is_fixed_across_builds_and_processes() {
    // A fleet agrees on assignments only if this never changes.
    assert_eq!(key_hash(b"user-1"), 0xc158_9490_0ad0_633c);
}

#[test]
fn weight_zero_backends_own_nothing() {
    let layout = StickyLayout::new(&[0, 5, 0]);
    for k in 0..1000u32 {
        assert_eq!(layout.pick(key_hash(&k.to_le_bytes())), Some(1));
    }
    assert_eq!(StickyLayout::new(&[0, 0]).pick(7), None);
}

#[test]
fn the_grid_edges_belong_to_the_first_and_last_intervals() {
    let layout = StickyLayout::new(&[1, 1]);
    assert_eq!(layout.pick(0), Some(0));
    assert_eq!(layout.pick(u64::MAX), Some(1));
}

fn weights() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0u32..=100, 2..=5)
        .prop_filter("some weight", |w| w.iter().any(|&x| x > 0))
}

proptest! {
    #[test]
    fn shares_of_random_keys_match_the_weights(w in weights(), seed in any::<u64>()) {
        const KEYS: usize = 20_000;
        let layout = StickyLayout::new(&w);
        let mut counts = vec![0usize; w.len()];
        for i in 0..KEYS {
            let key = format!("{seed:x}-user-{i}");
            counts[layout.pick(key_hash(key.as_bytes())).unwrap()] += 1;
        }
        let total: u32 = w.iter().sum();
        for (i, &c) in counts.iter().enumerate() {
            let want = f64::from(w[i]) / f64::from(total);
            let got = c as f64 / KEYS as f64;
            // 20,000 keys: one standard deviation is at most 0.36 points.
            prop_assert!((got - want).abs() < 0.02, "backend {}: {} vs {} ({:?})", i, got, want, w);
        }
    }

    #[test]
    fn raising_the_last_weight_never_moves_a_user_off_the_last(
        w in weights(),
        extra in 0u32..=100,
        taken in prop::collection::vec(0u32..=100, 5),
        key in any::<u64>(),
    ) {
        let last = w.len() - 1;
        let before = StickyLayout::new(&w);
        // The last backend gains `extra`; the others may only lose weight.
        let mut after_w = w.clone();
        after_w[last] += extra;
        for (i, x) in after_w[..last].iter_mut().enumerate() {
            *x -= taken[i].min(*x);
        }
        let after = StickyLayout::new(&after_w);
        if before.pick(key) == Some(last) {
            prop_assert_eq!(after.pick(key), Some(last), "{:?} -> {:?}", w, after_w);
        }
    }

    #[test]
    fn moving_weight_from_first_to_last_moves_users_only_from_first_to_last(
        w in weights(),
        moved in 0u32..=100,
        key in any::<u64>(),
    ) {
        let last = w.len() - 1;
        let moved = moved.min(w[0]);
        let mut after_w = w.clone();
        after_w[0] -= moved;
        after_w[last] += moved;
        let before = StickyLayout::new(&w).pick(key).unwrap();
        let after = StickyLayout::new(&after_w).pick(key).unwrap();
        prop_assert!(
            before == after || (before == 0 && after == last),
            "{:?} -> {:?}: {} -> {}", w, after_w, before, after
        );
    }

    #[test]
    fn the_same_key_always_gets_the_same_backend(w in weights(), key in ".{0,40}") {
        prop_assert_eq!(assign(&w, &key), assign(&w, &key));
    }
}
