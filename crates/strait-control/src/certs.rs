//! Certificate expiry: the certificate files a configuration uses, their `notAfter` exported as a gauge at each snapshot compile, and `validate` warnings for those expired or expiring soon.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strait_config::{Config, Diagnostic, Pos};
use strait_observe::Metrics;

/// How far ahead `validate` warns: two weeks leaves time to renew by hand.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// One certificate file and who uses it.
struct CertFile<'a> {
    /// `listener` or `upstream`.
    kind: &'static str,
    /// The listener's or upstream's name.
    name: &'a str,
    path: &'a Path,
    /// Where the file is named in the configuration.
    at: Pos,
}

/// Every certificate file: listener certificates and client CA bundles, upstream CA bundles and
/// client certificates.
fn files(config: &Config) -> Vec<CertFile<'_>> {
    let loc = &config.locations;
    let mut out = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let Some(t) = &l.tls else { continue };
        for (j, c) in t.certificates.iter().enumerate() {
            out.push(CertFile {
                kind: "listener",
                name: &l.name,
                path: &c.cert,
                at: loc.certificate(i, j).0,
            });
        }
        if let Some(c) = &t.client_auth {
            out.push(CertFile {
                kind: "listener",
                name: &l.name,
                path: &c.ca,
                at: loc.listener_client_ca(i),
            });
        }
    }
    for (i, u) in config.upstreams.iter().enumerate() {
        let Some(t) = &u.tls else { continue };
        if let Some(ca) = &t.ca {
            out.push(CertFile {
                kind: "upstream",
                name: &u.name,
                path: ca,
                at: loc.upstream_ca(i),
            });
        }
        if let Some(c) = &t.client_cert {
            out.push(CertFile {
                kind: "upstream",
                name: &u.name,
                path: &c.cert,
                at: loc.upstream_cert(i),
            });
        }
    }
    out
}

fn basename(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}

/// Sets `strait_tls_certificate_expiry_timestamp_seconds` for every certificate file of
/// `config`, dropping the series of files no longer used.
pub fn record_expiry(config: &Config, metrics: &Metrics) {
    let files = files(config);
    let names: Vec<String> = files.iter().map(|f| basename(f.path)).collect();
    let mut series = Vec::with_capacity(files.len());
    for (f, cert) in files.iter().zip(&names) {
        // A file that cannot be read already failed the compile; nothing to export then.
        if let Ok(e) = strait_proxy::tls::earliest_expiry(f.path) {
            series.push(([f.kind, f.name, cert.as_str()], e.not_after as f64));
        }
    }
    metrics.set_certificate_expiry(&series);
}

/// One warning per certificate file that has expired, or expires within [`EXPIRY_WARNING`]
/// of `now`.
pub fn expiry_warnings(config: &Config, now: SystemTime) -> Vec<Diagnostic> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let soon = now + EXPIRY_WARNING.as_secs() as i64;
    let loc = &config.locations;
    let mut out = Vec::new();
    for f in files(config) {
        let Ok(e) = strait_proxy::tls::earliest_expiry(f.path) else {
            continue;
        };
        let file = f.path.display();
        let message = if e.not_after <= now {
            format!("certificate {file} expired on {}", e.date)
        } else if e.not_after <= soon {
            // Rounded up: a certificate made to last three days is still "in 3 days" a moment later.
            let days = (e.not_after - now + 86_399) / 86_400;
            format!(
                "certificate {file} expires on {} (in {days} day{})",
                e.date,
                if days == 1 { "" } else { "s" }
            )
        } else {
            continue;
        };
        out.push(loc.diag(f.at, message));
    }
    out
}
