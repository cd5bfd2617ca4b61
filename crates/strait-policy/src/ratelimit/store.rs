//! The fleet-wide store of a rate limit: one Lua script run atomically in Redis (standalone or Cluster), doing GCRA with Redis's own clock, so every instance sharing the store admits the limit once, not once each.
//!
//! The script reads the key's arrival time, decides, and writes the new one in one step on
//! the server (no read-then-write race between instances), with `TIME` as the clock (no skew
//! between instances). It is sent by `EVALSHA`; a server that does not know it yet
//! (`NOSCRIPT`: restarted, failed over, another Cluster node) gets `EVAL` once, which also
//! caches it. Each limit key is one Redis key, so in a Cluster it lives in one hash slot.
//!
//! Connections: a `ConnectionManager` (reconnects by itself) for one server, a
//! `ClusterConnection` (follows slot moves) for a Cluster. When Redis fails or answers too
//! slowly, the store is *down* for [`RETRY_AFTER_FAILURE`]: requests go straight to the
//! failure mode without waiting, then Redis is tried again, so recovery needs no restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{IntoConnectionInfo, RedisError, Value};
use strait_core::rate::{micros, Gcra, RateDecision};
use tokio::sync::OnceCell;

/// How long the store counts as down after a failure before Redis is tried again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// GCRA in one step, on Redis's clock. KEYS[1] the limit key; ARGV[1] the interval and
/// ARGV[2] the tolerance, in µs. Returns {1, µs the TAT now is ahead} when admitted,
/// {0, µs the TAT is ahead} when refused.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local ahead = tat - now
if ahead > tolerance then
  return {0, ahead}
end
local next = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.floor((next - now) / 1000) + 1)
return {1, next - now}
";

/// Where the store is and how to reach it.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// One server's URL, or some nodes of a Cluster.
    pub target: Target,
    /// ACL user name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// A CA bundle (PEM) for `rediss://` servers with a private CA.
    pub ca: Option<Vec<u8>>,
    /// Longest wait per request.
    pub timeout: Duration,
}

/// A Redis server or Cluster.
#[derive(Clone, Debug)]
pub enum Target {
    /// `redis://` or `rediss://` URL.
    Standalone(String),
    /// Node URLs.
    Cluster(Vec<String>),
}

/// Why the store gave no decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Recently failed: not tried.
    Down,
    /// No answer within the timeout.
    Timeout,
    /// Connection or server error.
    Failed,
}

impl StoreError {
    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            StoreError::Down => "down",
            StoreError::Timeout => "timeout",
            StoreError::Failed => "error",
        }
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A Redis store shared by the rate limits that name the same settings.
pub struct RedisStore {
    settings: RedisSettings,
    conn: OnceCell<Conn>,
    sha: String,
    /// Rate-limit clock (µs) until which the store counts as down.
    down_until: AtomicU64,
}

impl RedisStore {
    /// A store; nothing is connected until the first request.
    pub fn new(settings: RedisSettings) -> Self {
        RedisStore {
            settings,
            conn: OnceCell::new(),
            sha: redis::Script::new(SCRIPT).get_hash().to_owned(),
            down_until: AtomicU64::new(0),
        }
    }

    /// Decides a request for `key` with `gcra`, within the timeout.
    pub async fn check(&self, key: &str, gcra: &Gcra) -> Result<RateDecision, StoreError> {
        let now = micros(Instant::now());
        if now < self.down_until.load(Ordering::Relaxed) {
            return Err(StoreError::Down);
        }
        let result = tokio::time::timeout(self.settings.timeout, self.eval(key, gcra)).await;
        let failure = match result {
            Ok(Ok(d)) => return Ok(d),
            Ok(Err(_)) => StoreError::Failed,
            Err(_) => StoreError::Timeout,
        };
        let retry = micros(Instant::now()) + RETRY_AFTER_FAILURE.as_micros() as u64;
        self.down_until.fetch_max(retry, Ordering::Relaxed);
        Err(failure)
    }

    async fn eval(&self, key: &str, gcra: &Gcra) -> Result<RateDecision, RedisError> {
        let conn = self.conn.get_or_try_init(|| self.connect()).await?;
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(&self.sha)
            .arg(1)
            .arg(key)
            .arg(gcra.interval())
            .arg(gcra.tolerance());
        let reply = match query(conn, &evalsha).await {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                let mut eval = redis::cmd("EVAL");
                eval.arg(SCRIPT)
                    .arg(1)
                    .arg(key)
                    .arg(gcra.interval())
                    .arg(gcra.tolerance());
                query(conn, &eval).await?
            }
            other => other?,
        };
        let (allowed, ahead) = parse(&reply).ok_or_else(|| {
            RedisError::from((
                redis::ErrorKind::Parse,
                "unexpected rate-limit script reply",
            ))
        })?;
        Ok(if allowed {
            gcra.admitted(ahead)
        } else {
            gcra.refused(ahead)
        })
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        let s = &self.settings;
        let tls = s.ca.as_ref().map(|ca| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.clone()),
        });
        match &s.target {
            Target::Standalone(url) => {
                let mut info = url.as_str().into_connection_info()?;
                let mut redis_info = info.redis_settings().clone();
                if let Some(u) = &s.username {
                    redis_info = redis_info.set_username(u);
                }
                if let Some(p) = &s.password {
                    redis_info = redis_info.set_password(p);
                }
                info = info.set_redis_settings(redis_info);
                let client = match tls {
                    Some(certs) => redis::Client::build_with_tls(info, certs)?,
                    None => redis::Client::open(info)?,
                };
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(s.timeout.max(Duration::from_millis(500))))
                    .set_response_timeout(Some(s.timeout.max(Duration::from_millis(500))))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(200));
                let manager = ConnectionManager::new_lazy_with_config(client, config)?;
                Ok(Conn::Single(manager))
            }
            Target::Cluster(nodes) => {
                let mut b = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(s.timeout.max(Duration::from_millis(500)))
                    .response_timeout(s.timeout.max(Duration::from_millis(500)))
                    .retries(1);
                if let Some(u) = &s.username {
                    b = b.username(u);
                }
                if let Some(p) = &s.password {
                    b = b.password(p);
                }
                if let Some(certs) = tls {
                    b = b.certs(certs);
                }
                let client = b.build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

async fn query(conn: &Conn, cmd: &redis::Cmd) -> Result<Value, RedisError> {
    match conn.clone() {
        Conn::Single(mut c) => cmd.query_async(&mut c).await,
        Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
    }
}

/// `{allowed, ahead}` from the script.
fn parse(v: &Value) -> Option<(bool, u64)> {
    let Value::Array(items) = v else { return None };
    let int = |v: &Value| match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    };
    match items.as_slice() {
        [a, b] => Some((int(a)? == 1, int(b)?)),
        _ => None,
    }
}
