//! Configuration types with source spans, parsing, validation and defaults.
//!
//! This is the first step of the control plane: YAML text becomes a [`Config`] of plain,
//! resolved values (durations, socket addresses, methods, enums, defaults filled in),
//! or [`Errors`] listing every problem as `FILE:LINE:COL: reason`. The snapshot compiler
//! turns a [`Config`] into runtime types; [`Locations`] lets it report its own failures
//! at the right node.
//!
//! ```
//! let loaded = strait_config::parse("default", strait_config::DEFAULT_CONFIG, None).unwrap();
//! assert_eq!(loaded.config.listeners[0].name, "web");
//! ```
#![forbid(unsafe_code)]

use std::io::Read;
use std::path::Path;

use serde_saphyr::{DefaultMessageFormatter, MessageFormatter};

mod access;
mod auth;
mod diag;
mod effective;
pub mod env;
mod jwt;
mod observability;
mod paths;
mod policy;
pub mod provider;
mod raw;
mod rollout;
mod types;
mod units;
mod validate;

#[cfg(test)]
mod tests;

pub use access::*;
pub use auth::*;
pub use diag::{Diagnostic, Errors, Locations, Pos};
pub use effective::{effective, effective_yaml, Node, REDACTED};
pub use jwt::*;
pub use observability::*;
pub use paths::{PathPolicy, PathScope, MAX_INPUT_FILE_BYTES, SHARED_SECTIONS};
pub use policy::*;
pub use provider::{Bootstrap, EtcdSettings, ProviderKind, ProviderSettings};
pub use rollout::*;
pub use types::*;
pub use units::{duration_to_string, parse_duration, parse_size};
pub use validate::wasm::MAX_MODULE_BYTES;

/// The configuration served by `strait run` without `-c`: a welcome route on 127.0.0.1:8080.
pub const DEFAULT_CONFIG: &str = include_str!("default.yaml");

/// Largest config accepted; real configs are kilobytes, and this bounds parse time and memory.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;

/// A valid configuration and the warnings found while checking it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Non-fatal findings (shadowed routes, unused upstreams, ...), in source order.
    pub warnings: Vec<Diagnostic>,
}

/// Parses and validates YAML `text`; `source` names it in diagnostics.
///
/// Relative file paths (TLS certificates, CAs) are resolved against `base_dir` and checked
/// to exist; with `None` they are kept as written and not checked.
pub fn parse(source: &str, text: &str, base_dir: Option<&Path>) -> Result<Loaded, Errors> {
    parse_restricted(source, text, base_dir, None)
}

/// Like [`parse`], for a document from a remote source: with a `policy`, every file path in
/// the sections it covers must lie under its allowed directories.
pub fn parse_restricted(
    source: &str,
    text: &str,
    base_dir: Option<&Path>,
    policy: Option<&PathPolicy>,
) -> Result<Loaded, Errors> {
    let raw = read_raw(source, text)?;
    match validate::validate(raw, source, base_dir, policy) {
        Ok((config, warnings)) => Ok(Loaded { config, warnings }),
        Err(mut errors) => {
            // Stable sort: errors at one node keep the order they were found in.
            errors.sort_by_key(|d| (d.line, d.column));
            Err(Errors(errors))
        }
    }
}

/// Parses the text of a config *file*: `${VAR}` and `${VAR:-default}` are expanded from the
/// environment first (see [`env`]), and every position reported, later ones through
/// [`Locations`] included, is one in `text` as written.
///
/// Documents from the admin API and etcd go through [`parse`]: they are stored as written.
pub fn parse_with_env(source: &str, text: &str, base_dir: Option<&Path>) -> Result<Loaded, Errors> {
    parse_with_env_restricted(source, text, base_dir, None)
}

