//! Client-address vocabulary: CIDR blocks, an address set matched in O(distinct prefix lengths), and the trusted-proxy walk over `X-Forwarded-For`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address block such as `10.0.0.0/8` or `2001:db8::/32` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The block's first address (host bits cleared); IPv4-mapped IPv6 is stored as IPv4.
    pub addr: IpAddr,
    /// Prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub len: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| {
            format!("`{s}` is not an address block such as 10.0.0.0/8 or 2001:db8::/32")
        })?;
        let mapped = matches!(addr, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => {
                let n: u8 = l
                    .parse()
                    .map_err(|_| format!("`{s}`: the prefix length must be a number"))?;
                // `::ffff:10.0.0.0/104` is the IPv4 block 10.0.0.0/8.
                let n = if mapped && n >= 96 { n - 96 } else { n };
                if n > max {
                    return Err(format!("`{s}`: the prefix length must be at most {max}"));
                }
                n
            }
        };
        Ok(Cidr {
            addr: mask(addr, len),
            len,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Cidr {
    /// Whether `ip` is in the block (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }
}

/// IPv4-mapped IPv6 (`::ffff:192.0.2.1`) as IPv4; other addresses unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask4(u32::from(v4), len))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask6(u128::from(v6), len))),
    }
}

fn mask4(v: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        v & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(v: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        v & (u128::MAX << (128 - u32::from(len)))
    }
}

/// A set of address blocks; a lookup masks the address once per distinct prefix length and
/// probes a hash set, so its cost does not grow with the number of blocks.
#[derive(Clone, Debug, Default)]
pub struct IpSet {
    v4: Vec<(u8, HashSet<u32>)>,
    v6: Vec<(u8, HashSet<u128>)>,
}

impl IpSet {
    /// The set of `blocks`.
    pub fn new(blocks: &[Cidr]) -> Self {
        let mut set = IpSet::default();
        for b in blocks {
            match b.addr {
                IpAddr::V4(a) => insert(&mut set.v4, b.len, u32::from(a)),
                IpAddr::V6(a) => insert(&mut set.v6, b.len, u128::from(a)),
            }
        }
        // Longest prefixes first: specific blocks are the likelier hits in practice.
        set.v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        set.v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        set
    }

    /// Whether no block is in the set.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `ip` is in one of the blocks (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(a) => {
                let v = u32::from(a);
                self.v4.iter().any(|(len, s)| s.contains(&mask4(v, *len)))
            }
            IpAddr::V6(a) => {
                let v = u128::from(a);
                self.v6.iter().any(|(len, s)| s.contains(&mask6(v, *len)))
            }
        }
    }
}

fn insert<T: std::hash::Hash + Eq>(list: &mut Vec<(u8, HashSet<T>)>, len: u8, v: T) {
    match list.iter_mut().find(|(l, _)| *l == len) {
        Some((_, s)) => {
            s.insert(v);
        }
        None => list.push((len, HashSet::from([v]))),
    }
}

