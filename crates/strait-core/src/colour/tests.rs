//! Tests of the colour decisions: the derive hash is fixed and spreads users evenly; subset picks stay within the subset.

use proptest::prelude::*;

use super::*;

#[test]
fn derive_hash_is_pinned_across_builds() {
    // Golden values: gateways of different versions must agree on a user's colour.
    let got: Vec<usize> = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .map(|k| derive_index(k.as_bytes(), 3))
        .collect();
    assert_eq!(got, GOLDEN);
    assert_eq!(derive_index(b"anyone", 1), 0);
    assert_eq!(derive_index(b"anyone", 0), 0);
}

const GOLDEN: [usize; 5] = [0, 2, 0, 2, 1];

#[test]
fn grouping_makes_one_subset_per_label_value() {
    let a = [("region".to_owned(), "eu".to_owned())];
    let b = [
        ("region".to_owned(), "us".to_owned()),
        ("version".to_owned(), "v2".to_owned()),
    ];
    let c = [("region".to_owned(), "eu".to_owned())];
    let groups = group(&[&a, &b, &[], &c]);
    assert_eq!(
        groups,
        vec![
            ("region".into(), "eu".into(), vec![0, 3]),
            ("region".into(), "us".into(), vec![1]),
            ("version".into(), "v2".into(), vec![1]),
        ]
    );
}

fn subset(policy: Policy, members: Vec<u32>) -> Subset {
    let weights = vec![1; members.len()];
    let names: Vec<String> = members.iter().map(|m| format!("e{m}")).collect();
    let keys: Vec<&str> = names.iter().map(String::as_str).collect();
    Subset::new("l".into(), "v".into(), policy, members, &weights, &keys)
}

proptest! {
    #[test]
    fn derive_is_stable_and_in_range(key in proptest::collection::vec(any::<u8>(), 0..64), n in 1usize..16) {
        let i = derive_index(&key, n);
        prop_assert!(i < n);
        prop_assert_eq!(i, derive_index(&key, n));
    }

    #[test]
    fn derive_spreads_users_evenly(prefix in "[a-z]{0,8}", n in 2usize..6) {
        let users = 6000;
        let mut counts = vec![0usize; n];
        for u in 0..users {
            counts[derive_index(format!("{prefix}user-{u}").as_bytes(), n)] += 1;
        }
        let even = users / n;
        for c in counts {
            // Within 15% of an even share: a skewed hash would send a region more than its part.
            prop_assert!(c.abs_diff(even) * 100 <= even * 15, "{c} vs {even}");
        }
    }

    #[test]
    fn subset_picks_only_available_members(
        members in proptest::sample::subsequence((0u32..12).collect::<Vec<_>>(), 1..12),
        up in proptest::collection::vec(any::<bool>(), 12),
        policy in prop_oneof![Just(Policy::RoundRobin), Just(Policy::LeastRequest), Just(Policy::Random), Just(Policy::ConsistentHash)],
        hash in any::<u64>(),
    ) {
        let s = subset(policy, members.clone());
        let any_up = members.iter().any(|&m| up[m as usize]);
        for _ in 0..8 {
            match s.pick(|i| up[i], |_| 0, Some(hash)) {
                Some(i) => prop_assert!(members.contains(&(i as u32)) && up[i]),
                // Random picks its first candidate by weight and then walks on, so a miss
                // means no member is available.
                None => prop_assert!(!any_up),
            }
        }
    }
}

#[test]
fn find_matches_label_and_value() {
    let s = [subset(Policy::RoundRobin, vec![1, 2])];
    assert!(find(&s, "l", "v").is_some());
    assert!(find(&s, "l", "w").is_none());
    assert!(find(&s, "x", "v").is_none());
}
