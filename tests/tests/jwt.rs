//! The `jwt` policy through the real binary: a table of valid and attack tokens against a JWKS served by a real local server, key rotation, the refetch cooldown under random `kid`s, the last good keys kept while the key server fails, claim forwarding with spoofed headers removed, static keys with a query token, and denials named in metrics and the access log.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::Request;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};
use strait_e2e::client::{self, empty};
use strait_e2e::metrics::sum;
use strait_e2e::{poll_until, Reply, Strait, Upstream};

/// An RSA key made with the `openssl` CLI: the signing pair, its public PEM and its JWK.
struct RsaKey {
    pair: RsaKeyPair,
    public_pem: String,
    n: String,
}

use strait_e2e::openssl;

fn rsa_key(dir: &Path, name: &str) -> RsaKey {
    let der = format!("{name}.der");
    let pem = format!("{name}.pub.pem");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-outform",
            "DER",
            "-out",
            &der,
        ],
    );
    openssl(
        dir,
        &[
            "pkey", "-inform", "DER", "-in", &der, "-pubout", "-out", &pem,
        ],
    );
    let hex = String::from_utf8(openssl(
        dir,
        &["rsa", "-pubin", "-in", &pem, "-noout", "-modulus"],
    ))
    .unwrap();
    let hex = hex.trim().trim_start_matches("Modulus=");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    RsaKey {
        pair: {
            // OpenSSL writes PKCS#8 or, depending on version, PKCS#1 DER.
            let bytes = std::fs::read(dir.join(&der)).unwrap();
            RsaKeyPair::from_pkcs8(&bytes)
                .or_else(|_| RsaKeyPair::from_der(&bytes))
                .unwrap()
        },
        public_pem: std::fs::read_to_string(dir.join(&pem)).unwrap(),
        n: URL_SAFE_NO_PAD.encode(bytes),
    }
}

