//! The HTTP/2 guard's pure core: frame scanning, stream tracking, deadlines and the flood budget,
//! driven with explicit instants.

use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::scan::{flag, frame, ty, FrameHead, Scanner, PREFACE_LEN};
use super::state::{Action, Close, H2Limits, H2State, FLOOD_BURST, FLOOD_REFILL_PER_SEC};
use crate::reject::Reason;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn limits() -> H2Limits {
    H2Limits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(300),
        send_timeout: Duration::from_secs(60),
        close_grace: Duration::from_secs(20),
        max_streams: 100,
    }
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn headers(stream: u32, flags: u8) -> Vec<u8> {
    frame(ty::HEADERS, flags, stream, b"\x82")
}

fn started(t0: Instant) -> H2State {
    let mut st = H2State::new(limits(), t0);
    st.on_read(PREFACE, t0).unwrap();
    st
}

fn no_report(r: Reason) {
    panic!("unexpected refusal {r:?}");
}

#[test]
fn scanner_finds_frames_across_any_split() {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(ty::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 1]));
    bytes.extend(frame(ty::DATA, flag::END_STREAM, 3, &[7; 300]));
    bytes.extend(frame(6, 0, 0, &[0; 8]));
    for split in 0..bytes.len() {
        let mut s = Scanner::client();
        let mut seen: Vec<(FrameHead, Vec<u8>)> = Vec::new();
        s.feed(&bytes[..split], |h, p| seen.push((h, p.to_vec())));
        s.feed(&bytes[split..], |h, p| seen.push((h, p.to_vec())));
        let types: Vec<u8> = seen.iter().map(|(h, _)| h.ty).collect();
        assert_eq!(types, [ty::SETTINGS, ty::DATA, 6], "split at {split}");
        assert_eq!(seen[0].1, [0, 4, 0, 0, 0, 1]);
        assert_eq!(seen[1].0.len, 300);
        assert_eq!(
            seen[1].1.len(),
            super::scan::CAPTURE,
            "payload capture is bounded"
        );
        assert!(s.at_boundary());
    }
}

#[test]
fn scanner_is_not_at_a_boundary_inside_the_preface_or_a_frame() {
    let mut s = Scanner::client();
    assert!(!s.at_boundary());
    s.feed(&PREFACE[..PREFACE_LEN - 1], |_, _| {});
    assert!(!s.at_boundary());
    s.feed(&PREFACE[PREFACE_LEN - 1..], |_, _| {});
    assert!(s.at_boundary());
    let f = frame(6, 0, 0, &[0; 8]);
    s.feed(&f[..5], |_, _| {});
    assert!(!s.at_boundary());
    s.feed(&f[5..12], |_, _| {});
    assert!(!s.at_boundary());
    s.feed(&f[12..], |_, _| {});
    assert!(s.at_boundary());
}

#[test]
fn a_connection_without_a_first_request_closes_at_the_header_timeout() {
    let t0 = Instant::now();
    let mut st = started(t0);
    assert_eq!(st.deadline(), Some(secs(t0, 10)));
    assert_eq!(st.on_timeout(secs(t0, 9)), Action::None);
    assert_eq!(
        st.on_timeout(secs(t0, 10)),
        Action::Close(Close::HeaderTimeout { partial: false })
    );
}

#[test]
fn an_unfinished_header_block_is_a_partial_request_and_closes() {
    let t0 = Instant::now();
    let mut st = started(t0);
    st.on_read(&headers(1, flag::END_STREAM), secs(t0, 1))
        .unwrap();
    st.on_read(&frame(ty::CONTINUATION, 0, 1, b""), secs(t0, 5))
        .unwrap();
    assert_eq!(
        st.on_timeout(secs(t0, 10)),
        Action::Close(Close::HeaderTimeout { partial: true })
    );

    // After a first request, a later block gets its own header_read_timeout.
    let mut st = started(t0);
    st.on_read(&headers(1, flag::END_HEADERS), t0).unwrap();
    st.on_read(&headers(3, 0), secs(t0, 100)).unwrap();
    assert_eq!(st.on_timeout(secs(t0, 109)), Action::None);
    assert_eq!(
        st.on_timeout(secs(t0, 110)),
        Action::Close(Close::HeaderTimeout { partial: true })
    );
}

