//! The one place where every data-plane failure gets its status code, its side, its kind and whether a retry may follow.
//!
//! `Display` is the detailed reason for logs, spans and the access log (upstream and endpoint
//! names, causes); clients only ever see [`ProxyError::public_reason`], which names no internals.

use http::StatusCode;

/// Which side of the proxy a failure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client: a malformed or over-limit request, a client that went away.
    Downstream,
    /// An upstream: refused or failed connections, timeouts, invalid responses.
    Upstream,
    /// Strait itself: no route, no healthy endpoint, a limit or breaker of its own.
    Local,
}

impl Side {
    /// The label used in logs and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Downstream => "downstream",
            Side::Upstream => "upstream",
            Side::Local => "local",
        }
    }
}

/// What kind of failure it was: the `error` field of access logs and the `error.type` of spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No route matched.
    NoRoute,
    /// Every endpoint of the upstream is unhealthy or ejected.
    NoHealthyEndpoint,
    /// The upstream's circuit breaker is open.
    CircuitOpen,
    /// The endpoint's connection or pending-request limit is reached.
    Overloaded,
    /// No connection could be made (refused, unreachable, TLS handshake failed, connect timeout).
    Connect,
    /// No response head within the request or per-try timeout.
    Timeout,
    /// The connection failed after the request was sent, or the response was invalid.
    Upstream,
    /// The request is invalid or over a limit.
    Request,
    /// The request's colour has no available endpoint and its policy says `fallback: reject`.
    ColourUnavailable,
}

impl ErrorKind {
    /// The label used in logs and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NoRoute => "no_route",
            ErrorKind::NoHealthyEndpoint => "no_healthy_endpoint",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Upstream => "upstream",
            ErrorKind::Request => "request",
            ErrorKind::ColourUnavailable => "colour_unavailable",
        }
    }
}

/// Boxed cause of an upstream failure.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a request could not be served normally; each maps to one documented status.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route matched the request.
    #[error("no route matched")]
    NoRoute,
    /// The upstream has no healthy (or non-ejected) endpoint.
    #[error("no healthy endpoint in upstream {0}")]
    NoHealthyEndpoint(String),
    /// The upstream's circuit breaker is open.
    #[error("circuit breaker of upstream {0} is open")]
    CircuitOpen(String),
    /// The endpoint has as many connections and waiting requests as its limits allow.
    #[error("upstream {upstream} endpoint {endpoint} is at its connection limit")]
    Overloaded {
        /// Upstream name.
        upstream: String,
        /// Endpoint address.
        endpoint: String,
    },
    /// Connecting to the endpoint failed or timed out.
    #[error("cannot connect to upstream {upstream} endpoint {endpoint}: {source}")]
    Connect {
        /// Upstream name.
        upstream: String,
        /// Endpoint address.
        endpoint: String,
        /// Underlying error (refused, TLS alert, certificate, timeout).
        #[source]
        source: Cause,
    },
    /// The endpoint did not send response headers in time.
    #[error("upstream {upstream} endpoint {endpoint} timed out after {after:?}")]
    Timeout {
        /// Upstream name.
        upstream: String,
        /// Endpoint address.
        endpoint: String,
        /// The timeout that expired.
        after: std::time::Duration,
    },
    /// The endpoint closed or reset the connection, or sent an invalid response.
    #[error("upstream {upstream} endpoint {endpoint} failed: {source}")]
    Upstream {
        /// Upstream name.
        upstream: String,
        /// Endpoint address.
        endpoint: String,
        /// Underlying error.
        #[source]
        source: Cause,
    },
    /// No endpoint of the request's colour is available and the policy rejects (`fallback: reject`).
    #[error("no available endpoint of colour {label}={colour} in upstream {upstream}")]
    ColourUnavailable {
        /// Upstream name.
        upstream: String,
        /// The colour's label.
        label: String,
        /// The colour.
        colour: String,
    },
    /// The request itself is invalid (e.g. its body exceeds a limit).
    #[error("{1}")]
    BadRequest(StatusCode, &'static str),
}

impl ProxyError {
    /// The status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoHealthyEndpoint(_)
            | ProxyError::CircuitOpen(_)
            | ProxyError::ColourUnavailable { .. }
            | ProxyError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(s, _) => *s,
        }
    }

    /// What the client is told: short, generic, naming no upstream, endpoint or cause.
    pub fn public_reason(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "no route matched",
            ProxyError::NoHealthyEndpoint(_)
            | ProxyError::CircuitOpen(_)
            | ProxyError::ColourUnavailable { .. }
            | ProxyError::Overloaded { .. } => "service unavailable",
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => "bad gateway",
            ProxyError::Timeout { .. } => "gateway timeout",
            ProxyError::BadRequest(_, reason) => reason,
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProxyError::NoRoute => ErrorKind::NoRoute,
            ProxyError::NoHealthyEndpoint(_) => ErrorKind::NoHealthyEndpoint,
            ProxyError::CircuitOpen(_) => ErrorKind::CircuitOpen,
            ProxyError::Overloaded { .. } => ErrorKind::Overloaded,
            ProxyError::Connect { .. } => ErrorKind::Connect,
            ProxyError::Timeout { .. } => ErrorKind::Timeout,
            ProxyError::Upstream { .. } => ErrorKind::Upstream,
            ProxyError::BadRequest(..) => ErrorKind::Request,
            ProxyError::ColourUnavailable { .. } => ErrorKind::ColourUnavailable,
        }
    }

    /// Which side the failure belongs to.
    pub fn side(&self) -> Side {
        match self.kind() {
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Upstream => Side::Upstream,
            ErrorKind::Request => Side::Downstream,
            _ => Side::Local,
        }
    }

    /// Whether the upstream never saw the request, so another endpoint may get it whatever its method.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect { .. } | ProxyError::Overloaded { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_reasons_name_no_internals() {
        let errors = [
            ProxyError::NoHealthyEndpoint("users".into()),
            ProxyError::Connect {
                upstream: "users".into(),
                endpoint: "127.0.0.1:9".into(),
                source: "connection refused".into(),
            },
            ProxyError::Timeout {
                upstream: "users".into(),
                endpoint: "127.0.0.1:9".into(),
                after: std::time::Duration::from_secs(1),
            },
            ProxyError::Upstream {
                upstream: "users".into(),
                endpoint: "127.0.0.1:9".into(),
                source: "reset".into(),
            },
        ];
        for e in errors {
            let public = e.public_reason();
            assert!(!public.contains("users") && !public.contains("127.0.0.1"));
            assert!(e.to_string().contains("users"), "{e}");
        }
    }

    #[test]
    fn statuses_and_sides() {
        assert_eq!(ProxyError::NoRoute.status(), 404);
        assert_eq!(ProxyError::CircuitOpen("u".into()).status(), 503);
        assert_eq!(ProxyError::CircuitOpen("u".into()).side(), Side::Local);
        let c = ProxyError::Connect {
            upstream: "u".into(),
            endpoint: "e".into(),
            source: "x".into(),
        };
        assert_eq!((c.status().as_u16(), c.side()), (502, Side::Upstream));
        assert!(c.never_sent());
    }
}
