//! Turning the keys under the prefix into the document an instance serves, validated, with diagnostics naming keys; and reading it once for `strait routes`.

use std::path::{Path, PathBuf};

use strait_config::provider::Bootstrap;
use strait_config::{Config, Diagnostic, Errors};

use super::layout::{self, Values};
use super::{client, range, values_of};
use crate::provider::Document;

/// The directory relative paths in the assembled document resolve against: the bootstrap
/// file's.
pub(super) fn base_dir_of(bootstrap_path: &Path) -> PathBuf {
    bootstrap_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// A document assembled from etcd and validated.
pub(super) struct Validated {
    pub document: Document,
    pub config: Config,
    /// The parser's warnings, positions still in the assembled text.
    warnings: Vec<Diagnostic>,
    assembled: layout::Assembled,
}

/// Assembles `values` after the bootstrap text and validates the result as a file would be;
/// errors name the key they are in rather than a line of the assembled text.
pub(super) fn validate(
    bootstrap: &Bootstrap,
    bootstrap_source: &str,
    base_dir: &Path,
    values: &Values,
) -> Result<Validated, Errors> {
    let prefix = &bootstrap.etcd.prefix;
    let mut assembled = layout::assemble(prefix, &bootstrap.text, values).map_err(Errors)?;
    let source = format!("etcd:{prefix}");
    let loaded = match strait_config::parse(&source, &assembled.text, Some(base_dir)) {
        Ok(l) => l,
        Err(errors) => {
            let map = |d| assembled.map_diagnostic(d, prefix, bootstrap_source);
            return Err(Errors(errors.0.into_iter().map(map).collect()));
        }
    };
    Ok(Validated {
        document: Document {
            source,
            // Positions map through the spans alone; the text moves to the document.
            text: std::mem::take(&mut assembled.text),
            base_dir: Some(base_dir.to_path_buf()),
            // etcd values are served as stored.
            expand_env: false,
        },
        config: loaded.config,
        warnings: loaded.warnings,
        assembled,
    })
}

/// What an etcd bootstrap file serves, read once.
pub struct Served {
    /// The validated configuration.
    pub config: Config,
    /// Non-fatal findings (shadowed routes, ...), naming keys, in key and position order.
    pub warnings: Vec<Diagnostic>,
    /// The etcd revision it was read at.
    pub revision: i64,
}

/// Reads what the bootstrap file at `bootstrap_path` serves from etcd, once, with its
/// settings (endpoints, TLS, user) and bounded by its `dial_timeout` as an instance's start
/// is; no watch and no cache. The error is printable: why etcd could not be read, or the
/// configuration's errors, one per line.
pub async fn read_served(bootstrap: &Bootstrap, bootstrap_path: &Path) -> Result<Served, String> {
    let settings = &bootstrap.etcd;
    let dial = settings.dial_timeout;
    let read = async {
        let c = client(settings).await?;
        range(&c, &settings.prefix).await
    };
    let (keys, revision) = tokio::time::timeout(dial, read)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {dial:?}")))
        .map_err(|e| {
            format!(
                "cannot read the configuration from etcd at {} under {}: {e}",
                settings.endpoints.join(","),
                settings.prefix
            )
        })?;
    let source = bootstrap_path.display().to_string();
    let v = validate(
        bootstrap,
        &source,
        &base_dir_of(bootstrap_path),
        &values_of(&keys),
    )
    .map_err(|e| e.to_string())?;
    // Shadowing is judged only here: the provider reassembles on every change and needs none.
    let mut warnings = v.warnings;
    warnings.extend(crate::shadow::shadow_warnings(&v.config));
    let mut warnings: Vec<Diagnostic> = warnings
        .into_iter()
        .map(|d| v.assembled.map_diagnostic(d, &settings.prefix, &source))
        .collect();
    warnings.sort_by(|a, b| (&a.source, a.line, a.column).cmp(&(&b.source, b.line, b.column)));
    Ok(Served {
        config: v.config,
        warnings,
        revision,
    })
}
