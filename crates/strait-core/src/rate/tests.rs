use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// Runs requests at the given times through one key; returns the admitted times.
fn admitted(g: &Gcra, times: &[u64]) -> Vec<u64> {
    let mut tat = 0;
    let mut out = Vec::new();
    for &t in times {
        let (d, next) = g.check(tat, t);
        assert_eq!(d.allowed, next.is_some());
        if let Some(n) = next {
            tat = n;
            out.push(t);
        }
    }
    out
}

#[test]
fn a_quiet_key_admits_the_burst_at_once_then_refuses() {
    let g = Gcra::new(100, Duration::from_secs(1), 20);
    let times = vec![1_000_000; 25];
    assert_eq!(admitted(&g, &times).len(), 20);
}

#[test]
fn a_burst_of_one_paces_requests() {
    let g = Gcra::new(10, Duration::from_secs(1), 1);
    assert_eq!(g.interval(), 100_000);
    let (d, tat) = g.check(0, 1_000);
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);
    let (d, _) = g.check(tat.unwrap(), 1_000 + 40_000);
    assert!(!d.allowed);
    assert_eq!(d.retry_after, 60_000);
    let (d, _) = g.check(tat.unwrap(), 1_000 + 100_000);
    assert!(d.allowed);
}

#[test]
fn remaining_counts_down_through_the_burst() {
    let g = Gcra::new(5, Duration::from_secs(1), 5);
    let mut tat = 0;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let (d, next) = g.check(tat, 10);
        seen.push((d.allowed, d.remaining));
        tat = next.unwrap_or(tat);
    }
    assert_eq!(
        seen,
        [
            (true, 4),
            (true, 3),
            (true, 2),
            (true, 1),
            (true, 0),
            (false, 0)
        ]
    );
}

#[test]
fn a_request_after_retry_after_is_admitted() {
    let g = Gcra::new(3, Duration::from_secs(1), 2);
    let mut tat = 0;
    let mut now = 5;
    loop {
        let (d, next) = g.check(tat, now);
        match next {
            Some(n) => tat = n,
            None => {
                let (again, _) = g.check(tat, now + d.retry_after);
                assert!(again.allowed);
                let (before, _) = g.check(tat, now + d.retry_after - 1);
                assert!(!before.allowed);
                break;
            }
        }
        now += 1;
    }
}

proptest! {
    /// Over any window of length `t`, never more than `burst + t / interval` admitted.
    #[test]
    fn never_admits_more_than_rate_times_t_plus_burst(
        requests in 1u64..2_000,
        per_ms in 1u64..5_000,
        burst in 1u64..50,
        gaps in proptest::collection::vec(0u64..20_000, 1..400),
    ) {
        let g = Gcra::new(requests, Duration::from_millis(per_ms), burst);
        let mut t = 1u64;
        let times: Vec<u64> = gaps.iter().map(|gap| { t += gap; t }).collect();
        let ok = admitted(&g, &times);
        // Sliding window over admitted times: for each pair (first, last) in a window.
        let mut window: VecDeque<u64> = VecDeque::new();
        for &a in &ok {
            window.push_back(a);
            // Check every window ending at `a` and starting at an admitted time.
            for (i, &start) in window.iter().enumerate() {
                let count = (window.len() - i) as u64;
                let span = a - start;
                let bound = burst + span / g.interval();
                prop_assert!(count <= bound, "{count} admitted in {span}us, bound {bound}");
            }
            if window.len() > 200 {
                window.pop_front();
            }
        }
    }

    /// Requests paced at the rate (or slower) are all admitted, whatever the burst.
    #[test]
    fn admits_every_request_when_paced_at_the_rate(
        requests in 1u64..10_000,
        per_ms in 1u64..10_000,
        burst in 1u64..10,
        slack in proptest::collection::vec(0u64..1_000, 1..300),
    ) {
        let g = Gcra::new(requests, Duration::from_millis(per_ms), burst);
        let mut t = 1u64;
        let times: Vec<u64> = slack.iter().map(|s| { t += g.interval() + s; t }).collect();
        prop_assert_eq!(admitted(&g, &times).len(), times.len());
    }

    /// Remaining is what the key can really still do at once.
    #[test]
    fn remaining_is_exact(
        requests in 1u64..1_000,
        burst in 1u64..30,
        first in 0u64..40,
    ) {
        let g = Gcra::new(requests, Duration::from_secs(1), burst);
        let mut tat = 0;
        let now = 1_000;
        let mut last = None;
        for _ in 0..first {
            let (d, next) = g.check(tat, now);
            if let Some(n) = next { tat = n; last = Some(d); }
        }
        if let Some(d) = last {
            let mut more = 0;
            while let (_, Some(n)) = g.check(tat, now) { tat = n; more += 1; }
            prop_assert_eq!(d.remaining, more);
        }
    }
}
