//! The `client_cert` policy: only requests whose connection presented a verified client certificate with an allowed SAN URI (SPIFFE ID) or subject pass → 403 `client_cert_missing` / `client_cert_denied`.

use std::sync::Arc;

use http::StatusCode;
use strait_core::{Filter, FilterState, Flow, PeerCert, Reply, RequestCtx};

/// Allowed identities, split into exact names and prefixes once, at compile time.
pub struct ClientCertFilter {
    name: Arc<str>,
    exact: Box<[Box<str>]>,
    prefixes: Box<[Box<str>]>,
    subjects: Box<[Box<str>]>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The connection carries no verified certificate.
    Missing,
    /// The certificate's identities are not listed.
    Denied,
}

impl ClientCertFilter {
    /// A filter called `name`: `allow` holds SAN URIs, exact or ending in `*` (a prefix);
    /// `subjects` holds subject names compared exactly.
    pub fn new(name: &str, allow: &[String], subjects: &[String]) -> Self {
        let (prefixes, exact): (Vec<&String>, Vec<&String>) =
            allow.iter().partition(|a| a.ends_with('*'));
        ClientCertFilter {
            name: Arc::from(name),
            exact: exact.into_iter().map(|s| s.as_str().into()).collect(),
            prefixes: prefixes
                .into_iter()
                .map(|s| s.trim_end_matches('*').into())
                .collect(),
            subjects: subjects.iter().map(|s| s.as_str().into()).collect(),
        }
    }

    /// Whether a connection with `peer` may pass.
    pub fn check(&self, peer: Option<&PeerCert>) -> Result<(), Refusal> {
        let peer = peer.ok_or(Refusal::Missing)?;
        let uri_ok = peer.uris.iter().any(|u| {
            self.exact.iter().any(|e| e == u) || self.prefixes.iter().any(|p| u.starts_with(&**p))
        });
        if uri_ok || self.subjects.contains(&peer.subject) {
            Ok(())
        } else {
            Err(Refusal::Denied)
        }
    }
}

impl Filter for ClientCertFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "client_cert"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        let reason = match self.check(ctx.peer) {
            Ok(()) => return Flow::Continue,
            Err(Refusal::Missing) => "client_cert_missing",
            Err(Refusal::Denied) => "client_cert_denied",
        };
        Flow::Reply(Reply::text(
            StatusCode::FORBIDDEN,
            "strait: forbidden\n",
            reason,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uris: &[&str], subject: &str) -> PeerCert {
        PeerCert {
            subject: subject.into(),
            uris: uris.iter().map(|u| (*u).into()).collect(),
            dns: Box::new([]),
            sha256: "00".into(),
            xfcc: http::HeaderValue::from_static("Hash=00"),
        }
    }

    #[test]
    fn exact_and_prefix_spiffe_ids_pass_others_do_not() {
        let f = ClientCertFilter::new(
            "p",
            &[
                "spiffe://example.org/ns/prod/sa/web".into(),
                "spiffe://example.org/ns/batch/*".into(),
            ],
            &["CN=ops,O=Example".into()],
        );
        let ok = |u: &str| f.check(Some(&peer(&[u], "CN=x"))).is_ok();
        assert!(ok("spiffe://example.org/ns/prod/sa/web"));
        assert!(ok("spiffe://example.org/ns/batch/sa/cron"));
        assert!(!ok("spiffe://example.org/ns/prod/sa/web2"));
        assert!(!ok("spiffe://example.org/ns/batch"));
        assert!(!ok("spiffe://other.org/ns/prod/sa/web"));
        assert_eq!(
            f.check(Some(&peer(&[], "CN=ops,O=Example"))),
            Ok(()),
            "an allowed subject passes without a URI"
        );
        assert_eq!(f.check(Some(&peer(&[], "CN=dev"))), Err(Refusal::Denied));
        assert_eq!(f.check(None), Err(Refusal::Missing));
    }
}
