//! Writes to the configuration (admin API): validated completely, paths restricted to the operator's directories, stored through the provider, then applied; dry runs validate against scratch state.

use std::sync::Arc;

use strait_config::{Diagnostic, Errors, PathPolicy, PathScope};
use strait_core::LiveState;
use strait_observe::Metrics;

use super::{admin_error, bind_error, warnings_of, Control};
use crate::{compile::compile, provider::Document};

/// Why a write was refused.
#[derive(Debug)]
pub enum WriteError {
    /// `If-Match` named a version other than the running one.
    Conflict {
        /// The running version.
        current: u64,
    },
    /// The document is invalid; nothing changed.
    Invalid(Errors),
    /// The provider could not store it (read-only source, I/O error, a concurrent etcd write
    /// when the message starts with `conflict:`).
    Store(String),
    /// No such version in the history.
    UnknownVersion(u64),
}

/// The outcome of an accepted write (or dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The version now running (for a dry run: still the running one).
    pub version: u64,
    /// The document's warnings (shadowed routes, unused upstreams, ...), at its positions.
    pub warnings: Vec<Diagnostic>,
    /// Settings of the document that wait for a restart (`needs a restart: FIELD (why)`).
    pub pending_restart: Vec<String>,
}

impl Control {
    /// Validates `text` and, unless `dry_run`, stores it through the provider and applies it.
    /// `base` is the version the writer read (`If-Match`); a different running version is a
    /// conflict. Returns the version now running. Blocking.
    pub fn write(
        &self,
        text: &str,
        base: Option<u64>,
        origin: &str,
        dry_run: bool,
    ) -> Result<Written, WriteError> {
        let mut state = self.lock();
        if let Some(b) = base {
            if b != state.version {
                return Err(WriteError::Conflict {
                    current: state.version,
                });
            }
        }
        let doc = Document {
            source: origin.to_string(),
            text: text.to_string(),
            base_dir: state.doc.base_dir.clone(),
            expand_env: state.doc.expand_env,
        };
        // Every path it names must lie where the operator allows: the admin API must not
        // become a way to write, or probe, any file the process can reach. With a remote
        // provider the local sections are the operator's bootstrap, and may not change here.
        let scope = super::remote_scope(self.provider.as_ref()).unwrap_or(PathScope::All);
        if scope == PathScope::Shared {
            local_sections_unchanged(&doc, &state.tree).map_err(WriteError::Invalid)?;
        }
        let policy = self.paths.with_scope(scope);
        // Check everything, including compiling (certificates) and binding (ports), before
        // the provider stores it: an invalid document must not become the source of truth.
        if dry_run {
            let loaded = self.validate(&doc, &policy).map_err(WriteError::Invalid)?;
            return Ok(self.written(state.version, &loaded));
        }
        let staged = self
            .stage(&mut state, doc, false, Some(&policy))
            .map_err(WriteError::Invalid)?;
        self.provider.store(text).map_err(WriteError::Store)?;
        let Some(staged) = staged else {
            // The running document, written differently: its warnings at this text's positions.
            let loaded = self
                .parse(&state.doc, Some(&policy))
                .map_err(WriteError::Invalid)?;
            return Ok(self.written(state.version, &loaded));
        };
        let result = self.publish(&mut state, *staged, origin);
        self.count(&result);
        let version = result.map_err(WriteError::Invalid)?;
        Ok(Written {
            version,
            warnings: state.warnings.clone(),
            pending_restart: state.pending_restart.clone(),
        })
    }

    fn written(&self, version: u64, loaded: &strait_config::Loaded) -> Written {
        Written {
            version,
            warnings: warnings_of(loaded),
            pending_restart: self.started.pending(&loaded.config),
        }
    }

    pub(super) fn parse(
        &self,
        doc: &Document,
        policy: Option<&PathPolicy>,
    ) -> Result<strait_config::Loaded, Errors> {
        doc.parse_restricted(policy)
    }

    /// What a dry run checks: parse, compile and bind, against scratch state, keeping nothing.
    fn validate(
        &self,
        doc: &Document,
        policy: &PathPolicy,
    ) -> Result<strait_config::Loaded, Errors> {
        let loaded = self.parse(doc, Some(policy))?;
        let scratch = Arc::new(Metrics::new());
        let snap = compile(&loaded.config, 0, &LiveState::new(), &scratch)?;
        // The sockets bound here are closed at once.
        self.admin
            .lock()
            .expect("admin lock")
            .prepare(&loaded.config.admin)
            .map_err(|msg| admin_error(&loaded.config, msg))?;
        self.listeners
            .lock()
            .expect("listeners lock")
            .prepare(&snap)
            .map_err(|(i, msg)| bind_error(&loaded.config, i, msg))?;
        Ok(loaded)
    }

    /// Re-applies the document of an earlier `version` through the provider.
    pub fn rollback(&self, version: u64, base: Option<u64>) -> Result<Written, WriteError> {
        let text = {
            let state = self.lock();
            state
                .history
                .iter()
                .find(|v| v.version == version)
                .map(|v| v.text.clone())
                .ok_or(WriteError::UnknownVersion(version))?
        };
        self.write(&text, base, "rollback", false)
    }
}

/// Refuses a document that changes a section an instance reads from its own bootstrap file
/// (`admin`, `config`, `observability`): the provider does not store those, and applying them
/// from here would run settings (an access log path) that no one allowed.
fn local_sections_unchanged(doc: &Document, running: &serde_json::Value) -> Result<(), Errors> {
    let tree = strait_config::to_value(&doc.source, &doc.text)?;
    let changed: Vec<&str> = tree
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| {
            !strait_config::SHARED_SECTIONS.contains(&k.as_str()) && running.get(k) != Some(*v)
        })
        .map(|(k, _)| k.as_str())
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(Errors(vec![Diagnostic::new(
        doc.source.clone(),
        (0, 0),
        format!(
            "`{}` is local to this instance (its bootstrap file) and cannot change through the admin API: edit the bootstrap file and restart",
            changed.join("`, `")
        ),
    )]))
}
