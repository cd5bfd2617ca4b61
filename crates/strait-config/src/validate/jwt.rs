//! Validation of the `jwt` policy's settings.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::values::header_name;
use super::{pos, Ctx};
use crate::jwt::*;
use crate::raw::{RawJwt, RawJwtToken, S};

const ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

fn texts(list: Option<&Spanned<Vec<S>>>) -> Vec<String> {
    list.map(|l| l.value.iter().map(|s| s.value.clone()).collect())
        .unwrap_or_default()
}

/// Converts `jwt:`.
pub(super) fn jwt(cx: &mut Ctx, raw: &Spanned<RawJwt>) -> JwtPolicy {
    let j = &raw.value;
    let at = pos(raw);
    let mut algorithms = Vec::new();
    match &j.algorithms {
        None => cx.err(
            at,
            "jwt needs `algorithms` (e.g. [RS256]): the list of accepted algorithms",
        ),
        Some(list) if list.value.is_empty() => cx.err(pos(list), "jwt.algorithms is empty"),
        Some(list) => {
            for a in &list.value {
                if ALGORITHMS.contains(&a.value.as_str()) {
                    algorithms.push(a.value.clone());
                } else {
                    cx.err(
                        pos(a),
                        format!(
                            "unknown jwt algorithm `{}`: expected one of {}",
                            a.value,
                            ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
        }
    }
    let hmac = algorithms.iter().any(|a| a.starts_with("HS"));
    let public = algorithms.iter().any(|a| !a.starts_with("HS"));
    let keys = match (&j.jwks, &j.keys) {
        (Some(_), Some(k)) => {
            cx.err(pos(k), "jwt takes `jwks` or `keys`, not both");
            JwtKeys::Keys(Vec::new())
        }
        (None, None) => {
            cx.err(
                at,
                "jwt needs keys: set `jwks` (a key set on an upstream) or `keys`",
            );
            JwtKeys::Keys(Vec::new())
        }
        (Some(w), None) => {
            if hmac {
                cx.err(
                    pos(w),
                    "jwt: HS algorithms need a shared secret in `keys`; a JWKS never supplies one",
                );
            }
            let s = &w.value;
            let upstream = match &s.upstream {
                Some(u) => {
                    cx.auth_upstreams
                        .push((u.value.clone(), pos(u), "jwt.jwks.upstream"));
                    u.value.clone()
                }
                None => {
                    cx.err(
                        pos(w),
                        "jwt.jwks needs an `upstream` (the name of an upstream)",
                    );
                    String::new()
                }
            };
            let path = match &s.path {
                Some(p) if p.value.starts_with('/') => p.value.clone(),
                Some(p) => {
                    cx.err(pos(p), "jwt.jwks.path must start with `/`");
                    p.value.clone()
                }
                None => {
                    cx.err(
                        pos(w),
                        "jwt.jwks needs a `path` (e.g. /.well-known/jwks.json)",
                    );
                    String::new()
                }
            };
            let refresh = cx.duration(
                s.refresh.as_ref(),
                "jwt.jwks.refresh",
                Duration::from_secs(600),
                false,
            );
            let cooldown = cx.duration(
                s.cooldown.as_ref(),
                "jwt.jwks.cooldown",
                Duration::from_secs(30),
                true,
            );
            let timeout = cx.duration(
                s.timeout.as_ref(),
                "jwt.jwks.timeout",
                Duration::from_secs(2),
                false,
            );
            if cooldown > refresh {
                if let Some(c) = &s.cooldown {
                    cx.err(
                        pos(c),
                        "jwt.jwks.cooldown must not be longer than jwt.jwks.refresh",
                    );
                }
            }
            JwtKeys::Jwks(JwksSource {
                upstream,
                path,
                refresh,
                cooldown,
                timeout,
            })
        }
        (None, Some(list)) => {
            if list.value.is_empty() {
                cx.err(pos(list), "jwt.keys is empty");
            }
            let mut out = Vec::new();
            for k in &list.value {
                let v = &k.value;
                let set: Vec<&S> = [&v.pem, &v.pem_file, &v.secret, &v.secret_file]
                    .into_iter()
                    .flatten()
                    .collect();
                if set.len() != 1 {
                    cx.err(
                        pos(k),
                        "a jwt key has exactly one of `pem`, `pem_file`, `secret`, `secret_file`",
                    );
                    continue;
                }
                let material = if let Some(p) = &v.pem {
                    JwtKeyMaterial::Pem(p.value.clone())
                } else if let Some(f) = &v.pem_file {
                    JwtKeyMaterial::PemFile(cx.file(f, "jwt.keys.pem_file"))
                } else if let Some(s) = &v.secret {
                    if s.value.len() < 32 {
                        cx.err(
                            pos(s),
                            "jwt key secret must be at least 32 bytes (RFC 7518 §3.2)",
                        );
                    }
                    JwtKeyMaterial::Secret(s.value.clone())
                } else if let Some(f) = &v.secret_file {
                    JwtKeyMaterial::SecretFile(cx.file(f, "jwt.keys.secret_file"))
                } else {
                    continue;
                };
                let secret = matches!(
                    material,
                    JwtKeyMaterial::Secret(_) | JwtKeyMaterial::SecretFile(_)
                );
                if secret && !hmac {
                    cx.err(
                        pos(k),
                        "a jwt secret key needs an HS algorithm in `algorithms`",
                    );
                }
                if !secret && !public {
                    cx.err(
                        pos(k),
                        "a jwt public key needs an RS, PS, ES or EdDSA algorithm in `algorithms`",
                    );
                }
                out.push(JwtKey {
                    kid: v.kid.as_ref().map(|s| s.value.clone()),
                    material,
                });
            }
            JwtKeys::Keys(out)
        }
    };
    let list = |l: &Option<Spanned<crate::raw::StrOrList>>| -> Vec<String> {
        l.as_ref()
            .map(|l| l.value.0.iter().map(|s| s.value.clone()).collect())
            .unwrap_or_default()
    };
    let max_token_size = cx.size(j.max_token_size.as_ref(), "jwt.max_token_size", 8 * 1024);
    if !(256..=64 * 1024).contains(&max_token_size) {
        if let Some(s) = &j.max_token_size {
            cx.err(pos(s), "jwt.max_token_size must be from 256B to 64KiB");
        }
    }
    let forward_claims = j
        .forward_claims
        .as_ref()
        .map(|p| {
            p.value
                .0
                .iter()
                .map(|(claim, header)| {
                    let h = header_name(&header.value).unwrap_or_else(|e| {
                        cx.err(pos(header), format!("jwt.forward_claims: {e}"));
                        header.value.clone()
                    });
                    (claim.value.clone(), h)
                })
                .collect()
        })
        .unwrap_or_default();
    JwtPolicy {
        algorithms,
        keys,
        issuers: list(&j.issuer),
        audiences: list(&j.audiences),
        leeway: cx.duration(
            j.leeway.as_ref(),
            "jwt.leeway",
            Duration::from_secs(60),
            true,
        ),
        required_claims: texts(j.required_claims.as_ref()),
        scopes: texts(j.scopes.as_ref()),
        token: token(cx, j.token.as_ref()),
        max_token_size,
        forward_claims,
        strip_token: j.strip_token.as_ref().is_some_and(|b| b.value),
        consumer_claim: j.consumer_claim.as_ref().map(|s| s.value.clone()),
        realm: match &j.realm {
            Some(r)
                if r.value
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ') =>
            {
                r.value.clone()
            }
            Some(r) => {
                cx.err(
                    pos(r),
                    "jwt.realm: use printable ASCII without quotes or backslashes",
                );
                r.value.clone()
            }
            None => "strait".into(),
        },
        cache_size: cx.count(
            j.cache_size.as_ref(),
            "jwt.cache_size",
            1024,
            (0, 1_000_000),
        ),
    }
}

fn token(cx: &mut Ctx, raw: Option<&Spanned<RawJwtToken>>) -> JwtToken {
    let default = JwtToken::Header {
        name: "authorization".into(),
        prefix: "Bearer ".into(),
    };
    let Some(t) = raw else { return default };
    let v = &t.value;
    let places = [&v.header, &v.query, &v.cookie]
        .into_iter()
        .flatten()
        .count();
    if places != 1 {
        cx.err(
            pos(t),
            "jwt.token takes exactly one of `header`, `query`, `cookie`",
        );
        return default;
    }
    if let (Some(p), None) = (&v.prefix, &v.header) {
        cx.err(pos(p), "jwt.token.prefix goes with `header`");
    }
    if let Some(h) = &v.header {
        let name = header_name(&h.value).unwrap_or_else(|e| {
            cx.err(pos(h), format!("jwt.token.header: {e}"));
            h.value.clone()
        });
        let prefix = match &v.prefix {
            Some(p) => p.value.clone(),
            None if name == "authorization" => "Bearer ".into(),
            None => String::new(),
        };
        return JwtToken::Header { name, prefix };
    }
    if let Some(q) = &v.query {
        return JwtToken::Query(q.value.clone());
    }
    match &v.cookie {
        Some(c) => JwtToken::Cookie(c.value.clone()),
        None => default,
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    const BASE: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n\
                        upstreams:\n  - name: idp\n    endpoints: [\"127.0.0.1:9\"]\n\
                        routes:\n  - name: r\n    upstream: idp\n    policies: [p]\n\
                        policies:\n  - name: p\n    jwt:\n";

    fn check(jwt: &str) -> Result<Box<JwtPolicy>, Vec<String>> {
        let yaml = format!("{BASE}{jwt}");
        match parse("t.yaml", &yaml, None) {
            Ok(l) => match &l.config.policies[0].spec {
                PolicySpec::Jwt(j) => Ok(j.clone()),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e
                .0
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect()),
        }
    }

    #[test]
    fn an_unknown_jwks_upstream_is_an_error_at_its_name() {
        let e = check("      algorithms: [RS256]\n      jwks: { upstream: nope, path: /jwks }\n")
            .unwrap_err();
        assert_eq!(
            e,
            ["15:25: jwt.jwks.upstream `nope` is not defined under `upstreams:`"]
        );
    }

    #[test]
    fn defaults_and_jwks() {
        let j = check("      algorithms: [RS256]\n      jwks: { upstream: idp, path: /jwks }\n      issuer: a\n").unwrap();
        assert_eq!(j.issuers, ["a"]);
        assert_eq!(j.max_token_size, 8192);
        assert_eq!(j.leeway, std::time::Duration::from_secs(60));
        assert_eq!(
            j.token,
            JwtToken::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into()
            }
        );
        let JwtKeys::Jwks(s) = &j.keys else { panic!() };
        assert_eq!(s.cooldown, std::time::Duration::from_secs(30));
    }

    #[test]
    fn errors_have_positions() {
        let e =
            check("      algorithms: [RS256, none]\n      jwks: { upstream: idp, path: /jwks }\n")
                .unwrap_err();
        assert!(
            e[0].starts_with("14:") && e[0].contains("unknown jwt algorithm `none`"),
            "{e:?}"
        );
        let e = check("      algorithms: [HS256]\n      jwks: { upstream: idp, path: /jwks }\n")
            .unwrap_err();
        assert!(e[0].contains("HS algorithms need a shared secret"), "{e:?}");
        let e = check("      algorithms: [RS256]\n      keys: [{ secret: short }]\n").unwrap_err();
        assert!(e.iter().any(|m| m.contains("at least 32 bytes")), "{e:?}");
        assert!(
            e.iter().any(|m| m.contains("needs an HS algorithm")),
            "{e:?}"
        );
        let e = check("      algorithms: [RS256]\n      jwks: { upstream: idp, path: /jwks }\n      token: { query: t, cookie: c }\n").unwrap_err();
        assert!(e[0].contains("exactly one of"), "{e:?}");
        let e = check("      algorithms: [RS256]\n").unwrap_err();
        assert!(e[0].contains("jwt needs keys"), "{e:?}");
    }
}