#[test]
fn idle_starts_when_the_last_stream_ends_and_pings_do_not_reset_it() {
    let t0 = Instant::now();
    let mut st = started(t0);
    st.on_read(&headers(1, flag::END_HEADERS | flag::END_STREAM), t0)
        .unwrap();
    assert_eq!(st.open_streams(), 1);
    let resp = frame(
        ty::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        1,
        b"\x88",
    );
    st.on_write(&resp, secs(t0, 1), &mut no_report);
    assert_eq!(st.open_streams(), 0);
    for s in 2..300 {
        st.on_read(&frame(6, 0, 0, &[0; 8]), secs(t0, s)).unwrap();
    }
    assert_eq!(st.deadline(), Some(secs(t0, 301)));
    assert_eq!(st.on_timeout(secs(t0, 301)), Action::Idle);
    // Asked to close gracefully: closed when still open after the grace.
    assert_eq!(st.on_timeout(secs(t0, 320)), Action::None);
    assert_eq!(st.on_timeout(secs(t0, 321)), Action::Close(Close::Idle));
}

#[test]
fn a_stream_kept_at_a_zero_window_is_reset_after_send_timeout() {
    let t0 = Instant::now();
    let mut st = started(t0);
    st.on_read(
        &frame(ty::WINDOW_UPDATE, 0, 0, &(1u32 << 30).to_be_bytes()),
        t0,
    )
    .unwrap();
    st.on_read(&headers(1, flag::END_HEADERS | flag::END_STREAM), t0)
        .unwrap();
    st.on_write(
        &frame(ty::DATA, 0, 1, &[0; 65_535]),
        secs(t0, 1),
        &mut no_report,
    );
    assert_eq!(st.deadline(), Some(secs(t0, 61)));
    // A window update in time saves it; exhausting the window again restarts the clock.
    st.on_read(
        &frame(ty::WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes()),
        secs(t0, 30),
    )
    .unwrap();
    st.on_write(
        &frame(ty::DATA, 0, 1, &[0; 100]),
        secs(t0, 40),
        &mut no_report,
    );
    assert_eq!(st.on_timeout(secs(t0, 61)), Action::None);
    assert_eq!(st.on_timeout(secs(t0, 100)), Action::Reset(vec![1]));
    assert_eq!(st.open_streams(), 0);
}

#[test]
fn a_window_that_starts_at_zero_is_not_a_stall() {
    // A client may open with SETTINGS_INITIAL_WINDOW_SIZE 0 and a slow first response.
    let t0 = Instant::now();
    let mut st = started(t0);
    st.on_read(&frame(ty::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]), t0)
        .unwrap();
    st.on_read(&headers(1, flag::END_HEADERS | flag::END_STREAM), t0)
        .unwrap();
    assert_eq!(st.on_timeout(secs(t0, 200)), Action::None);
}

#[test]
fn a_shut_connection_window_closes_the_connection() {
    let t0 = Instant::now();
    let mut st = started(t0);
    st.on_read(&headers(1, flag::END_HEADERS | flag::END_STREAM), t0)
        .unwrap();
    st.on_read(
        &frame(ty::WINDOW_UPDATE, 0, 1, &(1u32 << 20).to_be_bytes()),
        t0,
    )
    .unwrap();
    st.on_write(&frame(ty::DATA, 0, 1, &[0; 65_535]), t0, &mut no_report);
    assert_eq!(
        st.on_timeout(secs(t0, 60)),
        Action::Close(Close::SendTimeout)
    );
}

