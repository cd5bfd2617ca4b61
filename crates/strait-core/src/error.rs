//! The one place where every data-plane failure gets its status code (404, 502, 503, 504, ...).

use http::StatusCode;

/// Why a request could not be served normally; each maps to one documented status.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route matched the request.
    #[error("no route matched")]
    NoRoute,
    /// The upstream has no healthy endpoint.
    #[error("no healthy endpoint in upstream {0}")]
    NoHealthyEndpoint(String),
    /// Connecting to the endpoint failed or timed out.
    #[error("cannot connect to upstream {upstream} endpoint {endpoint}")]
    Connect {
        /// Upstream name.
        upstream: String,
        /// Endpoint address.
        endpoint: String,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The endpoint did not send response headers within `timeouts.request`.
    #[error("upstream {0} timed out")]
    Timeout(String),
    /// The endpoint closed or reset the connection, or sent an invalid response.
    #[error("upstream {upstream} failed")]
    Upstream {
        /// Upstream name.
        upstream: String,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
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
            ProxyError::NoHealthyEndpoint(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(s, _) => *s,
        }
    }

    /// Whether the failure happened before the upstream could have seen the request (safe to retry).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect { .. } | ProxyError::NoHealthyEndpoint(_)
        )
    }
}
