//! The guard's pure core: what one HTTP/2 connection is doing, read from the frames that cross
//! it, and which deadline applies next. Takes `now` as an argument; no I/O.
//!
//! Tracked per connection: whether the first request's header block has arrived, a header block
//! in progress, the open streams (a stream is open until both sides ended it or either reset
//! it), the client's flow-control windows for what the server sends, and a budget of frames
//! that carry no request or data (the control-frame flood bound).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::scan::{flag, ty, u32_at, FrameHead, Scanner};
use crate::reject::Reason;

/// Control frames a connection may send beyond what its work accounts for.
pub(crate) const FLOOD_BURST: i64 = 1000;
/// Control frames per second a connection is allowed on top of the burst.
pub(crate) const FLOOD_REFILL_PER_SEC: i64 = 100;
/// The initial flow-control window of RFC 9113 §6.9.2.
const DEFAULT_WINDOW: i64 = 65_535;
/// SETTINGS_INITIAL_WINDOW_SIZE.
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// The timing limits of one HTTP/2 connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct H2Limits {
    /// For the first request's header block, and for any header block left unfinished.
    pub header_read_timeout: Duration,
    /// With no stream open.
    pub idle_timeout: Duration,
    /// A stream or the connection kept at a zero window, or a socket write that makes no progress.
    pub send_timeout: Duration,
    /// After an idle connection was asked to close gracefully (GOAWAY), until it is closed.
    pub close_grace: Duration,
    /// Streams tracked at most; a client opening more than this at once is flooding.
    pub max_streams: usize,
}

/// What a deadline that passed calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing is due.
    None,
    /// These streams' clients have not taken data for `send_timeout`: reset them.
    Reset(Vec<u32>),
    /// Idle: ask the connection to close gracefully.
    Idle,
    /// End the connection now.
    Close(Close),
}

/// Why a connection is ended by the guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Close {
    /// No complete first request (or an unfinished header block) within the header read timeout;
    /// `partial` when a header block had started (a refused request, counted).
    HeaderTimeout { partial: bool },
    /// Idle, and did not close after the graceful GOAWAY.
    Idle,
    /// The client stopped reading the connection.
    SendTimeout,
    /// Too many control frames.
    Flood,
}

#[derive(Clone, Copy, Debug)]
struct Stream {
    client_open: bool,
    server_open: bool,
    /// The client's window for data the server sends on this stream.
    window: i64,
    /// Since when server data has exhausted `window`.
    stalled: Option<Instant>,
}

/// One connection's state; see the module docs.
#[derive(Debug)]
pub(crate) struct H2State {
    limits: H2Limits,
    read: Scanner,
    write: Scanner,
    streams: HashMap<u32, Stream>,
    max_client_stream: u32,
    init_window: i64,
    conn_window: i64,
    conn_stalled: Option<Instant>,
    /// The earliest stream stall that may be due (may be stale: it is only a wake-up time).
    stall_due: Option<Instant>,
    created: Instant,
    /// Complete request header blocks (a new stream's HEADERS and CONTINUATIONs).
    heads: u64,
    /// A header block in progress: since when.
    block: Option<Instant>,
    idle_since: Option<Instant>,
    graceful: bool,
    write_blocked: Option<Instant>,
    /// Flood budget in thousandths of a frame, refilled over time.
    credit: i64,
    refilled: Instant,
}

// === impl H2State ===

impl H2State {
    /// A connection accepted at `created`.
    pub(crate) fn new(limits: H2Limits, created: Instant) -> Self {
        Self {
            limits,
            read: Scanner::client(),
            write: Scanner::server(),
            streams: HashMap::new(),
            max_client_stream: 0,
            init_window: DEFAULT_WINDOW,
            conn_window: DEFAULT_WINDOW,
            conn_stalled: None,
            stall_due: None,
            created,
            heads: 0,
            block: None,
            idle_since: None,
            graceful: false,
            write_blocked: None,
            credit: FLOOD_BURST * 1000,
            refilled: created,
        }
    }

    /// Whether a frame of our own may go to the server (h2) now, between the client's frames.
    pub(crate) fn read_at_boundary(&self) -> bool {
        self.read.at_boundary()
    }

    /// Whether a frame of our own may go to the client now, between the server's frames.
    pub(crate) fn write_at_boundary(&self) -> bool {
        self.write.at_boundary()
    }

    /// Open streams.
    #[cfg(test)]
    pub(crate) fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// The highest stream the client opened.
    pub(crate) fn last_stream(&self) -> u32 {
        self.max_client_stream
    }

    /// Bytes the client sent; `Err` when it is flooding.
    pub(crate) fn on_read(&mut self, bytes: &[u8], now: Instant) -> Result<(), Close> {
        let mut read = std::mem::replace(&mut self.read, Scanner::server());
        let mut result = Ok(());
        read.feed(bytes, |head, payload| {
            if result.is_ok() {
                result = self.client_frame(head, payload, now);
            }
        });
        self.read = read;
        result
    }

