//! The messages of pprof's `profile.proto` (package `perftools.profiles`) that a CPU profile uses, written by hand with prost's derive so the build needs no `protoc`; field numbers follow github.com/google/pprof/proto/profile.proto.

/// A whole profile: every string is an index into `string_table`, whose entry 0 is "".
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Profile {
    /// What each value of a sample measures (here: samples/count, cpu/nanoseconds).
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// One entry per distinct stack (and thread).
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// The binary's mappings; left empty, as symbols are resolved in the process.
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    /// Code locations the samples refer to by id.
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions the locations refer to by id.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string of the profile, deduplicated; entry 0 must be "".
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// When the profile started, in nanoseconds since the Unix epoch.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// How long it ran, in nanoseconds.
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// What `period` measures.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// The time between two samples, in `period_type` units.
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form notes shown by `pprof -comments` (string table indices).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
}

/// A value's kind and unit, as string table indices.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ValueType {
    /// The kind, e.g. "cpu".
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// The unit, e.g. "nanoseconds".
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// One stack with its values: `location_id[0]` is the leaf.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Sample {
    /// The stack, innermost first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per `sample_type`.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Labels such as the thread.
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// A sample's label: a string or a number under a key.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Label {
    /// The key (string table index).
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// The string value (string table index), or 0.
    #[prost(int64, tag = "2")]
    pub str: i64,
    /// The numeric value, when `str` is 0.
    #[prost(int64, tag = "3")]
    pub num: i64,
    /// The unit of `num` (string table index).
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// A mapped binary; declared for completeness of the decoder, never written.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Mapping {
    /// Unique non-zero id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Where the mapping starts.
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    /// Where the mapping ends.
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    /// The file offset the mapping starts at.
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// The file's path (string table index).
    #[prost(int64, tag = "5")]
    pub filename: i64,
}

/// A code location: here one per function, since symbols are resolved before encoding.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Location {
    /// Unique non-zero id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The mapping it is in (0: unknown).
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// The instruction address (0: unknown).
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// The functions at this location, the inlined ones first.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// A function and a source line within a location.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Line {
    /// The function's id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// The source line (0: unknown).
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// A function's names and file, as string table indices.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Function {
    /// Unique non-zero id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The demangled name people read.
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// The mangled name the binary holds.
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// The source file.
    #[prost(int64, tag = "4")]
    pub filename: i64,
}
