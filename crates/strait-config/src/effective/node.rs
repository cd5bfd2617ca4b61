//! The ordered tree the effective configuration is written as, and the small builder that makes it read like the configuration it prints.

use std::path::Path;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::units::duration_to_string;

/// A document tree that keeps its keys in the order written (serde_json's maps sort them, and
/// a printed configuration should read in the documented order).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// Text (also numbers that must keep their spelling, such as `"1.2"`).
    Str(String),
    /// A sequence.
    List(Vec<Node>),
    /// A mapping in written order.
    Map(Vec<(String, Node)>),
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Int(i) => s.serialize_i64(*i),
            Node::Str(v) => s.serialize_str(v),
            Node::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Node::Map(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl Node {
    /// As a JSON value (key order is lost: JSON readers do not rely on it).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Builds a mapping from `(key, Option<Node>)` pairs, leaving out the `None`s.
pub(super) struct M(Vec<(String, Node)>);

impl M {
    pub(super) fn new() -> Self {
        M(Vec::new())
    }
    pub(super) fn put(mut self, k: &str, v: impl Into<Node>) -> Self {
        self.0.push((k.to_string(), v.into()));
        self
    }
    pub(super) fn opt(self, k: &str, v: Option<impl Into<Node>>) -> Self {
        match v {
            Some(v) => self.put(k, v),
            None => self,
        }
    }
}

impl From<M> for Node {
    fn from(m: M) -> Node {
        Node::Map(m.0)
    }
}
impl From<&str> for Node {
    fn from(s: &str) -> Node {
        Node::Str(s.to_string())
    }
}
impl From<String> for Node {
    fn from(s: String) -> Node {
        Node::Str(s)
    }
}
impl From<bool> for Node {
    fn from(b: bool) -> Node {
        Node::Bool(b)
    }
}
impl From<Duration> for Node {
    fn from(d: Duration) -> Node {
        Node::Str(duration_to_string(d))
    }
}
impl From<&Path> for Node {
    /// Absolute, so the print means the same file wherever it is saved (a relative path in the
    /// configuration was resolved against its file's directory).
    fn from(p: &Path) -> Node {
        Node::Str(crate::paths::absolute(p).display().to_string())
    }
}
impl<T: Into<Node>> From<Vec<T>> for Node {
    fn from(v: Vec<T>) -> Node {
        Node::List(v.into_iter().map(Into::into).collect())
    }
}

pub(super) fn int(n: impl TryInto<i64>) -> Node {
    Node::Int(n.try_into().unwrap_or(i64::MAX))
}

pub(super) fn pairs(p: &[(String, String)]) -> Node {
    Node::Map(
        p.iter()
            .map(|(k, v)| (k.clone(), Node::from(v.as_str())))
            .collect(),
    )
}