fn jwk(k: &RsaKey, kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": k.n, "e": "AQAB"})
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn rs256(k: &RsaKey, header: Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(&header), b64(claims));
    let mut sig = vec![0; k.pair.public().modulus_len()];
    k.pair
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn hs256(secret: &[u8], header: Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(&header), b64(claims));
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({"iss": "https://idp.example", "aud": "api", "sub": "alice", "scope": "orders:read profile", "exp": now() + 300})
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

fn without(mut c: Value, k: &str) -> Value {
    c.as_object_mut().unwrap().remove(k);
    c
}

async fn call(s: &Strait, path: &str, headers: &[(&str, &str)]) -> http::Response<bytes::Bytes> {
    let mut b = Request::get(path).header("host", "h");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    client::send(s.web(), client::Proto::H1, b.body(empty()).unwrap())
        .await
        .expect("response")
}

async fn bearer(s: &Strait, token: &str) -> http::Response<bytes::Bytes> {
    call(s, "/", &[("authorization", &format!("Bearer {token}"))]).await
}

/// A JWKS server whose document the test swaps.
async fn key_server(doc: Arc<Mutex<Value>>) -> Upstream {
    Upstream::with_handler("idp", move |_| {
        Reply::text(&doc.lock().unwrap().to_string()).header("content-type", "application/json")
    })
    .await
}

fn jwks_hits(idp: &Upstream) -> usize {
    idp.requests()
        .iter()
        .filter(|r| r.uri.path() == "/jwks")
        .count()
}

#[tokio::test]
async fn jwks_tokens_attacks_rotation_cooldown_and_failing_key_server() {
    let keydir = tempfile::tempdir().unwrap();
    let k1 = rsa_key(keydir.path(), "k1");
    let k2 = rsa_key(keydir.path(), "k2");
    let doc = Arc::new(Mutex::new(json!({"keys": [jwk(&k1, "k1")]})));
    let idp = key_server(doc.clone()).await;
    let app = Upstream::start("app").await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - name: users\n    jwt:\n      algorithms: [RS256]\n      \
         jwks: {{ upstream: idp, path: /jwks, refresh: 1h, cooldown: 1s, timeout: 2s }}\n      \
         issuer: https://idp.example\n      audiences: [api]\n      leeway: 5s\n      \
         required_claims: [sub]\n      scopes: [\"orders:read\"]\n      \
         forward_claims: {{ sub: x-user-id }}\n      consumer_claim: sub\n\
         routes:\n  - name: api\n    upstream: app\n    policies: [users]\n\
         upstreams:\n  - name: app\n    endpoints: [\"{}\"]\n  - name: idp\n    endpoints: [\"{}\"]\n\
         observability:\n  access_log: {{ path: access.log }}\n",
        app.addr(),
        idp.addr()
    );
    let s = Strait::start(&yaml).await;
    let h1 = json!({"alg": "RS256", "typ": "JWT", "kid": "k1"});

    // A valid token: forwarded with the subject as a header, a client-sent copy replaced.
    let good = rs256(&k1, h1.clone(), &claims());
    let r = call(
        &s,
        "/",
        &[
            ("authorization", &format!("Bearer {good}")),
            ("x-user-id", "mallory"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "{}", client::text(&r));
    let seen = app.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers.get_all("x-user-id").iter().count(), 1);
    assert_eq!(seen[0].header("x-user-id"), "alice");
    // A spoofed identity header without a token never reaches the upstream either.
    let r = call(&s, "/", &[("x-user-id", "mallory")]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        client::header(&r, "www-authenticate"),
        "Bearer realm=\"strait\""
    );

    let pem = k1.public_pem.as_bytes();
    let (head, payload, sig) = {
        let mut p = good.split('.');
        (
            p.next().unwrap().to_owned(),
            p.next().unwrap().to_owned(),
            p.next().unwrap().to_owned(),
        )
    };
    let tampered = format!(
        "{head}.{}.{sig}",
        b64(&with(claims(), "sub", json!("admin")))
    );
    let mut bad_sig = URL_SAFE_NO_PAD.decode(&sig).unwrap();
    bad_sig[10] ^= 1;
    let bad_sig = format!("{head}.{payload}.{}", URL_SAFE_NO_PAD.encode(bad_sig));
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "k1"})),
        b64(&claims())
    );
    let table: Vec<(&str, String, u16)> = vec![
        ("none alg", none, 401),
        (
            "HS256 with the RSA public key as secret",
            hs256(pem, json!({"alg": "HS256", "kid": "k1"}), &claims()),
            401,
        ),
        (
            "expired",
            rs256(&k1, h1.clone(), &with(claims(), "exp", json!(now() - 60))),
            401,
        ),
        (
            "not yet valid",
            rs256(&k1, h1.clone(), &with(claims(), "nbf", json!(now() + 60))),
            401,
        ),
        (
            "wrong issuer",
            rs256(
                &k1,
                h1.clone(),
                &with(claims(), "iss", json!("https://evil")),
            ),
            401,
        ),
        (
            "wrong audience",
            rs256(&k1, h1.clone(), &with(claims(), "aud", json!("other"))),
            401,
        ),
        ("tampered payload", tampered, 401),
        ("bad signature", bad_sig, 401),
        ("malformed", "abc.def".into(), 401),
        (
            "oversized",
            rs256(
                &k1,
                h1.clone(),
                &with(claims(), "pad", json!("x".repeat(6300))),
            ),
            401,
        ),
        (
            "jku header",
            rs256(
                &k1,
                json!({"alg": "RS256", "kid": "k1", "jku": "http://evil/jwks"}),
                &claims(),
            ),
            401,
        ),
        (
            "embedded jwk",
            rs256(
                &k1,
                json!({"alg": "RS256", "kid": "k1", "jwk": jwk(&k2, "k1")}),
                &claims(),
            ),
            401,
        ),
        (
            "unknown crit",
            rs256(
                &k1,
                json!({"alg": "RS256", "kid": "k1", "crit": ["x-ext"], "x-ext": 1}),
                &claims(),
            ),
            401,
        ),
        (
            "missing subject",
            rs256(&k1, h1.clone(), &without(claims(), "sub")),
            403,
        ),
        (
            "missing scope",
            rs256(&k1, h1.clone(), &with(claims(), "scope", json!("profile"))),
            403,
        ),
        (
            "scope as scp array",
            rs256(
                &k1,
                h1.clone(),
                &with(without(claims(), "scope"), "scp", json!(["orders:read"])),
            ),
            200,
        ),
    ];
    for (what, token, status) in &table {
        let r = bearer(&s, token).await;
        assert_eq!(r.status(), *status, "{what}: {}", client::text(&r));
        let challenge = client::header(&r, "www-authenticate");
        match *status {
            401 => assert_eq!(
                challenge, "Bearer realm=\"strait\", error=\"invalid_token\"",
                "{what}"
            ),
            403 => assert_eq!(
                challenge, "Bearer realm=\"strait\", error=\"insufficient_scope\"",
                "{what}"
            ),
            _ => {}
        }
        assert!(
            !client::text(&r).contains("127.0.0.1"),
            "{what}: no internals in the body"
        );
    }
    assert_eq!(
        app.requests().len(),
        2,
        "only the valid tokens reached the upstream"
    );
    let m = s.metrics().await;
    for (reason, n) in [
        ("missing_token", 1.0),
        ("invalid_token", 11.0),
        ("expired", 1.0),
        ("not_yet_valid", 1.0),
        ("insufficient_claims", 1.0),
        ("insufficient_scope", 1.0),
    ] {
        assert_eq!(
            sum(
                &m,
                "strait_policy_denials_total",
                &[("policy", "users"), ("reason", reason)]
            ),
            n,
            "{reason}: {m}"
        );
    }
    let log_path = s.dir().join("access.log");
    let denied = poll_until(
        Duration::from_secs(10),
        "a denial in the access log",
        || async {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["status"] == 403)
        },
    )
    .await;
    assert_eq!(denied["policy"], "users", "{denied}");
    assert!(
        denied["policy_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("insufficient_")),
        "{denied}"
    );

    // Rotation: a token with a new kid is accepted once the key server publishes it; the old
    // key keeps working while it is still published.
    let h2 = json!({"alg": "RS256", "kid": "k2"});
    let new_token = rs256(&k2, h2.clone(), &claims());
    *doc.lock().unwrap() = json!({"keys": [jwk(&k1, "k1"), jwk(&k2, "k2")]});
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = bearer(&s, &new_token).await;
    assert_eq!(r.status(), 200, "rotated key: {}", client::text(&r));
    assert_eq!(
        bearer(&s, &good).await.status(),
        200,
        "old key still published"
    );

    // Retiring a key: once a refetch finds k1 gone, a token signed with it is refused, although
    // it was accepted (and remembered as verified) before.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    *doc.lock().unwrap() = json!({"keys": [jwk(&k2, "k2")]});
    let probe = rs256(&k2, json!({"alg": "RS256", "kid": "k9"}), &claims());
    assert_eq!(
        bearer(&s, &probe).await.status(),
        401,
        "unknown kid refetches"
    );
    assert_eq!(bearer(&s, &good).await.status(), 401, "retired key");
    assert_eq!(bearer(&s, &new_token).await.status(), 200, "current key");
    *doc.lock().unwrap() = json!({"keys": [jwk(&k1, "k1"), jwk(&k2, "k2")]});

    // Cooldown: random kids cannot make Strait hammer the key server.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = jwks_hits(&idp);
    for i in 0..30 {
        let t = rs256(
            &k1,
            json!({"alg": "RS256", "kid": format!("random-{i}")}),
            &claims(),
        );
        assert_eq!(bearer(&s, &t).await.status(), 401);
    }
    let during = jwks_hits(&idp) - before;
    assert!(
        during <= 1,
        "{during} fetches for 30 random kids within the cooldown"
    );
    let m = s.metrics().await;
    assert!(
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "users"), ("reason", "unknown_kid")]
        ) >= 30.0
    );

    // The key server fails: the last good key set still verifies.
    idp.set_status_override(Some(500));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = rs256(&k1, json!({"alg": "RS256", "kid": "k3"}), &claims());
    assert_eq!(bearer(&s, &t).await.status(), 401);
    assert_eq!(bearer(&s, &good).await.status(), 200, "last good keys kept");
    assert_eq!(
        bearer(&s, &new_token).await.status(),
        200,
        "last good keys kept"
    );
    let m = s.metrics().await;
    assert!(
        sum(
            &m,
            "strait_jwks_fetch_total",
            &[("policy", "users"), ("result", "error")]
        ) >= 1.0,
        "{m}"
    );
    assert!(
        sum(
            &m,
            "strait_jwks_fetch_total",
            &[("policy", "users"), ("result", "ok")]
        ) >= 2.0,
        "{m}"
    );
}

