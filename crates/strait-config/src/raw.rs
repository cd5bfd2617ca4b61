//! The YAML file's shape as serde types; every value validation may reject keeps its location.
//!
//! Scalars are read as `Spanned<String>` and parsed during validation, so that a bad
//! duration and a bad address in the same file are both reported (serde stops at its
//! first error). Unknown fields are rejected everywhere.

use serde::Deserialize;
use serde_saphyr::Spanned;

pub(crate) use access::*;
pub(crate) use auth::*;
pub(crate) use colour::*;
pub(crate) use forms::Pairs;
pub(crate) use forms::{
    RawEndpoint, RawHashOn, RawHttp3, RawSessionResumption, RawValueMatch, StrOrList,
};
pub(crate) use jwt::*;
pub(crate) use mirror::*;
pub(crate) use policy::*;
pub(crate) use ratelimit::*;
pub(crate) use wasm::*;

mod access;
mod auth;
mod colour;
mod forms;
mod jwt;
mod mirror;
mod policy;
mod ratelimit;
mod wasm;

/// A scalar kept as text, with its position.
pub(crate) type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub server: Option<RawServer>,
    pub admin: Option<RawAdmin>,
    pub listeners: Option<Spanned<Vec<Spanned<RawListener>>>>,
    pub routes: Option<Vec<Spanned<RawRoute>>>,
    pub upstreams: Option<Vec<Spanned<RawUpstream>>>,
    pub policies: Option<Vec<Spanned<RawPolicy>>>,
    pub config: Option<Spanned<crate::provider::RawProvider>>,
    pub observability: Option<crate::observability::RawObservability>,
    pub rollouts: Option<Vec<Spanned<crate::rollout::RawRollout>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub drain_timeout: Option<S>,
    pub worker_threads: Option<S>,
    pub wasm_cache_dir: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub listen: Option<S>,
    pub token: Option<S>,
    pub limits: Option<RawAdminLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdminLimits {
    pub max_connections: Option<S>,
    pub header_read_timeout: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub name: Option<S>,
    pub listen: Option<S>,
    pub protocols: Option<Spanned<Vec<S>>>,
    pub tls: Option<Spanned<RawListenerTls>>,
    pub limits: Option<RawLimits>,
    pub policies: Option<Spanned<Vec<Spanned<RawPolicyRef>>>>,
    pub http: Option<RawListenerHttp>,
    pub proxy_protocol: Option<Spanned<bool>>,
    pub client_address: Option<Spanned<RawClientAddress>>,
    pub http3: Option<Spanned<RawHttp3>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenerHttp {
    pub normalize_path: Option<Spanned<bool>>,
    pub merge_slashes: Option<Spanned<bool>>,
    pub path_with_escaped_slashes_action: Option<S>,
    pub headers_with_underscores_action: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenerTls {
    pub cert: Option<S>,
    pub key: Option<S>,
    pub certificates: Option<Spanned<Vec<RawCertPair>>>,
    pub ocsp: Option<S>,
    pub min_version: Option<S>,
    pub client_auth: Option<Spanned<RawClientAuth>>,
    pub groups: Option<Spanned<Vec<S>>>,
    pub session_resumption: Option<Spanned<RawSessionResumption>>,
}

/// `tls.client_auth:` of a listener (mutual TLS).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientAuth {
    pub ca: Option<S>,
    pub mode: Option<S>,
    pub forward_client_cert: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertPair {
    pub cert: S,
    pub key: S,
    pub ocsp: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub max_request_headers: Option<S>,
    pub max_request_line: Option<S>,
    pub max_headers: Option<S>,
    pub header_read_timeout: Option<S>,
    pub idle_timeout: Option<S>,
    pub max_connections: Option<S>,
    pub max_request_body: Option<S>,
    pub send_timeout: Option<S>,
    pub max_concurrent_streams: Option<S>,
    pub ping_interval: Option<S>,
    pub ping_timeout: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub name: Option<S>,
    pub listeners: Option<Spanned<Vec<S>>>,
    pub priority: Option<S>,
    #[serde(rename = "match")]
    pub matcher: Option<RawMatch>,
    pub upstream: Option<S>,
    pub upstreams: Option<Spanned<Vec<Spanned<RawBackend>>>>,
    pub respond: Option<Spanned<RawRespond>>,
    pub redirect: Option<Spanned<RawRedirect>>,
    pub rewrite: Option<Spanned<RawRewrite>>,
    pub request_headers: Option<RawHeaderOps>,
    pub response_headers: Option<RawHeaderOps>,
    pub policies: Option<Spanned<Vec<Spanned<RawPolicyRef>>>>,
    pub upgrades: Option<Spanned<Vec<S>>>,
    pub split: Option<Spanned<RawSplit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSplit {
    pub overrides: Option<Spanned<Vec<Spanned<RawOverride>>>>,
    pub sticky: Option<Spanned<RawSticky>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOverride {
    pub header: Option<S>,
    pub cookie: Option<S>,
    pub query: Option<S>,
    pub value: Option<S>,
    pub upstream: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSticky {
    pub key: Option<S>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub host: Option<Spanned<StrOrList>>,
    pub path_prefix: Option<S>,
    pub path: Option<S>,
    pub path_template: Option<S>,
    pub path_regex: Option<S>,
    pub methods: Option<Vec<S>>,
    pub headers: Option<Pairs<Spanned<RawValueMatch>>>,
    pub query: Option<Pairs<Spanned<RawValueMatch>>>,
    pub client_cert: Option<Spanned<Vec<S>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRespond {
    pub status: Option<S>,
    pub body: Option<S>,
    pub headers: Option<Pairs<S>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedirect {
    pub status: Option<S>,
    pub scheme: Option<S>,
    pub host: Option<S>,
    pub port: Option<S>,
    pub path: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRewrite {
    pub path_prefix: Option<S>,
    pub path: Option<S>,
    pub host: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderOps {
    pub add: Option<Pairs<S>>,
    pub set: Option<Pairs<S>>,
    pub remove: Option<Vec<S>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub name: Option<S>,
    pub endpoints: Option<Spanned<Vec<Spanned<RawEndpoint>>>>,
    pub protocol: Option<S>,
    pub load_balancer: Option<S>,
    pub hash_on: Option<Spanned<RawHashOn>>,
    pub timeouts: Option<RawUpstreamTimeouts>,
    pub pool: Option<RawPool>,
    pub tls: Option<Spanned<RawUpstreamTls>>,
    pub health_check: Option<Spanned<RawHealthCheck>>,
    pub outlier_detection: Option<Spanned<RawOutlier>>,
    pub circuit_breaker: Option<Spanned<RawBreaker>>,
    pub limits: Option<Spanned<RawUpstreamLimits>>,
    pub dns_refresh: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTimeouts {
    pub connect: Option<S>,
    pub request: Option<S>,
    pub idle: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub max_idle_per_endpoint: Option<S>,
    pub idle_timeout: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    pub sni: Option<S>,
    pub ca: Option<S>,
    pub cert: Option<S>,
    pub key: Option<S>,
    pub insecure_skip_verify: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    #[serde(rename = "type")]
    pub kind: Option<S>,
    pub path: Option<S>,
    pub expected_status: Option<Vec<S>>,
    pub interval: Option<S>,
    pub timeout: Option<S>,
    pub healthy_threshold: Option<S>,
    pub unhealthy_threshold: Option<S>,
    pub initial_state: Option<S>,
}
