//! Configuration providers: where the configuration document comes from, how changes are noticed, and where admin writes go.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
};

use strait_config::Errors;
use tokio::sync::mpsc;

/// One configuration document as a provider holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// Names the document in diagnostics (a file path, `etcd:/strait/`, `admin`).
    pub source: String,
    /// YAML (or JSON) text.
    pub text: String,
    /// Directory relative certificate paths resolve against; `None` keeps them as written.
    pub base_dir: Option<PathBuf>,
    /// Whether `${VAR}` references are expanded from the environment: for a config file,
    /// whoever wrote it (an admin write to a file provider is read back from the file too).
    pub expand_env: bool,
}

impl Document {
    /// Parses and validates the document (expanding references when it asks for that).
    pub fn parse(&self) -> Result<strait_config::Loaded, Errors> {
        self.parse_restricted(None)
    }

    /// [`Document::parse`] with a path policy for documents from remote sources.
    pub fn parse_restricted(
        &self,
        policy: Option<&strait_config::PathPolicy>,
    ) -> Result<strait_config::Loaded, Errors> {
        let parse = match self.expand_env {
            true => strait_config::parse_with_env_restricted,
            false => strait_config::parse_restricted,
        };
        parse(&self.source, &self.text, self.base_dir.as_deref(), policy)
    }

    /// The document as a tree, with references kept as written so that admin edits write them
    /// back unexpanded. A reference inside a flow collection (`{ a: ${X} }`) is YAML only
    /// once expanded: such a document's tree holds the expanded values.
    pub fn tree(&self) -> Result<serde_json::Value, Errors> {
        let written = strait_config::to_value(&self.source, &self.text);
        if written.is_ok() || !self.expand_env {
            return written;
        }
        let expanded = strait_config::env::expand_env(&self.source, &self.text)?;
        strait_config::to_value(&self.source, &expanded.text)
    }
}

/// How a [`Provider::store`] error starts when the write may or may not have been applied
/// (sent, then no answer): the admin API answers it with 504, not as a failure.
pub const OUTCOME_UNKNOWN: &str = "outcome unknown:";

/// A source of configuration documents; the single source of truth that admin writes also go to.
pub trait Provider: Send + Sync + 'static {
    /// Short name recorded with each version: `file`, `etcd`, `embedded`.
    fn kind(&self) -> &'static str;
    /// Reads the current document. May block: callers run it off the runtime's worker threads.
    fn load(&self) -> Result<Document, Errors>;
    /// Makes `text` the new source of truth (the file rewritten atomically, the etcd keys put).
    /// An error starting with `conflict:` is a concurrent change, one starting with
    /// [`OUTCOME_UNKNOWN`] a write that may still land. May block. The provider's own change notification for this write is expected and harmless:
    /// the control plane skips a document equal to the one it serves.
    fn store(&self, text: &str) -> Result<(), String>;
    /// Notifications of changes made outside this process; `None` when the source cannot change.
    /// Called once, at start.
    fn subscribe(&self) -> Option<mpsc::Receiver<()>>;
    /// Where state that must survive a restart (rollout progress) is kept; called once, at
    /// start. By default it lives in memory only.
    fn state_store(&self) -> Box<dyn StateStore> {
        Box::new(MemoryStore::default())
    }
}

/// A small store of named documents kept beside the configuration (rollout state).
pub trait StateStore: Send + Sync + 'static {
    /// Where the documents live, for logs (`memory`, a directory).
    fn describe(&self) -> String;
    /// The document `name`, if one was stored. May block.
    fn load(&self, name: &str) -> Result<Option<String>, String>;
    /// Replaces the document `name`. May block.
    fn store(&self, name: &str, text: &str) -> Result<(), String>;
    /// Whether several instances share the store (etcd): then one of them leads the rollouts
    /// and writes only through [`StateStore::store_if`].
    fn shared(&self) -> bool {
        false
    }
    /// The document `name` and its version (0 when there is none). May block.
    fn load_versioned(&self, name: &str) -> Result<(Option<String>, i64), String> {
        Ok((self.load(name)?, 0))
    }
    /// Replaces the document `name` if its version is still `version` (0: there is none);
    /// the new version, or `None` when someone else wrote it first. May block. By default the
    /// store has one writer, so the write always applies.
    fn store_if(&self, name: &str, text: &str, version: i64) -> Result<Option<i64>, String> {
        self.store(name, text)?;
        Ok(Some(version + 1))
    }
}

