//! Turns pprof-rs's symbolised report into a `profile.proto` message (sample types as Go's CPU profiles: samples/count and cpu/nanoseconds) and gzips it.

use std::{
    collections::HashMap,
    io::Write,
    time::{Duration, UNIX_EPOCH},
};

use prost::Message;

use crate::{proto, Error};

/// The profile of `report`: one location per distinct frame (its inlined functions as lines),
/// one function per name and file, and each sample labelled with its thread.
pub(crate) fn profile(report: &pprof::Report) -> proto::Profile {
    let t = &report.timing;
    let start = t.start_time.duration_since(UNIX_EPOCH).unwrap_or_default();
    profile_of(&report.data, t.frequency, start, t.duration)
}

/// [`profile`] from its parts: stacks with their counts, the rate they were sampled at, when
/// sampling started (since the Unix epoch) and how long it ran.
fn profile_of(
    data: &HashMap<pprof::Frames, isize>,
    frequency: i32,
    start: Duration,
    duration: Duration,
) -> proto::Profile {
    let period = 1_000_000_000 / i64::from(frequency.max(1));
    let mut b = Builder::default();
    b.intern("");
    let samples_type = b.value_type("samples", "count");
    let cpu_type = b.value_type("cpu", "nanoseconds");
    let thread_key = b.intern("thread");
    let mut samples = Vec::with_capacity(data.len());
    for (frames, &count) in data {
        let location_id = own_frames(&frames.frames)
            .iter()
            .map(|symbols| b.location(symbols))
            .collect();
        samples.push(proto::Sample {
            location_id,
            value: vec![count as i64, count as i64 * period],
            label: vec![proto::Label {
                key: thread_key,
                str: b.intern(&frames.thread_name_or_id()),
                ..Default::default()
            }],
        });
    }
    proto::Profile {
        sample_type: vec![samples_type, cpu_type.clone()],
        sample: samples,
        location: b.locations,
        function: b.functions,
        string_table: b.strings,
        time_nanos: start.as_nanos() as i64,
        duration_nanos: duration.as_nanos() as i64,
        period_type: Some(cpu_type),
        period,
        ..Default::default()
    }
}

/// Gzip, as `go tool pprof` and speedscope expect a served profile to be.
pub(crate) fn gzip(profile: &proto::Profile) -> Result<Vec<u8>, Error> {
    let raw = profile.encode_to_vec();
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 3),
        flate2::Compression::default(),
    );
    z.write_all(&raw).map_err(Error::Encode)?;
    z.finish().map_err(Error::Encode)
}

/// The stack below the profiler: pprof-rs drops its signal handler's frame and the signal
/// trampoline, but the unwinder's own frames above them stay, and they are not the program's.
fn own_frames(frames: &[Vec<pprof::Symbol>]) -> &[Vec<pprof::Symbol>] {
    let profiler = |symbols: &Vec<pprof::Symbol>| {
        symbols.iter().any(|s| {
            let name = s.name();
            name.starts_with("backtrace::") || name.contains("pprof::")
        })
    };
    let skip = frames.iter().take_while(|f| profiler(f)).count();
    &frames[skip..]
}

/// The tables of a profile being built, deduplicated as they fill.
#[derive(Default)]
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<proto::Function>,
    function_ids: HashMap<(i64, i64), u64>,
    locations: Vec<proto::Location>,
    location_ids: HashMap<Vec<(u64, i64)>, u64>,
}

// === impl Builder ===

impl Builder {
    fn intern(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn value_type(&mut self, kind: &str, unit: &str) -> proto::ValueType {
        proto::ValueType {
            r#type: self.intern(kind),
            unit: self.intern(unit),
        }
    }

    /// The location of one frame: its symbols, the innermost inlined one first.
    fn location(&mut self, symbols: &[pprof::Symbol]) -> u64 {
        let lines: Vec<(u64, i64)> = symbols
            .iter()
            .map(|s| (self.function(s), i64::from(s.lineno())))
            .collect();
        if let Some(&id) = self.location_ids.get(&lines) {
            return id;
        }
        let id = self.locations.len() as u64 + 1;
        self.locations.push(proto::Location {
            id,
            line: lines
                .iter()
                .map(|&(function_id, line)| proto::Line { function_id, line })
                .collect(),
            ..Default::default()
        });
        self.location_ids.insert(lines, id);
        id
    }

    fn function(&mut self, s: &pprof::Symbol) -> u64 {
        let name = self.intern(without_hash(&s.name()));
        let filename = self.intern(&s.filename());
        if let Some(&id) = self.function_ids.get(&(name, filename)) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        let system_name = self.intern(&s.sys_name());
        self.functions.push(proto::Function {
            id,
            name,
            system_name,
            filename,
        });
        self.function_ids.insert((name, filename), id);
        id
    }
}

/// A demangled Rust name without its `::h<16 hex digits>` suffix, which only tells apart
/// instances readers do not care to see apart.
fn without_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_hash_suffix_is_dropped_and_other_names_kept() {
        assert_eq!(
            without_hash("strait_proxy::forward::send::h0123456789abcdef"),
            "strait_proxy::forward::send"
        );
        assert_eq!(without_hash("memcpy"), "memcpy");
        assert_eq!(without_hash("a::hello"), "a::hello");
    }

    #[test]
    fn an_empty_report_encodes_to_a_readable_profile() {
        let p = profile_of(
            &HashMap::new(),
            99,
            Duration::from_secs(1_700_000_000),
            Duration::from_secs(1),
        );
        assert_eq!(p.string_table[0], "");
        assert_eq!(p.sample_type.len(), 2);
        assert_eq!(p.period, 1_000_000_000 / 99);
        let z = gzip(&p).unwrap();
        assert_eq!(&z[..2], &[0x1f, 0x8b]);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z[..]), &mut raw).unwrap();
        assert_eq!(proto::Profile::decode(&raw[..]).unwrap(), p);
    }
}
