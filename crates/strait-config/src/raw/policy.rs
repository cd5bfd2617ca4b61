//! The raw shape of policies (`policies:` and the references to them), weighted backends, and the resilience settings of upstreams.

use serde::de::Deserializer;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::forms::ScalarOrMap;
use super::{RawHeaderOps, S};

/// A policy: a name (optional when inline) and exactly one kind, written as its key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub name: Option<S>,
    pub headers: Option<Spanned<RawHeadersPolicy>>,
    pub retry: Option<Spanned<RawRetry>>,
    pub fault: Option<Spanned<RawFault>>,
    pub ip_rules: Option<Spanned<super::RawIpRules>>,
    pub client_cert: Option<Spanned<super::RawClientCert>>,
    pub request_limits: Option<Spanned<super::RawRequestLimits>>,
    pub cors: Option<Spanned<super::RawCors>>,
    pub api_key: Option<Spanned<super::RawApiKey>>,
    pub basic_auth: Option<Spanned<super::RawBasicAuth>>,
    pub forward_auth: Option<Spanned<super::RawForwardAuth>>,
    pub jwt: Option<Spanned<super::RawJwt>>,
    pub rate_limit: Option<Spanned<super::RawRateLimit>>,
    pub concurrency_limit: Option<Spanned<super::RawConcurrencyLimit>>,
    pub mirror: Option<Spanned<super::RawMirror>>,
    pub colour: Option<Spanned<super::RawColour>>,
    pub wasm: Option<Spanned<super::RawWasm>>,
}

/// `fault:` injected aborts and delays.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFault {
    pub abort: Option<Spanned<RawFaultAbort>>,
    pub delay: Option<Spanned<RawFaultDelay>>,
    pub header: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFaultAbort {
    pub status: Option<S>,
    pub percentage: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFaultDelay {
    pub duration: Option<S>,
    pub percentage: Option<S>,
}

/// `headers:` request and response header edits.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeadersPolicy {
    pub request: Option<RawHeaderOps>,
    pub response: Option<RawHeaderOps>,
}

/// `retry:` settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub attempts: Option<S>,
    pub on: Option<Spanned<Vec<S>>>,
    pub retry_non_idempotent: Option<Spanned<bool>>,
    pub per_try_timeout: Option<S>,
    pub backoff: Option<RawBackoff>,
    pub budget: Option<RawBudget>,
    pub max_replay_body: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    pub base: Option<S>,
    pub max: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudget {
    pub ratio: Option<S>,
    pub min_per_second: Option<S>,
    pub window: Option<S>,
}

/// A reference to a policy from a route or listener: its name, or the policy written inline.
pub(crate) enum RawPolicyRef {
    Name(String),
    Inline(Box<RawPolicy>),
}

impl<'de> Deserialize<'de> for RawPolicyRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarOrMap {
            expecting:
                "a policy name, or a policy written inline such as { retry: { attempts: 2 } }",
            numbers_as_text: false,
            from_str: RawPolicyRef::Name,
            from_map: |p| RawPolicyRef::Inline(Box::new(p)),
        })
    }
}

/// A weighted backend of a route: `"upstream"` or `{ name, weight }`.
pub(crate) enum RawBackend {
    Name(String),
    Full(RawBackendFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackendFull {
    pub name: S,
    pub weight: Option<S>,
}

impl<'de> Deserialize<'de> for RawBackend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarOrMap {
            expecting: "an upstream name, or { name: UPSTREAM, weight: N }",
            numbers_as_text: false,
            from_str: RawBackend::Name,
            from_map: RawBackend::Full,
        })
    }
}

/// `outlier_detection:` of an upstream.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutlier {
    pub consecutive_gateway_failures: Option<S>,
    pub consecutive_5xx: Option<S>,
    pub base_ejection_time: Option<S>,
    pub max_ejection_time: Option<S>,
    pub max_ejection_percent: Option<S>,
}

/// `circuit_breaker:` of an upstream.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBreaker {
    pub failure_ratio: Option<S>,
    pub min_requests: Option<S>,
    pub window: Option<S>,
    pub consecutive_failures: Option<S>,
    pub open_for: Option<S>,
    pub half_open_requests: Option<S>,
    pub scope: Option<S>,
}

/// `limits:` of an upstream (per endpoint).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamLimits {
    pub max_connections: Option<S>,
    pub max_pending: Option<S>,
}
