//! Values with several accepted YAML forms (string or list, string or map) and ordered maps.
//!
//! These are hand-written visitors rather than `#[serde(untagged)]`: untagged enums lose
//! source locations and reduce every mistake to "data did not match any variant".

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::S;

/// A mapping kept in written order, with each key's location (header names, query names).
pub(crate) struct Pairs<V>(pub Vec<(S, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<V> {
            type Value = Pairs<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<S>()? {
                    out.push((key, map.next_value()?));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(PairsVisitor(PhantomData))
    }
}

/// One string or a list of strings (`host:`). A single string has no location of its own;
/// validation uses the enclosing `Spanned`'s.
pub(crate) struct StrOrList(pub Vec<S>);

impl<'de> Deserialize<'de> for StrOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StrOrList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a host name or a list of host names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrOrList(vec![unspanned(v.to_owned())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<S>()? {
                    out.push(item);
                }
                Ok(StrOrList(out))
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

/// An endpoint: `"host:port"` or `{ address, weight, labels }`.
pub(crate) enum RawEndpoint {
    Short(String),
    Full(Box<RawEndpointFull>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpointFull {
    pub address: S,
    pub weight: Option<S>,
    pub labels: Option<Spanned<Pairs<S>>>,
}

/// A header/query match value: `"exact"`, `{ regex }` or `{ present }`.
pub(crate) enum RawValueMatch {
    Exact(String),
    Full(RawValueMatchFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawValueMatchFull {
    pub regex: Option<S>,
    pub present: Option<Spanned<bool>>,
}

/// A consistent-hash key: `client_ip`, `path`, `{ header }` or `{ cookie }`.
pub(crate) enum RawHashOn {
    Token(String),
    Full(RawHashOnFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHashOnFull {
    pub header: Option<S>,
    pub cookie: Option<S>,
}

/// A listener's `http3:`: `true`/`false`, or its QUIC limits (which turn it on).
pub(crate) enum RawHttp3 {
    Flag(bool),
    Full(Box<RawHttp3Full>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp3Full {
    pub max_concurrent_streams: Option<S>,
    pub idle_timeout: Option<S>,
    pub max_udp_payload_size: Option<S>,
}

impl<'de> Deserialize<'de> for RawHttp3 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Http3Visitor;
        impl<'de> Visitor<'de> for Http3Visitor {
            type Value = RawHttp3;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "true, false, or { max_concurrent_streams: N, idle_timeout: DURATION, \
                     max_udp_payload_size: BYTES }",
                )
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawHttp3, E> {
                Ok(RawHttp3::Flag(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawHttp3, A::Error> {
                RawHttp3Full::deserialize(MapAccessDeserializer::new(map))
                    .map(|f| RawHttp3::Full(Box::new(f)))
            }
        }
        d.deserialize_any(Http3Visitor)
    }
}

/// A listener's `tls.session_resumption:`: `true`/`false`, or its ticket key rotation.
pub(crate) enum RawSessionResumption {
    Flag(bool),
    Full(RawSessionResumptionFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSessionResumptionFull {
    pub ticket_rotation: Option<S>,
}

impl<'de> Deserialize<'de> for RawSessionResumption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ResumptionVisitor;
        impl<'de> Visitor<'de> for ResumptionVisitor {
            type Value = RawSessionResumption;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, or { ticket_rotation: DURATION }")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawSessionResumption, E> {
                Ok(RawSessionResumption::Flag(v))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawSessionResumption, A::Error> {
                RawSessionResumptionFull::deserialize(MapAccessDeserializer::new(map))
                    .map(RawSessionResumption::Full)
            }
        }
        d.deserialize_any(ResumptionVisitor)
    }
}

/// A `Spanned` whose position is filled in later from its parent.
pub(crate) fn unspanned(value: String) -> S {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

/// Visits a scalar or a mapping; the mapping goes to a derived struct so its unknown
/// fields are still reported with their location and the list of expected names.
pub(crate) struct ScalarOrMap<T, M> {
    pub expecting: &'static str,
    /// Whether numbers count as text (`x-version: 2`); otherwise they are a type error.
    pub numbers_as_text: bool,
    pub from_str: fn(String) -> T,
    pub from_map: fn(M) -> T,
}

impl<'de, T, M: Deserialize<'de>> Visitor<'de> for ScalarOrMap<T, M> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.from_str)(v.to_owned()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        if self.numbers_as_text {
            return Ok((self.from_str)(v.to_string()));
        }
        Err(E::invalid_type(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        if self.numbers_as_text {
            return Ok((self.from_str)(v.to_string()));
        }
        Err(E::invalid_type(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // A float's text is lost by the time we see it (`1.50` arrives as 1.5), so matching
        // on it would silently compare against the wrong string.
        Err(E::custom(format!(
            "the number {v} must be quoted to be matched as text (e.g. \"{v}\")"
        )))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        if self.numbers_as_text {
            return Ok((self.from_str)(v.to_string()));
        }
        Err(E::invalid_type(de::Unexpected::Bool(v), &self))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        M::deserialize(MapAccessDeserializer::new(map)).map(self.from_map)
    }
}

impl<'de> Deserialize<'de> for RawEndpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarOrMap {
            expecting:
                "an endpoint: \"host:port\" or { address: \"host:port\", weight: N, labels: { NAME: VALUE } }",
            numbers_as_text: false,
            from_str: RawEndpoint::Short,
            from_map: |f| RawEndpoint::Full(Box::new(f)),
        })
    }
}

impl<'de> Deserialize<'de> for RawValueMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarOrMap {
            expecting: "a value to match: \"text\", { regex: \"...\" } or { present: true|false }",
            numbers_as_text: true,
            from_str: RawValueMatch::Exact,
            from_map: RawValueMatch::Full,
        })
    }
}

impl<'de> Deserialize<'de> for RawHashOn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarOrMap {
            expecting: "a hash key: client_ip, path, { header: NAME } or { cookie: NAME }",
            numbers_as_text: false,
            from_str: RawHashOn::Token,
            from_map: RawHashOn::Full,
        })
    }
}
