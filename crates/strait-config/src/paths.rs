//! Which files a configuration from a remote source (the admin API, etcd) may name: every path must lie under a directory the operator allowed, so an admin token or an etcd write can neither write nor probe arbitrary files.
//!
//! The check is lexical first (`..` and `.` removed, relative paths made absolute), so a path
//! outside the allowed directories is refused before anything is asked of the file system and
//! its error says nothing about whether it exists. Only a path that is inside is then resolved
//! through symbolic links, and refused if that leads outside.

use std::path::{Component, Path, PathBuf};

/// Largest certificate, key or CA file read (1 MiB): a full public CA bundle is about 220 KiB,
/// and the bound keeps a path to a device or a huge file from stalling or bloating a reload.
pub const MAX_INPUT_FILE_BYTES: u64 = 1 << 20;

/// The sections an etcd instance reads from etcd; the others come from its bootstrap file
/// (which may also keep `policies` and `rollouts`, as before etcd had keys for them).
pub const SHARED_SECTIONS: [&str; 6] = [
    "server",
    "listeners",
    "routes",
    "upstreams",
    "policies",
    "rollouts",
];

/// Which sections of a document the policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathScope {
    /// Every section: the whole document came from the admin API.
    All,
    /// The sections etcd supplies (`listeners`, `routes`, `upstreams`, `server`, `policies`,
    /// `rollouts`; a bootstrap file's own policies are held to it too); `admin`,
    /// `config` and `observability` come from the operator's bootstrap file and are trusted.
    Shared,
}

/// The directories remote configuration may name files in (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPolicy {
    dirs: Vec<AllowedDir>,
    /// Files never written to, wherever they are: the configuration file itself.
    protected: Vec<PathBuf>,
    scope: PathScope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedDir {
    /// Absolute and lexically normalised, as the operator wrote it.
    given: PathBuf,
    /// With symbolic links resolved.
    real: PathBuf,
}

/// Whether a path is read (certificates, keys, CAs) or written (logs, caches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

// === impl PathPolicy ===

impl PathPolicy {
    /// Allows `dirs` (each must be an existing directory); `protected` files are never written.
    pub fn new(dirs: &[PathBuf], protected: &[PathBuf]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(dirs.len());
        for d in dirs {
            let real = std::fs::canonicalize(d)
                .map_err(|e| format!("allowed directory {}: {e}", d.display()))?;
            if !real.is_dir() {
                return Err(format!(
                    "allowed directory {} is not a directory",
                    d.display()
                ));
            }
            out.push(AllowedDir {
                given: absolute(d),
                real,
            });
        }
        Ok(PathPolicy {
            dirs: out,
            protected: protected.iter().map(|p| absolute(p)).collect(),
            scope: PathScope::All,
        })
    }

    /// The same directories, applied to `scope`.
    pub fn with_scope(&self, scope: PathScope) -> Self {
        PathPolicy {
            scope,
            ..self.clone()
        }
    }

    /// The sections it applies to.
    pub fn scope(&self) -> PathScope {
        self.scope
    }

    /// The allowed directories, as given.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.given.as_path())
    }

    /// `Ok` when `path` may be used for `access`; otherwise why not, without saying whether
    /// a path outside the allowed directories exists.
    pub(crate) fn check(&self, path: &Path, access: Access) -> Result<(), String> {
        let abs = absolute(path);
        let inside = |p: &Path, real: bool| {
            self.dirs
                .iter()
                .any(|d| p.starts_with(if real { &d.real } else { &d.given }))
        };
        if !inside(&abs, false) && !inside(&abs, true) {
            return Err(self.outside(path));
        }
        if access == Access::Write && self.protected.contains(&abs) {
            return Err(format!(
                "`{}` is the configuration file; choose another file",
                path.display()
            ));
        }
        // Inside by name; a symbolic link on the way must not lead out. A file that does not
        // exist is reported by the caller's own check, which may say so: it is inside.
        let resolved = match access {
            Access::Read => std::fs::canonicalize(&abs).ok(),
            Access::Write => match std::fs::canonicalize(&abs) {
                Ok(p) => Some(p),
                Err(_) => abs
                    .parent()
                    .and_then(|d| std::fs::canonicalize(d).ok())
                    .map(|d| d.join(abs.file_name().unwrap_or_default())),
            },
        };
        match resolved {
            Some(r) if !inside(&r, true) => Err(self.outside(path)),
            _ => Ok(()),
        }
    }

    fn outside(&self, path: &Path) -> String {
        let dirs: Vec<String> = self.dirs().map(|d| d.display().to_string()).collect();
        let allowed = if dirs.is_empty() {
            "none are allowed".to_string()
        } else {
            dirs.join(", ")
        };
        format!(
            "`{}` is outside the directories a configuration from the admin API or etcd may use ({allowed}); the operator allows more with `strait run --allow-dir DIR`",
            path.display()
        )
    }
}

/// `path` made absolute (against the working directory) with `.` and `..` removed by name.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    normalize(&joined)
}

/// Removes `.` and `..` components without touching the file system; `..` at the root stays
/// at the root, as the kernel resolves it.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let at_root = matches!(
                    out.components().next_back(),
                    None | Some(Component::RootDir | Component::Prefix(_))
                );
                if !at_root {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests;