#[test]
fn a_blocked_socket_closes_the_connection_after_send_timeout() {
    let t0 = Instant::now();
    let mut st = started(t0);
    st.on_read(&headers(1, flag::END_HEADERS), t0).unwrap();
    st.on_write_blocked(secs(t0, 1));
    st.on_write_blocked(secs(t0, 30));
    assert_eq!(st.deadline(), Some(secs(t0, 61)));
    assert_eq!(
        st.on_timeout(secs(t0, 61)),
        Action::Close(Close::SendTimeout)
    );
}

#[test]
fn codec_refusals_are_reported_and_its_own_resets_are_not() {
    let t0 = Instant::now();
    let mut st = started(t0);
    let mut seen = Vec::new();
    let mut report = |r| seen.push(r);
    for (code, stream) in [(7u32, 1), (1, 3), (8, 5), (2, 7), (0, 9)] {
        st.on_write(
            &frame(ty::RST_STREAM, 0, stream, &code.to_be_bytes()),
            t0,
            &mut report,
        );
    }
    let mut goaway = 9u32.to_be_bytes().to_vec();
    goaway.extend(0xbu32.to_be_bytes());
    st.on_write(&frame(7, 0, 0, &goaway), t0, &mut report);
    assert_eq!(
        seen,
        [
            Reason::H2RefusedStream,
            Reason::H2ProtocolError,
            Reason::H2EnhanceYourCalm
        ]
    );
}

#[test]
fn too_many_open_streams_is_a_flood() {
    let t0 = Instant::now();
    let mut st = started(t0);
    for i in 0..100 {
        st.on_read(&headers(1 + 2 * i, flag::END_HEADERS), t0)
            .unwrap();
    }
    assert_eq!(
        st.on_read(&headers(201, flag::END_HEADERS), t0),
        Err(Close::Flood)
    );
}

#[test]
fn control_frames_beyond_the_budget_are_a_flood_and_time_refills_it() {
    let t0 = Instant::now();
    let ping = frame(6, 0, 0, &[0; 8]);
    let mut st = started(t0);
    for _ in 0..FLOOD_BURST {
        st.on_read(&ping, t0).unwrap();
    }
    assert_eq!(st.on_read(&ping, t0), Err(Close::Flood));

    let mut st = started(t0);
    for _ in 0..FLOOD_BURST {
        st.on_read(&ping, t0).unwrap();
    }
    let later = t0 + Duration::from_secs(1);
    for _ in 0..FLOOD_REFILL_PER_SEC {
        st.on_read(&ping, later).unwrap();
    }
    assert_eq!(st.on_read(&ping, later), Err(Close::Flood));
}

#[test]
fn window_updates_answering_data_cost_nothing() {
    // A client may acknowledge every DATA frame with a stream and a connection update.
    let t0 = Instant::now();
    let mut st = started(t0);
    st.on_read(&headers(1, flag::END_HEADERS | flag::END_STREAM), t0)
        .unwrap();
    for _ in 0..10 * FLOOD_BURST {
        st.on_write(&frame(ty::DATA, 0, 1, &[0; 16]), t0, &mut no_report);
        for stream in [1, 0] {
            let update = frame(ty::WINDOW_UPDATE, 0, stream, &16u32.to_be_bytes());
            st.on_read(&update, t0).unwrap();
        }
    }
}

proptest! {
    /// Arbitrary bytes in either direction, in arbitrary pieces, never panic, and the deadline
    /// logic always terminates.
    #[test]
    fn arbitrary_frames_never_panic(
        reads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16),
        writes in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16),
        step in 0u64..400,
    ) {
        let t0 = Instant::now();
        let mut st = H2State::new(limits(), t0);
        let mut report = |_| {};
        for (i, (r, w)) in reads.iter().zip(writes.iter().chain(std::iter::repeat(&Vec::new()))).enumerate() {
            let now = t0 + Duration::from_secs(i as u64 * step);
            let _ = st.on_read(r, now);
            st.on_write(w, now, &mut report);
            for _ in 0..8 {
                match st.on_timeout(now) {
                    Action::None | Action::Close(_) => break,
                    _ => {}
                }
            }
        }
    }
}
