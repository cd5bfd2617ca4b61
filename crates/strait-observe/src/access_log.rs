//! The access log: one JSON line per request, formatted and written by a dedicated thread.
//!
//! The request path only `try_send`s a finished [`RequestRecord`] into a bounded channel (full:
//! the record is dropped and counted in `strait_access_log_dropped_total`). The writer thread
//! never parks on the channel (it drains it every 10 ms and writes each pass with one flush),
//! so senders never pay for a wake-up and the log costs a few write calls per second. A file is reopened when [`AccessLogSink::reopen`] is called (SIGUSR1, for logrotate).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strait_config::{AccessLogField, LogTarget};

use crate::record::RequestRecord;
use crate::trace::context::push_hex;

/// How long the writer sleeps between passes; the buffer must hold this long's traffic
/// (8192 records in 10 ms is 800k requests/s).
const IDLE_POLL: Duration = Duration::from_millis(10);

/// The sending side of one access log destination; shared by snapshots while its path stays the same.
pub struct AccessLogSink {
    /// Destination (the reuse key across reloads).
    pub target: LogTarget,
    tx: SyncSender<Arc<RequestRecord>>,
    fields: Arc<Mutex<Arc<[AccessLogField]>>>,
    reopen: Arc<AtomicBool>,
    /// Completed writer passes (drain + flush), so shutdown can wait for the last lines.
    passes: Arc<AtomicU64>,
    dropped: prometheus::IntCounter,
}

impl AccessLogSink {
    /// Starts the writer thread for `target`; fails if the file cannot be opened.
    pub fn start(
        target: LogTarget,
        fields: &[AccessLogField],
        buffer: usize,
        dropped: prometheus::IntCounter,
    ) -> std::io::Result<Self> {
        let out = Output::open(&target)?;
        let (tx, rx) = sync_channel::<Arc<RequestRecord>>(buffer);
        let fields: Arc<Mutex<Arc<[AccessLogField]>>> = Arc::new(Mutex::new(fields.into()));
        let reopen = Arc::new(AtomicBool::new(false));
        let passes = Arc::new(AtomicU64::new(0));
        let p = passes.clone();
        let (f, r, d, t) = (
            fields.clone(),
            reopen.clone(),
            dropped.clone(),
            target.clone(),
        );
        std::thread::Builder::new()
            .name("strait-access-log".into())
            .spawn(move || {
                let mut w = Writer {
                    out,
                    target: t,
                    line: String::with_capacity(1024),
                    dropped: d,
                };
                loop {
                    let fields = f
                        .lock()
                        .map(|g| g.clone())
                        .unwrap_or_else(|e| e.into_inner().clone());
                    // Drain what is queued, write it with one flush, then sleep: a few write
                    // calls per second however busy, and senders never wake this thread.
                    loop {
                        match rx.try_recv() {
                            Ok(rec) => w.write(&rec, &fields),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                w.flush();
                                return;
                            }
                        }
                    }
                    w.flush();
                    p.fetch_add(1, Ordering::Release);
                    if r.swap(false, Ordering::AcqRel) {
                        w.reopen();
                    }
                    std::thread::sleep(IDLE_POLL);
                }
            })?;
        Ok(AccessLogSink {
            target,
            tx,
            fields,
            reopen,
            passes,
            dropped,
        })
    }

    /// Waits (at most `limit`) until everything queued before the call is written (shutdown).
    pub fn flush_wait(&self, limit: Duration) {
        // Two completed passes: the one in progress may have started before the last records.
        let target = self.passes.load(Ordering::Acquire) + 2;
        let deadline = std::time::Instant::now() + limit;
        while self.passes.load(Ordering::Acquire) < target && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Changes the field list (a reload with the same destination).
    pub fn set_fields(&self, fields: &[AccessLogField]) {
        if let Ok(mut g) = self.fields.lock() {
            *g = fields.into();
        }
    }

    /// Asks the writer to reopen its file (after logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// Queues a finished record; never blocks.
    pub fn send(&self, rec: Arc<RequestRecord>) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(rec) {
            self.dropped.inc();
        }
    }
}

enum Output {
    Stdout(BufWriter<std::io::Stdout>),
    File(BufWriter<File>),
}

