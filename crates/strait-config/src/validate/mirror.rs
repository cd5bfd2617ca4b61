//! Validation of the `mirror` policy: the shadow upstream (checked once upstreams are known), the share and the bounds on copies, each error with its position.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{pos, Ctx};
use crate::policy::MirrorPolicy;
use crate::raw::RawMirror;

/// Largest `max_body`: copies in flight hold at most `max_in_flight` times this much.
const MAX_BODY_CAP: u64 = 16 * 1024 * 1024;

pub(super) fn mirror(cx: &mut Ctx, raw: &Spanned<RawMirror>) -> MirrorPolicy {
    let r = &raw.value;
    let upstream = match &r.upstream {
        Some(u) => {
            cx.auth_upstreams
                .push((u.value.clone(), pos(u), "mirror.upstream"));
            u.value.clone()
        }
        None => {
            cx.err(
                pos(raw),
                "mirror needs an `upstream` (the shadow that receives the copies)",
            );
            String::new()
        }
    };
    let max_body = cx.size(r.max_body.as_ref(), "mirror.max_body", 64 * 1024);
    if max_body > MAX_BODY_CAP {
        if let Some(s) = &r.max_body {
            cx.err(pos(s), "mirror.max_body must be at most 16MiB");
        }
    }
    MirrorPolicy {
        upstream,
        percentage: super::policy::percentage(cx, r.percentage.as_ref(), "mirror.percentage"),
        max_body,
        max_in_flight: cx.count(
            r.max_in_flight.as_ref(),
            "mirror.max_in_flight",
            64u32,
            (1, 65_536),
        ),
        timeout: cx.duration(
            r.timeout.as_ref(),
            "mirror.timeout",
            Duration::from_secs(5),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    const HEAD: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n\
                        routes:\n  - name: r\n    upstream: app\n    policies: [p]\n\
                        upstreams:\n  - name: app\n    endpoints: [\"127.0.0.1:9001\"]\n  \
                        - name: shadow\n    endpoints: [\"127.0.0.1:9002\"]\n\
                        policies:\n  - name: p\n";

    fn parsed(policy: &str) -> Result<Loaded, String> {
        parse("t.yaml", &format!("{HEAD}{policy}"), None).map_err(|e| e.to_string())
    }

    fn spec(policy: &str) -> MirrorPolicy {
        let l = parsed(policy).unwrap_or_else(|e| panic!("{e}"));
        match &l.config.policies[0].spec {
            PolicySpec::Mirror(m) => m.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn errors(policy: &str) -> String {
        match parsed(policy) {
            Ok(_) => panic!("expected errors for {policy}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_fill_in_and_mirror_runs_after_headers() {
        let m = spec("    mirror: { upstream: shadow }\n");
        assert_eq!(m.upstream, "shadow");
        assert_eq!(m.percentage, 100.0);
        assert_eq!(m.max_body, 64 * 1024);
        assert_eq!(m.max_in_flight, 64);
        assert_eq!(m.timeout, std::time::Duration::from_secs(5));
        let spec = PolicySpec::Mirror(m);
        assert_eq!(spec.rank(), 900);
        assert!(spec.rank() > PolicySpec::Headers(HeadersPolicy::default()).rank());
        assert_eq!(spec.kind(), "mirror");
    }

    #[test]
    fn fractional_percentages_and_units_are_parsed() {
        let m = spec(
            "    mirror: { upstream: shadow, percentage: 0.5, max_body: 1MiB, max_in_flight: 8, \
             timeout: 250ms }\n",
        );
        assert_eq!(m.percentage, 0.5);
        assert_eq!(m.max_body, 1024 * 1024);
        assert_eq!(m.max_in_flight, 8);
        assert_eq!(m.timeout, std::time::Duration::from_millis(250));
    }

    #[test]
    fn a_shadow_only_upstream_is_not_reported_unused() {
        let l = parsed("    mirror: { upstream: shadow }\n").unwrap();
        assert!(
            l.warnings.iter().all(|w| !w.message.contains("shadow")),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn an_unknown_upstream_is_reported_at_its_name() {
        let e = errors("    mirror: { upstream: nowhere }\n");
        assert!(
            e.contains("t.yaml:15:25: mirror.upstream `nowhere` is not defined under `upstreams:`"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_upstream_is_reported_at_the_policy() {
        let e = errors("    mirror: { percentage: 10 }\n");
        assert!(
            e.contains("t.yaml:15:13: mirror needs an `upstream`"),
            "{e}"
        );
    }

    #[test]
    fn bounds_are_checked_with_positions() {
        let e = errors(
            "    mirror:\n      upstream: shadow\n      percentage: 101\n      max_body: 17MiB\n      \
             max_in_flight: 0\n      timeout: 0s\n",
        );
        for want in [
            "t.yaml:17:19: mirror.percentage must be from 0 to 100, not `101`",
            "t.yaml:18:17: mirror.max_body must be at most 16MiB",
            "t.yaml:19:22: mirror.max_in_flight must be a whole number from 1 to 65536, not `0`",
            "t.yaml:20:16: mirror.timeout must be greater than 0",
        ] {
            assert!(e.contains(want), "missing `{want}` in:\n{e}");
        }
    }

    #[test]
    fn the_effective_form_reads_back_equal() {
        let l = parsed(
            "    mirror: { upstream: shadow, percentage: 12.5, max_body: 2KiB, timeout: 1s }\n",
        )
        .unwrap();
        let text = effective_yaml(&l.config);
        let again = parse("effective.yaml", &text, None).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(again.config.policies, l.config.policies);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = errors("    mirror: { upstream: shadow, sample: 10 }\n");
        assert!(e.contains("t.yaml:15:"), "{e}");
        assert!(e.contains("sample"), "{e}");
    }
}