    /// Bytes the server wrote; refusals among them are passed to `report`.
    pub(crate) fn on_write(&mut self, bytes: &[u8], now: Instant, report: &mut dyn FnMut(Reason)) {
        self.write_blocked = None;
        let mut write = std::mem::replace(&mut self.write, Scanner::server());
        write.feed(bytes, |head, payload| {
            self.server_frame(head, payload, now, report)
        });
        self.write = write;
    }

    /// A socket write could not proceed.
    pub(crate) fn on_write_blocked(&mut self, now: Instant) {
        self.write_blocked.get_or_insert(now);
    }

    /// The connection was asked to close gracefully (drain or idle).
    pub(crate) fn on_graceful(&mut self, now: Instant) {
        if !self.graceful {
            self.graceful = true;
            if self.streams.is_empty() {
                self.idle_since = Some(now);
            }
        }
    }

    /// The next time [`H2State::on_timeout`] may have something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let l = &self.limits;
        let header = if self.heads == 0 {
            Some(self.created + l.header_read_timeout)
        } else {
            self.block.map(|since| since + l.header_read_timeout)
        };
        let idle = self.idle_since.map(|since| {
            since
                + if self.graceful {
                    l.close_grace
                } else {
                    l.idle_timeout
                }
        });
        let send = [self.write_blocked, self.conn_stalled, self.stall_due]
            .into_iter()
            .flatten()
            .min()
            .map(|since| since + l.send_timeout);
        [header, idle, send].into_iter().flatten().min()
    }

    /// What is due at `now`; call until it returns [`Action::None`] (or a close).
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Action {
        let l = self.limits;
        let due = |since: Option<Instant>, limit: Duration| since.is_some_and(|s| s + limit <= now);
        if due(self.write_blocked, l.send_timeout) {
            return Action::Close(Close::SendTimeout);
        }
        if self.heads == 0 && self.created + l.header_read_timeout <= now {
            return Action::Close(Close::HeaderTimeout {
                partial: self.block.is_some(),
            });
        }
        if due(self.block, l.header_read_timeout) {
            return Action::Close(Close::HeaderTimeout { partial: true });
        }
        if due(self.conn_stalled, l.send_timeout) {
            if self.streams.values().any(|s| s.server_open) {
                return Action::Close(Close::SendTimeout);
            }
            self.conn_stalled = None;
        }
        if due(self.stall_due, l.send_timeout) {
            let reset = self.take_stalled(now);
            if !reset.is_empty() {
                return Action::Reset(reset);
            }
        }
        if self.streams.is_empty() && self.heads > 0 && self.block.is_none() {
            let limit = if self.graceful {
                l.close_grace
            } else {
                l.idle_timeout
            };
            if due(self.idle_since, limit) {
                if self.graceful {
                    return Action::Close(Close::Idle);
                }
                self.on_graceful(now);
                self.idle_since = Some(now);
                return Action::Idle;
            }
        }
        Action::None
    }

    /// Removes the streams whose stall is due and recomputes the next stall deadline.
    fn take_stalled(&mut self, now: Instant) -> Vec<u32> {
        let limit = self.limits.send_timeout;
        let reset: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, s)| s.server_open && s.stalled.is_some_and(|t| t + limit <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in &reset {
            self.streams.remove(id);
        }
        self.stall_due = self.streams.values().filter_map(|s| s.stalled).min();
        if self.streams.is_empty() && !reset.is_empty() {
            self.idle_since = Some(now);
        }
        reset
    }

    fn client_frame(&mut self, head: FrameHead, payload: &[u8], now: Instant) -> Result<(), Close> {
        match head.ty {
            ty::HEADERS => {
                let new = head.stream > self.max_client_stream && head.stream % 2 == 1;
                if new {
                    self.max_client_stream = head.stream;
                    self.streams.insert(
                        head.stream,
                        Stream {
                            client_open: true,
                            server_open: true,
                            window: self.init_window,
                            stalled: None,
                        },
                    );
                    self.idle_since = None;
                    if self.streams.len() > self.limits.max_streams {
                        return Err(Close::Flood);
                    }
                    self.earn();
                }
                if head.has(flag::END_HEADERS) {
                    self.heads += u64::from(new);
                } else {
                    self.block = Some(now);
                }
                if head.has(flag::END_STREAM) {
                    self.end(head.stream, true, now);
                }
            }
            ty::CONTINUATION => {
                if head.has(flag::END_HEADERS) && self.block.take().is_some() {
                    // Only a new stream's block is a request head; trailers end with it too,
                    // but a count that includes them only matters before the first request.
                    self.heads += 1;
                }
            }
            ty::DATA if head.len > 0 || head.has(flag::END_STREAM) => {
                if head.len > 0 {
                    self.earn();
                }
                if head.has(flag::END_STREAM) {
                    self.end(head.stream, true, now);
                }
            }
            ty::RST_STREAM => {
                self.spend(now)?;
                self.remove(head.stream, now);
            }
            ty::SETTINGS => {
                self.spend(now)?;
                if !head.has(flag::ACK) {
                    for entry in payload.chunks_exact(6) {
                        let id = u16::from_be_bytes([entry[0], entry[1]]);
                        if id == SETTINGS_INITIAL_WINDOW_SIZE {
                            let value = i64::from(u32_at(entry, 2).unwrap_or(0));
                            self.set_initial_window(value);
                        }
                    }
                }
            }
            ty::WINDOW_UPDATE => {
                self.spend(now)?;
                let inc = i64::from(u32_at(payload, 0).unwrap_or(0) & 0x7fff_ffff);
                if head.stream == 0 {
                    self.conn_window += inc;
                    if self.conn_window > 0 {
                        self.conn_stalled = None;
                    }
                } else if let Some(s) = self.streams.get_mut(&head.stream) {
                    s.window += inc;
                    if s.window > 0 {
                        s.stalled = None;
                    }
                }
            }
            // Empty DATA without END_STREAM, PING, PRIORITY, GOAWAY, PUSH_PROMISE, unknown types.
            _ => self.spend(now)?,
        }
        Ok(())
    }

    fn server_frame(
        &mut self,
        head: FrameHead,
        payload: &[u8],
        now: Instant,
        report: &mut dyn FnMut(Reason),
    ) {
        match head.ty {
            ty::DATA => {
                let len = i64::from(head.len);
                if len > 0 {
                    // Enough for the stream and the connection WINDOW_UPDATE it may bring.
                    self.earn();
                    self.earn();
                    self.conn_window -= len;
                    if self.conn_window <= 0 {
                        self.conn_stalled.get_or_insert(now);
                    }
                    if let Some(s) = self.streams.get_mut(&head.stream) {
                        s.window -= len;
                        if s.window <= 0 && s.stalled.is_none() {
                            s.stalled = Some(now);
                            self.stall_due = Some(self.stall_due.map_or(now, |d| d.min(now)));
                        }
                    }
                }
                if head.has(flag::END_STREAM) {
                    self.end(head.stream, false, now);
                }
            }
            ty::HEADERS if head.has(flag::END_STREAM) => self.end(head.stream, false, now),
            ty::RST_STREAM => {
                if let Some(reason) = u32_at(payload, 0).and_then(refusal) {
                    report(reason);
                }
                self.remove(head.stream, now);
            }
            ty::GOAWAY => {
                if let Some(reason) = u32_at(payload, 4).and_then(refusal) {
                    report(reason);
                }
            }
            _ => {}
        }
    }

    fn set_initial_window(&mut self, value: i64) {
        let delta = value - self.init_window;
        self.init_window = value;
        for s in self.streams.values_mut() {
            s.window += delta;
            if s.window > 0 {
                s.stalled = None;
            }
        }
    }

    /// One side of a stream ended.
    fn end(&mut self, id: u32, client: bool, now: Instant) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if client {
            s.client_open = false;
        } else {
            s.server_open = false;
            s.stalled = None;
        }
        if !s.client_open && !s.server_open {
            self.remove(id, now);
        }
    }

    fn remove(&mut self, id: u32, now: Instant) {
        if self.streams.remove(&id).is_some() && self.streams.is_empty() {
            self.idle_since = Some(now);
        }
    }

    fn earn(&mut self) {
        self.credit = (self.credit + 1000).min(FLOOD_BURST * 1000);
    }

    fn spend(&mut self, now: Instant) -> Result<(), Close> {
        let ms = now.saturating_duration_since(self.refilled).as_millis();
        if ms > 0 {
            let refill = i64::try_from(ms).unwrap_or(i64::MAX / 2) * FLOOD_REFILL_PER_SEC;
            self.credit = self.credit.saturating_add(refill).min(FLOOD_BURST * 1000);
            self.refilled = now;
        }
        self.credit -= 1000;
        if self.credit < 0 {
            return Err(Close::Flood);
        }
        Ok(())
    }
}

/// The rejection an error code the server sent stands for: the client's fault, or a stream the
/// server would not take. `NO_ERROR`, `CANCEL` and `INTERNAL_ERROR` are the server's own business.
fn refusal(code: u32) -> Option<Reason> {
    match code {
        0x7 => Some(Reason::H2RefusedStream),
        0xb => Some(Reason::H2EnhanceYourCalm),
        0x1 | 0x3 | 0x5 | 0x6 | 0x9 => Some(Reason::H2ProtocolError),
        _ => None,
    }
}
