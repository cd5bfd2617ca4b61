//! A remote JWKS key set kept in live state: fetched through a named upstream, refreshed on an interval and on an unknown `kid` with a cooldown between fetches, the last good set kept when a fetch fails.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use strait_core::UpstreamClient;

use super::keys::{from_jwks, KeySet};

/// Largest JWKS document read (key sets are a few KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;

const NEVER: u64 = u64::MAX;

/// Where and how often to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JwksSettings {
    /// Upstream name (for the live-state key and logs).
    pub upstream: String,
    /// Path (and query) of the document on the upstream.
    pub path: String,
    /// Fetch again after this long.
    pub refresh: Duration,
    /// Least time between two fetches, whatever asks for them.
    pub cooldown: Duration,
    /// Bound on one fetch, and on a request waiting for the first key set.
    pub timeout: Duration,
}

/// Called with `ok` or `error` after each fetch (the `strait_jwks_fetch_total` counter).
pub type FetchHook = Box<dyn Fn(&'static str) + Send + Sync>;

/// The cached key set of one `jwt` policy, shared across reloads while its settings hold.
pub struct Jwks {
    policy: Arc<str>,
    settings: JwksSettings,
    client: Mutex<Arc<dyn UpstreamClient>>,
    keys: ArcSwapOption<KeySet>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last fetch attempt, or [`NEVER`].
    last_attempt: AtomicU64,
    refreshing: AtomicBool,
    gate: tokio::sync::Mutex<()>,
    on_fetch: FetchHook,
}

impl Jwks {
    /// A key cache with no keys yet.
    pub fn new(
        policy: &str,
        settings: JwksSettings,
        client: Arc<dyn UpstreamClient>,
        on_fetch: FetchHook,
    ) -> Self {
        Jwks {
            policy: Arc::from(policy),
            settings,
            client: Mutex::new(client),
            keys: ArcSwapOption::empty(),
            epoch: Instant::now(),
            last_attempt: AtomicU64::new(NEVER),
            refreshing: AtomicBool::new(false),
            gate: tokio::sync::Mutex::new(()),
            on_fetch,
        }
    }

    /// Uses `client` for the next fetches (a reload made a new one for the same upstream).
    pub fn set_client(&self, client: Arc<dyn UpstreamClient>) {
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = client;
    }

    /// The current key set, if one was ever fetched.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    /// The bound on a request waiting for keys.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn since_attempt(&self) -> Option<Duration> {
        match self.last_attempt.load(Ordering::Relaxed) {
            NEVER => None,
            t => Some(Duration::from_millis(self.now_ms().saturating_sub(t))),
        }
    }

    /// Whether the cooldown allows a fetch now.
    pub fn may_fetch(&self) -> bool {
        self.since_attempt()
            .is_none_or(|d| d >= self.settings.cooldown)
    }

    /// Whether a background fetch is under way (a request needing keys waits for it).
    pub fn fetching(&self) -> bool {
        self.refreshing.load(Ordering::Acquire)
    }

    /// Starts a background fetch when the refresh interval has passed (no request waits for it).
    pub fn refresh_if_due(self: &Arc<Self>) {
        let due = self
            .since_attempt()
            .is_none_or(|d| d >= self.settings.refresh);
        if due && !self.refreshing.swap(true, Ordering::AcqRel) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let me = self.clone();
                rt.spawn(async move {
                    me.fetch().await;
                    me.refreshing.store(false, Ordering::Release);
                });
            } else {
                self.refreshing.store(false, Ordering::Release);
            }
        }
    }

    /// Fetches the document once unless the cooldown forbids it; one fetch at a time, and a
    /// caller that waited for another's fetch does not fetch again.
    pub async fn fetch(&self) {
        let _one = self.gate.lock().await;
        if !self.may_fetch() {
            return;
        }
        self.last_attempt.store(self.now_ms(), Ordering::Relaxed);
        let client = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let req = http::Request::get(self.settings.path.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Bytes::new());
        let req = match req {
            Ok(r) => r,
            Err(_) => return self.failed("bad request path"),
        };
        match client
            .send(req, self.settings.timeout, MAX_JWKS_BYTES)
            .await
        {
            Ok(resp) if resp.status().is_success() => match from_jwks(resp.body()) {
                Ok(set) if !set.keys.is_empty() => {
                    self.keys.store(Some(Arc::new(set)));
                    (self.on_fetch)("ok");
                }
                Ok(_) => self.failed("no usable keys in the document"),
                Err(e) => self.failed(&e),
            },
            Ok(resp) => self.failed(&format!("status {}", resp.status().as_u16())),
            Err(e) => self.failed(&e.to_string()),
        }
    }

    fn failed(&self, why: &str) {
        (self.on_fetch)("error");
        tracing::warn!(
            policy = %self.policy,
            upstream = %self.settings.upstream,
            path = %self.settings.path,
            error = why,
            "JWKS fetch failed; keeping the last good key set"
        );
    }
}