/// State kept in this process only: lost on restart (the embedded default configuration).
/// Versions count writes, so it can stand in for a shared store in tests.
#[derive(Default)]
pub struct MemoryStore(Mutex<std::collections::HashMap<String, (String, i64)>>);

impl StateStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn load(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.load_versioned(name)?.0)
    }

    fn store(&self, name: &str, text: &str) -> Result<(), String> {
        let mut docs = self.0.lock().expect("state lock");
        let version = docs.get(name).map_or(0, |d| d.1) + 1;
        docs.insert(name.to_string(), (text.to_string(), version));
        Ok(())
    }

    fn load_versioned(&self, name: &str) -> Result<(Option<String>, i64), String> {
        let docs = self.0.lock().expect("state lock");
        Ok(docs
            .get(name)
            .map_or((None, 0), |(t, v)| (Some(t.clone()), *v)))
    }

    fn store_if(&self, name: &str, text: &str, version: i64) -> Result<Option<i64>, String> {
        let mut docs = self.0.lock().expect("state lock");
        let current = docs.get(name).map_or(0, |d| d.1);
        if current != version {
            return Ok(None);
        }
        docs.insert(name.to_string(), (text.to_string(), current + 1));
        Ok(Some(current + 1))
    }
}

/// State as JSON files in a directory beside the configuration file (`.strait-state/`), each
/// written atomically.
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// The store of the configuration file `config`: `DIR/.strait-state/` beside it.
    pub fn beside(config: &Path) -> Self {
        let dir = match config.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        FileStore {
            dir: dir.join(".strait-state"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }
}

impl StateStore for FileStore {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn load(&self, name: &str) -> Result<Option<String>, String> {
        let path = self.path(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn store(&self, name: &str, text: &str) -> Result<(), String> {
        let path = self.path(name);
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| write_atomically(&path, text.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// The embedded default: read-only, never changes.
pub struct Embedded;

impl Provider for Embedded {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn load(&self) -> Result<Document, Errors> {
        Ok(Document {
            source: "<embedded default>".into(),
            text: strait_config::DEFAULT_CONFIG.into(),
            base_dir: None,
            expand_env: false,
        })
    }

    fn store(&self, _text: &str) -> Result<(), String> {
        Err("the embedded default configuration is read-only; start strait with -c FILE to change it".into())
    }

    fn subscribe(&self) -> Option<mpsc::Receiver<()>> {
        None
    }
}

/// A YAML file, watched for changes (and reloaded on SIGHUP by the binary).
pub struct FileProvider {
    path: PathBuf,
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
}

impl FileProvider {
    /// A provider over `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileProvider {
            path: path.into(),
            watcher: Mutex::new(None),
        }
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Provider for FileProvider {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn load(&self) -> Result<Document, Errors> {
        let text = strait_config::read_file(&self.path)?;
        Ok(Document {
            source: self.path.display().to_string(),
            text,
            base_dir: Some(self.path.parent().unwrap_or(Path::new(".")).to_path_buf()),
            expand_env: true,
        })
    }

    fn store(&self, text: &str) -> Result<(), String> {
        write_atomically(&self.path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    fn state_store(&self) -> Box<dyn StateStore> {
        Box::new(FileStore::beside(&self.path))
    }

    fn subscribe(&self) -> Option<mpsc::Receiver<()>> {
        match crate::watch::watch_file(&self.path) {
            Ok((w, rx)) => {
                *self.watcher.lock().expect("watcher lock") = Some(w);
                Some(rx)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the configuration file; reload with SIGHUP");
                None
            }
        }
    }
}

/// Replaces `path` with `bytes` so readers see the old or the new file, never a torn one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.strait-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        // Keep the file's permissions: configs may hold tokens.
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A diagnostic-carrying error for a document that cannot be read at all.
pub(crate) fn doc_error(source: &str, msg: impl Into<String>) -> Errors {
    Errors(vec![strait_config::Diagnostic::new(source, (0, 0), msg)])
}
