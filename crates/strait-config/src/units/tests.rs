//! Tests for duration and size parsing.

use super::*;

#[test]
fn durations_accept_each_unit() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
}

#[test]
fn durations_may_be_composite() {
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(
        parse_duration("1h1m1s1ms"),
        Ok(Duration::from_millis(3_661_001))
    );
}

#[test]
fn bare_number_duration_asks_for_a_unit() {
    let err = parse_duration("15").unwrap_err();
    assert!(err.contains("has no unit"), "{err}");
    assert!(err.contains("15s"), "{err}");
}

#[test]
fn unknown_duration_unit_is_named() {
    let err = parse_duration("2x").unwrap_err();
    assert!(err.contains("unknown unit `x`"), "{err}");
}

#[test]
fn fractional_and_empty_durations_are_rejected() {
    assert!(parse_duration("1.5s").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("1m30").is_err());
    assert!(parse_duration("-1s").is_err());
}

#[test]
fn huge_duration_is_an_error_not_an_overflow() {
    let err = parse_duration("99999999999999999999h").unwrap_err();
    assert!(err.contains("too large"), "{err}");
    assert!(parse_duration("18446744073709551615h").is_err());
}

#[test]
fn duration_prints_back_in_config_syntax() {
    assert_eq!(duration_to_string(Duration::from_secs(90)), "1m30s");
    assert_eq!(duration_to_string(Duration::from_secs(15)), "15s");
    assert_eq!(duration_to_string(Duration::from_millis(1500)), "1s500ms");
    assert_eq!(duration_to_string(Duration::ZERO), "0s");
    assert_eq!(duration_to_string(Duration::from_secs(3600)), "1h");
    for s in ["300s", "2s", "1h1m1s1ms"] {
        let d = parse_duration(s).unwrap();
        assert_eq!(parse_duration(&duration_to_string(d)), Ok(d));
    }
}

#[test]
fn sizes_accept_units_and_plain_bytes() {
    assert_eq!(parse_size("64KiB"), Ok(65_536));
    assert_eq!(parse_size("1MiB"), Ok(1_048_576));
    assert_eq!(parse_size("512B"), Ok(512));
    assert_eq!(parse_size("2GiB"), Ok(2 << 30));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("0"), Ok(0));
}

#[test]
fn decimal_size_units_suggest_binary_ones() {
    let err = parse_size("64KB").unwrap_err();
    assert!(err.contains("did you mean `KiB`"), "{err}");
    for g in ["1G", "1GB", "1gb"] {
        let err = parse_size(g).unwrap_err();
        assert!(err.contains("did you mean `GiB`"), "{g}: {err}");
    }
    assert!(parse_size("KiB").is_err());
    assert!(parse_size("-1").is_err());
    assert!(parse_size("99999999999999999999MiB").is_err());
    assert!(parse_size("17179869184GiB").is_err());
}
