//! A listener's TLS policy besides certificates: key exchange groups and session resumption.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{pos, Ctx};
use crate::raw::{RawSessionResumption, S};
use crate::types::{SessionResumption, TlsGroup, TlsVersion};

/// rustls's own rotation period: short enough that a stolen ticket key opens at most half a
/// day of sessions, long enough that returning visitors resume.
const DEFAULT_ROTATION: Duration = Duration::from_secs(6 * 3600);
/// Keys live only in memory; a day bounds how long one key can decrypt recorded sessions.
const MAX_ROTATION: Duration = Duration::from_secs(24 * 3600);

/// `tls.groups`: known names, no repeats, not empty; a list that TLS 1.2 clients cannot use
/// is an error while `min_version` admits them.
pub(super) fn groups(
    cx: &mut Ctx,
    raw: Option<&Spanned<Vec<S>>>,
    min_version: TlsVersion,
) -> Vec<TlsGroup> {
    let default = || TlsGroup::ALL.iter().map(|(_, g)| *g).collect();
    let Some(list) = raw else {
        return default();
    };
    let mut out: Vec<TlsGroup> = Vec::new();
    for s in &list.value {
        let name = s.value.trim().to_ascii_lowercase();
        match TlsGroup::ALL.iter().find(|(n, _)| *n == name) {
            Some((_, g)) if out.contains(g) => {
                cx.err(pos(s), format!("groups: `{}` is listed twice", s.value));
            }
            Some((_, g)) => out.push(*g),
            None => {
                let names: Vec<String> = TlsGroup::ALL
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect();
                cx.err(
                    pos(s),
                    format!(
                        "unknown group `{}`: expected one of {}",
                        s.value,
                        names.join(", ")
                    ),
                );
            }
        }
    }
    if list.value.is_empty() {
        cx.err(
            pos(list),
            "groups must list at least one key exchange group",
        );
        return default();
    }
    let classical = out.iter().any(|g| *g != TlsGroup::X25519MlKem768);
    if !out.is_empty() && !classical && min_version == TlsVersion::V1_2 {
        cx.err(
            pos(list),
            "groups: x25519mlkem768 works only with TLS 1.3; add a classical group \
             (x25519) or set min_version: \"1.3\"",
        );
    }
    out
}

/// `tls.session_resumption`: on by default with [`DEFAULT_ROTATION`].
pub(super) fn session_resumption(
    cx: &mut Ctx,
    raw: Option<&Spanned<RawSessionResumption>>,
) -> Option<SessionResumption> {
    let rotation = match raw.map(|r| &r.value) {
        None | Some(RawSessionResumption::Flag(true)) => None,
        Some(RawSessionResumption::Flag(false)) => return None,
        Some(RawSessionResumption::Full(f)) => f.ticket_rotation.as_ref(),
    };
    let mut ticket_rotation = cx.duration(
        rotation,
        "session_resumption.ticket_rotation",
        DEFAULT_ROTATION,
        false,
    );
    if let Some(s) = rotation {
        if ticket_rotation < Duration::from_secs(1) || ticket_rotation > MAX_ROTATION {
            cx.err(
                pos(s),
                "session_resumption.ticket_rotation must be from 1s to 24h",
            );
            ticket_rotation = DEFAULT_ROTATION;
        }
    }
    Some(SessionResumption { ticket_rotation })
}

#[cfg(test)]
mod tests {
    use crate::types::{SessionResumption, TlsGroup};
    use crate::{parse, Config};
    use std::time::Duration;

    const HEAD: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:8443\n";

    fn parsed(tls: &str) -> Result<Config, Vec<String>> {
        let yaml = format!("{HEAD}    tls: {{ cert: a.pem, key: a.key{tls} }}\n");
        parse("t.yaml", &yaml, None).map(|l| l.config).map_err(|e| {
            e.0.iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect()
        })
    }

    fn tls(c: &Config) -> &crate::types::ListenerTls {
        c.listeners[0].tls.as_ref().unwrap()
    }

    #[test]
    fn defaults_offer_x25519_first_and_the_hybrid_and_resume_with_6h_keys() {
        let c = parsed("").unwrap();
        assert_eq!(
            tls(&c).groups,
            vec![
                TlsGroup::X25519,
                TlsGroup::X25519MlKem768,
                TlsGroup::Secp256r1,
                TlsGroup::Secp384r1
            ]
        );
        assert_eq!(
            tls(&c).session_resumption,
            Some(SessionResumption {
                ticket_rotation: Duration::from_secs(6 * 3600)
            })
        );
        assert_eq!(tls(&c).certificates[0].ocsp, None);
    }

    #[test]
    fn groups_are_read_in_order_and_bad_lists_are_errors_at_the_entry() {
        let c = parsed(", groups: [secp384r1, X25519]").unwrap();
        assert_eq!(tls(&c).groups, vec![TlsGroup::Secp384r1, TlsGroup::X25519]);
        let e = parsed(", groups: [x25519, x448]").unwrap_err();
        assert!(e[0].starts_with("4:54: unknown group `x448`"), "{e:?}");
        let e = parsed(", groups: [x25519, x25519]").unwrap_err();
        assert!(e[0].contains("`x25519` is listed twice"), "{e:?}");
        let e = parsed(", groups: []").unwrap_err();
        assert!(e[0].contains("at least one"), "{e:?}");
        let e = parsed(", groups: [x25519mlkem768]").unwrap_err();
        assert!(e[0].contains("only with TLS 1.3"), "{e:?}");
        let c = parsed(", groups: [x25519mlkem768], min_version: \"1.3\"").unwrap();
        assert_eq!(tls(&c).groups, vec![TlsGroup::X25519MlKem768]);
    }

    #[test]
    fn session_resumption_forms() {
        let c = parsed(", session_resumption: false").unwrap();
        assert_eq!(tls(&c).session_resumption, None);
        let c = parsed(", session_resumption: { ticket_rotation: 90s }").unwrap();
        assert_eq!(
            tls(&c).session_resumption.unwrap().ticket_rotation,
            Duration::from_secs(90)
        );
        for bad in ["0s", "2d", "soon"] {
            let e = parsed(&format!(
                ", session_resumption: {{ ticket_rotation: {bad} }}"
            ))
            .unwrap_err();
            assert!(e[0].contains("ticket_rotation"), "{bad}: {e:?}");
        }
        let e = parsed(", session_resumption: { rotation: 1h }").unwrap_err();
        assert!(e[0].contains("unknown field `rotation`"), "{e:?}");
    }

    #[test]
    fn ocsp_goes_with_cert_or_on_each_entry() {
        let c = parsed(", ocsp: a.ocsp").unwrap();
        assert_eq!(
            tls(&c).certificates[0].ocsp.as_deref(),
            Some(std::path::Path::new("a.ocsp"))
        );
        let yaml = format!(
            "{HEAD}    tls:\n      certificates:\n        - {{ cert: a.pem, key: a.key, ocsp: a.der }}\n        - {{ cert: b.pem, key: b.key }}\n"
        );
        let c = parse("t.yaml", &yaml, None).unwrap().config;
        let t = c.listeners[0].tls.as_ref().unwrap();
        assert!(t.certificates[0].ocsp.is_some() && t.certificates[1].ocsp.is_none());
        let yaml = format!(
            "{HEAD}    tls:\n      ocsp: x.der\n      certificates:\n        - {{ cert: a.pem, key: a.key }}\n"
        );
        let e = parse("t.yaml", &yaml, None).unwrap_err();
        assert!(e.0[0].message.contains("on each"), "{:?}", e.0[0].message);
    }
}
