//! Compiles the `jwt` policy: reads its keys (inline or files) or attaches its JWKS cache from live state, with a client for the key set's upstream.

use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderName;
use strait_config as cfg;
use strait_core::live::fingerprint;
use strait_policy::jwt::{
    keys, Alg, ClaimRules, Jwks, JwksSettings, JwtFilter, JwtSettings, Key, KeyMaterial, KeySet,
    KeySource, TokenSource,
};

use super::policy::PolicyCx;

/// The `jwt` filter called `name`.
pub(super) fn compile(
    name: &str,
    j: &cfg::JwtPolicy,
    cx: &PolicyCx<'_>,
) -> Result<Arc<JwtFilter>, String> {
    let algorithms = j
        .algorithms
        .iter()
        .map(|a| Alg::from_name(a).ok_or_else(|| format!("jwt: unknown algorithm {a}")))
        .collect::<Result<Vec<_>, _>>()?;
    let keys = match &j.keys {
        cfg::JwtKeys::Keys(list) => KeySource::Static(Arc::new(static_keys(name, list)?)),
        cfg::JwtKeys::Jwks(src) => {
            let client = cx
                .client(&src.upstream)
                .map_err(|e| format!("policy {name}: jwt.jwks: {e}"))?;
            let settings = JwksSettings {
                upstream: src.upstream.clone(),
                path: src.path.clone(),
                refresh: src.refresh,
                cooldown: src.cooldown,
                timeout: src.timeout,
            };
            let counter = cx.metrics.jwks_fetches.clone();
            let policy = name.to_owned();
            // The key set survives reloads while where and how it is fetched is unchanged.
            let jwks = cx
                .live
                .get_or_insert("jwt", name, fingerprint(&settings), || {
                    Jwks::new(
                        name,
                        settings.clone(),
                        client.clone(),
                        Box::new(move |result: &'static str| {
                            counter.with_label_values(&[policy.as_str(), result]).inc()
                        }),
                    )
                });
            jwks.set_client(client);
            // Fetch ahead of the first request when a runtime is at hand.
            if jwks.current().is_none() {
                jwks.refresh_if_due();
            }
            KeySource::Remote(jwks)
        }
    };
    let source = match &j.token {
        cfg::JwtToken::Header { name: h, prefix } => TokenSource::Header {
            name: header(h)?,
            prefix: prefix.clone(),
        },
        cfg::JwtToken::Query(q) => TokenSource::Query(q.clone()),
        cfg::JwtToken::Cookie(c) => TokenSource::Cookie(c.clone()),
    };
    let forward = j
        .forward_claims
        .iter()
        .map(|(c, h)| Ok((c.clone(), header(h)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let settings = JwtSettings {
        algorithms,
        keys,
        rules: ClaimRules {
            issuers: j.issuers.clone(),
            audiences: j.audiences.clone(),
            leeway: j.leeway.as_secs(),
            required: j.required_claims.clone(),
            scopes: j.scopes.clone(),
        },
        source,
        max_token: j.max_token_size as usize,
        forward,
        strip_token: j.strip_token,
        consumer_claim: j.consumer_claim.clone(),
        realm: j.realm.clone(),
        cache_size: j.cache_size as usize,
    };
    Ok(Arc::new(JwtFilter::new(name, settings)?))
}

fn header(h: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(h.as_bytes()).map_err(|e| format!("jwt: header {h}: {e}"))
}

fn static_keys(policy: &str, list: &[cfg::JwtKey]) -> Result<KeySet, String> {
    let mut out = Vec::with_capacity(list.len());
    for k in list {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p)
                .map_err(|e| format!("policy {policy}: jwt key file {}: {e}", p.display()))
        };
        let pem = |text: &str, what: &str| {
            keys::from_pem(text).map_err(|e| format!("policy {policy}: jwt key {what}: {e}"))
        };
        let material = match &k.material {
            cfg::JwtKeyMaterial::Pem(p) => pem(p, "pem")?,
            cfg::JwtKeyMaterial::PemFile(f) => pem(&read(f)?, &f.display().to_string())?,
            cfg::JwtKeyMaterial::Secret(s) => KeyMaterial::Hmac(s.as_bytes().to_vec()),
            cfg::JwtKeyMaterial::SecretFile(f) => {
                let s = read(f)?;
                KeyMaterial::Hmac(s.trim_end_matches(['\r', '\n']).as_bytes().to_vec())
            }
        };
        out.push(Key {
            kid: k.kid.clone(),
            material,
        });
    }
    Ok(KeySet { keys: out })
}

/// The key files of every `jwt` policy (named or inline), so a change to one reloads.
pub(super) fn key_files(config: &cfg::Config) -> Vec<PathBuf> {
    super::policy::every_policy(config)
        .filter_map(|p| match &p.spec {
            cfg::PolicySpec::Jwt(j) => match &j.keys {
                cfg::JwtKeys::Keys(k) => Some(k),
                cfg::JwtKeys::Jwks(_) => None,
            },
            _ => None,
        })
        .flatten()
        .filter_map(|k| match &k.material {
            cfg::JwtKeyMaterial::PemFile(f) | cfg::JwtKeyMaterial::SecretFile(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}
