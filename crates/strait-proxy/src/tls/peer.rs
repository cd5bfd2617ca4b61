//! The verified client certificate of a mutual-TLS connection, parsed once after the handshake: subject, SAN URIs (SPIFFE IDs) and DNS names, SHA-256, and its `X-Forwarded-Client-Cert` element.

use std::fmt::Write;

use http::HeaderValue;
use strait_core::PeerCert;
use x509_parser::{
    certificate::X509Certificate,
    extensions::GeneralName,
    objects::{oid2abbrev, oid_registry},
    prelude::FromDer,
    x509::X509Name,
};

/// A client certificate past its `notAfter`. The handshake's verifier refuses such a certificate;
/// a resumed session does not run it and would keep the identity of a certificate that expired
/// since (workload certificates live minutes to hours), so the connection is refused instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired;

/// The identity a connection's verified leaf certificate (DER) gives, parsed once after the
/// handshake: `None` without a certificate, or with one x509-parser cannot read (rustls verified
/// it, so a form it does not know: the connection then has no identity).
pub fn client_identity(leaf: Option<&[u8]>) -> Result<Option<PeerCert>, Expired> {
    let Some((_, cert)) = leaf.and_then(|der| X509Certificate::from_der(der).ok()) else {
        return Ok(None);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if cert.validity().not_after.timestamp() < now {
        return Err(Expired);
    }
    Ok(leaf.map(|der| identity(der, &cert)))
}

/// The parts of `cert` (whose DER is `der`) requests read.
fn identity(der: &[u8], cert: &X509Certificate<'_>) -> PeerCert {
    let subject = rfc4514(cert.subject());
    let mut uris = Vec::new();
    let mut dns = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(u) => uris.push(Box::from(*u)),
                GeneralName::DNSName(d) => dns.push(Box::from(*d)),
                _ => {}
            }
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut sha256 = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(sha256, "{b:02x}");
    }
    let xfcc = xfcc(&sha256, &subject, &uris, &dns);
    PeerCert {
        subject: subject.into(),
        uris: uris.into(),
        dns: dns.into(),
        sha256: sha256.into(),
        xfcc,
    }
}

/// Envoy's element: `Hash=HEX;Subject="DN";URI=...;DNS=...` (each SAN its own pair). Values
/// that could break the header's syntax are quoted; a subject that cannot be a header value is
/// left out rather than losing the hash and SANs.
fn xfcc(sha256: &str, subject: &str, uris: &[Box<str>], dns: &[Box<str>]) -> HeaderValue {
    let mut out = format!("Hash={sha256}");
    let mut pair = |key: &str, value: &str, always_quote: bool| {
        let mut v = String::with_capacity(value.len() + 2);
        if always_quote || value.contains([',', ';', '=', '"']) {
            v.push('"');
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    v.push('\\');
                }
                v.push(c);
            }
            v.push('"');
        } else {
            v.push_str(value);
        }
        if HeaderValue::from_str(&v).is_ok() {
            let _ = write!(out, ";{key}={v}");
        }
    };
    if !subject.is_empty() {
        pair("Subject", subject, true);
    }
    for u in uris {
        pair("URI", u, false);
    }
    for d in dns {
        pair("DNS", d, false);
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The name as RFC 4514 prints it (last RDN first, `,` between, `+` within one), as Envoy does.
fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    for rdn in name.iter_rdn().collect::<Vec<_>>().into_iter().rev() {
        if !out.is_empty() {
            out.push(',');
        }
        for (i, attr) in rdn.iter().enumerate() {
            if i > 0 {
                out.push('+');
            }
            match oid2abbrev(attr.attr_type(), oid_registry()) {
                Ok(abbrev) => out.push_str(abbrev),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            match attr.as_str() {
                Ok(v) => escape(v, &mut out),
                // A value in a string type not read here: its DER as hex (RFC 4514 §2.4).
                Err(_) => {
                    out.push('#');
                    for b in attr.attr_value().data {
                        let _ = write!(out, "{b:02x}");
                    }
                }
            }
        }
    }
    out
}

/// RFC 4514 §2.4 escaping of an attribute value.
fn escape(v: &str, out: &mut String) {
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfcc_quotes_the_subject_and_lists_each_san() {
        let v = xfcc(
            "ab12",
            "CN=web,O=Ex\\, Inc",
            &["spiffe://example.org/ns/prod/sa/web".into()],
            &["web.internal".into(), "a.internal".into()],
        );
        assert_eq!(
            v,
            "Hash=ab12;Subject=\"CN=web,O=Ex\\\\, Inc\";URI=spiffe://example.org/ns/prod/sa/web;\
             DNS=web.internal;DNS=a.internal"
        );
    }

    #[test]
    fn escapes_special_characters_of_a_name() {
        let mut s = String::new();
        escape(" a,b+c ", &mut s);
        assert_eq!(s, "\\ a\\,b\\+c\\ ");
    }
}

#[cfg(test)]
mod expiry_tests {
    use std::time::{Duration, SystemTime};

    fn cert_until(not_after: SystemTime) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["w.test".to_string()]).unwrap();
        params.not_after = not_after.into();
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_certificate_is_expired_only_after_its_not_after() {
        use super::{client_identity, Expired};
        let now = SystemTime::now();
        let old = cert_until(now - Duration::from_secs(2));
        assert_eq!(client_identity(Some(&old)).err(), Some(Expired));
        let fresh = cert_until(now + Duration::from_secs(60));
        let id = client_identity(Some(&fresh)).unwrap().unwrap();
        assert_eq!(&*id.dns, &[Box::<str>::from("w.test")]);
        assert!(client_identity(Some(b"not a certificate"))
            .unwrap()
            .is_none());
        assert!(client_identity(None).unwrap().is_none());
    }
}
