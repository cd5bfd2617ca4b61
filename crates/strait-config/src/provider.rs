//! The `config:` section: which provider the configuration comes from (a file, or etcd), and the bootstrap file read before etcd.
//!
//! With `provider: file` (the default) the file is the whole configuration. With
//! `provider: etcd` the file is a *bootstrap*: it holds only the sections that stay local
//! to one instance (`admin`, `config`, and any later local section) and must not hold the
//! shared ones (`server`, `listeners`, `routes`, `upstreams`), which come from etcd.
//! `policies` and `rollouts` come from etcd too, or (as before etcd had keys for them) from
//! the bootstrap file, but not from both. The
//! document served is then the bootstrap text followed by the sections assembled from etcd,
//! validated as one ordinary config by [`crate::parse`]; [`bootstrap`] is what reads the file
//! first, without requiring listeners.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Errors};
use crate::raw::S;
use crate::validate::{pos, Ctx};

#[cfg(test)]
mod tests;

/// Where the configuration comes from (`config:`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderSettings {
    /// The provider (default [`ProviderKind::File`]).
    pub kind: ProviderKind,
    /// Settings of the etcd provider; `Some` exactly when `kind` is [`ProviderKind::Etcd`].
    pub etcd: Option<EtcdSettings>,
}

/// The kinds of configuration provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderKind {
    /// The config file itself, watched for changes.
    #[default]
    File,
    /// Keys under a prefix in etcd, watched; the file is a bootstrap.
    Etcd,
}

/// How to reach etcd and where the configuration lives in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// Client URLs (`http://host:port` or `https://host:port`); default `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Key prefix, starting and ending with `/` (default `/strait/`).
    pub prefix: String,
    /// User for etcd authentication; `None` = no authentication.
    pub username: Option<String>,
    /// Where the password comes from (only with `username`).
    pub password: Option<Password>,
    /// TLS to etcd; required with `https://` endpoints.
    pub tls: Option<EtcdTls>,
    /// How long to wait for etcd at start before serving from the cache (default 2 s).
    pub dial_timeout: Duration,
    /// File holding the last good configuration read from etcd (default: beside the bootstrap file).
    pub cache: Option<PathBuf>,
}

/// Where the etcd password is read from; the value itself is never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// Written in the file (`password:`).
    Literal(String),
    /// Read from this environment variable at start (`password_env:`, default `STRAIT_ETCD_PASSWORD`).
    Env(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Debug output ends up in logs; a password must not.
            Password::Literal(_) => f.write_str("Literal(<redacted>)"),
            Password::Env(v) => write!(f, "Env({v})"),
        }
    }
}

/// TLS settings for the connection to etcd (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA bundle that signed etcd's server certificates.
    pub ca: Option<PathBuf>,
    /// Client certificate, for etcd's `--client-cert-auth`.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub key: Option<PathBuf>,
}

/// The environment variable the password is read from when only `username` is set.
pub const PASSWORD_ENV: &str = "STRAIT_ETCD_PASSWORD";

/// A bootstrap file: the local sections of an instance whose configuration is in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The etcd settings from `config:`.
    pub etcd: EtcdSettings,
    /// The file's text, the first part of every document served (it holds `admin:` and `config:`).
    pub text: String,
}

/// Reads `text` far enough to tell whether it is an etcd bootstrap: `Ok(None)` for an
/// ordinary config (parse it with [`crate::parse`]), `Ok(Some(..))` for a bootstrap, or
/// the errors of its `config:` section (and any shared section it should not hold).
pub fn bootstrap(
    source: &str,
    text: &str,
    base_dir: Option<&Path>,
) -> Result<Option<Bootstrap>, Errors> {
    let raw = crate::read_raw(source, text)?;
    let settings = crate::validate::provider_section(&raw, source, base_dir).map_err(Errors)?;
    let Some(etcd) = settings.etcd else {
        return Ok(None);
    };
    let mut errors = Vec::new();
    let mut shared = |name: &str, at| {
        errors.push(Diagnostic::new(
            source,
            at,
            format!(
                "`{name}` comes from etcd when `config.provider` is `etcd`: \
                 keep only local sections (admin, config) here and push the rest with `strait config push`"
            ),
        ));
    };
    if raw.server.is_some() {
        // `server:` carries no span of its own; its key starts a line.
        let line = text.lines().position(|l| l.starts_with("server:"));
        shared("server", line.map_or((1, 1), |i| (i as u64 + 1, 1)));
    }
    if let Some(l) = &raw.listeners {
        shared("listeners", pos(l));
    }
    if let Some(r) = raw.routes.as_ref().and_then(|r| r.first()) {
        shared("routes", pos(r));
    }
    if let Some(u) = raw.upstreams.as_ref().and_then(|u| u.first()) {
        shared("upstreams", pos(u));
    }
    if text.trim_start().starts_with('{') {
        // The served document appends etcd's sections after this text, which needs block style.
        errors.push(Diagnostic::new(
            source,
            (1, 1),
            "write a bootstrap file in block style (`admin:` on its own line), not as one flow mapping",
        ));
    }
    if !errors.is_empty() {
        errors.sort_by_key(|d| (d.line, d.column));
        return Err(Errors(errors));
    }
    Ok(Some(Bootstrap {
        etcd,
        text: text.to_owned(),
    }))
}

// === raw form ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    pub provider: Option<S>,
    pub endpoints: Option<Spanned<Vec<S>>>,
    pub prefix: Option<S>,
    pub username: Option<S>,
    pub password: Option<S>,
    pub password_env: Option<S>,
    pub tls: Option<Spanned<RawEtcdTls>>,
    pub dial_timeout: Option<S>,
    pub cache: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEtcdTls {
    pub ca: Option<S>,
    pub cert: Option<S>,
    pub key: Option<S>,
}