/// One `X-Forwarded-For` entry as an address: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:443` or `192.0.2.1:443`; `None` when malformed.
pub fn forwarded_entry(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = e.strip_prefix('[') {
        let (inner, tail) = rest.split_once(']')?;
        if !(tail.is_empty() || tail.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (a, port) = e.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    a.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// The client behind `peer`: when `peer` is trusted, the right-most address of the forwarded
/// chain (`values`, in header order) that is not itself trusted; when every address is trusted,
/// the left-most; a malformed entry stops the walk at the last good address. An untrusted peer
/// is the client, whatever the header says.
pub fn resolve_client<'v>(
    peer: IpAddr,
    values: impl DoubleEndedIterator<Item = &'v [u8]>,
    trusted: &IpSet,
) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    for value in values.rev() {
        let Ok(text) = std::str::from_utf8(value) else {
            return client;
        };
        for entry in text.rsplit(',') {
            if entry.trim().is_empty() {
                // `a, , b` and trailing commas carry nothing; they do not stop the walk.
                continue;
            }
            match forwarded_entry(entry) {
                None => return client,
                Some(ip) => {
                    client = canonical(ip);
                    if !trusted.contains(client) {
                        return client;
                    }
                }
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(blocks: &[&str]) -> IpSet {
        let b: Vec<Cidr> = blocks.iter().map(|s| s.parse().unwrap()).collect();
        IpSet::new(&b)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("192.0.2.1".parse::<Cidr>().unwrap().len, 32);
        assert_eq!(
            "::ffff:10.0.0.0/104".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "2001:db8::1/32".parse::<Cidr>().unwrap().to_string(),
            "2001:db8::/32"
        );
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn set_matches_v4_v6_and_mapped() {
        let s = set(&["10.0.0.0/8", "192.0.2.66/32", "2001:db8::/32", "0.0.0.0/0"]);
        assert!(s.contains(ip("8.8.8.8")));
        assert!(s.contains(ip("::ffff:8.8.8.8")));
        assert!(s.contains(ip("2001:db8:1::5")));
        assert!(!s.contains(ip("2001:db9::5")));
        let s = set(&["192.0.2.0/24"]);
        assert!(s.contains(ip("::ffff:192.0.2.9")));
        assert!(!s.contains(ip("192.0.3.9")));
        assert!(!IpSet::default().contains(ip("1.2.3.4")));
    }

    #[test]
    fn forwarded_entries() {
        assert_eq!(forwarded_entry(" 192.0.2.1 "), Some(ip("192.0.2.1")));
        assert_eq!(forwarded_entry("192.0.2.1:8080"), Some(ip("192.0.2.1")));
        assert_eq!(
            forwarded_entry("[2001:db8::1]:443"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(forwarded_entry("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(forwarded_entry("2001:db8::1"), Some(ip("2001:db8::1")));
        for bad in [
            "unknown",
            "_hidden",
            "192.0.2.1:",
            "[::1]x",
            "1.2.3.4:123456",
            "",
        ] {
            assert_eq!(forwarded_entry(bad), None, "{bad}");
        }
    }

    fn walk(peer: &str, values: &[&str], trusted: &[&str]) -> IpAddr {
        let v: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
        resolve_client(ip(peer), v.into_iter(), &set(trusted))
    }

    #[test]
    fn resolution_examples() {
        let t = ["10.0.0.0/8"];
        // Untrusted peer: the header is ignored.
        assert_eq!(walk("203.0.113.9", &["1.1.1.1"], &t), ip("203.0.113.9"));
        // Trusted peer: right-most untrusted entry; spoofed left entries do not matter.
        assert_eq!(
            walk("10.0.0.1", &["6.6.6.6, 1.1.1.1, 10.0.0.2"], &t),
            ip("1.1.1.1")
        );
        // Several header lines read as one list.
        assert_eq!(
            walk("10.0.0.1", &["6.6.6.6", "1.1.1.1", "10.0.0.2"], &t),
            ip("1.1.1.1")
        );
        // All trusted: the left-most.
        assert_eq!(
            walk("10.0.0.1", &["10.9.9.9, 10.0.0.2"], &t),
            ip("10.9.9.9")
        );
        // Malformed stops the walk at the last good address.
        assert_eq!(
            walk("10.0.0.1", &["1.1.1.1, garbage, 10.0.0.2"], &t),
            ip("10.0.0.2")
        );
        assert_eq!(walk("10.0.0.1", &["garbage"], &t), ip("10.0.0.1"));
        // No header: the peer.
        assert_eq!(walk("10.0.0.1", &[], &t), ip("10.0.0.1"));
        // Mapped entries are IPv4.
        assert_eq!(walk("10.0.0.1", &["::ffff:1.2.3.4"], &t), ip("1.2.3.4"));
        assert_eq!(walk("10.0.0.1", &["2001:db8::7"], &t), ip("2001:db8::7"));
    }

    fn v4() -> impl Strategy<Value = u32> {
        any::<u32>()
    }

    proptest! {
        #[test]
        fn set_agrees_with_linear_scan(
            blocks in proptest::collection::vec((v4(), 0u8..=32), 0..20),
            v6blocks in proptest::collection::vec((any::<u128>(), 0u8..=128), 0..10),
            probes in proptest::collection::vec(v4(), 1..20),
            probes6 in proptest::collection::vec(any::<u128>(), 1..10),
        ) {
            let mut cidrs: Vec<Cidr> = blocks
                .iter()
                .map(|(a, l)| format!("{}/{}", Ipv4Addr::from(*a), l).parse().unwrap())
                .collect();
            cidrs.extend(v6blocks.iter().map(|(a, l)| format!("{}/{}", Ipv6Addr::from(*a), l).parse::<Cidr>().unwrap()));
            let s = IpSet::new(&cidrs);
            // Probes near the blocks, as well as random ones, so hits are likely.
            let near = blocks.iter().map(|(a, _)| *a ^ 1);
            for p in probes.iter().copied().chain(near) {
                let a = IpAddr::V4(Ipv4Addr::from(p));
                let linear = cidrs.iter().any(|c| c.contains(a));
                prop_assert_eq!(s.contains(a), linear);
                let mapped = IpAddr::V6(Ipv4Addr::from(p).to_ipv6_mapped());
                prop_assert_eq!(s.contains(mapped), linear);
            }
            for p in probes6.iter().copied().chain(v6blocks.iter().map(|(a, _)| *a)) {
                let a = IpAddr::V6(Ipv6Addr::from(p));
                prop_assert_eq!(s.contains(a), cidrs.iter().any(|c| c.contains(a)));
            }
        }

        #[test]
        fn resolution_matches_reference(
            peer_trusted in any::<bool>(),
            chain in proptest::collection::vec((any::<bool>(), any::<u8>(), any::<bool>()), 0..8),
        ) {
            // Trusted = 10.0.0.0/8; entries are trusted or not, and sometimes malformed.
            let trusted = set(&["10.0.0.0/8"]);
            let peer = if peer_trusted { ip("10.0.0.1") } else { ip("203.0.113.1") };
            let entries: Vec<String> = chain
                .iter()
                .map(|(t, n, bad)| if *bad && *n % 4 == 0 {
                    "bogus".to_owned()
                } else if *t { format!("10.1.1.{n}") } else { format!("198.51.100.{n}") })
                .collect();
            let header = entries.join(", ");
            let got = resolve_client(peer, std::iter::once(header.as_bytes()), &trusted);
            // Reference: walk a parsed vector from the right.
            let mut want = peer;
            if peer_trusted {
                for e in entries.iter().rev() {
                    match e.parse::<IpAddr>() {
                        Err(_) => break,
                        Ok(a) => {
                            want = a;
                            if !trusted.contains(a) { break; }
                        }
                    }
                }
            }
            prop_assert_eq!(got, want);
            // Never a trusted address when an untrusted one stands right of every malformed entry.
            if !peer_trusted { prop_assert_eq!(got, peer); }
        }
    }
}
