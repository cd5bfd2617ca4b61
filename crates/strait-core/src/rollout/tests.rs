//! Tests of the rollout decisions: judging intervals, histogram quantiles, and the state machine under arbitrary event sequences.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

const T: Thresholds = Thresholds {
    min_requests: 50,
    max_error_rate: 0.01,
    max_p99: Some(0.5),
};

fn figures(requests: u64, error_rate: f64, p99: f64) -> Figures {
    Figures {
        requests,
        error_rate: Some(error_rate),
        p99: Some(p99),
    }
}

fn steps() -> Vec<Step> {
    [5, 20, 50]
        .into_iter()
        .map(|weight| Step {
            weight,
            pause: Duration::from_secs(60),
        })
        .collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn too_few_requests_is_inconclusive_even_when_all_fail() {
    assert_eq!(judge(&figures(49, 1.0, 9.0), &T), Verdict::Inconclusive);
    assert_eq!(judge(&figures(50, 0.0, 0.1), &T), Verdict::Pass);
}

#[test]
fn an_error_rate_or_p99_over_its_threshold_is_a_breach() {
    assert_eq!(judge(&figures(100, 0.02, 0.1), &T), Verdict::Breach);
    assert_eq!(judge(&figures(100, 0.0, 0.6), &T), Verdict::Breach);
    assert_eq!(judge(&figures(100, 0.01, 0.5), &T), Verdict::Pass);
}

#[test]
fn unknown_figures_are_inconclusive_unless_another_breaches() {
    let nan = Figures {
        requests: 100,
        error_rate: Some(f64::NAN),
        p99: Some(0.1),
    };
    assert_eq!(judge(&nan, &T), Verdict::Inconclusive);
    let no_p99 = Figures {
        p99: None,
        ..figures(100, 0.0, 0.0)
    };
    assert_eq!(judge(&no_p99, &T), Verdict::Inconclusive);
    let unchecked = Thresholds { max_p99: None, ..T };
    assert_eq!(judge(&no_p99, &unchecked), Verdict::Pass);
    let breach = Figures {
        p99: None,
        ..figures(100, 0.5, 0.0)
    };
    assert_eq!(judge(&breach, &T), Verdict::Breach);
}

#[test]
fn quantile_interpolates_within_the_bucket_like_prometheus() {
    // 100 observations: 50 up to 0.1 s, 50 more up to 0.2 s.
    let b = [(0.1, 50), (0.2, 100), (f64::INFINITY, 100)];
    assert!((quantile(0.5, &b).unwrap() - 0.1).abs() < 1e-12);
    assert!((quantile(0.99, &b).unwrap() - 0.198).abs() < 1e-12);
    assert!((quantile(0.25, &b).unwrap() - 0.05).abs() < 1e-12);
    // In the +Inf bucket: the highest finite bound.
    assert_eq!(quantile(0.99, &[(0.1, 1), (f64::INFINITY, 100)]), Some(0.1));
    assert_eq!(quantile(0.99, &[(0.1, 0), (f64::INFINITY, 0)]), None);
    assert_eq!(quantile(0.99, &[(0.1, 5)]), None);
}

#[test]
fn interval_figures_are_deltas_and_a_reset_counter_starts_over() {
    let earlier = Totals {
        requests: 100,
        errors: 1,
        buckets: vec![(0.1, 90), (f64::INFINITY, 100)],
    };
    let now = Totals {
        requests: 200,
        errors: 11,
        buckets: vec![(0.1, 190), (f64::INFINITY, 200)],
    };
    let f = now.since(&earlier);
    assert_eq!(f.requests, 100);
    assert!((f.error_rate.unwrap() - 0.1).abs() < 1e-12);
    assert!((f.p99.unwrap() - 0.099).abs() < 1e-12);
    let reset = Totals {
        requests: 10,
        errors: 0,
        buckets: vec![(0.1, 10), (f64::INFINITY, 10)],
    };
    assert_eq!(reset.since(&now).requests, 10);
    assert_eq!(Totals::default().since(&Totals::default()).error_rate, None);
}

#[test]
fn a_healthy_rollout_walks_every_step_then_promotes() {
    let s = steps();
    let mut r = RolloutState::start(secs(0));
    assert_eq!(r.canary_weight(&s), 5);
    // A pass before the pause has elapsed does not advance.
    assert_eq!(r.on_analysis(Verdict::Pass, &s, secs(30)), None);
    assert_eq!(
        r.on_analysis(Verdict::Pass, &s, secs(60)),
        Some(Phase::Progressing)
    );
    assert_eq!(r.canary_weight(&s), 20);
    // A new step needs its own passing analysis.
    assert_eq!(r.on_analysis(Verdict::Inconclusive, &s, secs(130)), None);
    assert_eq!(
        r.on_analysis(Verdict::Pass, &s, secs(140)),
        Some(Phase::Progressing)
    );
    assert_eq!(
        r.on_analysis(Verdict::Pass, &s, secs(200)),
        Some(Phase::Promoted)
    );
    assert_eq!(r.canary_weight(&s), 100);
}

#[test]
fn one_breach_rolls_back_at_once() {
    let s = steps();
    let mut r = RolloutState::start(secs(0));
    r.on_analysis(Verdict::Pass, &s, secs(60));
    assert_eq!(
        r.on_analysis(Verdict::Breach, &s, secs(61)),
        Some(Phase::Failed)
    );
    assert_eq!(r.canary_weight(&s), 0);
    assert_eq!(r.on_analysis(Verdict::Pass, &s, secs(999)), None);
}

#[test]
fn commands_pause_resume_abort_and_promote() {
    let s = steps();
    let mut r = RolloutState::start(secs(0));
    assert_eq!(r.command(Command::Pause, secs(1)), Ok(Phase::Paused));
    assert_eq!(r.on_analysis(Verdict::Breach, &s, secs(2)), None);
    assert_eq!(r.canary_weight(&s), 5);
    assert!(r.command(Command::Pause, secs(3)).is_err());
    assert_eq!(
        r.command(Command::Resume, secs(100)),
        Ok(Phase::Progressing)
    );
    // The pause starts again on resume.
    assert_eq!(r.on_analysis(Verdict::Pass, &s, secs(120)), None);
    assert_eq!(r.command(Command::Abort, secs(121)), Ok(Phase::Aborted));
    assert_eq!(r.canary_weight(&s), 0);
    assert_eq!(
        r.command(Command::Resume, secs(130)),
        Ok(Phase::Progressing)
    );
    assert_eq!((r.step, r.canary_weight(&s)), (0, 5));
    assert_eq!(r.command(Command::Promote, secs(131)), Ok(Phase::Promoted));
    assert!(r.command(Command::Promote, secs(132)).is_err());
    assert!(r.command(Command::Abort, secs(132)).is_err());
}

#[derive(Clone, Debug)]
enum Event {
    Analysis(Verdict),
    Command(Command),
    Wait(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => prop_oneof![
            Just(Verdict::Pass),
            Just(Verdict::Breach),
            Just(Verdict::Inconclusive)
        ]
        .prop_map(Event::Analysis),
        1 => prop_oneof![
            Just(Command::Pause),
            Just(Command::Resume),
            Just(Command::Abort),
            Just(Command::Promote)
        ]
        .prop_map(Event::Command),
        3 => (0u64..120).prop_map(Event::Wait),
    ]
}

proptest! {
    /// Whatever happens, the weight is a step's weight or 0/100 as the phase says; a breach while
    /// progressing always ends at 0%; a rollout that is not progressing ignores analyses; a step
    /// only advances once its pause has elapsed and an analysis during it passed.
    #[test]
    fn the_state_machine_keeps_its_invariants(
        weights in proptest::collection::vec(0u32..=100, 1..5),
        pause in 0u64..100,
        events in proptest::collection::vec(event(), 0..60),
    ) {
        let s: Vec<Step> = weights.iter().map(|&weight| Step { weight, pause: secs(pause) }).collect();
        let mut now = secs(1000);
        let mut r = RolloutState::start(now);
        for e in events {
            let before = r;
            match e {
                Event::Wait(d) => now += secs(d),
                Event::Analysis(v) => {
                    let to = r.on_analysis(v, &s, now);
                    if before.phase != Phase::Progressing {
                        prop_assert_eq!(r, before);
                    }
                    if before.phase == Phase::Progressing && v == Verdict::Breach {
                        prop_assert_eq!(to, Some(Phase::Failed));
                        prop_assert_eq!(r.canary_weight(&s), 0);
                    }
                    if r.step != before.step || r.phase == Phase::Promoted && before.phase != Phase::Promoted {
                        // At least one conclusive pass during the step, this one or an earlier.
                        prop_assert!(v == Verdict::Pass || before.passed > 0);
                        prop_assert_ne!(v, Verdict::Breach);
                        prop_assert!(now.saturating_sub(before.step_started) >= s[before.step].pause);
                        prop_assert!(r.step == before.step + 1 || r.phase == Phase::Promoted);
                    }
                }
                Event::Command(c) => {
                    if r.command(c, now).is_err() {
                        prop_assert_eq!(r, before);
                    }
                }
            }
            let w = r.canary_weight(&s);
            match r.phase {
                Phase::Promoted => prop_assert_eq!(w, 100),
                Phase::Failed | Phase::Aborted => prop_assert_eq!(w, 0),
                _ => prop_assert_eq!(w, s[r.step].weight),
            }
            prop_assert!(r.step < s.len());
        }
    }

    /// The quantile lies within the bucket bounds and never falls as `q` rises.
    #[test]
    fn quantile_is_bounded_and_monotone(
        counts in proptest::collection::vec(0u64..50, 1..8),
        q1 in 0.0f64..=1.0,
        q2 in 0.0f64..=1.0,
    ) {
        let mut cumulative = 0;
        let mut b: Vec<(f64, u64)> = counts.iter().enumerate().map(|(i, c)| {
            cumulative += c;
            ((i + 1) as f64 * 0.1, cumulative)
        }).collect();
        b.push((f64::INFINITY, cumulative + 1));
        let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
        let (a, z) = (quantile(lo, &b).unwrap(), quantile(hi, &b).unwrap());
        prop_assert!(a <= z + 1e-12, "{} > {}", a, z);
        prop_assert!((0.0..=counts.len() as f64 * 0.1 + 1e-12).contains(&z));
    }

    /// More errors never turn a breach into a pass, and more traffic never makes a conclusive
    /// verdict inconclusive.
    #[test]
    fn judging_is_monotone(requests in 0u64..200, errors in 0u64..200, p99 in 0.0f64..1.0) {
        let errors = errors.min(requests);
        let rate = |e: u64| if requests == 0 { None } else { Some(e as f64 / requests as f64) };
        let f = Figures { requests, error_rate: rate(errors), p99: Some(p99) };
        let worse = Figures { error_rate: rate((errors + 1).min(requests)), ..f };
        if judge(&f, &T) == Verdict::Breach {
            prop_assert_eq!(judge(&worse, &T), Verdict::Breach);
        }
        let more = Figures { requests: requests + 50, ..f };
        if judge(&f, &T) != Verdict::Inconclusive {
            prop_assert_eq!(judge(&more, &T), judge(&f, &T));
        }
    }
}