// === validation ===

/// Validates the `config:` section; fields that only apply to etcd are errors with `provider: file`.
pub(crate) fn validate(cx: &mut Ctx, raw: Option<&Spanned<RawProvider>>) -> ProviderSettings {
    let Some(raw) = raw else {
        return ProviderSettings::default();
    };
    let r = &raw.value;
    let kind = cx.token(
        r.provider.as_ref(),
        "provider",
        &[("file", ProviderKind::File), ("etcd", ProviderKind::Etcd)],
        ProviderKind::File,
    );
    if kind == ProviderKind::File {
        let etcd_only = [
            ("endpoints", r.endpoints.as_ref().map(pos)),
            ("prefix", r.prefix.as_ref().map(pos)),
            ("username", r.username.as_ref().map(pos)),
            ("password", r.password.as_ref().map(pos)),
            ("password_env", r.password_env.as_ref().map(pos)),
            ("tls", r.tls.as_ref().map(pos)),
            ("dial_timeout", r.dial_timeout.as_ref().map(pos)),
            ("cache", r.cache.as_ref().map(pos)),
        ];
        for (field, at) in etcd_only {
            if let Some(at) = at {
                cx.err(
                    at,
                    format!("config.{field} applies only with `provider: etcd`"),
                );
            }
        }
        return ProviderSettings { kind, etcd: None };
    }

    let mut endpoints = Vec::new();
    match &r.endpoints {
        None => endpoints.push("http://127.0.0.1:2379".to_string()),
        Some(list) => {
            if list.value.is_empty() {
                cx.err(
                    pos(list),
                    "config.endpoints must list at least one etcd URL",
                );
            }
            for e in &list.value {
                if let Some(url) = endpoint(cx, e) {
                    endpoints.push(url);
                }
            }
        }
    }
    let prefix = match &r.prefix {
        None => "/strait/".to_string(),
        Some(p) => {
            let v = p.value.as_str();
            if !v.starts_with('/') || !v.ends_with('/') || v.len() < 2 {
                cx.err(
                    pos(p),
                    format!("config.prefix `{v}` must start and end with `/` and not be `/` alone (e.g. /strait/)"),
                );
            }
            v.to_string()
        }
    };
    let username = r.username.as_ref().map(|u| u.value.clone());
    let password = match (&r.password, &r.password_env) {
        (Some(p), Some(_)) => {
            cx.err(
                pos(p),
                "set either config.password or config.password_env, not both",
            );
            None
        }
        (Some(p), None) => Some(Password::Literal(p.value.clone())),
        (None, Some(e)) => Some(Password::Env(e.value.clone())),
        (None, None) => username
            .as_ref()
            .map(|_| Password::Env(PASSWORD_ENV.into())),
    };
    if username.is_none() {
        if let Some(at) = r.password.as_ref().or(r.password_env.as_ref()).map(pos) {
            cx.err(at, "a password needs config.username");
        }
    }
    let tls = r.tls.as_ref().map(|t| {
        let tv = &t.value;
        if tv.cert.is_some() != tv.key.is_some() {
            cx.err(
                pos(t),
                "config.tls: `cert` and `key` go together (a client certificate and its key)",
            );
        }
        EtcdTls {
            ca: tv.ca.as_ref().map(|s| cx.file(s, "config.tls.ca")),
            cert: tv.cert.as_ref().map(|s| cx.file(s, "config.tls.cert")),
            key: tv.key.as_ref().map(|s| cx.file(s, "config.tls.key")),
        }
    });
    if tls.is_none() && endpoints.iter().any(|e| e.starts_with("https://")) {
        cx.err(
            r.endpoints.as_ref().map_or(pos(raw), pos),
            "https:// etcd endpoints need config.tls (at least `ca`, the CA that signed etcd's certificate)",
        );
    }
    let dial_timeout = cx.duration(
        r.dial_timeout.as_ref(),
        "config.dial_timeout",
        Duration::from_secs(2),
        false,
    );
    let cache = r.cache.as_ref().map(|c| {
        if c.value.is_empty() {
            cx.err(pos(c), "config.cache: empty file path");
        }
        // The cache need not exist yet; resolve it like other paths but do not check it.
        let path = match cx.base_dir() {
            Some(base) => base.join(&c.value),
            None => PathBuf::from(&c.value),
        };
        cx.allowed_path(pos(c), "config.cache", &path, crate::paths::Access::Write);
        path
    });
    ProviderSettings {
        kind,
        etcd: Some(EtcdSettings {
            endpoints,
            prefix,
            username,
            password,
            tls,
            dial_timeout,
            cache,
        }),
    }
}

/// An etcd client URL: `http://` or `https://`, a host and a port, nothing else.
fn endpoint(cx: &mut Ctx, s: &S) -> Option<String> {
    let v = s.value.trim();
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    let ok = rest.is_some_and(|hp| {
        let hp = hp.strip_suffix('/').unwrap_or(hp);
        match hp.rsplit_once(':') {
            Some((host, port)) => {
                !host.is_empty() && !hp.contains('/') && port.parse::<u16>().is_ok_and(|p| p != 0)
            }
            None => false,
        }
    });
    if ok {
        Some(v.trim_end_matches('/').to_string())
    } else {
        cx.err(
            pos(s),
            format!("config.endpoints: `{v}` is not an etcd client URL: write http://HOST:PORT or https://HOST:PORT"),
        );
        None
    }
}
