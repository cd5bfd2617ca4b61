//! The effective form of the `jwt` policy (secrets redacted).

use super::node::{int, M};
use super::Node;
use crate::jwt::*;

fn strs(list: &[String]) -> Node {
    Node::List(list.iter().map(|s| s.as_str().into()).collect())
}

/// `jwt:` with its defaults.
pub(super) fn jwt(j: &JwtPolicy) -> Node {
    let JwtPolicy {
        algorithms,
        keys,
        issuers,
        audiences,
        leeway,
        required_claims,
        scopes,
        token,
        max_token_size,
        forward_claims,
        strip_token,
        consumer_claim,
        realm,
        cache_size,
    } = j;
    let m = M::new().put("algorithms", strs(algorithms));
    let m = match keys {
        JwtKeys::Jwks(JwksSource {
            upstream,
            path,
            refresh,
            cooldown,
            timeout,
        }) => m.put(
            "jwks",
            M::new()
                .put("upstream", upstream.as_str())
                .put("path", path.as_str())
                .put("refresh", *refresh)
                .put("cooldown", *cooldown)
                .put("timeout", *timeout),
        ),
        JwtKeys::Keys(list) => m.put(
            "keys",
            Node::List(
                list.iter()
                    .map(|k| {
                        let m = M::new().opt("kid", k.kid.clone());
                        let m = match &k.material {
                            JwtKeyMaterial::Pem(p) => m.put("pem", p.as_str()),
                            JwtKeyMaterial::PemFile(p) => m.put("pem_file", p.as_path()),
                            JwtKeyMaterial::Secret(_) => m.put("secret", super::REDACTED),
                            JwtKeyMaterial::SecretFile(p) => m.put("secret_file", p.as_path()),
                        };
                        m.into()
                    })
                    .collect(),
            ),
        ),
    };
    let token = match token {
        JwtToken::Header { name, prefix } => M::new()
            .put("header", name.as_str())
            .put("prefix", prefix.as_str()),
        JwtToken::Query(q) => M::new().put("query", q.as_str()),
        JwtToken::Cookie(c) => M::new().put("cookie", c.as_str()),
    };
    m.put("issuer", strs(issuers))
        .put("audiences", strs(audiences))
        .put("leeway", *leeway)
        .put("required_claims", strs(required_claims))
        .put("scopes", strs(scopes))
        .put("token", token)
        .put("max_token_size", int(*max_token_size))
        .put(
            "forward_claims",
            Node::Map(
                forward_claims
                    .iter()
                    .map(|(c, h)| (c.clone(), h.as_str().into()))
                    .collect(),
            ),
        )
        .put("strip_token", *strip_token)
        .opt("consumer_claim", consumer_claim.clone())
        .put("realm", realm.as_str())
        .put("cache_size", int(u64::from(*cache_size)))
        .into()
}
