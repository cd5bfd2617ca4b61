//! Validated settings of the `colour` policy: where the colour travels, which endpoint label it selects, the known colours, how a missing one is derived and what happens when its endpoints are down.

/// `colour:` routes a request to the endpoints whose label matches its colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColourPolicy {
    /// The request header that carries the colour (lowercased); forwarded upstream.
    pub header: String,
    /// The endpoint label whose value is compared with the colour.
    pub label: String,
    /// The known colours; any other header value counts as absent.
    pub values: Vec<String>,
    /// Without a (known) colour: derive one from this key, `None` = leave the request uncoloured.
    pub derive: Option<ColourKey>,
    /// When no endpoint of the colour is available (default `any`).
    pub fallback: ColourFallback,
}

/// The user key a colour is derived from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ColourKey {
    /// A request header (`header:NAME`, lowercased).
    Header(String),
    /// A cookie (`cookie:NAME`).
    Cookie(String),
    /// A claim of the verified JWT (`claim:NAME`).
    Claim(String),
    /// The consumer an authentication policy identified (`consumer`).
    Consumer,
    /// The client's address (`client_ip`).
    ClientIp,
}

/// What a colour policy does when its colour's endpoints are all unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColourFallback {
    /// Any endpoint of the upstream serves it.
    Any,
    /// 503, reason `colour_unavailable`.
    Reject,
}
