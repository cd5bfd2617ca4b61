//! Who a request comes from, as authentication policies establish it: values they leave in the request's extensions for later policies (rate limits keyed by consumer or claim), the upstream and the access log.

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
