//! JWT verification keys: parsed from PEM, secrets and JWKS documents, matched to a token's `alg` and `kid`, and checked with ring.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// A JWS algorithm Strait verifies (`none` is not one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    /// HMAC SHA-256.
    HS256,
    /// HMAC SHA-384.
    HS384,
    /// HMAC SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    RS512,
    /// RSASSA-PSS SHA-256.
    PS256,
    /// RSASSA-PSS SHA-384.
    PS384,
    /// RSASSA-PSS SHA-512.
    PS512,
    /// ECDSA P-256 SHA-256.
    ES256,
    /// ECDSA P-384 SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

/// Every algorithm, with its JOSE name.
pub const ALGS: [(&str, Alg); 12] = [
    ("HS256", Alg::HS256),
    ("HS384", Alg::HS384),
    ("HS512", Alg::HS512),
    ("RS256", Alg::RS256),
    ("RS384", Alg::RS384),
    ("RS512", Alg::RS512),
    ("PS256", Alg::PS256),
    ("PS384", Alg::PS384),
    ("PS512", Alg::PS512),
    ("ES256", Alg::ES256),
    ("ES384", Alg::ES384),
    ("EdDSA", Alg::EdDSA),
];

impl Alg {
    /// The algorithm called `name` (exact JOSE spelling).
    pub fn from_name(name: &str) -> Option<Alg> {
        ALGS.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }
}

/// Key material of one type; an algorithm only ever uses a key of its own type.
#[derive(Debug, Clone)]
pub enum KeyMaterial {
    /// An HMAC secret.
    Hmac(Vec<u8>),
    /// An RSA public key (modulus, exponent; big-endian).
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An EC public key as an uncompressed point, and its curve (256 or 384).
    Ec { bits: u16, point: Vec<u8> },
    /// An Ed25519 public key.
    Ed25519(Vec<u8>),
}

/// A key with its optional `kid`.
#[derive(Debug, Clone)]
pub struct Key {
    /// Key id; a token naming a `kid` is checked only against keys with that id.
    pub kid: Option<String>,
    /// The key.
    pub material: KeyMaterial,
}

/// A set of keys, shared read-only by requests.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// The keys.
    pub keys: Vec<Key>,
}

/// Why a signature did not verify against a key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The token's `kid` names no key of the set.
    UnknownKid,
    /// No key verified the signature (or none fits the algorithm).
    BadSignature,
}

impl KeySet {
    /// Whether the set has a key with this id.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Checks `sig` over `msg` with a key that fits `alg` (and `kid`, when the token names one).
    pub fn verify(
        &self,
        alg: Alg,
        kid: Option<&str>,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), VerifyError> {
        let mut named = false;
        for key in &self.keys {
            if let Some(kid) = kid {
                if key.kid.as_deref() != Some(kid) {
                    continue;
                }
                named = true;
            }
            if verify_one(alg, &key.material, msg, sig) {
                return Ok(());
            }
        }
        if kid.is_some() && !named {
            return Err(VerifyError::UnknownKid);
        }
        Err(VerifyError::BadSignature)
    }
}