/// [`parse_with_env`] with a path `policy`, as [`parse_restricted`].
pub fn parse_with_env_restricted(
    source: &str,
    text: &str,
    base_dir: Option<&Path>,
    policy: Option<&PathPolicy>,
) -> Result<Loaded, Errors> {
    let parse = |text: &str| parse_restricted(source, text, base_dir, policy);
    let expanded = env::expand_env(source, text)?;
    if !expanded.changed() {
        return parse(text);
    }
    let fix = |d: &mut Diagnostic| {
        (d.line, d.column) = expanded.source_pos((d.line, d.column));
    };
    match parse(&expanded.text) {
        Ok(mut loaded) => {
            loaded.warnings.iter_mut().for_each(fix);
            loaded.config.locations.remap(|p| expanded.source_pos(p));
            Ok(loaded)
        }
        Err(mut errors) => {
            errors.0.iter_mut().for_each(fix);
            Err(errors)
        }
    }
}

/// Reads `text` into the raw shape: size, emptiness, YAML syntax and unknown fields.
pub(crate) fn read_raw(source: &str, text: &str) -> Result<raw::RawConfig, Errors> {
    let fail = |at, msg: String| Err(Errors(vec![Diagnostic::new(source, at, msg)]));
    if text.len() > MAX_CONFIG_BYTES {
        return fail(
            (0, 0),
            format!("config is larger than {MAX_CONFIG_BYTES} bytes"),
        );
    }
    if is_blank(text) {
        return fail(
            (1, 1),
            "config is empty: at least one listener is required".into(),
        );
    }
    match serde_saphyr::from_str_with_options::<raw::RawConfig>(text, yaml_options()) {
        Ok(raw) => Ok(raw),
        Err(e) => {
            let at = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            fail(at, yaml_message(&e))
        }
    }
}

/// Reads and parses the config file at `path` (environment references expanded), resolving
/// relative paths against its directory.
pub fn load_file(path: &Path) -> Result<Loaded, Errors> {
    let text = read_file(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_with_env(&path.display().to_string(), &text, Some(base))
}

/// Reads the config file at `path` as text, bounded by [`MAX_CONFIG_BYTES`].
pub fn read_file(path: &Path) -> Result<String, Errors> {
    let source = path.display().to_string();
    let io_err = |e: std::io::Error| {
        Errors(vec![Diagnostic::new(
            source.clone(),
            (0, 0),
            format!("cannot read config: {e}"),
        )])
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    // Read one byte past the cap so an oversized file is detected without reading all of it.
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(Errors(vec![Diagnostic::new(
            source,
            (0, 0),
            format!("config is larger than {MAX_CONFIG_BYTES} bytes"),
        )]));
    }
    String::from_utf8(bytes).map_err(|_| {
        Errors(vec![Diagnostic::new(
            source.clone(),
            (0, 0),
            "config is not valid UTF-8",
        )])
    })
}

/// The YAML reading options every config document is read with (also for values stored in etcd).
pub fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // Configs are small; these bound hostile input (alias bombs, deep nesting).
        budget: serde_saphyr::budget! {
            max_depth: 32,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_nodes: 200_000,
            max_documents: 1,
        },
        // `yes`/`on` as booleans surprise people; and values matched as text
        // (header `x-v: 010`) must keep their spelling.
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        with_snippet: false,
    }
}

/// The YAML error's reason without the location suffix (the diagnostic carries it).
pub fn yaml_message(e: &serde_saphyr::Error) -> String {
    let msg = DefaultMessageFormatter.format_message(e.without_snippet());
    // Drop advice addressed to the programmer rather than the config's author.
    let msg = msg
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or_default();
    msg.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// True when the text holds no YAML content: only whitespace, comments or `---`.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    })
}

/// The document as a generic tree (for the admin API's per-resource edits), read with the
/// same YAML rules as [`parse`] so values keep their meaning (`010` stays a string).
pub fn to_value(source: &str, text: &str) -> Result<serde_json::Value, Errors> {
    serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
        let at = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        Errors(vec![Diagnostic::new(source, at, yaml_message(&e))])
    })
}

/// Writes a document tree back as YAML text (comments of the original are not kept).
pub fn to_yaml(value: &serde_json::Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_default()
}