impl Output {
    fn open(target: &LogTarget) -> std::io::Result<Output> {
        Ok(match target {
            LogTarget::Stdout => {
                Output::Stdout(BufWriter::with_capacity(64 * 1024, std::io::stdout()))
            }
            LogTarget::File(p) => {
                Output::File(BufWriter::with_capacity(64 * 1024, open_append(p)?))
            }
        })
    }

    fn inner(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(w) => w,
            Output::File(w) => w,
        }
    }
}

fn open_append(p: &PathBuf) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(p)
}

struct Writer {
    out: Output,
    target: LogTarget,
    line: String,
    dropped: prometheus::IntCounter,
}

impl Writer {
    fn write(&mut self, rec: &RequestRecord, fields: &[AccessLogField]) {
        self.line.clear();
        format_line(&mut self.line, rec, fields);
        if self.out.inner().write_all(self.line.as_bytes()).is_err() {
            self.dropped.inc();
        }
    }

    fn flush(&mut self) {
        let _ = self.out.inner().flush();
    }

    fn reopen(&mut self) {
        if let LogTarget::File(p) = self.target.clone() {
            match open_append(&p) {
                Ok(f) => {
                    self.flush();
                    self.out = Output::File(BufWriter::with_capacity(64 * 1024, f));
                    tracing::info!(path = %p.display(), "access log reopened");
                }
                Err(e) => {
                    tracing::error!(path = %p.display(), error = %e, "cannot reopen the access log; still writing to the old file");
                }
            }
        }
    }
}

/// Formats one record as a JSON object followed by a newline.
pub fn format_line(out: &mut String, rec: &RequestRecord, fields: &[AccessLogField]) {
    out.push('{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(f.name());
        out.push_str("\":");
        field(out, rec, *f);
    }
    out.push_str("}\n");
}

fn field(out: &mut String, rec: &RequestRecord, f: AccessLogField) {
    use AccessLogField as F;
    match f {
        F::Time => {
            out.push('"');
            rfc3339(out, rec.start_unix_ns);
            out.push('"');
        }
        F::RequestId => string(out, Some(rec.request_id.as_bytes())),
        F::TraceId | F::SpanId => match &rec.trace {
            Some(t) => {
                out.push('"');
                if f == F::TraceId {
                    push_hex(out, &t.trace_id);
                } else {
                    push_hex(out, &t.span_id);
                }
                out.push('"');
            }
            None => out.push_str("null"),
        },
        F::ClientAddress => {
            let _ = write!(out, "\"{}\"", rec.client);
        }
        F::Method => string(out, Some(rec.method.as_str().as_bytes())),
        F::Host => string(out, rec.host.as_ref().map(HeaderValueBytes::bytes)),
        F::Path => string(out, Some(rec.uri.path().as_bytes())),
        F::Route => string(out, Some(rec.route().as_bytes())),
        F::Upstream => match rec.upstream() {
            "" => out.push_str("null"),
            u => string(out, Some(u.as_bytes())),
        },
        F::Endpoint => string(out, rec.endpoint().map(str::as_bytes)),
        F::Split => string(out, rec.split.map(str::as_bytes)),
        F::Status => {
            let _ = write!(out, "{}", rec.status);
        }
        F::DurationMs => millis(out, Some(rec.duration)),
        F::UpstreamDurationMs => millis(out, rec.attempts.last().map(|a| a.duration)),
        F::BytesIn => {
            let _ = write!(out, "{}", rec.bytes_in);
        }
        F::BytesOut => {
            let _ = write!(out, "{}", rec.bytes_out);
        }
        F::UserAgent => string(out, rec.user_agent.as_ref().map(HeaderValueBytes::bytes)),
        F::Policy => string(out, rec.policy.as_deref().map(str::as_bytes)),
        F::PolicyReason => string(out, rec.policy_reason.map(str::as_bytes)),
        F::Error => string(out, rec.error.as_deref().map(str::as_bytes)),
        F::Colour => string(out, rec.colour.as_deref().map(str::as_bytes)),
        F::ColourFallback => out.push_str(if rec.colour_fallback { "true" } else { "false" }),
        F::Listener => string(out, Some(rec.listener.as_bytes())),
        F::Protocol => string(
            out,
            Some(match rec.version {
                http::Version::HTTP_09 => b"HTTP/0.9".as_slice(),
                http::Version::HTTP_10 => b"HTTP/1.0",
                http::Version::HTTP_11 => b"HTTP/1.1",
                http::Version::HTTP_2 => b"HTTP/2",
                http::Version::HTTP_3 => b"HTTP/3",
                _ => b"other",
            }),
        ),
    }
}