/// Verifies with one key; a key of another type than `alg` needs never verifies.
fn verify_one(alg: Alg, key: &KeyMaterial, msg: &[u8], sig: &[u8]) -> bool {
    use ring::hmac;
    match (alg, key) {
        (Alg::HS256 | Alg::HS384 | Alg::HS512, KeyMaterial::Hmac(secret)) => {
            let a = match alg {
                Alg::HS256 => hmac::HMAC_SHA256,
                Alg::HS384 => hmac::HMAC_SHA384,
                _ => hmac::HMAC_SHA512,
            };
            // Constant-time comparison inside ring.
            hmac::verify(&hmac::Key::new(a, secret), msg, sig).is_ok()
        }
        (
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512,
            KeyMaterial::Rsa { n, e },
        ) => {
            let params: &signature::RsaParameters = match alg {
                Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .is_ok()
        }
        (Alg::ES256, KeyMaterial::Ec { bits: 256, point }) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        (Alg::ES384, KeyMaterial::Ec { bits: 384, point }) => {
            UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        (Alg::EdDSA, KeyMaterial::Ed25519(k)) => UnparsedPublicKey::new(&signature::ED25519, k)
            .verify(msg, sig)
            .is_ok(),
        _ => false,
    }
}

/// A public key from PEM text: `PUBLIC KEY` (SPKI: RSA, EC P-256/P-384, Ed25519) or
/// `RSA PUBLIC KEY` (PKCS#1). Private keys are refused.
pub fn from_pem(pem: &str) -> Result<KeyMaterial, String> {
    let (label, der) = pem_block(pem)?;
    match label.as_str() {
        "PUBLIC KEY" => from_spki(&der),
        "RSA PUBLIC KEY" => rsa_from_pkcs1(&der),
        l if l.contains("PRIVATE") => {
            Err("a private key: give the public key (`openssl pkey -pubout`)".into())
        }
        l => Err(format!("unsupported PEM block `{l}`")),
    }
}

fn pem_block(pem: &str) -> Result<(String, Vec<u8>), String> {
    let start = pem
        .find("-----BEGIN ")
        .ok_or("not PEM (no -----BEGIN line)")?;
    let rest = &pem[start + 11..];
    let label_end = rest.find("-----").ok_or("malformed PEM header")?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker).ok_or("PEM block not closed")?;
    let b64: String = rest[body_start..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| "PEM body is not base64".to_string())?;
    Ok((label, der))
}

/// One DER TLV at the start of `d`: (tag, contents, rest).
fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, d) = d.split_first()?;
    let (&len0, mut d) = d.split_first()?;
    let len = if len0 < 0x80 {
        len0 as usize
    } else {
        let n = (len0 & 0x7f) as usize;
        if n == 0 || n > 4 || d.len() < n {
            return None;
        }
        let mut l = 0usize;
        for &b in &d[..n] {
            l = (l << 8) | b as usize;
        }
        d = &d[n..];
        l
    };
    if d.len() < len {
        return None;
    }
    Some((tag, &d[..len], &d[len..]))
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

fn from_spki(der: &[u8]) -> Result<KeyMaterial, String> {
    let bad = || "malformed public key".to_string();
    let (0x30, spki, _) = tlv(der).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x30, alg_id, rest) = tlv(spki).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x03, bits, _) = tlv(rest).ok_or_else(bad)? else {
        return Err(bad());
    };
    // The BIT STRING's first byte counts unused bits, always 0 for keys.
    let key = match bits.split_first() {
        Some((0, k)) => k,
        _ => return Err(bad()),
    };
    let (0x06, oid, params) = tlv(alg_id).ok_or_else(bad)? else {
        return Err(bad());
    };
    if oid == OID_RSA {
        rsa_from_pkcs1(key)
    } else if oid == OID_EC {
        let (0x06, curve, _) = tlv(params).ok_or_else(bad)? else {
            return Err(bad());
        };
        let bits = if curve == OID_P256 {
            256
        } else if curve == OID_P384 {
            384
        } else {
            return Err("unsupported EC curve (P-256 and P-384 are)".into());
        };
        Ok(KeyMaterial::Ec {
            bits,
            point: key.to_vec(),
        })
    } else if oid == OID_ED25519 {
        Ok(KeyMaterial::Ed25519(key.to_vec()))
    } else {
        Err("unsupported key type (RSA, EC and Ed25519 are)".into())
    }
}

