//! Tests for which listen addresses clash.

use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn wildcards_overlap_specific_addresses_on_the_same_port() {
    assert!(overlaps(a("127.0.0.1:8080"), a("0.0.0.0:8080")));
    assert!(overlaps(a("0.0.0.0:8080"), a("10.0.0.1:8080")));
    assert!(overlaps(a("[::]:8080"), a("127.0.0.1:8080")));
    assert!(overlaps(a("[::]:8080"), a("0.0.0.0:8080")));
    assert!(overlaps(a("[::1]:8080"), a("[::]:8080")));
    assert!(overlaps(a("[::ffff:127.0.0.1]:8080"), a("127.0.0.1:8080")));
    assert!(overlaps(a("127.0.0.1:8080"), a("127.0.0.1:8080")));
}

#[test]
fn distinct_addresses_ports_and_port_zero_do_not_overlap() {
    assert!(!overlaps(a("127.0.0.1:8080"), a("127.0.0.2:8080")));
    assert!(!overlaps(a("127.0.0.1:8080"), a("[::1]:8080")));
    assert!(!overlaps(a("0.0.0.0:8080"), a("[::1]:8080")));
    assert!(!overlaps(a("0.0.0.0:8080"), a("0.0.0.0:8081")));
    assert!(!overlaps(a("0.0.0.0:0"), a("0.0.0.0:0")));
}

#[test]
fn the_second_of_two_clashing_addresses_is_reported_with_the_first_line() {
    let mut b = Binds::default();
    assert_eq!(
        b.add(a("127.0.0.1:9901"), (2, 11), "admin.listen".into()),
        None
    );
    let why = b
        .add(a("0.0.0.0:9901"), (5, 13), "listener `web`".into())
        .unwrap();
    assert!(
        why.contains("overlaps 127.0.0.1:9901 at line 2 (admin.listen)"),
        "{why}"
    );
    let why = b
        .add(a("127.0.0.1:9901"), (7, 13), "listener `b`".into())
        .unwrap();
    assert!(why.contains("already used at line 2"), "{why}");
    let mut b = Binds::default();
    b.add(
        a("127.0.0.1:9901"),
        (0, 0),
        "the default admin.listen".into(),
    );
    let why = b
        .add(a("[::]:9901"), (3, 13), "listener `web`".into())
        .unwrap();
    assert!(
        why.contains("127.0.0.1:9901 (the default admin.listen)"),
        "{why}"
    );
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        Just("0.0.0.0"),
        Just("127.0.0.1"),
        Just("127.0.0.2"),
        Just("::"),
        Just("::1"),
        Just("::ffff:127.0.0.1"),
    ];
    (ip, 0u16..3).prop_map(|(ip, port)| SocketAddr::new(ip.parse().unwrap(), port))
}

proptest! {
    #[test]
    fn overlap_is_symmetric_and_needs_the_same_nonzero_port(x in addr(), y in addr()) {
        prop_assert_eq!(overlaps(x, y), overlaps(y, x));
        if overlaps(x, y) {
            prop_assert!(x.port() == y.port() && x.port() != 0);
        }
        if x.port() != 0 {
            prop_assert!(overlaps(x, x));
        }
    }
}
