//! The `basic_auth` policy: HTTP basic credentials checked against bcrypt or argon2 hashes on the blocking pool, a bounded number at once, with successful checks remembered for a short time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use http::{HeaderName, HeaderValue, StatusCode};
use strait_core::{Decision, Filter, FilterState, Flow, Reply, RequestCtx};
use tokio::sync::Semaphore;

use crate::consumer::{salt, sha256, ConsumerTag};

/// A password hash basic auth can verify.
#[derive(Debug)]
pub enum PasswordHash {
    /// `$2a$`, `$2b$` or `$2y$`.
    Bcrypt(Box<str>),
    /// A PHC `$argon2id$` (or `$argon2i$`, `$argon2d$`) string.
    Argon2(Box<str>),
}

impl PasswordHash {
    /// Parses a configured hash.
    pub fn parse(s: &str) -> Result<Self, String> {
        if ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p)) {
            // A bcrypt hash is `$2b$NN$` and 53 characters of salt and digest.
            let b = s.as_bytes();
            let ok =
                b.len() == 60 && b[4].is_ascii_digit() && b[5].is_ascii_digit() && b[6] == b'$';
            return if ok {
                Ok(PasswordHash::Bcrypt(s.into()))
            } else {
                Err("malformed bcrypt hash".into())
            };
        }
        if s.starts_with("$argon2") {
            argon2::PasswordHash::new(s).map_err(|e| format!("malformed argon2 hash: {e}"))?;
            return Ok(PasswordHash::Argon2(s.into()));
        }
        Err("not a bcrypt or argon2 hash".into())
    }

    /// Whether `password` matches (slow by design: call it off the async workers).
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            PasswordHash::Argon2(h) => {
                use argon2::PasswordVerifier;
                argon2::PasswordHash::new(h).is_ok_and(|parsed| {
                    argon2::Argon2::default()
                        .verify_password(password, &parsed)
                        .is_ok()
                })
            }
        }
    }
}

/// One configured user.
pub struct BasicUser {
    /// Their password hash.
    pub hash: Arc<PasswordHash>,
    /// Their consumer.
    pub consumer: ConsumerTag,
}

/// Successful verifications remembered for `ttl`, at most `max` of them.
struct VerifyCache {
    ttl: Duration,
    max: usize,
    salt: [u8; 16],
    map: Mutex<HashMap<[u8; 32], Instant>>,
}

impl VerifyCache {
    fn key(&self, user: &[u8], password: &[u8]) -> [u8; 32] {
        sha256(&[&self.salt, user, b":", password])
    }

    fn hit(&self, key: &[u8; 32], now: Instant) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).is_some_and(|until| *until > now)
    }

    fn insert(&self, key: [u8; 32], now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max && !map.contains_key(&key) {
            map.retain(|_, until| *until > now);
            if map.len() >= self.max {
                // Full of live entries: this one is verified again next time.
                return;
            }
        }
        map.insert(key, now + self.ttl);
    }
}

/// A compiled `basic_auth` policy.
pub struct BasicAuthFilter {
    name: Arc<str>,
    challenge: HeaderValue,
    users: HashMap<Box<str>, BasicUser>,
    /// Verified against for unknown users, so their answer takes as long as a wrong password.
    decoy: Option<Arc<PasswordHash>>,
    hide: bool,
    consumer_header: HeaderName,
    verifying: Arc<Semaphore>,
    cache: VerifyCache,
}

impl BasicAuthFilter {
    /// A filter called `name` for `realm` and `users` (by user name).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        realm: &str,
        users: Vec<(String, BasicUser)>,
        hide: bool,
        consumer_header: HeaderName,
        max_concurrent: usize,
        cache_ttl: Duration,
        cache_max: usize,
    ) -> Result<Self, String> {
        let challenge =
            HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
                .map_err(|_| "basic_auth.realm: not a valid header value".to_owned())?;
        let decoy = users.first().map(|(_, u)| u.hash.clone());
        Ok(BasicAuthFilter {
            name: Arc::from(name),
            challenge,
            users: users
                .into_iter()
                .map(|(n, u)| (n.into_boxed_str(), u))
                .collect(),
            decoy,
            hide,
            consumer_header,
            verifying: Arc::new(Semaphore::new(max_concurrent.max(1))),
            cache: VerifyCache {
                ttl: cache_ttl,
                max: cache_max.max(1),
                salt: salt(),
                map: Mutex::new(HashMap::new()),
            },
        })
    }

    fn unauthorized(&self, reason: &'static str) -> Reply {
        let mut r = Reply::text(
            StatusCode::UNAUTHORIZED,
            "strait: authentication required\n",
            reason,
        );
        r.response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, self.challenge.clone());
        r
    }

    fn pass(&self, head: &mut http::request::Parts, user: &BasicUser) {
        if self.hide {
            head.headers.remove(http::header::AUTHORIZATION);
        }
        user.consumer.apply(head, &self.consumer_header);
    }
}

