//! Who a request comes from: the client certificate a mutual-TLS handshake verified (per connection), and what authentication policies establish, left in the request's extensions for later policies (rate limits keyed by consumer or claim), the upstream and the access log.

use std::sync::Arc;

/// The consumer an authentication policy identified (an API key's, a basic-auth user's, a
/// JWT's configured claim). Stored in `RequestCtx::head.extensions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer(pub Arc<str>);

/// The claims of a verified JWT, flattened to text: strings as they are, numbers and booleans
/// printed, arrays of strings joined by spaces (as `scope` is). Stored in
/// `RequestCtx::head.extensions`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims(pub Arc<Vec<(Box<str>, Box<str>)>>);

impl Claims {
    /// The value of claim `name`, if the token had it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| &**k == name).map(|(_, v)| &**v)
    }
}

/// The verified client certificate of a mutual-TLS connection, parsed once per connection
/// (requests borrow it through `RequestCtx::peer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    /// Subject distinguished name, RFC 4514 order and escaping (`CN=web,O=Example`).
    pub subject: Box<str>,
    /// URI subject alternative names (a SPIFFE ID: `spiffe://trust-domain/path`).
    pub uris: Box<[Box<str>]>,
    /// DNS subject alternative names.
    pub dns: Box<[Box<str>]>,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub sha256: Box<str>,
    /// The certificate as one `X-Forwarded-Client-Cert` element (Envoy's format), built once.
    pub xfcc: http::HeaderValue,
}

impl PeerCert {
    /// The SPIFFE ID: the first URI SAN with the `spiffe` scheme.
    pub fn spiffe_id(&self) -> Option<&str> {
        self.uris
            .iter()
            .map(|u| &**u)
            .find(|u| u.starts_with("spiffe://"))
    }
}
