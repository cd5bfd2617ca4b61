//! The `ip_rules` policy: allow and deny the resolved client address by CIDR (deny wins; with an allow list, anything not allowed is denied) → 403 `ip_denied`.

use std::sync::Arc;

use http::StatusCode;
use strait_core::net::{Cidr, IpSet};
use strait_core::{Filter, FilterState, Flow, Reply, RequestCtx};

/// Address rules, compiled to sets matched in O(distinct prefix lengths).
pub struct IpRulesFilter {
    name: Arc<str>,
    allow: Option<IpSet>,
    deny: IpSet,
}

impl IpRulesFilter {
    /// Rules called `name`; an empty `allow` allows every address not denied.
    pub fn new(name: &str, allow: &[Cidr], deny: &[Cidr]) -> Self {
        IpRulesFilter {
            name: Arc::from(name),
            allow: (!allow.is_empty()).then(|| IpSet::new(allow)),
            deny: IpSet::new(deny),
        }
    }

    /// Whether `ip` may pass.
    pub fn admits(&self, ip: std::net::IpAddr) -> bool {
        !self.deny.contains(ip) && self.allow.as_ref().is_none_or(|a| a.contains(ip))
    }
}

impl Filter for IpRulesFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "ip_rules"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        if self.admits(ctx.client.ip()) {
            Flow::Continue
        } else {
            Flow::Reply(Reply::text(
                StatusCode::FORBIDDEN,
                "strait: forbidden\n",
                "ip_denied",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn deny_wins_and_allow_list_closes() {
        let f = IpRulesFilter::new(
            "p",
            &[c("192.0.2.0/24"), c("2001:db8::/32")],
            &[c("192.0.2.66")],
        );
        assert!(f.admits("192.0.2.1".parse().unwrap()));
        assert!(f.admits("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!f.admits("192.0.2.66".parse().unwrap()));
        assert!(!f.admits("::ffff:192.0.2.66".parse().unwrap()));
        assert!(f.admits("2001:db8::9".parse().unwrap()));
        assert!(!f.admits("198.51.100.1".parse().unwrap()));
        let open = IpRulesFilter::new("p", &[], &[c("10.0.0.0/8")]);
        assert!(open.admits("11.0.0.1".parse().unwrap()));
        assert!(!open.admits("10.2.3.4".parse().unwrap()));
    }
}
