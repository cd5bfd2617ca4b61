//! The part of etcd's v3 gRPC API that Strait speaks, as checked-in prost messages (no `protoc` at build time).
//!
//! Field numbers and types are those of etcd's `api/etcdserverpb/rpc.proto` and
//! `api/mvccpb/kv.proto` (stable since etcd 3.0; tested against 3.4). Only the fields Strait
//! sets or reads are declared: a decoder skips fields it does not know, and an encoder leaves
//! out fields at their default, so a smaller message is the same bytes on the wire. Add a
//! field by copying its number from those files.

/// `/etcdserverpb.KV/Range`.
pub const RANGE: &str = "/etcdserverpb.KV/Range";
/// `/etcdserverpb.KV/Put`.
pub const PUT: &str = "/etcdserverpb.KV/Put";
/// `/etcdserverpb.KV/DeleteRange`.
pub const DELETE_RANGE: &str = "/etcdserverpb.KV/DeleteRange";
/// `/etcdserverpb.KV/Txn`.
pub const TXN: &str = "/etcdserverpb.KV/Txn";
/// `/etcdserverpb.KV/Compact`.
pub const COMPACT: &str = "/etcdserverpb.KV/Compact";
/// `/etcdserverpb.Watch/Watch` (bidirectional stream).
pub const WATCH: &str = "/etcdserverpb.Watch/Watch";
/// `/etcdserverpb.Auth/Authenticate`.
pub const AUTHENTICATE: &str = "/etcdserverpb.Auth/Authenticate";

/// The end of the range holding every key that starts with `prefix` (etcd's "prefix + 1").
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from `prefix` on.
    vec![0]
}

/// The revision a response was served at (and who served it).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ResponseHeader {
    /// The member that answered.
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    /// The store's revision when the request was applied.
    #[prost(int64, tag = "3")]
    pub revision: i64,
}

/// One key and its value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The revision of the last change to the key.
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    /// The value.
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
}

/// `RangeRequest`: the keys in `[key, range_end)`, or `key` alone when `range_end` is empty.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    /// First key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// End of the range (exclusive); see [`prefix_end`].
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
}

/// `RangeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    /// Revision read at.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// The keys, in key order.
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
}

/// `PutRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    /// Key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Value.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `PutResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    /// Revision written.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// `DeleteRangeRequest`: deletes `key`, or `[key, range_end)`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRangeRequest {
    /// First key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// End of the range (exclusive); empty for `key` alone.
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
}

/// `DeleteRangeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRangeResponse {
    /// Revision written.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// How many keys were deleted.
    #[prost(int64, tag = "2")]
    pub deleted: i64,
}

/// One operation of a transaction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestOp {
    /// The operation.
    #[prost(oneof = "Op", tags = "2, 3")]
    pub request: Option<Op>,
}

/// The operations a transaction may hold (`RequestOp.request`; Strait never reads inside one).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Op {
    /// Put a key.
    #[prost(message, tag = "2")]
    Put(PutRequest),
    /// Delete a key or range.
    #[prost(message, tag = "3")]
    DeleteRange(DeleteRangeRequest),
}

impl RequestOp {
    /// Puts `key` = `value`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        RequestOp {
            request: Some(Op::Put(PutRequest {
                key: key.into(),
                value: value.into(),
            })),
        }
    }

    /// Deletes `key`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        RequestOp {
            request: Some(Op::DeleteRange(DeleteRangeRequest {
                key: key.into(),
                range_end: Vec::new(),
            })),
        }
    }
}

/// `Compare.result`: equal.
pub const COMPARE_EQUAL: i32 = 0;
/// `Compare.target`: the key's create revision.
pub const TARGET_CREATE: i32 = 1;
/// `Compare.target`: the key's mod revision.
pub const TARGET_MOD: i32 = 2;

/// A guard of a transaction: one key's revision compared with a number.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Compare {
    /// How to compare ([`COMPARE_EQUAL`]).
    #[prost(int32, tag = "1")]
    pub result: i32,
    /// What to compare ([`TARGET_CREATE`], [`TARGET_MOD`]).
    #[prost(int32, tag = "2")]
    pub target: i32,
    /// The key.
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
    /// The number compared with.
    #[prost(oneof = "Target", tags = "5, 6")]
    pub target_union: Option<Target>,
}

/// The value a [`Compare`] checks against.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Target {
    /// Create revision (0: the key does not exist).
    #[prost(int64, tag = "5")]
    CreateRevision(i64),
    /// Mod revision.
    #[prost(int64, tag = "6")]
    ModRevision(i64),
}