#[tokio::test]
async fn static_keys_query_token_strip_and_algorithm_confusion() {
    let keydir = tempfile::tempdir().unwrap();
    let k1 = rsa_key(keydir.path(), "k1");
    let secret = "0123456789abcdef0123456789abcdef-secret";
    let app = Upstream::start("app").await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         routes:\n  - name: api\n    upstream: app\n    policies:\n      - jwt:\n          \
         algorithms: [RS256, HS256]\n          \
         keys: [{{ kid: k1, pem_file: pub.pem }}, {{ kid: h1, secret: \"${{JWT_SECRET}}\" }}]\n          \
         token: {{ query: access_token }}\n          strip_token: true\n          realm: api\n\
         upstreams:\n  - name: app\n    endpoints: [\"{}\"]\n",
        app.addr(),
    );
    let s = Strait::start_opts(
        &yaml,
        &[("pub.pem", k1.public_pem.as_bytes())],
        &[],
        &[("JWT_SECRET", secret)],
    )
    .await;
    let c = json!({"sub": "bob", "exp": now() + 300});
    let rs = rs256(&k1, json!({"alg": "RS256", "kid": "k1"}), &c);
    let hs = hs256(secret.as_bytes(), json!({"alg": "HS256", "kid": "h1"}), &c);
    // The RSA public key as an HMAC secret, under the RSA key's kid and under none.
    let pem = k1.public_pem.as_bytes();
    let confused = hs256(pem, json!({"alg": "HS256", "kid": "k1"}), &c);
    let confused_nokid = hs256(pem, json!({"alg": "HS256"}), &c);
    let r = call(&s, &format!("/a?x=1&access_token={rs}&y=2"), &[]).await;
    assert_eq!(r.status(), 200, "{}", client::text(&r));
    assert_eq!(
        app.requests()[0].path_and_query(),
        "/a?x=1&y=2",
        "token stripped from the query"
    );
    assert_eq!(
        call(&s, &format!("/?access_token={hs}"), &[])
            .await
            .status(),
        200
    );
    for t in [&confused, &confused_nokid] {
        let r = call(&s, &format!("/?access_token={t}"), &[]).await;
        assert_eq!(r.status(), 401, "algorithm confusion");
        assert_eq!(
            client::header(&r, "www-authenticate"),
            "Bearer realm=\"api\", error=\"invalid_token\""
        );
    }
    // A token anywhere but the configured place is ignored.
    let r = call(&s, "/", &[("authorization", &format!("Bearer {rs}"))]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        client::header(&r, "www-authenticate"),
        "Bearer realm=\"api\""
    );
    assert_eq!(app.requests().len(), 2);
    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "api/jwt"), ("reason", "missing_token")]
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn a_remembered_token_still_expires() {
    let secret = "0123456789abcdef0123456789abcdef-secret";
    let app = Upstream::start("app").await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         routes:\n  - name: api\n    upstream: app\n    policies:\n      - jwt:\n          \
         algorithms: [HS256]\n          keys: [{{ secret: \"{secret}\" }}]\n          leeway: 0s\n\
         upstreams:\n  - name: app\n    endpoints: [\"{}\"]\n",
        app.addr(),
    );
    let s = Strait::start(&yaml).await;
    let exp = now() + 2;
    let t = hs256(
        secret.as_bytes(),
        json!({"alg": "HS256"}),
        &json!({"sub": "eve", "exp": exp}),
    );
    // The second request finds the token verified in the cache; both are in time.
    for _ in 0..2 {
        assert_eq!(bearer(&s, &t).await.status(), 200);
    }
    while now() < exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = bearer(&s, &t).await;
    assert_eq!(r.status(), 401, "expired although remembered");
    assert_eq!(
        client::header(&r, "www-authenticate"),
        "Bearer realm=\"strait\", error=\"invalid_token\""
    );
    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "api/jwt"), ("reason", "expired")]
        ),
        1.0,
        "{m}"
    );
}
