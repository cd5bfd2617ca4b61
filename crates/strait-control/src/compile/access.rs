//! Compiles the access policies (`ip_rules`, `request_limits`, `cors`) into their filters.

use std::sync::Arc;

use strait_config as cfg;
use strait_core::Filter;
use strait_policy::{
    ClientCertFilter, CorsFilter, CorsSettings, IpRulesFilter, OriginRule, RequestLimitsFilter,
};

pub(super) fn client_cert(name: &str, p: &cfg::ClientCertPolicy) -> Arc<dyn Filter> {
    Arc::new(ClientCertFilter::new(name, &p.allow, &p.allow_subjects))
}

pub(super) fn ip_rules(name: &str, p: &cfg::IpRulesPolicy) -> Arc<dyn Filter> {
    Arc::new(IpRulesFilter::new(name, &p.allow, &p.deny))
}

pub(super) fn request_limits(name: &str, p: &cfg::RequestLimitsPolicy) -> Arc<dyn Filter> {
    Arc::new(RequestLimitsFilter::new(name, p.max_body, p.timeout))
}

pub(super) fn cors(name: &str, p: &cfg::CorsPolicy) -> Result<Arc<dyn Filter>, String> {
    let allow_origins = p
        .allow_origins
        .iter()
        .map(|o| OriginRule::parse(o))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("policy {name}: cors: {e}"))?;
    let allow_methods = p
        .allow_methods
        .iter()
        .map(|m| {
            http::Method::from_bytes(m.as_bytes()).map_err(|e| format!("policy {name}: cors: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let s = CorsSettings {
        allow_origins,
        allow_methods,
        allow_headers: p.allow_headers.clone(),
        expose_headers: p.expose_headers.clone(),
        allow_credentials: p.allow_credentials,
        max_age: p.max_age,
    };
    Ok(Arc::new(
        CorsFilter::new(name, s).map_err(|e| format!("policy {name}: {e}"))?,
    ))
}