impl Compare {
    /// `key`'s mod revision equals `revision`.
    pub fn mod_revision_is(key: impl Into<Vec<u8>>, revision: i64) -> Self {
        Compare {
            result: COMPARE_EQUAL,
            target: TARGET_MOD,
            key: key.into(),
            target_union: Some(Target::ModRevision(revision)),
        }
    }

    /// `key` does not exist (its create revision is 0).
    pub fn absent(key: impl Into<Vec<u8>>) -> Self {
        Compare {
            result: COMPARE_EQUAL,
            target: TARGET_CREATE,
            key: key.into(),
            target_union: Some(Target::CreateRevision(0)),
        }
    }
}

/// `TxnRequest`: if every compare holds, run `success`, else `failure`, atomically.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnRequest {
    /// Guards.
    #[prost(message, repeated, tag = "1")]
    pub compare: Vec<Compare>,
    /// Run when every guard holds.
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
    /// Run otherwise.
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<RequestOp>,
}

/// `TxnResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnResponse {
    /// Revision after the transaction.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// Whether every guard held (and `success` ran).
    #[prost(bool, tag = "2")]
    pub succeeded: bool,
}

/// `CompactionRequest`: drops history before `revision`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompactionRequest {
    /// Compact up to this revision.
    #[prost(int64, tag = "1")]
    pub revision: i64,
}

/// `CompactionResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompactionResponse {
    /// Revision at the time.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// A message on the watch stream from the client.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchRequest {
    /// Create a watch (the only request Strait sends: one watch per stream).
    #[prost(message, optional, tag = "1")]
    pub create_request: Option<WatchCreateRequest>,
}

/// `WatchCreateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchCreateRequest {
    /// First key watched.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// End of the range watched (exclusive).
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    /// First revision to send events from (inclusive).
    #[prost(int64, tag = "3")]
    pub start_revision: i64,
    /// Ask for periodic empty responses while nothing changes.
    #[prost(bool, tag = "4")]
    pub progress_notify: bool,
}

/// `WatchResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchResponse {
    /// Revision the response reflects.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// Set on the answer to a create.
    #[prost(bool, tag = "3")]
    pub created: bool,
    /// The watch ended (see `cancel_reason` and `compact_revision`).
    #[prost(bool, tag = "4")]
    pub canceled: bool,
    /// Non-zero when the start revision was compacted away.
    #[prost(int64, tag = "5")]
    pub compact_revision: i64,
    /// Why the watch was canceled.
    #[prost(string, tag = "6")]
    pub cancel_reason: String,
    /// The changes, in revision order.
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
}

/// `Event.type`: a put.
pub const EVENT_PUT: i32 = 0;
/// `Event.type`: a delete.
pub const EVENT_DELETE: i32 = 1;

/// One change seen by a watch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// [`EVENT_PUT`] or [`EVENT_DELETE`].
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// The key after the change (for a delete: the key and the delete's revision).
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
}

/// `AuthenticateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthenticateRequest {
    /// User name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Password.
    #[prost(string, tag = "2")]
    pub password: String,
}

/// `AuthenticateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthenticateResponse {
    /// The token later requests carry in the `token` metadata.
    #[prost(string, tag = "2")]
    pub token: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn prefix_end_is_the_prefix_plus_one() {
        assert_eq!(prefix_end(b"/strait/"), b"/strait0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn enum_fields_encode_like_protobuf_enums() {
        // An `int32` field and an `enum` field share the varint wire type, so a plain i32
        // stands in for etcd's enums; the default (0) is left out of the encoding.
        let c = Compare::mod_revision_is("k", 7);
        let bytes = c.encode_to_vec();
        assert_eq!(bytes, [0x10, 0x02, 0x1a, 0x01, b'k', 0x30, 0x07]);
        assert_eq!(Compare::decode(bytes.as_slice()).unwrap(), c);
    }

    #[test]
    fn unknown_fields_are_skipped_when_decoding() {
        // A KeyValue with create_revision (2), version (4) and lease (6), which are not declared.
        let full = [
            0x0a, 0x01, b'k', 0x10, 0x05, 0x18, 0x09, 0x20, 0x01, 0x2a, 0x01, b'v', 0x30, 0x00,
        ];
        let kv = KeyValue::decode(full.as_slice()).unwrap();
        assert_eq!(
            (kv.key, kv.mod_revision, kv.value),
            (b"k".to_vec(), 9, b"v".to_vec())
        );
    }
}
