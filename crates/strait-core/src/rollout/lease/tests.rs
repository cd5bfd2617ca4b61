//! Tests of the fleet lease: who takes, keeps and renews it, and that no takeover happens while the holder acts (clocks within the allowed skew).

use proptest::prelude::*;

use super::*;

const S: Duration = Duration::from_secs(1);

fn at(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn nobody_leads_without_a_lease_or_after_it_ended() {
    assert_eq!(decide(None, "a", at(100), &TIMING), Decision::Take);
    let l = grant("b", at(100), &TIMING);
    assert_eq!(decide(Some(&l), "a", at(105), &TIMING), Decision::Follow);
    assert_eq!(decide(Some(&l), "a", at(106), &TIMING), Decision::Take);
    // A leader whose own lease ended takes it again like anyone else, by compare-and-swap.
    assert_eq!(decide(Some(&l), "b", at(107), &TIMING), Decision::Take);
}

#[test]
fn a_leader_renews_every_few_seconds_and_keeps_acting() {
    let l = grant("a", at(100), &TIMING);
    assert_eq!(decide(Some(&l), "a", at(101), &TIMING), Decision::Keep);
    assert_eq!(
        decide(Some(&l), "a", at(102) + S / 2, &TIMING),
        Decision::Renew
    );
    assert!(acts(Some(&l), "a", at(104) + S / 2, &TIMING));
    // It stops acting a skew before the end, while others still follow.
    assert!(!acts(Some(&l), "a", at(105), &TIMING));
    assert_eq!(decide(Some(&l), "b", at(105), &TIMING), Decision::Follow);
    assert!(!acts(Some(&l), "b", at(101), &TIMING));
    assert!(!acts(None, "a", at(101), &TIMING));
}

proptest! {
    /// With clocks within the allowed skew, no instance takes the lease over while its
    /// holder still acts on it.
    #[test]
    fn no_takeover_while_the_holder_acts(
        granted in 0u64..1_000_000,
        real in 0u64..1_000_000,
        holder_offset in -1000i64..=1000,
        other_offset in -1000i64..=1000,
    ) {
        let ms = |x: i64| Duration::from_millis(x.max(0) as u64);
        let l = grant("a", ms(granted as i64), &TIMING);
        let holder_now = ms(real as i64 + holder_offset);
        let other_now = ms(real as i64 + other_offset);
        let skew = (holder_offset - other_offset).unsigned_abs();
        prop_assume!(Duration::from_millis(skew) <= TIMING.skew);
        let takes = decide(Some(&l), "b", other_now, &TIMING) == Decision::Take;
        prop_assert!(!(acts(Some(&l), "a", holder_now, &TIMING) && takes));
    }

    /// A leader that renews whenever told to never stops acting.
    #[test]
    fn a_leader_renewing_when_told_always_acts(steps in proptest::collection::vec(1u64..1500, 1..60)) {
        let mut now = at(1000);
        let mut lease = grant("a", now, &TIMING);
        for step in steps {
            now += Duration::from_millis(step);
            match decide(Some(&lease), "a", now, &TIMING) {
                Decision::Renew => lease = grant("a", now, &TIMING),
                Decision::Keep => {}
                other => prop_assert!(false, "{other:?}"),
            }
            prop_assert!(acts(Some(&lease), "a", now, &TIMING));
        }
    }
}