/// The user and password of an `Authorization: Basic` header: `None` when there is no basic
/// credential, `Some(Err)` when it is malformed.
pub fn credentials(value: &[u8]) -> Option<Result<(String, Vec<u8>), ()>> {
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let rest = rest.trim_ascii();
    if rest.len() > 4096 {
        return Some(Err(()));
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
        return Some(Err(()));
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return Some(Err(()));
    };
    let Ok(user) = std::str::from_utf8(&decoded[..colon]) else {
        return Some(Err(()));
    };
    Some(Ok((user.to_owned(), decoded[colon + 1..].to_vec())))
}

impl Filter for BasicAuthFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "basic_auth"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        ctx.head.headers.remove(&self.consumer_header);
        let parsed = ctx
            .head
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| credentials(v.as_bytes()));
        let (user, password) = match parsed {
            None => return Flow::Reply(self.unauthorized("missing_credentials")),
            Some(Err(())) => return Flow::Reply(self.unauthorized("invalid_credentials")),
            Some(Ok(c)) => c,
        };
        let known = self.users.get(user.as_str());
        let key = self.cache.key(user.as_bytes(), &password);
        let now = Instant::now();
        if let Some(u) = known {
            if self.cache.hit(&key, now) {
                self.pass(ctx.head, u);
                return Flow::Continue;
            }
        }
        let Some(hash) = known.map(|u| u.hash.clone()).or_else(|| self.decoy.clone()) else {
            return Flow::Reply(self.unauthorized("invalid_credentials"));
        };
        // Over the bound, refuse at once rather than queue: a flood of guesses must not
        // make every legitimate login wait behind it. 503 says "try later", not "wrong".
        let Ok(permit) = self.verifying.clone().try_acquire_owned() else {
            let mut r = Reply::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "strait: too many logins being checked, try again\n",
                "verify_busy",
            );
            r.response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Flow::Reply(r);
        };
        Flow::wait(async move {
            let ok = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                hash.verify(&password)
            })
            .await
            .unwrap_or(false);
            match known {
                Some(u) if ok => {
                    self.cache.insert(key, Instant::now());
                    self.pass(ctx.head, u);
                    Decision::Continue
                }
                _ => Decision::Reply(self.unauthorized("invalid_credentials")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_basic_credentials() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ops:pa:ss")
        );
        assert_eq!(
            credentials(v.as_bytes()),
            Some(Ok(("ops".to_owned(), b"pa:ss".to_vec())))
        );
        assert_eq!(credentials(b"Bearer x"), None);
        assert_eq!(credentials(b"basic !!!"), Some(Err(())));
        assert_eq!(credentials(b"Basic bm9jb2xvbg=="), Some(Err(())));
    }

    #[test]
    fn rejects_unknown_hash_formats() {
        assert!(PasswordHash::parse("$1$abc").is_err());
        assert!(PasswordHash::parse("$2b$10$short").is_err());
        assert!(PasswordHash::parse("$argon2id$v=19$m=x,t=2,p=1$!!$!!").is_err());
    }

    #[test]
    fn cache_is_bounded_and_expires() {
        let c = VerifyCache {
            ttl: Duration::from_secs(10),
            max: 2,
            salt: salt(),
            map: Mutex::new(HashMap::new()),
        };
        let t0 = Instant::now();
        let (a, b, d) = (c.key(b"a", b"1"), c.key(b"b", b"1"), c.key(b"d", b"1"));
        c.insert(a, t0);
        c.insert(b, t0);
        c.insert(d, t0);
        assert!(c.hit(&a, t0) && c.hit(&b, t0) && !c.hit(&d, t0));
        let later = t0 + Duration::from_secs(11);
        assert!(!c.hit(&a, later));
        c.insert(d, later);
        assert!(c.hit(&d, later));
        assert_ne!(c.key(b"a", b"1"), c.key(b"a:", b"1"));
    }

    proptest! {
        #[test]
        fn credentials_never_panic(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = credentials(&v);
        }
    }
}
