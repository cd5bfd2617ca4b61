//! File paths in a configuration: resolved against its directory, checked to exist and to be small enough, and, for a document from a remote source, held to the operator's allowed directories.

use std::path::{Path, PathBuf};

use super::{pos, Ctx};
use crate::diag::Pos;
use crate::paths::{Access, PathScope, MAX_INPUT_FILE_BYTES};
use crate::raw::S;

impl Ctx<'_> {
    /// Whether file paths are resolved and checked (the config came from a file).
    pub(crate) fn checks_files(&self) -> bool {
        self.base_dir.is_some()
    }

    /// A path resolved against the config's directory, not checked (files Strait creates, e.g. logs).
    pub(crate) fn resolve_path(&self, s: &str) -> PathBuf {
        match self.base_dir {
            Some(base) => base.join(s),
            None => PathBuf::from(s),
        }
    }

    /// False (and reported at `at`) when the document's path policy refuses `path` for `access`.
    pub(crate) fn allowed_path(
        &mut self,
        at: Pos,
        field: &str,
        path: &Path,
        access: Access,
    ) -> bool {
        let Some(policy) = self.policy else {
            return true;
        };
        if self.local_section && policy.scope() == PathScope::Shared {
            return true;
        }
        match policy.check(path, access) {
            Ok(()) => true,
            Err(e) => {
                self.err(at, format!("{field}: {e}"));
                false
            }
        }
    }

    /// A file path resolved against the config's directory; checked to exist (and to be at
    /// most [`MAX_INPUT_FILE_BYTES`]) when that is known.
    pub(crate) fn file(&mut self, s: &S, field: &str) -> PathBuf {
        self.file_checked(s, field, true)
    }

    /// Like [`Ctx::file`], for a file that may appear later (an OCSP response an agent writes):
    /// a missing file is a warning, not an error.
    pub(crate) fn optional_file(&mut self, s: &S, field: &str) -> PathBuf {
        self.file_checked(s, field, false)
    }

    fn file_checked(&mut self, s: &S, field: &str, required: bool) -> PathBuf {
        if s.value.is_empty() {
            self.err(pos(s), format!("{field}: empty file path"));
            return PathBuf::new();
        }
        let path = Path::new(&s.value);
        let resolved = match self.base_dir {
            Some(base) => base.join(path),
            None => path.to_path_buf(),
        };
        // Before anything touches the file system: a refused path gets no answer about itself.
        if !self.allowed_path(pos(s), field, &resolved, Access::Read) || self.base_dir.is_none() {
            return resolved;
        }
        match std::fs::metadata(&resolved) {
            Ok(m) if m.is_file() && m.len() > MAX_INPUT_FILE_BYTES => self.err(
                pos(s),
                format!(
                    "{field}: file `{}` is larger than {} KiB",
                    s.value,
                    MAX_INPUT_FILE_BYTES / 1024
                ),
            ),
            Ok(m) if m.is_file() => {}
            _ if !required => self.warn(
                pos(s),
                format!(
                    "{field}: file `{}` not found (looked for {}); nothing is used until it exists",
                    s.value,
                    resolved.display()
                ),
            ),
            _ => self.err(
                pos(s),
                format!(
                    "{field}: file `{}` not found (looked for {})",
                    s.value,
                    resolved.display()
                ),
            ),
        }
        resolved
    }
}