fn rsa_from_pkcs1(der: &[u8]) -> Result<KeyMaterial, String> {
    let bad = || "malformed RSA public key".to_string();
    let (0x30, seq, _) = tlv(der).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x02, n, rest) = tlv(seq).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x02, e, _) = tlv(rest).ok_or_else(bad)? else {
        return Err(bad());
    };
    Ok(KeyMaterial::Rsa {
        n: strip_zeros(n).to_vec(),
        e: strip_zeros(e).to_vec(),
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

fn b64url(v: &serde_json::Value) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(v.as_str()?.trim_end_matches('='))
        .ok()
}

/// The verification keys of a JWKS document; keys of unknown types, private parts, or with
/// `use` other than `sig` are skipped. Fails when the document is not a JWKS at all.
pub fn from_jwks(doc: &[u8]) -> Result<KeySet, String> {
    let v: serde_json::Value = serde_json::from_slice(doc).map_err(|_| "not JSON".to_string())?;
    let list = v
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("no `keys` array")?;
    let mut keys = Vec::new();
    for k in list {
        if k.get("use")
            .and_then(|u| u.as_str())
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let kid = k.get("kid").and_then(|s| s.as_str()).map(str::to_owned);
        let material = match k.get("kty").and_then(|s| s.as_str()) {
            Some("RSA") => match (k.get("n").and_then(b64url), k.get("e").and_then(b64url)) {
                (Some(n), Some(e)) => KeyMaterial::Rsa {
                    n: strip_zeros(&n).to_vec(),
                    e: strip_zeros(&e).to_vec(),
                },
                _ => continue,
            },
            Some("EC") => {
                let bits = match k.get("crv").and_then(|s| s.as_str()) {
                    Some("P-256") => 256,
                    Some("P-384") => 384,
                    _ => continue,
                };
                let (Some(x), Some(y)) = (k.get("x").and_then(b64url), k.get("y").and_then(b64url))
                else {
                    continue;
                };
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyMaterial::Ec { bits, point }
            }
            Some("OKP") if k.get("crv").and_then(|s| s.as_str()) == Some("Ed25519") => {
                match k.get("x").and_then(b64url) {
                    Some(x) => KeyMaterial::Ed25519(x),
                    None => continue,
                }
            }
            // Symmetric keys are never taken from a remote document: anyone serving it could mint tokens.
            _ => continue,
        };
        keys.push(Key { kid, material });
    }
    Ok(KeySet { keys })
}

/// A shared, empty key set.
pub fn empty() -> Arc<KeySet> {
    Arc::new(KeySet::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_verifies_and_type_confusion_never_does() {
        let secret = b"s3cret".to_vec();
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            b"msg",
        );
        let set = KeySet {
            keys: vec![Key {
                kid: Some("a".into()),
                material: KeyMaterial::Hmac(secret),
            }],
        };
        assert_eq!(set.verify(Alg::HS256, None, b"msg", tag.as_ref()), Ok(()));
        assert_eq!(
            set.verify(Alg::HS256, Some("a"), b"msg", tag.as_ref()),
            Ok(())
        );
        assert_eq!(
            set.verify(Alg::HS256, Some("b"), b"msg", tag.as_ref()),
            Err(VerifyError::UnknownKid)
        );
        assert_eq!(
            set.verify(Alg::RS256, None, b"msg", tag.as_ref()),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            set.verify(Alg::HS256, None, b"msh", tag.as_ref()),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn jwks_skips_symmetric_and_unknown_keys() {
        let doc = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"},{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"e"},{"kty":"XYZ"}]}"#;
        let set = from_jwks(doc).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert!(set.has_kid("e"));
        assert!(from_jwks(b"[]").is_err());
    }

    #[test]
    fn pem_refuses_private_keys_and_garbage() {
        assert!(from_pem("hello").is_err());
        assert!(from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
        assert!(from_pem("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----").is_err());
        assert!(from_pem("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----").is_err());
    }

    #[test]
    fn tlv_never_panics_on_arbitrary_bytes() {
        for len in 0..64u8 {
            let d: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(len))
                .collect();
            let _ = from_spki(&d);
            let _ = rsa_from_pkcs1(&d);
        }
    }
}