trait HeaderValueBytes {
    fn bytes(&self) -> &[u8];
}

impl HeaderValueBytes for http::HeaderValue {
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

fn millis(out: &mut String, d: Option<Duration>) {
    match d {
        Some(d) => {
            // Integer formatting: float formatting with a fixed precision is the slow path of
            // core::fmt, and this runs for every line.
            let us = d.as_micros();
            let _ = write!(out, "{}.{:03}", us / 1000, us % 1000);
        }
        None => out.push_str("null"),
    }
}

/// A JSON string from header bytes: escapes quotes, backslashes and controls; bytes that are
/// not UTF-8 (allowed in header values) become U+FFFD so every line stays valid JSON.
fn string(out: &mut String, v: Option<&[u8]>) {
    let Some(v) = v else {
        out.push_str("null");
        return;
    };
    out.push('"');
    // Nearly every value is printable ASCII without quotes or backslashes: copy it as is.
    if v.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        if let Ok(ascii) = std::str::from_utf8(v) {
            out.push_str(ascii);
            out.push('"');
            return;
        }
    }
    for c in String::from_utf8_lossy(v).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

thread_local! {
    /// The formatted `YYYY-MM-DDTHH:MM:SS` of the last second seen: lines come in time order,
    /// so most reuse it.
    static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` from Unix nanoseconds.
fn rfc3339(out: &mut String, unix_ns: u64) {
    let secs = unix_ns / 1_000_000_000;
    let ms = (unix_ns / 1_000_000) % 1000;
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            text.clear();
            civil(text, secs);
            *cached = secs;
        }
        out.push_str(text);
    });
    let _ = write!(out, ".{ms:03}Z");
}

/// `YYYY-MM-DDTHH:MM:SS` from Unix seconds (civil-from-days, proleptic Gregorian).
fn civil(out: &mut String, secs: u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn record() -> RequestRecord {
        RequestRecord {
            start: Instant::now(),
            start_unix_ns: 1_764_102_896_123_000_000,
            trace: None,
            request_id: http::HeaderValue::from_static("abc"),
            client: "127.0.0.1:5000".parse().unwrap(),
            listener: "web".into(),
            tls: false,
            method: http::Method::GET,
            version: http::Version::HTTP_11,
            uri: "/a?b=1".parse().unwrap(),
            host: None,
            user_agent: Some(http::HeaderValue::from_bytes(b"x\"y\\z\xff").unwrap()),
            bytes_in: 0,
            stats: None,
            status: 404,
            attempts: Vec::new(),
            split: None,
            policy: None,
            policy_reason: None,
            error: None,
            colour: None,
            colour_fallback: false,
            bytes_out: 12,
            head: Duration::from_micros(1000),
            duration: Duration::from_micros(1500),
        }
    }

    #[test]
    fn lines_are_json_with_the_configured_fields_in_order() {
        let mut s = String::new();
        format_line(
            &mut s,
            &record(),
            &[
                AccessLogField::Time,
                AccessLogField::Route,
                AccessLogField::UserAgent,
                AccessLogField::DurationMs,
                AccessLogField::TraceId,
                AccessLogField::Policy,
            ],
        );
        assert_eq!(
            s,
            "{\"time\":\"2025-11-25T20:34:56.123Z\",\"route\":\"unmatched\",\"user_agent\":\"x\\\"y\\\\z\u{fffd}\",\"duration_ms\":1.500,\"trace_id\":null,\"policy\":null}\n"
        );
    }

    #[test]
    fn every_field_can_be_written() {
        let mut s = String::new();
        format_line(&mut s, &record(), &AccessLogField::ALL);
        assert!(s.starts_with("{\"time\":") && s.ends_with("}\n"));
        assert_eq!(s.matches("\":").count(), AccessLogField::ALL.len());
    }
}
